package passengerapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// Request signing (SPEC §10.5). Every passenger call is signed by one of the
// passenger's device keys: the private key never leaves the phone, and every
// request proves the caller holds it.
//
//	Airtab-Device:    <key id: 16 lower-case hex characters>
//	Airtab-Timestamp: <Unix seconds, decimal, no sign, at most 12 digits>
//	Airtab-Nonce:     <32 lower-case hex characters, random per request>
//	Airtab-Signature: <standard padded base64 of the 64-byte signature>
//
// The signature is Ed25519 over len(domain) || domain || signing string,
// with domain "airtab/ground-api/v1" (one length byte, 20, then the ASCII
// bytes), and the signing string
//
//	METHOD "\n" REQUEST-TARGET "\n" TIMESTAMP "\n" NONCE "\n" hex(SHA-256(body))
//
// REQUEST-TARGET is the path and the query exactly as sent, escaped
// ("/v1/me/charges?limit=20"; no scheme, no host). The body hash of an
// empty body (a GET) is SHA-256 of no bytes, e3b0c442…b855. The hex is lower
// case. The timestamp must be within MaxClockSkew of ground's clock. Ground
// accepts a signature once: a replayed request is refused until its
// timestamp is stale. A retry signs again with a fresh nonce.
//
// Registration (POST /v1/passengers) is signed the same way by the key its
// body enrolls, as proof of possession. Enrolling a further device (POST
// /v1/me/devices) is signed by an enrolled key and carries in
// Airtab-Device-Proof the new key's signature over the same signing string.
const (
	HeaderDevice    = "Airtab-Device"
	HeaderTimestamp = "Airtab-Timestamp"
	HeaderNonce     = "Airtab-Nonce"
	HeaderSignature = "Airtab-Signature"
	HeaderProof     = "Airtab-Device-Proof"

	// SigningDomain separates request signatures from every other
	// signature a device key makes.
	SigningDomain = protocol.DomainGroundAPI
	// MaxClockSkew is how far a request's timestamp may be from ground's
	// clock, either way.
	MaxClockSkew = 5 * time.Minute
)

// Signer is a device key that signs requests; crypto.PrivateKey and
// protocol.Wallet are ones.
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
		panic(fmt.Sprintf("passengerapi: read nonce: %v", err)) // crypto/rand never fails
	}
	ts, nonce := now.Unix(), hex.EncodeToString(n[:])
	msg := SigningString(req.Method, req.URL.RequestURI(), ts, nonce, body)
	req.Header.Set(HeaderDevice, dev.Public().ID().String())
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderNonce, nonce)
	req.Header.Set(HeaderSignature, base64.StdEncoding.EncodeToString(dev.Sign(SigningDomain, msg)))
	return msg
}
