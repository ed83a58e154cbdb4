// Package crypto holds Airtab's keys and the operations on them: typed
// Ed25519 signing keys with key ids, trust lists, domain-separated signing,
// crew PIN hashing and sealing of secrets at rest.
//
// The package knows nothing of the Airtab protocol: it signs and verifies
// bytes under a domain label that the caller names.
package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/edwards25519"
)

// Purpose says what a key is for. A key of one purpose is never accepted
// where a key of another is expected: the text forms carry the purpose in
// their prefix and every parse names the purpose it wants.
type Purpose uint8

// Key purposes. The numbers are stable: they appear in trust lists on the
// wire. Do not reorder; add only at the end.
const (
	// Issuer keys sign passenger credentials, flight manifests and
	// clearing receipts on the ground.
	Issuer Purpose = 1
	// Aircraft keys sign what a cabin server replays: invoices and
	// flight-close reports.
	Aircraft Purpose = 2
	// Device keys live on a passenger's phone and sign payment codes and
	// order consents.
	Device Purpose = 3
)

var purposeNames = map[Purpose]string{
	Issuer:   "issuer",
	Aircraft: "aircraft",
	Device:   "device",
}

// String returns the purpose's name, the one used in key text forms.
func (p Purpose) String() string {
	if n, ok := purposeNames[p]; ok {
		return n
	}
	return fmt.Sprintf("purpose(%d)", uint8(p))
}

// Valid reports whether p is one of the defined purposes.
func (p Purpose) Valid() bool {
	_, ok := purposeNames[p]
	return ok
}

// Sizes of the key material, in bytes.
const (
	PublicKeySize = ed25519.PublicKeySize
	SeedSize      = ed25519.SeedSize
	SignatureSize = ed25519.SignatureSize
	KeyIDSize     = 8
)

// KeyID names a public key: the first 8 bytes of the SHA-256 of the raw
// public key. Ids may collide; lookups by id must try every key that has it.
type KeyID [KeyIDSize]byte

