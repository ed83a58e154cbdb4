// COSE_Sign1 as SPEC.md §3 defines it: protected header exactly
// {1: -8, 4: kid}, empty unprotected header, Ed25519 over the plain RFC 9052
// Sig_structure ["Signature1", protected, external_aad, payload] with
// external_aad = len(domain) || domain || kind-specific bytes (the credential
// id for payment codes and order consents).
import { CborMap, Tag, decode, decodeCanonical, encode, equal, hasEmptyField } from "./cbor.js";
import { ProtocolError } from "./errors.js";
import { ascii, concat } from "./bytes.js";
import { sign } from "./keys.js";

// KINDS: domain, signer purpose, size cap of the whole COSE, highest field
// key, whether the body has a version field (key 1).
export const KINDS = {
  "credential": { domain: "airtab/credential/v1", signer: "issuer", cap: 512, fields: 9, versioned: true },
  "manifest": { domain: "airtab/manifest/v1", signer: "issuer", cap: 921600, fields: 14, versioned: true },
  "manifest-delta": { domain: "airtab/manifest-delta/v1", signer: "issuer", cap: 262144, fields: 10, versioned: true },
  "payment-code": { domain: "airtab/payment-code/v1", signer: "device", cap: 640, fields: 3, versioned: false },
  "order-consent": { domain: "airtab/order-consent/v1", signer: "device", cap: 640, fields: 6, versioned: false },
  "invoice": { domain: "airtab/invoice/v1", signer: "aircraft", cap: 4096, fields: 17, versioned: true },
  "flight-close": { domain: "airtab/flight-close/v1", signer: "aircraft", cap: 2048, fields: 10, versioned: true },
  "clearing-receipt": { domain: "airtab/clearing-receipt/v1", signer: "issuer", cap: 512, fields: 9, versioned: true },
};

const COSE_TAG = 0xd2;
const EMPTY_MAP = Uint8Array.of(0xa0);

export function externalAAD(domain, specific = new Uint8Array(0)) {
  const d = ascii(domain);
  return concat(Uint8Array.of(d.length), d, specific);
}

export function sigStructure(protectedBytes, aad, payload) {
  return encode(["Signature1", protectedBytes, aad, payload]);
}

export function protectedHeader(kid) {
  return encode(CborMap.of({ 1: -8, 4: kid }));
}

// parse strictly decodes a signed message of kind (SPEC.md §11 rules 1-7
// that need no knowledge of other messages). It never checks the signature.
export function parse(kind, raw) {
  const k = KINDS[kind];
  if (!k) throw new Error(`unknown kind ${kind}`);
  if (raw.length === 0) throw new ProtocolError("malformed", `${kind}: empty input`);
  if (raw.length > k.cap) throw new ProtocolError("malformed/oversize", `${kind}: ${raw.length} bytes, over the cap of ${k.cap}`);
  if (raw[0] !== COSE_TAG) throw new ProtocolError("malformed/cose", `${kind}: not a COSE_Sign1 message (want CBOR tag 18)`);
  const env = decode(raw);
  if (!(env instanceof Tag) || env.tag !== 18 || !Array.isArray(env.value) || env.value.length !== 4) {
    throw new ProtocolError("malformed/cose", `${kind}: want tag 18 around an array of 4`);
  }
  const [prot, unprot, payload, signature] = env.value;
  if (!(prot instanceof Uint8Array) || !(payload instanceof Uint8Array) || !(signature instanceof Uint8Array)) {
    throw new ProtocolError("malformed/cose", `${kind}: want [bstr, map, bstr, bstr]`);
  }
  if (!(unprot instanceof CborMap) || unprot.pairs.length !== 0) throw new ProtocolError("malformed/cose", `${kind}: the unprotected header must be empty`);
  if (!equal(encode(env), raw)) throw new ProtocolError("malformed/non-canonical", `${kind}: envelope not canonical`);
  if (prot.length > 32) throw new ProtocolError("malformed/cose", `${kind}: protected header over 32 bytes`);
  const hdr = decode(prot);
  if (!(hdr instanceof CborMap) || hdr.keys().sort().join() !== "1,4" || !equal(encode(hdr), prot)) {
    throw new ProtocolError("malformed/cose", `${kind}: protected header must be exactly {1: alg, 4: kid}`);
  }
  if (hdr.get(1) !== -8) throw new ProtocolError("malformed/cose", `${kind}: algorithm ${hdr.get(1)}, want EdDSA (-8)`);
  const kid = hdr.get(4);
  if (!(kid instanceof Uint8Array) || kid.length !== 8) throw new ProtocolError("malformed/cose", `${kind}: key id must be 8 bytes`);
  if (signature.length !== 64) throw new ProtocolError("malformed/cose", `${kind}: signature is ${signature.length} bytes, want 64`);
  const body = decode(payload);
  if (!(body instanceof CborMap)) throw new ProtocolError("malformed", `${kind}: payload is not a map`);
  for (const key of body.keys()) {
    if (!Number.isInteger(key) || key < 1 || key > k.fields) throw new ProtocolError("malformed/unknown-field", `${kind}: unknown field ${String(key)}`);
  }
  if (!equal(encode(body), payload) || hasEmptyField(body)) throw new ProtocolError("malformed/non-canonical", `${kind}: payload not canonical`);
  if (k.versioned && body.get(1) !== 1) throw new ProtocolError("malformed/version", `${kind}: version ${String(body.get(1))}, want 1`);
  return { kind, kid, protected: prot, payload, signature, body, raw };
}

// toBeSigned returns the Sig_structure a signature of kind covers.
export function toBeSigned(kind, protectedBytes, payload, specific) {
  return sigStructure(protectedBytes, externalAAD(KINDS[kind].domain, specific), payload);
}

// sign1 signs body (a CborMap) as kind with privateKey, whose key id is kid.
export async function sign1(kind, body, privateKey, kid, specific) {
  const payload = encode(body);
  const prot = protectedHeader(kid);
  const sig = await sign(privateKey, toBeSigned(kind, prot, payload, specific));
  const raw = encode(new Tag(18, [prot, new CborMap(), payload, sig]));
  if (raw.length > KINDS[kind].cap) throw new ProtocolError("malformed/oversize", `${kind}: ${raw.length} bytes, over the cap`);
  return raw;
}

export { decodeCanonical, EMPTY_MAP };
