// The messages the wallet reads and makes (SPEC.md §4): credentials from
// ground, orders from a handheld's QR, payment codes and order consents it
// signs, and their QR text form (§5).
import { CborMap, decodeCanonical, hasEmptyField } from "./cbor.js";
import * as base45 from "./base45.js";
import { ProtocolError } from "./errors.js";
import { hex, sha256 } from "./bytes.js";
import { parse, sign1 } from "./cose.js";

export const PREFIX = { "payment-code": "AT1:", "order-consent": "ATC1:", "order": "ATO1:" };
export const MAX_QR_TEXT = 1200;
export const MAX_COUNTER = 2 ** 32 - 1;
const FLIGHT_RE = /^([A-Z0-9]{2})([0-9]{1,4}[A-Z]?)-([0-9]{4}-[0-9]{2}-[0-9]{2})$/;

// EXPONENTS are the accepted currencies' minor-unit digits (§1.4).
export const EXPONENTS = {
  ISK: 0, JPY: 0, KRW: 0, BHD: 3, KWD: 3, OMR: 3,
  ...Object.fromEntries("AED AUD BRL CAD CHF CNY CZK DKK EUR GBP HKD HUF INR MXN NOK NZD PLN QAR SAR SEK SGD THB TRY USD ZAR".split(" ").map((c) => [c, 2])),
};

function invalid(kind, msg) {
  return new ProtocolError("malformed", `${kind}: ${msg}`);
}

function want(kind, body, key, name, check) {
  const v = body.get(key);
  if (v === undefined) throw invalid(kind, `${name} (field ${key}) is required`);
  if (!check(v)) throw invalid(kind, `${name} (field ${key}) has the wrong type or range`);
  return v;
}

const isUint = (v) => Number.isInteger(v) && v >= 0;
const isTime = (v) => Number.isInteger(v) && v >= 1 && v <= MAX_COUNTER;
const isBytes = (n) => (v) => v instanceof Uint8Array && v.length === n;

// money reads {1: minor, 2: currency}; positive says whether it must be > 0.
export function money(kind, v, name, positive) {
  if (!(v instanceof CborMap) || v.keys().some((k) => k !== 1 && k !== 2)) throw invalid(kind, `${name}: not a money map`);
  const minor = v.get(1) ?? 0, currency = v.get(2);
  if (!(currency in EXPONENTS)) throw invalid(kind, `${name}: currency ${String(currency)} not accepted`);
  if (!Number.isInteger(minor) || minor < 0 || minor > 1e12 || (positive && minor === 0)) throw invalid(kind, `${name}: amount out of range`);
  return { minor, currency };
}

export function formatMoney(m) {
  const e = EXPONENTS[m.currency] ?? 2;
  const neg = m.minor < 0, n = Math.abs(m.minor);
  const s = e === 0 ? String(n) : `${Math.floor(n / 10 ** e)}.${String(n % 10 ** e).padStart(e, "0")}`;
  return `${neg ? "−" : ""}${s} ${m.currency}`;
}

// parseMajor reads "12.50" in major units of currency into minor units.
export function parseMajor(text, currency) {
  const e = EXPONENTS[currency];
  if (e === undefined) throw new Error(`currency ${currency} not accepted`);
  const m = /^(\d{1,9})(?:\.(\d+))?$/.exec(text.trim());
  if (!m || (m[2] && m[2].length > e)) throw new Error(`amount "${text}": want a number with at most ${e} decimals, like ${e ? "25." + "0".repeat(e) : "2500"}`);
  return Number(m[1]) * 10 ** e + Number((m[2] || "").padEnd(e, "0") || 0);
}

// parseCredential strictly decodes a signed credential and returns its
// fields (times as Unix seconds). It does not verify the issuer signature:
// the cabin server does, against the manifest's trust list.
export function parseCredential(raw) {
  const m = parse("credential", raw);
  const b = m.body, kind = "credential";
  const c = {
    raw,
    kid: m.kid,
    id: want(kind, b, 2, "id", isBytes(16)),
    passenger: want(kind, b, 3, "passenger", isBytes(16)),
    device: want(kind, b, 4, "device", isBytes(32)),
    flight: want(kind, b, 5, "flight", (v) => typeof v === "string" && FLIGHT_RE.test(v)),
    limit: money(kind, want(kind, b, 6, "limit", () => true), "limit", true),
    txCap: money(kind, want(kind, b, 7, "tx_cap", () => true), "tx_cap", true),
    notBefore: want(kind, b, 8, "not_before", isTime),
    notAfter: want(kind, b, 9, "not_after", isTime),
  };
  if (c.notAfter <= c.notBefore) throw invalid(kind, "not_after must be after not_before");
  if (c.txCap.currency !== c.limit.currency || c.txCap.minor > c.limit.minor) throw invalid(kind, "tx_cap must be in the limit's currency and at most the limit");
  return c;
}

