package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// Request signing is the contract's (protocol/passengerapi, SPEC §10.5):
// every passenger request is signed by one of the passenger's device keys.
// This file checks those signatures: the headers' form, the timestamp
// within MaxClockSkew, and a signature accepted once.
const (
	HeaderDevice    = passengerapi.HeaderDevice
	HeaderTimestamp = passengerapi.HeaderTimestamp
	HeaderNonce     = passengerapi.HeaderNonce
	HeaderSignature = passengerapi.HeaderSignature
	HeaderProof     = passengerapi.HeaderProof

	// SigningDomain separates request signatures from every other
	// signature a device key makes.
	SigningDomain = passengerapi.SigningDomain
	// MaxClockSkew is how far a request's timestamp may be from the
	// server's clock, either way.
	MaxClockSkew = passengerapi.MaxClockSkew
)

// Signer is a device key that signs requests; crypto.PrivateKey is one.
type Signer = passengerapi.Signer

// SigningString returns the bytes a device signs for a request.
func SigningString(method, target string, timestamp int64, nonce string, body []byte) []byte {
	return passengerapi.SigningString(method, target, timestamp, nonce, body)
}

// SignRequest sets the signing headers on req (passengerapi.SignRequest).
func SignRequest(req *http.Request, body []byte, dev Signer, now time.Time, rnd io.Reader) []byte {
	return passengerapi.SignRequest(req, body, dev, now, rnd)
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
	// One spelling per instant: the signature covers the number, so
	// "+1795161600" or "001795161600" would verify as "1795161600" does.
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(ts) > 12 || strconv.FormatInt(unix, 10) != ts {
		return s, unauthorized("%s %q: want Unix seconds in decimal, no sign or leading zeros", HeaderTimestamp, trunc(ts))
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