// String returns the key id in lower-case hex.
func (id KeyID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the id is all zeros (unset).
func (id KeyID) IsZero() bool { return id == KeyID{} }

// ParseKeyID parses the hex form made by KeyID.String. Only lower-case hex
// is accepted, so every id has exactly one text form.
func ParseKeyID(s string) (KeyID, error) {
	var id KeyID
	b, err := decodeLowerHex(s)
	if err != nil || len(b) != KeyIDSize {
		return id, fmt.Errorf("key id %q: want %d lower-case hex bytes", truncate(s), KeyIDSize)
	}
	copy(id[:], b)
	return id, nil
}

// KeyIDFromBytes makes a KeyID from exactly 8 bytes.
func KeyIDFromBytes(b []byte) (KeyID, error) {
	var id KeyID
	if len(b) != KeyIDSize {
		return id, fmt.Errorf("key id: got %d bytes, want %d", len(b), KeyIDSize)
	}
	copy(id[:], b)
	return id, nil
}

// PublicKey is an Ed25519 public key with a purpose. The zero value is not a
// valid key; use IsZero to tell.
type PublicKey struct {
	purpose Purpose
	k       [PublicKeySize]byte
}

// PublicKeyFromBytes makes a public key of the given purpose from its 32 raw
// bytes. It checks the length only, because it runs on hot paths (every
// credential in a manifest, every invoice cleared) where the key was
// checked when it entered the system and is covered by an issuer
// signature since. A key that arrives from outside is parsed with
// ParsePublicKey, or checked with Check.
func PublicKeyFromBytes(p Purpose, b []byte) (PublicKey, error) {
	if !p.Valid() {
		return PublicKey{}, fmt.Errorf("public key: unknown purpose %d", uint8(p))
	}
	if len(b) != PublicKeySize {
		return PublicKey{}, fmt.Errorf("%s public key: got %d bytes, want %d", p, len(b), PublicKeySize)
	}
	pk := PublicKey{purpose: p}
	copy(pk.k[:], b)
	return pk, nil
}

// Purpose returns what the key is for.
func (k PublicKey) Purpose() Purpose { return k.purpose }

// IsZero reports whether k is the zero value.
func (k PublicKey) IsZero() bool { return k.purpose == 0 }

// Bytes returns a copy of the 32 raw key bytes.
func (k PublicKey) Bytes() []byte { return append([]byte(nil), k.k[:]...) }

// ID returns the key id: the first 8 bytes of SHA-256 of the raw key.
func (k PublicKey) ID() KeyID {
	sum := sha256.Sum256(k.k[:])
	var id KeyID
	copy(id[:], sum[:KeyIDSize])
	return id
}

// Equal reports whether two keys have the same purpose and bytes, comparing
// the bytes in constant time.
func (k PublicKey) Equal(o PublicKey) bool {
	return k.purpose == o.purpose && subtle.ConstantTimeCompare(k.k[:], o.k[:]) == 1
}

// Verify reports whether sig is k's signature over msg under domain.
// A signature made under another domain never verifies.
func (k PublicKey) Verify(domain Domain, msg, sig []byte) bool {
	if k.IsZero() || len(sig) != SignatureSize || domain.check() != nil {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(k.k[:]), domain.frame(msg), sig)
}

// VerifyRaw reports whether sig is k's plain Ed25519 signature over msg,
// with no domain framing. It is the check for SignRaw: use it only for a
// structure whose signed bytes carry a domain themselves (Domain.Frame
// inside COSE_Sign1's external_aad).
func (k PublicKey) VerifyRaw(msg, sig []byte) bool {
	if k.IsZero() || len(sig) != SignatureSize {
		return false
	}
	return ed25519.Verify(ed25519.PublicKey(k.k[:]), msg, sig)
}

// String returns the text form, for example "airtab-device-pub:3b6a…".
func (k PublicKey) String() string {
	if k.IsZero() {
		return "<zero public key>"
	}
	return pubPrefix(k.purpose) + hex.EncodeToString(k.k[:])
}

// MarshalText returns the text form of the key.
func (k PublicKey) MarshalText() ([]byte, error) {
	if k.IsZero() {
		return nil, errors.New("public key: zero key has no text form")
	}
	return []byte(k.String()), nil
}

// UnmarshalText parses a text form of any purpose. Callers that expect one
// purpose should use ParsePublicKey, or check Purpose afterwards.
func (k *PublicKey) UnmarshalText(b []byte) error {
	s := string(b)
	for p := range purposeNames {
		if strings.HasPrefix(s, pubPrefix(p)) {
			pk, err := ParsePublicKey(p, s)
			if err != nil {
				return err
			}
			*k = pk
			return nil
		}
	}
	return fmt.Errorf("public key %q: unknown prefix, want airtab-<issuer|aircraft|device>-pub:", truncate(s))
}

// ParsePublicKey parses the text form of a public key that must have the
// given purpose: an aircraft key never parses as a device key. Only
// lower-case hex is accepted, so every key has exactly one text form, and
// the key must pass Check: text forms are how keys arrive from outside
// (registration, key files, flags).
func ParsePublicKey(p Purpose, s string) (PublicKey, error) {
	prefix := pubPrefix(p)
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return PublicKey{}, fmt.Errorf("%s public key %q: want prefix %q", p, truncate(s), prefix)
	}
	b, err := decodeLowerHex(rest)
	if err != nil {
		return PublicKey{}, fmt.Errorf("%s public key: bad hex: %w", p, err)
	}
	k, err := PublicKeyFromBytes(p, b)
	if err != nil {
		return PublicKey{}, err
	}
	if err := k.Check(); err != nil {
		return PublicKey{}, err
	}
	return k, nil
}

// Check reports whether k is the canonical encoding of an Ed25519 point
// whose order is not small (neither the identity nor one of the other
// seven torsion points): for such a key one signature can verify for many
// messages, so a registered device or aircraft key must never be one.
// The error wraps ErrWeakKey. It costs about a fifth of a signature check.
func (k PublicKey) Check() error {
	if err := checkPoint(k.k[:]); err != nil {
		return fmt.Errorf("%s public key: %w", k.purpose, err)
	}
	return nil
}

// PrivateKey is an Ed25519 signing key with a purpose. Its bytes are
// unexported so they cannot be copied out or printed by accident.
type PrivateKey struct {
	purpose Purpose
	seed    [SeedSize]byte
	// full is seed || public key, expanded once, in storage every copy of
	// the key shares: crypto/ed25519 caches the expanded signing key by
	// the address of its first byte, so a key copied into each call (a
	// value receiver over an array) would miss that cache and expand the
	// key again on every signature.
	full ed25519.PrivateKey
	pub  PublicKey
}

