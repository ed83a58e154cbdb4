#!/usr/bin/env python3
"""Independent check of protocol/testdata/vectors.json (see protocol/SPEC.md).

Written from SPEC.md alone, sharing no code with the Go implementation:
its own CBOR decoder and canonical encoder, Base45 encoder, external_aad and
RFC 9052 Sig_structure, and Ed25519 from the `cryptography` package (skipped, with a
warning, when that package is missing; everything else needs only the
standard library).

    python3 protocol/testdata/vectors_check.py [path/to/vectors.json]

Exit status 0 when every valid vector verifies and every invalid vector is
refused with its stated error class.
"""

import hashlib
import json
import os
import sys

try:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives import serialization
    from cryptography.exceptions import InvalidSignature

    HAVE_ED25519 = True
except ImportError:  # pragma: no cover
    HAVE_ED25519 = False


# --- CBOR (RFC 8949), only what Airtab uses -------------------------------


class Malformed(Exception):
    def __init__(self, cls, msg):
        super().__init__(msg)
        self.cls = cls


class Tag:
    def __init__(self, tag, value):
        self.tag, self.value = tag, value


class Map:
    """A CBOR map kept as a list of (key, value) pairs, in wire order."""

    def __init__(self, pairs):
        self.pairs = pairs

    def get(self, k, default=None):
        for kk, v in self.pairs:
            if kk == k:
                return v
        return default

    def keys(self):
        return [k for k, _ in self.pairs]


def decode(b):
    """Decodes one CBOR item that must fill b exactly."""
    v, i = _item(b, 0)
    if i != len(b):
        raise Malformed("malformed", "trailing bytes")
    return v


def _arg(b, i):
    if i >= len(b):
        raise Malformed("malformed", "truncated")
    ib = b[i]
    major, info = ib >> 5, ib & 31
    i += 1
    if info < 24:
        return major, info, i
    n = {24: 1, 25: 2, 26: 4, 27: 8}.get(info)
    if n is None:
        raise Malformed("malformed", "indefinite length or reserved info %d" % info)
    if i + n > len(b):
        raise Malformed("malformed", "truncated")
    return major, int.from_bytes(b[i : i + n], "big"), i + n


def _item(b, i):
    major, arg, i = _arg(b, i)
    if major == 0:
        return arg, i
    if major == 1:
        return -1 - arg, i
    if major in (2, 3):
        if i + arg > len(b):
            raise Malformed("malformed", "truncated string")
        s = bytes(b[i : i + arg])
        return (s if major == 2 else s.decode("utf-8")), i + arg
    if major == 4:
        out = []
        for _ in range(arg):
            v, i = _item(b, i)
            out.append(v)
        return out, i
    if major == 5:
        pairs, seen = [], set()
        for _ in range(arg):
            k, i = _item(b, i)
            v, i = _item(b, i)
            key = repr(k)
            if key in seen:
                raise Malformed("malformed/duplicate-key", "duplicate map key %r" % (k,))
            seen.add(key)
            pairs.append((k, v))
        return Map(pairs), i
    if major == 6:
        v, i = _item(b, i)
        return Tag(arg, v), i
    if major == 7 and arg in (20, 21):
        return arg == 21, i
    raise Malformed("malformed", "unsupported simple or float value")


