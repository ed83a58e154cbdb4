// Ed25519 keys with WebCrypto (SPEC.md §2). The device key is made in the
// browser as a non-extractable CryptoKey: the private half can sign but can
// never be read out, not even by this page, and IndexedDB keeps it as an
// opaque object (store.js).
import { ProtocolError } from "./errors.js";
import { ascii, concat, fromHex, hex, sha256 } from "./bytes.js";

export const PURPOSES = ["issuer", "aircraft", "device"];
const ED25519 = { name: "Ed25519" };

// generateDeviceKey makes a new device key pair; the private key is
// non-extractable.
export async function generateDeviceKey() {
  const pair = await crypto.subtle.generateKey(ED25519, false, ["sign", "verify"]);
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  return { privateKey: pair.privateKey, publicKey: pair.publicKey, raw };
}

// importSeed turns a 32-byte seed into a signing key (test vectors only: a
// real device key is never imported).
export async function importSeed(seed) {
  const pkcs8 = concat(fromHex("302e020100300506032b657004220420"), seed);
  return crypto.subtle.importKey("pkcs8", pkcs8, ED25519, false, ["sign"]);
}

// keyId is the first 8 bytes of SHA-256 of the raw public key.
export async function keyId(raw) {
  return (await sha256(raw)).slice(0, 8);
}

export function keyText(purpose, raw) {
  return `airtab-${purpose}-pub:${hex(raw)}`;
}

// parseKeyText parses "airtab-<purpose>-pub:<64 hex>" for the expected
// purpose; a key of another purpose is refused as such.
export function parseKeyText(text, purpose) {
  const m = /^airtab-([a-z]+)-pub:([0-9a-f]{64})$/.exec(text);
  if (!m) throw new ProtocolError("malformed", `not a public key text: ${text.slice(0, 30)}`);
  if (m[1] !== purpose) {
    throw new ProtocolError(PURPOSES.includes(m[1]) ? "key-purpose" : "malformed", `a ${m[1]} key where a ${purpose} key is expected`);
  }
  return fromHex(m[2]);
}

// frame returns len(domain) || domain || msg (crypto.Domain.Frame).
export function frame(domain, msg) {
  const d = ascii(domain);
  if (d.length < 1 || d.length > 64) throw new Error(`bad signing domain ${domain}`);
  return concat(Uint8Array.of(d.length), d, msg);
}

export async function sign(privateKey, msg) {
  return new Uint8Array(await crypto.subtle.sign(ED25519, privateKey, msg));
}

export async function verify(rawPublic, sig, msg) {
  const k = await crypto.subtle.importKey("raw", rawPublic, ED25519, false, ["verify"]);
  return crypto.subtle.verify(ED25519, k, sig, msg);
}
