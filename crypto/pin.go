package crypto

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// PINParams are the argon2id cost parameters for hashing a crew PIN.
type PINParams struct {
	// MemoryKiB is the memory used per hash, in KiB. Default: 19456
	// (19 MiB). At most MaxPINMemoryKiB, at least 8 × Parallelism.
	MemoryKiB uint32
	// Iterations is the number of passes over the memory. Default: 2.
	// 1 to MaxPINIterations.
	Iterations uint32
	// Parallelism is the number of lanes (and threads) used. Default: 1.
	// 1 to MaxPINParallelism.
	Parallelism uint8
}

// DefaultPINParams are the OWASP minimum recommendation for argon2id:
// 19 MiB of memory, 2 iterations, 1 lane.
var DefaultPINParams = PINParams{MemoryKiB: 19456, Iterations: 2, Parallelism: 1}

// Bounds on PIN hash parameters. A PIN hash arrives in a flight manifest, so
// a hostile or corrupt one must not make the cabin server allocate 4 GiB or
// spin for minutes: parameters outside these bounds are rejected, not run.
const (
	MaxPINMemoryKiB   = 262144 // 256 MiB
	MaxPINIterations  = 16
	MaxPINParallelism = 16
)

// Bounds on a crew PIN, in characters (Unicode code points). Fewer than 4 is
// guessable by hand; more than 12 is not a PIN, and the cap bounds the input
// a hostile handheld can make the server hash.
const (
	MinPINLen = 4
	MaxPINLen = 12
)

const (
	pinSaltSize = 16
	pinHashSize = 32
	pinVersion  = argon2.Version // 0x13 = 19

	minPINSaltSize, maxPINSaltSize = 8, 64
	minPINHashSize, maxPINHashSize = 16, 64

	// maxPINEncodedLen bounds the whole encoded string before any parsing.
	maxPINEncodedLen = 256
)

var pinB64 = base64.RawStdEncoding.Strict()

// HashPIN hashes pin with argon2id under params and a fresh 16-byte salt read
// from rnd (crypto/rand when rnd is nil). It returns the PHC string form:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with salt and 32-byte hash in unpadded standard base64. It rejects a PIN
// outside MinPINLen to MaxPINLen characters and parameters outside the
// bounds VerifyPIN enforces.
func HashPIN(pin string, params PINParams, rnd io.Reader) (string, error) {
	if err := checkPIN(pin); err != nil {
		return "", err
	}
	if err := params.check(); err != nil {
		return "", err
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	h := pinHash{params: params, salt: make([]byte, pinSaltSize)}
	if _, err := io.ReadFull(rnd, h.salt); err != nil {
		return "", fmt.Errorf("hash pin: read salt: %w", err)
	}
	h.hash = h.derive(pin, pinHashSize)
	return h.String(), nil
}

// VerifyPIN reports whether pin matches encoded, a string made by HashPIN.
// The cost parameters are read from encoded and bounded. The comparison is
// constant-time. It returns an error only when encoded is malformed; a PIN
// of the wrong length simply does not match.
func VerifyPIN(encoded, pin string) (bool, error) {
	h, err := parsePINHash(encoded)
	if err != nil {
		return false, err
	}
	if checkPIN(pin) != nil {
		return false, nil
	}
	got := h.derive(pin, uint32(len(h.hash)))
	return subtle.ConstantTimeCompare(got, h.hash) == 1, nil
}

func checkPIN(pin string) error {
	if len(pin) > MaxPINLen*utf8.UTFMax || !utf8.ValidString(pin) {
		return fmt.Errorf("pin: want %d to %d characters of valid UTF-8", MinPINLen, MaxPINLen)
	}
	if n := utf8.RuneCountInString(pin); n < MinPINLen || n > MaxPINLen {
		return fmt.Errorf("pin: %d characters, want %d to %d", n, MinPINLen, MaxPINLen)
	}
	return nil
}

func (p PINParams) check() error {
	switch {
	case p.MemoryKiB > MaxPINMemoryKiB:
		return fmt.Errorf("pin hash: m=%d KiB over the limit of %d (MaxPINMemoryKiB)", p.MemoryKiB, MaxPINMemoryKiB)
	case p.Iterations < 1 || p.Iterations > MaxPINIterations:
		return fmt.Errorf("pin hash: t=%d iterations, want 1 to %d (MaxPINIterations)", p.Iterations, MaxPINIterations)
	case p.Parallelism < 1 || p.Parallelism > MaxPINParallelism:
		return fmt.Errorf("pin hash: p=%d lanes, want 1 to %d (MaxPINParallelism)", p.Parallelism, MaxPINParallelism)
	case p.MemoryKiB < 8*uint32(p.Parallelism):
		return fmt.Errorf("pin hash: m=%d KiB under 8 KiB per lane (p=%d)", p.MemoryKiB, p.Parallelism)
	}
	return nil
}

// pinHash is a parsed PHC string.
type pinHash struct {
	params     PINParams
	salt, hash []byte
}

func (h pinHash) derive(pin string, size uint32) []byte {
	return argon2.IDKey([]byte(pin), h.salt, h.params.Iterations, h.params.MemoryKiB, h.params.Parallelism, size)
}

// String returns the PHC string form.
func (h pinHash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", pinVersion,
		h.params.MemoryKiB, h.params.Iterations, h.params.Parallelism,
		pinB64.EncodeToString(h.salt), pinB64.EncodeToString(h.hash))
}

