package crypto

import (
	"encoding/hex"
	"errors"
	"testing"
)

// TestWeakPublicKeysRefused checks that the eight points of small order and
// non-canonical encodings never become public keys, in raw and text form.
func TestWeakPublicKeysRefused(t *testing.T) {
	for _, tc := range []struct{ name, hex string }{
		{"identity", "0100000000000000000000000000000000000000000000000000000000000000"},
		{"order2", "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
		{"order4", "0000000000000000000000000000000000000000000000000000000000000000"},
		{"order4Neg", "0000000000000000000000000000000000000000000000000000000000000080"},
		{"order8a", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"},
		{"order8aNeg", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85"},
		{"order8b", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"},
		{"order8bNeg", "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa"},
		{"NonCanonicalYEqualsP", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
		{"NonCanonicalYEqualsPPlus1", "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
		{"NonCanonicalIdentitySignBit", "0100000000000000000000000000000000000000000000000000000000000080"},
		{"NotOnCurve", "0200000000000000000000000000000000000000000000000000000000000000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := hex.DecodeString(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			k, err := PublicKeyFromBytes(Device, b)
			if err != nil {
				t.Fatalf("PublicKeyFromBytes checks the length only, got %v", err)
			}
			if err := k.Check(); !errors.Is(err, ErrWeakKey) {
				t.Fatalf("Check(%s) = %v, want ErrWeakKey", tc.hex, err)
			}
			if _, err := ParsePublicKey(Aircraft, "airtab-aircraft-pub:"+tc.hex); !errors.Is(err, ErrWeakKey) {
				t.Fatalf("ParsePublicKey(aircraft %s) error = %v, want ErrWeakKey", tc.hex, err)
			}
		})
	}
	t.Run("GeneratedKeyAccepted", func(t *testing.T) {
		for i := range 64 {
			k, err := GenerateKey(Device, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ParsePublicKey(Device, k.Public().String()); err != nil {
				t.Fatalf("key %d: a generated key is refused: %v", i, err)
			}
		}
	})
}
