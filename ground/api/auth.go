package api

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// Request signing. A passenger's requests are signed by one of their device
// keys: the private key never leaves the phone, and every request proves the
// caller holds it.
//
//	Airtab-Device:    <key id: 16 lower-case hex characters>
//	Airtab-Timestamp: <Unix seconds, decimal>
//	Airtab-Nonce:     <32 lower-case hex characters, random per request>
//	Airtab-Signature: <standard base64 of the Ed25519 signature>
//
// The signature is crypto's domain-separated Ed25519 (domain
// "airtab/ground-api/v1") over the signing string
//
//	METHOD "\n" REQUEST-TARGET "\n" TIMESTAMP "\n" NONCE "\n" hex(SHA-256(body))
//
// where REQUEST-TARGET is the escaped path and query as sent
// ("/v1/me/wallet/EUR"). The timestamp must be within MaxClockSkew of the
// server's clock. A signature is accepted once: the server remembers every
// signature it accepted until its timestamp is MaxClockSkew old, so a
// captured request cannot be replayed within the window and is stale after
// it (each server instance remembers its own; every passenger operation is
// idempotent besides). The nonce makes two identical requests in the same
// second sign differently (Ed25519 signatures are deterministic); a client
// that retries signs again with a fresh nonce.
//
// Registration (POST /v1/passengers) is signed the same way by the key it
// enrolls, as proof of possession. Enrolling another device (POST
// /v1/me/devices) is signed by an enrolled key and carries, in
// Airtab-Device-Proof, the new key's signature over the same signing string.
const (
	HeaderDevice    = "Airtab-Device"
	HeaderTimestamp = "Airtab-Timestamp"
	HeaderNonce     = "Airtab-Nonce"
	HeaderSignature = "Airtab-Signature"
	HeaderProof     = "Airtab-Device-Proof"

	// SigningDomain separates request signatures from every other
	// signature a device key makes.
	SigningDomain = protocol.DomainGroundAPI
	// MaxClockSkew is how far a request's timestamp may be from the
	// server's clock, either way.
	MaxClockSkew = 5 * time.Minute
)

// Signer is a device key that signs requests; crypto.PrivateKey is one.
type Signer interface {
	Public() crypto.PublicKey
	Sign(domain crypto.Domain, msg []byte) []byte
}

// SigningString returns the bytes a device signs for a request.
func SigningString(method, target string, timestamp int64, nonce string, body []byte) []byte {
	sum := sha256.Sum256(body)
	return []byte(method + "\n" + target + "\n" + strconv.FormatInt(timestamp, 10) + "\n" + nonce + "\n" + hex.EncodeToString(sum[:]))
}

// SignRequest sets the signing headers on req, whose body is body, signed by
// dev at time now with a nonce from rnd (crypto/rand when nil). It returns
// the signing string, which a second key may sign too (HeaderProof).
func SignRequest(req *http.Request, body []byte, dev Signer, now time.Time, rnd io.Reader) []byte {
	if rnd == nil {
		rnd = rand.Reader
	}
	var n [16]byte
	if _, err := io.ReadFull(rnd, n[:]); err != nil {
		panic(fmt.Sprintf("api: read nonce: %v", err)) // crypto/rand never fails
	}
	ts, nonce := now.Unix(), hex.EncodeToString(n[:])
	msg := SigningString(req.Method, req.URL.RequestURI(), ts, nonce, body)
	req.Header.Set(HeaderDevice, dev.Public().ID().String())
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(dev.Sign(SigningDomain, msg)))
	return msg
}

// signedRequest is a request's parsed signing headers.
type signedRequest struct {
	keyID crypto.KeyID
	at    time.Time
	sig   []byte
	msg   []byte // the signing string
}

func unauthorized(format string, args ...any) error {
	return registry.Errorf(registry.CodeUnauthorized, format, args...)
}