// parsePINHash parses the PHC string form strictly: exactly the fields
// HashPIN writes, in its order, with canonical numbers and base64, so that
// whatever parses re-encodes to the same string.
func parsePINHash(s string) (pinHash, error) {
	var h pinHash
	if len(s) > maxPINEncodedLen {
		return h, fmt.Errorf("pin hash: %d bytes, over the limit of %d", len(s), maxPINEncodedLen)
	}
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" {
		return h, errors.New("pin hash: want $argon2id$v=19$m=…,t=…,p=…$<salt>$<hash>")
	}
	if f[1] != "argon2id" {
		return h, fmt.Errorf("pin hash: algorithm %q, want argon2id", truncate(f[1]))
	}
	if v, err := parsePHCNum(f[2], "v"); err != nil {
		return h, err
	} else if v != pinVersion {
		return h, fmt.Errorf("pin hash: version v=%d, want %d", v, pinVersion)
	}
	var err error
	if h.params, err = parsePINParams(f[3]); err != nil {
		return h, err
	}
	if h.salt, err = decodePHCBytes(f[4], "salt", minPINSaltSize, maxPINSaltSize); err != nil {
		return h, err
	}
	if h.hash, err = decodePHCBytes(f[5], "hash", minPINHashSize, maxPINHashSize); err != nil {
		return h, err
	}
	return h, nil
}

func parsePINParams(s string) (PINParams, error) {
	var p PINParams
	f := strings.Split(s, ",")
	if len(f) != 3 {
		return p, fmt.Errorf("pin hash: parameters %q, want m=…,t=…,p=…", truncate(s))
	}
	m, err := parsePHCNum(f[0], "m")
	if err != nil {
		return p, err
	}
	t, err := parsePHCNum(f[1], "t")
	if err != nil {
		return p, err
	}
	par, err := parsePHCNum(f[2], "p")
	if err != nil {
		return p, err
	}
	// Check the bounds before narrowing: p=257 must not wrap to 1.
	if par > MaxPINParallelism {
		return p, fmt.Errorf("pin hash: p=%d lanes, want 1 to %d (MaxPINParallelism)", par, MaxPINParallelism)
	}
	p = PINParams{MemoryKiB: m, Iterations: t, Parallelism: uint8(par)}
	return p, p.check()
}

// parsePHCNum parses "name=<decimal>" with no sign and no leading zeros.
func parsePHCNum(s, name string) (uint32, error) {
	digits, ok := strings.CutPrefix(s, name+"=")
	if !ok {
		return 0, fmt.Errorf("pin hash: field %q, want %s=<number>", truncate(s), name)
	}
	if digits == "" || len(digits) > 10 || (len(digits) > 1 && digits[0] == '0') ||
		strings.TrimLeft(digits, "0123456789") != "" {
		return 0, fmt.Errorf("pin hash: %s=%q is not a canonical decimal number", name, truncate(digits))
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("pin hash: %s=%s out of range", name, digits)
	}
	return uint32(n), nil
}

// decodePHCBytes decodes unpadded standard base64 of min to max bytes. It
// checks the length before decoding and rejects non-canonical encodings
// (stray bits, line breaks, which Go's decoder would otherwise skip).
func decodePHCBytes(s, name string, minSize, maxSize int) ([]byte, error) {
	if len(s) > pinB64.EncodedLen(maxSize) {
		return nil, fmt.Errorf("pin hash: %s is over %d bytes", name, maxSize)
	}
	b, err := pinB64.DecodeString(s)
	if err != nil || pinB64.EncodeToString(b) != s {
		return nil, fmt.Errorf("pin hash: %s is not canonical unpadded base64", name)
	}
	if len(b) < minSize || len(b) > maxSize {
		return nil, fmt.Errorf("pin hash: %s is %d bytes, want %d to %d", name, len(b), minSize, maxSize)
	}
	return b, nil
}