// GenerateKey makes a new private key of purpose p from rnd, or from
// crypto/rand when rnd is nil. Pass a seeded reader only in tests and
// simulations that must replay.
func GenerateKey(p Purpose, rnd io.Reader) (PrivateKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var seed [SeedSize]byte
	if _, err := io.ReadFull(rnd, seed[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("generate %s key: %w", p, err)
	}
	return PrivateKeyFromSeed(p, seed[:])
}

// PrivateKeyFromSeed makes a private key of purpose p from a 32-byte seed.
func PrivateKeyFromSeed(p Purpose, seed []byte) (PrivateKey, error) {
	if !p.Valid() {
		return PrivateKey{}, fmt.Errorf("private key: unknown purpose %d", uint8(p))
	}
	if len(seed) != SeedSize {
		return PrivateKey{}, fmt.Errorf("%s private key: got %d seed bytes, want %d", p, len(seed), SeedSize)
	}
	k := PrivateKey{purpose: p}
	copy(k.seed[:], seed)
	full := ed25519.NewKeyFromSeed(k.seed[:])
	k.full = full
	k.pub = PublicKey{purpose: p}
	copy(k.pub.k[:], full.Public().(ed25519.PublicKey))
	return k, nil
}

// Purpose returns what the key is for.
func (k PrivateKey) Purpose() Purpose { return k.purpose }

// IsZero reports whether k is the zero value.
func (k PrivateKey) IsZero() bool { return k.purpose == 0 }

// Public returns the matching public key.
func (k PrivateKey) Public() PublicKey { return k.pub }

// ID returns the key id of the public key.
func (k PrivateKey) ID() KeyID { return k.pub.ID() }

// Sign signs msg under domain. It panics on a zero key or an invalid
// domain: both are programming errors, never input errors.
func (k PrivateKey) Sign(domain Domain, msg []byte) []byte {
	if k.IsZero() {
		panic("crypto: Sign with zero private key")
	}
	if err := domain.check(); err != nil {
		panic("crypto: " + err.Error())
	}
	return ed25519.Sign(k.full, domain.frame(msg))
}

// SignRaw signs msg as it is, with no domain framing. Use it only for a
// structure that carries its own domain separation inside the signed bytes:
// a COSE_Sign1 Sig_structure whose external_aad starts with Domain.Frame, so
// that stock COSE libraries verify the result. Everything else uses Sign.
// It panics on a zero key, a programming error.
func (k PrivateKey) SignRaw(msg []byte) []byte {
	if k.IsZero() {
		panic("crypto: SignRaw with zero private key")
	}
	return ed25519.Sign(k.full, msg)
}

// String never shows key material.
func (k PrivateKey) String() string {
	if k.IsZero() {
		return "<zero private key>"
	}
	return fmt.Sprintf("<%s private key %s>", k.purpose, k.ID())
}

// Format writes the same as String for every verb, so that %#v, %d or %x
// on a private key (or on a struct holding one in an exported field) never
// print the seed.
func (k PrivateKey) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", k.String())
		return
	}
	io.WriteString(f, k.String())
}

// MarshalText returns the secret text form, for example
// "airtab-device-priv:…". Write it only to a key file (see WriteKeyFile).
func (k PrivateKey) MarshalText() ([]byte, error) {
	if k.IsZero() {
		return nil, errors.New("private key: zero key has no text form")
	}
	return []byte(privPrefix(k.purpose) + hex.EncodeToString(k.seed[:])), nil
}

// ParsePrivateKey parses the secret text form of a private key of purpose p.
// Surrounding white space is ignored; the hex must be lower-case.
func ParsePrivateKey(p Purpose, s string) (PrivateKey, error) {
	prefix := privPrefix(p)
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), prefix)
	if !ok {
		return PrivateKey{}, fmt.Errorf("%s private key: want prefix %q", p, prefix)
	}
	b, err := decodeLowerHex(rest)
	if err != nil {
		return PrivateKey{}, fmt.Errorf("%s private key: bad hex", p)
	}
	return PrivateKeyFromSeed(p, b)
}

func pubPrefix(p Purpose) string  { return "airtab-" + p.String() + "-pub:" }
func privPrefix(p Purpose) string { return "airtab-" + p.String() + "-priv:" }

// decodeLowerHex decodes hex that uses only the digits 0-9a-f, so that one
// value has exactly one text form: a key text may be compared, hashed or
// signed as a string, and "AB…" and "ab…" must not both parse.
func decodeLowerHex(s string) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return nil, fmt.Errorf("byte %d is not a lower-case hex digit", i)
		}
	}
	return hex.DecodeString(s)
}

func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// ErrWeakKey is matched by the error for a public key that is not a
// canonical curve point of large order.
var ErrWeakKey = errors.New("not a valid Ed25519 public key")

// checkPoint reports whether b is the canonical encoding of an Ed25519
// point whose order is not small.
func checkPoint(b []byte) error {
	pt, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return fmt.Errorf("%w: not a point on the curve", ErrWeakKey)
	}
	// SetBytes accepts non-canonical encodings (y ≥ p, or x = 0 with the
	// sign bit set); a key has exactly one encoding, so re-encode and compare.
	if !bytes.Equal(pt.Bytes(), b) {
		return fmt.Errorf("%w: non-canonical encoding", ErrWeakKey)
	}
	if new(edwards25519.Point).MultByCofactor(pt).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("%w: a point of small order", ErrWeakKey)
	}
	return nil
}