// credentialWindow says whether a credential is valid at Unix time now:
// "ok", "not-yet-valid" or "expired".
export function credentialWindow(c, now) {
  if (now < c.notBefore) return "not-yet-valid";
  if (now >= c.notAfter) return "expired";
  return "ok";
}

// decodeOrder strictly decodes an order's canonical CBOR (§4.5).
export function decodeOrder(bytes) {
  const kind = "order";
  if (bytes.length === 0 || bytes.length > 2048) throw new ProtocolError("malformed/oversize", "order: size out of 1..2048 bytes");
  const b = decodeCanonical(bytes, kind);
  if (!(b instanceof CborMap)) throw invalid(kind, "not a map");
  for (const k of b.keys()) if (!Number.isInteger(k) || k < 1 || k > 6) throw new ProtocolError("malformed/unknown-field", `order: unknown field ${String(k)}`);
  if (hasEmptyField(b)) throw new ProtocolError("malformed/non-canonical", "order: an empty field is present");
  if (b.get(1) !== 1) throw new ProtocolError("malformed/version", `order: version ${String(b.get(1))}, want 1`);
  const o = {
    id: want(kind, b, 2, "id", isBytes(16)),
    flight: want(kind, b, 3, "flight", (v) => typeof v === "string" && FLIGHT_RE.test(v)),
    total: money(kind, want(kind, b, 5, "total", () => true), "total", false),
    createdAt: want(kind, b, 6, "created_at", isTime),
    lines: [],
  };
  const lines = want(kind, b, 4, "lines", (v) => Array.isArray(v) && v.length >= 1 && v.length <= 32);
  let sum = 0;
  for (const l of lines) {
    if (!(l instanceof CborMap) || l.keys().some((k) => k < 1 || k > 3)) throw invalid(kind, "a line is not an order line");
    const sku = want(kind, l, 1, "sku", (v) => typeof v === "string" && v.length >= 1 && v.length <= 32);
    const quantity = want(kind, l, 2, "quantity", (v) => isUint(v) && v >= 1 && v <= 99);
    const unit = money(kind, want(kind, l, 3, "unit_price", () => true), "unit_price", false);
    if (unit.currency !== o.total.currency) throw invalid(kind, "a line's price is in another currency");
    sum += quantity * unit.minor;
    o.lines.push({ sku, quantity, unitPrice: unit });
  }
  if (sum !== o.total.minor) throw invalid(kind, "total is not the sum of the lines");
  o.hash = null;
  return o;
}

// toQR returns prefix || Base45(raw).
export function toQR(kind, raw) {
  return PREFIX[kind] + base45.encode(raw);
}

// fromQR returns the bytes of a QR text of kind, refusing another kind or
// version with a message that says which.
export function fromQR(kind, text) {
  if (text.length > MAX_QR_TEXT) throw new ProtocolError("malformed/oversize", `QR text of ${text.length} characters, over ${MAX_QR_TEXT}`);
  const prefix = PREFIX[kind];
  if (!text.startsWith(prefix)) {
    const head = text.split(":", 1)[0];
    const family = prefix.slice(0, -2);
    if (text.includes(":") && head.startsWith(family) && /^\d+$/.test(head.slice(family.length))) {
      throw new ProtocolError("malformed/version", `QR text of version ${head.slice(family.length)}, this wallet reads version 1 (${prefix})`);
    }
    throw new ProtocolError("malformed", `not an Airtab ${kind.replace("-", " ")} QR (want ${prefix}…)`);
  }
  return base45.decode(text.slice(prefix.length));
}

// readOrderQR decodes a handheld's order QR and computes its hash.
export async function readOrderQR(text) {
  const bytes = fromQR("order", text);
  const o = decodeOrder(bytes);
  o.hash = await sha256(bytes);
  o.bytes = bytes;
  return o;
}

// makePaymentCode signs a payment code (§4.4) for credential cred with the
// device key; full embeds the credential (for a late registrant).
export async function makePaymentCode({ cred, privateKey, kid, counter, time, full = false }) {
  checkCounter(counter, time);
  const body = CborMap.of({ 1: counter, 2: time, 3: full ? cred.raw : undefined });
  return sign1("payment-code", body, privateKey, kid, cred.id);
}

// makeConsent signs an order consent (§4.6) for order o.
export async function makeConsent({ cred, order, privateKey, kid, counter, time, full = false }) {
  checkCounter(counter, time);
  const total = CborMap.of({ 1: order.total.minor || undefined, 2: order.total.currency });
  const body = CborMap.of({ 1: order.id, 2: order.hash, 3: total, 4: counter, 5: time, 6: full ? cred.raw : undefined });
  return sign1("order-consent", body, privateKey, kid, cred.id);
}

function checkCounter(counter, time) {
  if (!Number.isInteger(counter) || counter < 1 || counter > MAX_COUNTER) throw new Error(`counter ${counter} out of 1..2^32-1`);
  if (!isTime(time)) throw new Error(`time ${time} out of range`);
}

export const idHex = hex;
