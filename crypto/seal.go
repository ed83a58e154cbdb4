package crypto

import (
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// SealKeySize is the size of a seal key, in bytes.
const SealKeySize = chacha20poly1305.KeySize

// MaxSealPlaintext is the largest plaintext Seal accepts, in bytes (16 MiB).
// Sealing is for secrets at rest — keys, tokens — not for bulk data.
const MaxSealPlaintext = 16 << 20

// Sealed format: sealVersion || 24-byte nonce || ciphertext || 16-byte tag.
const (
	sealVersion  = 1
	sealOverhead = 1 + chacha20poly1305.NonceSizeX + chacha20poly1305.Overhead
	sealPrefix   = "airtab-seal-key:"
)

// ErrSealAuthFailed means sealed data did not authenticate: the key or the
// additional data is wrong, or the data was changed.
var ErrSealAuthFailed = errors.New("sealed data: authentication failed (wrong key, wrong aad, or tampered data)")

// SealKey is a 32-byte XChaCha20-Poly1305 key for sealing secrets at rest.
// Its bytes are unexported and never printed. The zero value is not a key.
type SealKey struct {
	k [SealKeySize]byte
}

// GenerateSealKey makes a new seal key from rnd, or from crypto/rand when rnd
// is nil.
func GenerateSealKey(rnd io.Reader) (SealKey, error) {
	if rnd == nil {
		rnd = rand.Reader
	}
	var b [SealKeySize]byte
	if _, err := io.ReadFull(rnd, b[:]); err != nil {
		return SealKey{}, fmt.Errorf("generate seal key: %w", err)
	}
	return SealKeyFromBytes(b[:])
}

// SealKeyFromBytes makes a seal key from exactly 32 bytes. An all-zero key
// is rejected: it is the unset value.
func SealKeyFromBytes(b []byte) (SealKey, error) {
	var k SealKey
	if len(b) != SealKeySize {
		return k, fmt.Errorf("seal key: got %d bytes, want %d", len(b), SealKeySize)
	}
	copy(k.k[:], b)
	if k.IsZero() {
		return SealKey{}, errors.New("seal key: all zero bytes")
	}
	return k, nil
}

// IsZero reports whether k is the zero value.
func (k SealKey) IsZero() bool {
	var zero [SealKeySize]byte
	return subtle.ConstantTimeCompare(k.k[:], zero[:]) == 1
}

// String never shows key material.
func (k SealKey) String() string {
	if k.IsZero() {
		return "<zero seal key>"
	}
	return "<seal key>"
}

// Format writes the same as String for every verb, so that %#v, %d or %x
// never print the key bytes.
func (k SealKey) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", k.String())
		return
	}
	io.WriteString(f, k.String())
}

// MarshalText returns the secret text form "airtab-seal-key:<hex>". Write it
// only to a key file (see WriteSealKeyFile).
func (k SealKey) MarshalText() ([]byte, error) {
	if k.IsZero() {
		return nil, errors.New("seal key: zero key has no text form")
	}
	b := make([]byte, 0, len(sealPrefix)+2*SealKeySize)
	return hex.AppendEncode(append(b, sealPrefix...), k.k[:]), nil
}

// UnmarshalText parses the text form made by MarshalText.
func (k *SealKey) UnmarshalText(b []byte) error {
	sk, err := ParseSealKey(string(b))
	if err != nil {
		return err
	}
	*k = sk
	return nil
}

// ParseSealKey parses the text form "airtab-seal-key:<64 lower-case hex
// digits>". Errors never echo the input, which is secret.
func ParseSealKey(s string) (SealKey, error) {
	rest, ok := strings.CutPrefix(s, sealPrefix)
	if !ok {
		return SealKey{}, fmt.Errorf("seal key: want prefix %q", sealPrefix)
	}
	b, err := decodeLowerHex(rest)
	if err != nil {
		return SealKey{}, errors.New("seal key: bad hex")
	}
	return SealKeyFromBytes(b)
}

// Seal encrypts and authenticates plaintext under k, binding aad (which is
// authenticated but not stored). The nonce is 24 random bytes from rnd, or
// from crypto/rand when rnd is nil; random 24-byte nonces never repeat in
// practice, so one key may seal any number of secrets.
//
// The output is: version byte (1) || nonce || ciphertext || tag. The version
// byte is authenticated too.
func Seal(k SealKey, plaintext, aad []byte, rnd io.Reader) ([]byte, error) {
	if k.IsZero() {
		return nil, errors.New("seal: zero key")
	}
	if len(plaintext) > MaxSealPlaintext {
		return nil, fmt.Errorf("seal: plaintext of %d bytes over the limit of %d (MaxSealPlaintext)", len(plaintext), MaxSealPlaintext)
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	out := make([]byte, 1+chacha20poly1305.NonceSizeX, len(plaintext)+sealOverhead)
	out[0] = sealVersion
	nonce := out[1:]
	if _, err := io.ReadFull(rnd, nonce); err != nil {
		return nil, fmt.Errorf("seal: read nonce: %w", err)
	}
	return k.aead().Seal(out, nonce, plaintext, sealAAD(sealVersion, aad)), nil
}

// Open checks and decrypts data made by Seal with the same key and aad.
// A failed check wraps ErrSealAuthFailed.
func Open(k SealKey, sealed, aad []byte) ([]byte, error) {
	if k.IsZero() {
		return nil, errors.New("open sealed data: zero key")
	}
	if len(sealed) < sealOverhead {
		return nil, fmt.Errorf("open sealed data: too short: %d bytes, want at least %d", len(sealed), sealOverhead)
	}
	if len(sealed) > MaxSealPlaintext+sealOverhead {
		return nil, fmt.Errorf("open sealed data: %d bytes, over the limit of %d (MaxSealPlaintext) plus overhead", len(sealed), MaxSealPlaintext)
	}
	if v := sealed[0]; v != sealVersion {
		return nil, fmt.Errorf("open sealed data: unknown version %d, want %d", v, sealVersion)
	}
	nonce := sealed[1 : 1+chacha20poly1305.NonceSizeX]
	ct := sealed[1+chacha20poly1305.NonceSizeX:]
	pt, err := k.aead().Open(nil, nonce, ct, sealAAD(sealed[0], aad))
	if err != nil {
		return nil, fmt.Errorf("open sealed data: %w", ErrSealAuthFailed)
	}
	return pt, nil
}

func (k SealKey) aead() cipher.AEAD {
	a, err := chacha20poly1305.NewX(k.k[:])
	if err != nil {
		panic("crypto: chacha20poly1305.NewX: " + err.Error()) // only on a wrong key size
	}
	return a
}

// sealAAD is the AEAD's additional data: the version byte, then the caller's
// aad. Binding the version means a future format cannot be confused with
// this one.
func sealAAD(version byte, aad []byte) []byte {
	b := make([]byte, 0, 1+len(aad))
	b = append(b, version)
	return append(b, aad...)
}