// parseSigned reads the signing headers of r and checks the timestamp
// against now.
func parseSigned(r *http.Request, body []byte, now time.Time) (signedRequest, error) {
	var s signedRequest
	kid, ts, nonce, sig := r.Header.Get(HeaderDevice), r.Header.Get(HeaderTimestamp), r.Header.Get(HeaderNonce), r.Header.Get(HeaderSignature)
	if kid == "" || ts == "" || nonce == "" || sig == "" {
		return s, unauthorized("request not signed: want headers %s, %s, %s and %s", HeaderDevice, HeaderTimestamp, HeaderNonce, HeaderSignature)
	}
	if len(nonce) != 32 || strings.Trim(nonce, "0123456789abcdef") != "" {
		return s, unauthorized("%s %q: want 32 lower-case hex characters", HeaderNonce, trunc(nonce))
	}
	var err error
	if s.keyID, err = crypto.ParseKeyID(kid); err != nil {
		return s, unauthorized("%s: %v", HeaderDevice, err)
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(ts) > 12 {
		return s, unauthorized("%s %q: want Unix seconds", HeaderTimestamp, trunc(ts))
	}
	s.at = time.Unix(unix, 0)
	if d := now.Sub(s.at); d > MaxClockSkew || d < -MaxClockSkew {
		return s, unauthorized("request timestamp %s is more than %s from the server's clock %s",
			s.at.UTC().Format(time.RFC3339), MaxClockSkew, now.UTC().Format(time.RFC3339))
	}
	if s.sig, err = decodeSig(sig); err != nil {
		return s, unauthorized("%s: %v", HeaderSignature, err)
	}
	s.msg = SigningString(r.Method, r.URL.RequestURI(), unix, nonce, body)
	return s, nil
}

func decodeSig(v string) ([]byte, error) {
	if len(v) > base64.StdEncoding.EncodedLen(crypto.SignatureSize) {
		return nil, errSigForm
	}
	b, err := base64.StdEncoding.Strict().DecodeString(v)
	if err != nil || len(b) != crypto.SignatureSize {
		return nil, errSigForm
	}
	return b, nil
}

var errSigForm = registry.Errorf(registry.CodeUnauthorized, "want the standard base64 of a 64-byte Ed25519 signature")

func (s signedRequest) verify(k crypto.PublicKey) bool { return k.Verify(SigningDomain, s.msg, s.sig) }

// replayCache remembers accepted signatures until their timestamp leaves the
// skew window. A replayed request carries the same timestamp (the signature
// covers it), so entries are filed by the minute they may be forgotten, and
// whole minutes are dropped at once. It is bounded: when full of live
// entries, new requests are refused as unavailable rather than letting a
// live signature be forgotten.
type replayCache struct {
	mu      sync.Mutex
	buckets map[int64]map[[crypto.SignatureSize]byte]struct{} // forget-after minute → signatures
	n       int
	max     int
}

func newReplayCache(max int) *replayCache {
	return &replayCache{buckets: make(map[int64]map[[crypto.SignatureSize]byte]struct{}), max: max}
}

// accept records s, or refuses it when seen before.
func (c *replayCache) accept(s signedRequest, now time.Time) error {
	var key [crypto.SignatureSize]byte
	copy(key[:], s.sig)
	minute := s.at.Add(MaxClockSkew).Unix()/60 + 1 // kept until the end of the minute after
	c.mu.Lock()
	defer c.mu.Unlock()
	for m, b := range c.buckets { // at most a dozen live minutes
		if m*60 < now.Unix() {
			c.n -= len(b)
			delete(c.buckets, m)
		}
	}
	b := c.buckets[minute]
	if _, seen := b[key]; seen {
		return unauthorized("request replayed: this signature was already used; sign again with a fresh nonce")
	}
	if c.n >= c.max {
		return registry.Errorf(registry.CodeUnavailable, "too many signed requests in the last %s; retry shortly", 2*MaxClockSkew)
	}
	if b == nil {
		b = make(map[[crypto.SignatureSize]byte]struct{})
		c.buckets[minute] = b
	}
	b[key] = struct{}{}
	c.n++
	return nil
}

// tokenMatches compares a bearer token with the configured one's hash in
// constant time (hashing first hides the length too).
func tokenMatches(r *http.Request, want [sha256.Size]byte) bool {
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		return false
	}
	got := sha256.Sum256([]byte(h[len(prefix):]))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
