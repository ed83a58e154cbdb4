package crypto

import (
	"io"
	"math/rand/v2"
	"testing"
)

// testRand returns a reader of deterministic bytes for seed, so key
// generation and nonces in tests replay exactly.
func testRand(seed uint64) io.Reader {
	var s [32]byte
	s[0] = byte(seed)
	s[1] = byte(seed >> 8)
	return rand.NewChaCha8(s)
}

// testKey returns the private key of purpose p made from seed.
func testKey(t testing.TB, p Purpose, seed uint64) PrivateKey {
	t.Helper()
	k, err := GenerateKey(p, testRand(seed))
	if err != nil {
		t.Fatalf("GenerateKey(%s): %v", p, err)
	}
	return k
}

var allPurposes = []Purpose{Issuer, Aircraft, Device}
