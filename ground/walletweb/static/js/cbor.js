// CBOR (RFC 8949) in core deterministic encoding, only what Airtab uses
// (SPEC.md §1.2): unsigned and negative integers, byte and text strings,
// arrays, maps, tag 18 on the COSE envelope, and true. decode is strict
// (definite lengths, no floats, no null, valid UTF-8, depth and size
// bounds, no duplicate keys); canonical form is checked by re-encoding and
// comparing bytes (see decodeCanonical).
import { ProtocolError } from "./errors.js";

export const MAX_DEPTH = 12;
export const MAX_ARRAY = 4096;
export const MAX_MAP = 64;

// CborMap keeps a map's pairs in wire order; keys are small integers or
// strings. get(k) finds a value by key.
export class CborMap {
  constructor(pairs = []) {
    this.pairs = pairs;
  }
  get(k) {
    for (const [kk, v] of this.pairs) if (kk === k) return v;
    return undefined;
  }
  has(k) {
    return this.get(k) !== undefined;
  }
  keys() {
    return this.pairs.map(([k]) => k);
  }
  static of(obj) {
    // of({1: x, 2: y}) makes a map with integer keys, omitting undefined.
    const pairs = [];
    for (const [k, v] of Object.entries(obj)) if (v !== undefined) pairs.push([Number(k), v]);
    return new CborMap(pairs);
  }
}

