// Checks protocol/testdata/vectors.json with the wallet's own JavaScript
// (cbor.js, cose.js, base45.js, keys.js, messages.js) in the browser, as
// SPEC.md §13 asks of an independent implementation: every valid vector is
// rebuilt byte for byte (protected header, Sig_structure, external_aad,
// COSE envelope, QR text; the Ed25519 signature re-made from the seed) and
// verifies; every invalid vector is refused with its stated error class.
import { CborMap, Tag, decode, encode, equal } from "/wallet/js/cbor.js";
import { KINDS, externalAAD, parse, protectedHeader, sigStructure } from "/wallet/js/cose.js";
import * as base45 from "/wallet/js/base45.js";
import { fromHex, hex, sha256, ascii } from "/wallet/js/bytes.js";
import { importSeed, keyId, parseKeyText, sign, verify } from "/wallet/js/keys.js";
import { PREFIX, decodeOrder, fromQR, parseCredential, credentialWindow } from "/wallet/js/messages.js";
import { ProtocolError } from "/wallet/js/errors.js";

class Invalid extends Error {
  constructor(cls, msg) {
    super(msg);
    this.cls = cls;
  }
}

export async function run(f) {
  const out = { valid: 0, invalid: 0, unsigned: 0, failures: [] };
  const fail = (name, what) => out.failures.push(`${name}: ${what}`);
  const keys = {};
  for (const k of f.keys) {
    const seed = await sha256(ascii(k.seed_input));
    if (hex(seed) !== k.seed) fail(k.name, "seed");
    const pub = fromHex(k.public_hex);
    if (hex(await keyId(pub)) !== k.key_id) fail(k.name, "key id");
    if (k.public !== `airtab-${k.purpose}-pub:${k.public_hex}`) fail(k.name, "text form");
    keys[k.name] = { ...k, pub, seed, signer: await importSeed(seed) };
  }
  const creds = {};
  for (const v of f.valid) if (v.kind === "credential") creds[v.name] = fromHex(v.cose);

  function trusted(kid, purpose, at) {
    let other = null;
    for (const k of Object.values(keys)) {
      if (hex(kid) !== k.key_id || k.trusted_not_after === undefined) continue;
      if (k.purpose !== purpose) {
        other = k.purpose;
        continue;
      }
      if (k.trusted_not_before <= at && at < k.trusted_not_after) return k.pub;
    }
    if (other) throw new Invalid("key-purpose", `kid is a trusted ${other} key, want ${purpose}`);
    throw new Invalid("unknown-key", `no trusted ${purpose} key ${hex(kid)}`);
  }

  async function verifyIssued(kind, raw, at, specific) {
    const m = parse(kind, raw);
    const pub = trusted(m.kid, KINDS[kind].signer, at);
    if (!(await verify(pub, m.signature, sigStructure(m.protected, externalAAD(KINDS[kind].domain, specific), m.payload)))) {
      throw new Invalid("signature", `${kind} signature does not verify`);
    }
    return m;
  }

  async function verifyCredential(raw, at) {
    await verifyIssued("credential", raw, at);
    const c = parseCredential(raw);
    const w = credentialWindow(c, at);
    if (w === "not-yet-valid") throw new Invalid("credential-not-yet-valid", "before not_before");
    if (w === "expired") throw new Invalid("credential-expired", "at or after not_after");
    return c;
  }

  async function verifyDevice(kind, raw, credName, at) {
    const m = parse(kind, raw);
    const embedded = m.body.get(kind === "payment-code" ? 3 : 6);
    const c = await verifyCredential(embedded || creds[credName], at);
    if (!equal(await keyId(c.device), m.kid)) throw new Invalid("unknown-key", "credential is for another device");
    if (!(await verify(c.device, m.signature, sigStructure(m.protected, externalAAD(KINDS[kind].domain, c.id), m.payload)))) {
      throw new Invalid("signature", "device signature does not verify");
    }
    return m;
  }

  async function check(kind, raw, text, credName, at) {
    if (kind === "issuer-public-key-text") {
      parseKeyText(text, "issuer");
      return;
    }
    if (kind === "payment-code-qr" || (text && PREFIX[kind])) {
      kind = kind === "payment-code-qr" ? "payment-code" : kind;
      raw = fromQR(kind, text);
    }
    if (kind === "payment-code" || kind === "order-consent") return verifyDevice(kind, raw, credName, at);
    if (kind === "credential") return verifyCredential(raw, at);
    return verifyIssued(kind, raw, at);
  }

  for (const v of f.valid) {
    try {
      const raw = fromHex(v.cose);
      const k = keys[v.signer];
      const kind = KINDS[v.kind];
      const prot = fromHex(v.protected), payload = fromHex(v.payload), sig = fromHex(v.signature);
      const credId = v.credential ? parseCredential(creds[v.credential]).id : new Uint8Array(0);
      const aad = externalAAD(kind.domain, credId);
      const ss = sigStructure(prot, aad, payload);
      const checks = {
        domain: v.domain === kind.domain && k.purpose === kind.signer,
        external_aad: hex(aad) === v.external_aad,
        protected: equal(protectedHeader(fromHex(k.key_id)), prot),
        sig_structure: hex(ss) === v.sig_structure,
        to_be_signed: hex(ss) === v.to_be_signed,
        payload_canonical: equal(encode(decode(payload)), payload),
        signature_rebuilt: hex(await sign(k.signer, ss)) === v.signature,
        ed25519: await verify(k.pub, sig, ss),
        cose: equal(encode(new Tag(18, [prot, new CborMap(), payload, sig])), raw),
        sha256: hex(await sha256(raw)) === v.cose_sha256,
      };
      if (v.qr_text) {
        checks.qr_text = v.qr_text === PREFIX[v.kind] + base45.encode(raw);
        checks.qr_decode = equal(fromQR(v.kind, v.qr_text), raw);
      }
      for (const [what, ok] of Object.entries(checks)) if (!ok) fail(v.name, what);
      await check(v.kind, raw, null, v.credential, v.verify_at);
      out.valid++;
    } catch (e) {
      fail(v.name, `rejected as ${e.cls || "error"}: ${e.message}`);
    }
  }
  for (const u of f.unsigned) {
    const raw = fromHex(u.cbor);
    try {
      if (!equal(encode(decode(raw)), raw) || hex(await sha256(raw)) !== u.sha256) fail(u.name, "not canonical or wrong sha256");
      if (u.kind === "order") {
        decodeOrder(raw);
        if (u.qr_text !== PREFIX.order + base45.encode(raw)) fail(u.name, "qr_text");
      }
      out.unsigned++;
    } catch (e) {
      fail(u.name, `rejected: ${e.message}`);
    }
  }
  for (const v of f.invalid) {
    const raw = v.cose ? fromHex(v.cose) : null;
    try {
      await check(v.kind, raw, v.text, v.credential, v.verify_at || 0);
      fail(v.name, `accepted, want ${v.error}`);
    } catch (e) {
      if (!(e instanceof Invalid || e instanceof ProtocolError)) fail(v.name, `threw ${e}, want class ${v.error}`);
      else if (e.cls !== v.error) fail(v.name, `refused as ${e.cls} (${e.message}), want ${v.error}`);
      else out.invalid++;
    }
  }
  return out;
}
