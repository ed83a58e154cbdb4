// Base45 (RFC 9285) with SPEC.md §5's strict decoding: upper-case alphabet
// only, no dangling character, no triple over 65535 or pair over 255.
import { ProtocolError } from "./errors.js";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";

export function encode(bytes) {
  let out = "";
  for (let i = 0; i + 1 < bytes.length; i += 2) {
    const n = bytes[i] * 256 + bytes[i + 1];
    out += ALPHABET[n % 45] + ALPHABET[Math.floor(n / 45) % 45] + ALPHABET[Math.floor(n / 2025)];
  }
  if (bytes.length % 2) {
    const c = bytes[bytes.length - 1];
    out += ALPHABET[c % 45] + ALPHABET[Math.floor(c / 45)];
  }
  return out;
}

export function decode(text) {
  if (text.length % 3 === 1) throw new ProtocolError("malformed", "Base45: a dangling character at the end");
  const out = [];
  for (let i = 0; i < text.length; i += 3) {
    const chunk = text.slice(i, i + 3);
    let n = 0;
    for (let k = chunk.length - 1; k >= 0; k--) {
      const d = ALPHABET.indexOf(chunk[k]);
      if (d < 0) throw new ProtocolError("malformed", `Base45: character ${JSON.stringify(chunk[k])} is not in the alphabet`);
      n = n * 45 + d;
    }
    if (chunk.length === 3) {
      if (n > 0xffff) throw new ProtocolError("malformed", "Base45: a triple worth more than 65535");
      out.push(n >> 8, n & 0xff);
    } else {
      if (n > 0xff) throw new ProtocolError("malformed", "Base45: a final pair worth more than 255");
      out.push(n);
    }
  }
  return Uint8Array.from(out);
}