export class Tag {
  constructor(tag, value) {
    this.tag = tag;
    this.value = value;
  }
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const utf8enc = new TextEncoder();

function bad(msg) {
  return new ProtocolError("malformed", msg);
}

// decode returns the one CBOR item that fills bytes exactly.
export function decode(bytes) {
  const r = { b: bytes, i: 0 };
  const v = item(r, 0);
  if (r.i !== bytes.length) throw bad(`${bytes.length - r.i} bytes after the CBOR item`);
  return v;
}

// decodeCanonical decodes and checks the bytes are the one canonical
// encoding of what they hold.
export function decodeCanonical(bytes, what) {
  const v = decode(bytes);
  if (!equal(encode(v), bytes)) throw new ProtocolError("malformed/non-canonical", `${what}: not the canonical CBOR encoding`);
  return v;
}

function head(r) {
  if (r.i >= r.b.length) throw bad("truncated CBOR");
  const ib = r.b[r.i++];
  const major = ib >> 5, info = ib & 31;
  if (info < 24) return [major, info];
  const n = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
  if (!n) throw bad(`indefinite length or reserved additional information ${info}`);
  if (r.i + n > r.b.length) throw bad("truncated CBOR");
  let v = 0n;
  for (let k = 0; k < n; k++) v = (v << 8n) | BigInt(r.b[r.i++]);
  return [major, v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v];
}

function length(v) {
  if (typeof v === "bigint") throw bad("length too large");
  return v;
}

function item(r, depth) {
  if (depth > MAX_DEPTH) throw bad(`nesting deeper than ${MAX_DEPTH}`);
  const [major, arg] = head(r);
  switch (major) {
    case 0:
      return arg;
    case 1:
      return typeof arg === "bigint" || arg >= Number.MAX_SAFE_INTEGER ? -1n - BigInt(arg) : -1 - arg;
    case 2:
    case 3: {
      const n = length(arg);
      if (r.i + n > r.b.length) throw bad("truncated string");
      const s = r.b.slice(r.i, r.i + n);
      r.i += n;
      if (major === 2) return s;
      try {
        return utf8.decode(s);
      } catch {
        throw bad("text string is not valid UTF-8");
      }
    }
    case 4: {
      const n = length(arg);
      if (n > MAX_ARRAY) throw bad(`array of ${n} elements, over ${MAX_ARRAY}`);
      const out = [];
      for (let k = 0; k < n; k++) out.push(item(r, depth + 1));
      return out;
    }
    case 5: {
      const n = length(arg);
      if (n > MAX_MAP) throw bad(`map of ${n} pairs, over ${MAX_MAP}`);
      const pairs = [], seen = new Set();
      for (let k = 0; k < n; k++) {
        const key = item(r, depth + 1);
        const val = item(r, depth + 1);
        const id = typeof key + ":" + String(key);
        if (seen.has(id)) throw new ProtocolError("malformed/duplicate-key", `map key ${String(key)} appears twice`);
        seen.add(id);
        pairs.push([key, val]);
      }
      return new CborMap(pairs);
    }
    case 6:
      return new Tag(arg, item(r, depth + 1));
    case 7:
      if (arg === 21) return true;
      if (arg === 20) return false;
      throw bad("floating-point, null or undefined values are not allowed");
  }
  throw bad("unknown CBOR major type");
}

function encodeHead(major, n) {
  n = BigInt(n);
  if (n < 24n) return [(major << 5) | Number(n)];
  for (const [info, size] of [[24, 1], [25, 2], [26, 4], [27, 8]]) {
    if (n < 1n << BigInt(8 * size)) {
      const out = [(major << 5) | info];
      for (let k = size - 1; k >= 0; k--) out.push(Number((n >> BigInt(8 * k)) & 0xffn));
      return out;
    }
  }
  throw new RangeError("integer too large for CBOR");
}

// encode returns the canonical encoding of v (map keys sorted bytewise).
export function encode(v) {
  const out = [];
  put(out, v);
  return Uint8Array.from(out);
}

function put(out, v) {
  if (v === true || v === false) {
    out.push(v ? 0xf5 : 0xf4);
  } else if (typeof v === "number" || typeof v === "bigint") {
    if (typeof v === "number" && !Number.isInteger(v)) throw new RangeError("no floats in Airtab CBOR");
    const big = BigInt(v);
    out.push(...(big >= 0n ? encodeHead(0, big) : encodeHead(1, -1n - big)));
  } else if (v instanceof Uint8Array) {
    out.push(...encodeHead(2, v.length));
    for (const x of v) out.push(x);
  } else if (typeof v === "string") {
    const b = utf8enc.encode(v);
    out.push(...encodeHead(3, b.length));
    for (const x of b) out.push(x);
  } else if (Array.isArray(v)) {
    out.push(...encodeHead(4, v.length));
    for (const x of v) put(out, x);
  } else if (v instanceof CborMap) {
    const items = v.pairs.map(([k, x]) => [encode(k), encode(x)]);
    items.sort((a, b) => compare(a[0], b[0]));
    out.push(...encodeHead(5, items.length));
    for (const [k, x] of items) {
      for (const y of k) out.push(y);
      for (const y of x) out.push(y);
    }
  } else if (v instanceof Tag) {
    out.push(...encodeHead(6, v.tag));
    put(out, v.value);
  } else {
    throw new TypeError("cannot encode " + typeof v);
  }
}

function compare(a, b) {
  const n = Math.min(a.length, b.length);
  for (let k = 0; k < n; k++) if (a[k] !== b[k]) return a[k] - b[k];
  return a.length - b.length;
}

export function equal(a, b) {
  return a.length === b.length && compare(a, b) === 0;
}

// isEmpty says whether v is a zero value that canonical Airtab CBOR omits.
export function isEmpty(v) {
  return v === 0 || v === 0n || v === false || v === "" ||
    (v instanceof Uint8Array && v.length === 0) ||
    (Array.isArray(v) && v.length === 0) ||
    (v instanceof CborMap && v.pairs.length === 0);
}

// hasEmptyField says whether any map anywhere in v holds a zero or empty
// value: a second encoding of the same message (SPEC.md §1.2).
export function hasEmptyField(v) {
  if (v instanceof CborMap) return v.pairs.some(([, x]) => isEmpty(x) || hasEmptyField(x));
  if (Array.isArray(v)) return v.some(hasEmptyField);
  return false;
}
