package protocol

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"

	"github.com/fxamacker/cbor/v2"
)

// ID is a 128-bit random identifier: of a credential, a passenger, an invoice
// or an order. An invoice id is chosen when the sale is authorized and never
// changes: it is the idempotency key from the cabin server's journal to the
// NATS message id to the ledger transfer id.
type ID [16]byte

// NewID returns a random id read from rnd, or from crypto/rand when rnd is
// nil. It panics if rnd fails, as crypto/rand never does.
func NewID(rnd io.Reader) ID {
	if rnd == nil {
		rnd = rand.Reader
	}
	var id ID
	if _, err := io.ReadFull(rnd, id[:]); err != nil {
		panic(fmt.Sprintf("protocol: read random id: %v", err))
	}
	return id
}

// ParseID parses the 32-character lower-case hex form made by String.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("id %q: want %d hex characters", trunc(s), 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("id %q: not hex", trunc(s))
	}
	if s != id.String() {
		return id, fmt.Errorf("id %q: want lower-case hex", trunc(s))
	}
	return id, nil
}

// String returns the id as 32 lower-case hex characters.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the id is unset.
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText returns the hex form, for JSON and logs.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses the hex form.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// MarshalCBOR encodes the id as a 16-byte byte string.
func (id ID) MarshalCBOR() ([]byte, error) {
	return appendCBORBytes(make([]byte, 0, 1+len(id)), id[:]), nil
}

// UnmarshalCBOR decodes a byte string of exactly 16 bytes.
func (id *ID) UnmarshalCBOR(b []byte) error { return unmarshalFixed(b, id[:], "id") }

// Hash is a SHA-256 digest: the invoice hash chain and order hashes.
type Hash [32]byte

// Sum returns the SHA-256 of b.
func Sum(b []byte) Hash { return sha256.Sum256(b) }

// String returns the hash as lower-case hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether the hash is all zeros, as the Prev of the first
// invoice of a flight is.
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText returns the hex form, for JSON and logs.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText parses the hex form.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("hash: want 64 hex characters, got %d", len(b))
	}
	var v Hash
	if _, err := hex.Decode(v[:], b); err != nil || v.String() != string(b) {
		return fmt.Errorf("hash: want lower-case hex")
	}
	*h = v
	return nil
}

// MarshalCBOR encodes the hash as a 32-byte byte string.
func (h Hash) MarshalCBOR() ([]byte, error) {
	return appendCBORBytes(make([]byte, 0, 2+len(h)), h[:]), nil
}

// UnmarshalCBOR decodes a byte string of exactly 32 bytes.
func (h *Hash) UnmarshalCBOR(b []byte) error { return unmarshalFixed(b, h[:], "hash") }

// unmarshalFixed decodes a CBOR byte string that must be exactly len(dst)
// bytes long. The one canonical encoding is copied straight out of b;
// anything else goes through the decoder, as before.
func unmarshalFixed(b []byte, dst []byte, what string) error {
	if s, rest, ok := cborBytes(b); ok && len(rest) == 0 && len(s) == len(dst) {
		copy(dst, s)
		return nil
	}
	var raw []byte
	if err := decMode.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("%s: want a byte string: %w", what, err)
	}
	if len(raw) != len(dst) {
		return fmt.Errorf("%s: got %d bytes, want %d", what, len(raw), len(dst))
	}
	copy(dst, raw)
	return nil
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

var _ cbor.Marshaler = ID{}