def _head(major, n):
    if n < 24:
        return bytes([major << 5 | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([major << 5 | info]) + n.to_bytes(size, "big")
    raise ValueError("too large")


def encode(v):
    """Encodes in RFC 8949 core deterministic form (keys sorted bytewise)."""
    if isinstance(v, bool):
        return b"\xf5" if v else b"\xf4"
    if isinstance(v, int):
        return _head(0, v) if v >= 0 else _head(1, -1 - v)
    if isinstance(v, bytes):
        return _head(2, len(v)) + v
    if isinstance(v, str):
        e = v.encode("utf-8")
        return _head(3, len(e)) + e
    if isinstance(v, list):
        return _head(4, len(v)) + b"".join(encode(x) for x in v)
    if isinstance(v, Map):
        items = sorted((encode(k), encode(x)) for k, x in v.pairs)
        return _head(5, len(items)) + b"".join(k + x for k, x in items)
    if isinstance(v, Tag):
        return _head(6, v.tag) + encode(v.value)
    raise TypeError(type(v))


def empty(v):
    return v in (0, b"", "", False) or (isinstance(v, list) and not v) or (
        isinstance(v, Map) and not v.pairs
    )


def has_empty_field(v):
    """Whether any map anywhere in v holds a zero or empty value."""
    if isinstance(v, Map):
        return any(empty(x) or has_empty_field(x) for _, x in v.pairs)
    if isinstance(v, list):
        return any(has_empty_field(x) for x in v)
    return False


# --- Base45 (RFC 9285) ------------------------------------------------------

B45 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


def b45encode(b):
    out = []
    for i in range(0, len(b) - 1, 2):
        n = b[i] * 256 + b[i + 1]
        out += [B45[n % 45], B45[n // 45 % 45], B45[n // 2025]]
    if len(b) % 2:
        out += [B45[b[-1] % 45], B45[b[-1] // 45]]
    return "".join(out)


def b45decode(s):
    out = bytearray()
    for i in range(0, len(s), 3):
        chunk = [B45.index(c) for c in s[i : i + 3]]
        n = sum(c * 45**k for k, c in enumerate(chunk))
        if len(chunk) == 3:
            out += n.to_bytes(2, "big")
        elif len(chunk) == 2:
            out.append(n)
        else:
            raise Malformed("malformed", "dangling Base45 character")
    return bytes(out)


# --- The protocol, from SPEC.md --------------------------------------------

KINDS = {
    # kind: (domain, signer purpose, size cap, top-level field keys)
    "credential": ("airtab/credential/v1", "issuer", 512, range(1, 10)),
    "manifest": ("airtab/manifest/v1", "issuer", 900 * 1024, range(1, 15)),
    "manifest-delta": ("airtab/manifest-delta/v1", "issuer", 256 * 1024, range(1, 11)),
    "payment-code": ("airtab/payment-code/v1", "device", 640, range(1, 4)),
    "order-consent": ("airtab/order-consent/v1", "device", 640, range(1, 7)),
    "invoice": ("airtab/invoice/v1", "aircraft", 4096, range(1, 18)),
    "flight-close": ("airtab/flight-close/v1", "aircraft", 2048, range(1, 11)),
    "clearing-receipt": ("airtab/clearing-receipt/v1", "issuer", 512, range(1, 10)),
}
VERSIONED = {"credential", "manifest", "manifest-delta", "invoice", "flight-close", "clearing-receipt"}
QR_PREFIX = {"payment-code": "AT1:", "order-consent": "ATC1:", "order": "ATO1:"}


class Invalid(Exception):
    def __init__(self, cls, msg):
        super().__init__(msg)
        self.cls = cls


def sig_structure(protected, aad, payload):
    return encode(["Signature1", protected, aad, payload])


def external_aad(domain, specific=b""):
    """SPEC.md section 3.2: len(domain) || domain || kind-specific bytes."""
    d = domain.encode("ascii")
    return bytes([len(d)]) + d + specific


def ed25519_ok(pub, msg, sig):
    if not HAVE_ED25519:
        return True
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
        return True
    except InvalidSignature:
        return False


def parse_cose(kind, raw):
    """Strict parse: returns (kid, protected, payload, signature, body)."""
    domain, _, cap, fields = KINDS[kind]
    if len(raw) > cap:
        raise Malformed("malformed/oversize", "%d bytes over the cap of %d" % (len(raw), cap))
    if not raw or raw[0] != 0xD2:
        raise Malformed("malformed/cose", "not tag 18")
    env = decode(raw)
    if encode(env) != raw:
        raise Malformed("malformed/non-canonical", "envelope not canonical")
    env = env.value
    if not isinstance(env, list) or len(env) != 4:
        raise Malformed("malformed/cose", "not a 4-element array")
    protected, unprotected, payload, sig = env
    if not isinstance(unprotected, Map) or unprotected.pairs:
        raise Malformed("malformed/cose", "unprotected header not empty")
    hdr = decode(protected)
    if encode(hdr) != protected or sorted(hdr.keys()) != [1, 4]:
        raise Malformed("malformed/cose", "protected header not {1: alg, 4: kid}")
    if hdr.get(1) != -8:
        raise Malformed("malformed/cose", "alg %r, want -8" % hdr.get(1))
    kid = hdr.get(4)
    if not isinstance(kid, bytes) or len(kid) != 8 or len(sig) != 64:
        raise Malformed("malformed/cose", "bad kid or signature length")
    body = decode(payload)
    if not isinstance(body, Map):
        raise Malformed("malformed", "payload is not a map")
    if any(k not in fields for k in body.keys()):
        raise Malformed("malformed/unknown-field", "unknown field")
    if encode(body) != payload or has_empty_field(body):
        raise Malformed("malformed/non-canonical", "payload not canonical")
    if kind in VERSIONED and body.get(1) != 1:
        raise Malformed("malformed/version", "version %r" % body.get(1))
    return kid, protected, payload, sig, body


class Checker:
    def __init__(self, f):
        self.f = f
        self.keys = {}  # name -> dict
        self.creds = {}  # name -> raw
        self.cred_ids = {}  # name -> credential id (body field 2)
        self.failures = 0
        for k in f["keys"]:
            seed = hashlib.sha256(k["seed_input"].encode()).digest()
            assert seed.hex() == k["seed"], k["name"]
            pub = bytes.fromhex(k["public_hex"])
            if HAVE_ED25519:
                derived = (
                    Ed25519PrivateKey.from_private_bytes(seed)
                    .public_key()
                    .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
                )
                assert derived == pub, "public key of %s does not derive from its seed" % k["name"]
            assert hashlib.sha256(pub).digest()[:8].hex() == k["key_id"], k["name"]
            assert k["public"] == "airtab-%s-pub:%s" % (k["purpose"], pub.hex()), k["name"]
            self.keys[k["name"]] = dict(k, pub=pub)
        for i in f["ids"]:
            assert hashlib.sha256(i["input"].encode()).digest()[:16].hex() == i["id"], i["name"]
        for v in f["valid"]:
            if v["kind"] == "credential":
                self.creds[v["name"]] = bytes.fromhex(v["cose"])
                self.cred_ids[v["name"]] = parse_cose("credential", self.creds[v["name"]])[4].get(2)

    def trusted(self, kid, purpose, at):
        """Public key bytes for kid with purpose, trusted at time at."""
        other = None
        for k in self.keys.values():
            if bytes.fromhex(k["key_id"]) != kid or "trusted_not_after" not in k:
                continue
            if k["purpose"] != purpose:
                other = k["purpose"]
                continue
            if k["trusted_not_before"] <= at < k["trusted_not_after"]:
                return k["pub"]
        if other:
            raise Invalid("key-purpose", "kid is a trusted %s key, want %s" % (other, purpose))
        raise Invalid("unknown-key", "no trusted %s key %s" % (purpose, kid.hex()))

    def verify_issued(self, kind, raw, at, aad=b""):
        domain, purpose, _, _ = KINDS[kind]
        kid, protected, payload, sig, body = parse_cose(kind, raw)
        pub = self.trusted(kid, purpose, at)
        if not ed25519_ok(pub, sig_structure(protected, external_aad(domain, aad), payload), sig):
            raise Invalid("signature", "%s signature does not verify" % kind)
        return body

    def verify_credential(self, raw, at):
        body = self.verify_issued("credential", raw, at)
        if at < body.get(8):
            raise Invalid("credential-not-yet-valid", "before not_before")
        if at >= body.get(9):
            raise Invalid("credential-expired", "at or after not_after")
        return body

    def verify_device(self, kind, raw, cred_name, at):
        domain = KINDS[kind][0]
        kid, protected, payload, sig, body = parse_cose(kind, raw)
        embedded = body.get(3 if kind == "payment-code" else 6)
        cred = self.verify_credential(embedded or self.creds[cred_name], at)
        device, cred_id = cred.get(4), cred.get(2)
        if hashlib.sha256(device).digest()[:8] != kid:
            raise Invalid("unknown-key", "credential is for another device")
        if not ed25519_ok(device, sig_structure(protected, external_aad(domain, cred_id), payload), sig):
            raise Invalid("signature", "device signature does not verify")
        return body

    def verify(self, kind, raw, text, cred_name, at):
        if kind == "issuer-public-key-text":
            if not text.startswith("airtab-issuer-pub:"):
                raise Invalid("key-purpose", "not an issuer key text")
            return None
        if kind == "payment-code-qr" or (text and kind in QR_PREFIX):
            prefix = QR_PREFIX["payment-code" if kind == "payment-code-qr" else kind]
            if not text.startswith(prefix):
                head = text.split(":", 1)[0]
                raise Malformed(
                    "malformed/version" if head.rstrip("0123456789") == prefix[:-2] else "malformed",
                    "bad QR prefix",
                )
            raw = b45decode(text[len(prefix) :])
            kind = "payment-code" if kind == "payment-code-qr" else kind
        if kind in ("payment-code", "order-consent"):
            return self.verify_device(kind, raw, cred_name, at)
        if kind == "credential":
            return self.verify_credential(raw, at)
        return self.verify_issued(kind, raw, at)

    def fail(self, name, msg):
        self.failures += 1
        print("FAIL %s: %s" % (name, msg))

    def run(self):
        f = self.f
        for v in f["valid"]:
            raw = bytes.fromhex(v["cose"])
            domain, purpose, _, _ = KINDS[v["kind"]]
            k = self.keys[v["signer"]]
            protected, payload = bytes.fromhex(v["protected"]), bytes.fromhex(v["payload"])
            aad = bytes.fromhex(v["external_aad"])
            ss = sig_structure(protected, aad, payload)
            cred_id = self.cred_ids[v["credential"]] if v.get("credential") else b""
            checks = {
                "domain": v["domain"] == domain and k["purpose"] == purpose,
                "external_aad": aad == external_aad(domain, cred_id),
                "protected": protected == encode(Map([(1, -8), (4, bytes.fromhex(k["key_id"]))])),
                "sig_structure": ss.hex() == v["sig_structure"],
                "to_be_signed": ss.hex() == v["to_be_signed"],
                "ed25519": ed25519_ok(k["pub"], ss, bytes.fromhex(v["signature"])),
                "cose": raw == encode(Tag(18, [protected, Map([]), payload, bytes.fromhex(v["signature"])])),
                "sha256": hashlib.sha256(raw).hexdigest() == v["cose_sha256"],
            }
            if v.get("qr_text"):
                prefix = QR_PREFIX[v["kind"]]
                checks["qr_text"] = v["qr_text"] == prefix + b45encode(raw)
                checks["qr_decode"] = b45decode(v["qr_text"][len(prefix) :]) == raw
            for what, ok in checks.items():
                if not ok:
                    self.fail(v["name"], what)
            try:
                self.verify(v["kind"], raw, None, v.get("credential"), v["verify_at"])
            except (Invalid, Malformed) as e:
                self.fail(v["name"], "rejected as %s: %s" % (e.cls, e))
        self.check_chain()
        for u in f["unsigned"]:
            raw = bytes.fromhex(u["cbor"])
            if encode(decode(raw)) != raw or hashlib.sha256(raw).hexdigest() != u["sha256"]:
                self.fail(u["name"], "not canonical or wrong sha256")
            if u.get("qr_text") and u["qr_text"] != QR_PREFIX[u["kind"]] + b45encode(raw):
                self.fail(u["name"], "qr_text")
        for v in f["invalid"]:
            raw = bytes.fromhex(v["cose"]) if v.get("cose") else None
            try:
                self.verify(v["kind"], raw, v.get("text"), v.get("credential"), v.get("verify_at", 0))
                self.fail(v["name"], "accepted, want %s" % v["error"])
            except (Invalid, Malformed) as e:
                if e.cls != v["error"]:
                    self.fail(v["name"], "rejected as %s (%s), want %s" % (e.cls, e, v["error"]))
        return self.failures

    def check_chain(self):
        byname = {v["name"]: v for v in self.f["valid"]}
        invoices = sorted(
            (v for v in self.f["valid"] if v["kind"] == "invoice"),
            key=lambda v: decode(bytes.fromhex(v["payload"])).get(5),
        )
        prev = None
        for v in invoices:
            body = decode(bytes.fromhex(v["payload"]))
            want = None if prev is None else bytes.fromhex(prev["cose_sha256"])
            if body.get(6) != want:
                self.fail(v["name"], "prev is not SHA-256 of the previous invoice's COSE")
            prev = v
        close = decode(bytes.fromhex(byname["flight-close-1"]["payload"]))
        if close.get(10) != bytes.fromhex(prev["cose_sha256"]) or close.get(9) != decode(
            bytes.fromhex(prev["payload"])
        ).get(5):
            self.fail("flight-close-1", "head or last_seq does not match the last invoice")
        order = [u for u in self.f["unsigned"] if u["name"] == "order-1"][0]
        consent = decode(bytes.fromhex(byname["order-consent-1"]["payload"]))
        if consent.get(2) != bytes.fromhex(order["sha256"]):
            self.fail("order-consent-1", "order hash")
        compact = byname["payment-code-compact"]
        if compact["cose_size"] != 97 or len(compact["qr_text"]) != 150 or len(compact["qr_text"]) > 154:
            self.fail("payment-code-compact", "not 97 bytes / 150 characters")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "vectors.json")
    with open(path) as fh:
        f = json.load(fh)
    if not HAVE_ED25519:
        print("warning: python package 'cryptography' missing: Ed25519 signatures NOT checked")
    failures = Checker(f).run()
    n = len(f["valid"]) + len(f["unsigned"]) + len(f["invalid"])
    print("%d vectors, %d failures%s" % (n, failures, "" if HAVE_ED25519 else " (signatures unchecked)"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
