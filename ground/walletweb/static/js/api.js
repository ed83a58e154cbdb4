// Ground's passenger API (protocol/passengerapi, SPEC.md §10.5), every call
// signed by the device key exactly as ground checks it:
//
//   signing string = METHOD "\n" REQUEST-TARGET "\n" TIMESTAMP "\n" NONCE "\n" hex(SHA-256(body))
//   signature      = Ed25519(len(domain) || domain || signing string), domain "airtab/ground-api/v1"
//
// REQUEST-TARGET is the path and query as sent; the nonce is 32 lower-case
// hex characters, fresh for every request (a retry signs again).
import { ascii, base64, hex, randomHex, sha256 } from "./bytes.js";
import { frame, keyId, keyText, sign } from "./keys.js";

export const SIGNING_DOMAIN = "airtab/ground-api/v1";

// ApiError is ground's refusal: a stable code, a message, the HTTP status.
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

// OfflineError: ground could not be reached.
export class OfflineError extends Error {
  constructor(cause) {
    super("no connection to ground: this needs the network (payment codes do not)");
    this.name = "OfflineError";
    this.cause = cause;
  }
}

export function signingString(method, target, timestamp, nonce, bodyHashHex) {
  return `${method}\n${target}\n${timestamp}\n${nonce}\n${bodyHashHex}`;
}

// Client calls ground at base (default: this page's origin).
export class Client {
  constructor(device, base = "") {
    this.device = device; // {privateKey, raw}
    this.base = base;
  }

  async call(method, target, body) {
    const text = body === undefined ? "" : JSON.stringify(body);
    const bytes = ascii(text);
    const ts = Math.floor(Date.now() / 1000);
    const nonce = randomHex(16);
    const msg = signingString(method, target, ts, nonce, hex(await sha256(bytes)));
    const sig = await sign(this.device.privateKey, frame(SIGNING_DOMAIN, ascii(msg)));
    const headers = {
      "Airtab-Device": hex(await keyId(this.device.raw)),
      "Airtab-Timestamp": String(ts),
      "Airtab-Nonce": nonce,
      "Airtab-Signature": base64(sig),
    };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(this.base + target, { method, headers, body: body === undefined ? undefined : bytes, cache: "no-store" });
    } catch (e) {
      throw new OfflineError(e);
    }
    let data = null;
    try {
      data = await resp.json();
    } catch {
      if (resp.ok) throw new Error(`${method} ${target}: ground answered something that is not JSON`);
    }
    if (!resp.ok) {
      const e = data?.error;
      if (resp.status === 503 && !e) throw new OfflineError(new Error("ground unavailable"));
      throw new ApiError(resp.status, e?.code || "internal", e?.message || `HTTP ${resp.status}`);
    }
    return data;
  }

  register(externalRef) {
    const body = { device_key: keyText("device", this.device.raw) };
    if (externalRef) body.external_ref = externalRef;
    return this.call("POST", "/v1/passengers", body);
  }
  account() {
    return this.call("GET", "/v1/me");
  }
  setFunding(f) {
    return this.call("PUT", "/v1/me/funding", f);
  }
  topUp(amount, ref) {
    return this.call("POST", "/v1/me/wallet/topups", { amount, ref });
  }
  balance(currency) {
    return this.call("GET", "/v1/me/wallet/" + encodeURIComponent(currency));
  }
  optIn(flight) {
    return this.call("POST", "/v1/me/credentials", { flight });
  }
  charges(limit) {
    return this.call("GET", "/v1/me/charges" + (limit ? "?limit=" + limit : ""));
  }
}
