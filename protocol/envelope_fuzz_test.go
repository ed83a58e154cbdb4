package protocol

import (
	"bytes"
	"testing"
)

// checkFastEnvelope holds fastEnvelope to the strict path it stands in
// for: whatever it accepts, strictEnvelope accepts too, with the same key
// id and byte strings.
func checkFastEnvelope(t *testing.T, env []byte) {
	t.Helper()
	prot, payload, sig, ok := fastEnvelope(env)
	if !ok {
		return
	}
	kid, wantProt, wantPayload, wantSig, err := strictEnvelope("fuzz", env, len(env))
	if err != nil {
		t.Fatalf("fastEnvelope(%x) accepts, the strict path refuses: %v", env, err)
	}
	if got := [8]byte(prot[len(fastHeaderPrefix):]); got != kid {
		t.Fatalf("fastEnvelope(%x) key id %x, strict %x", env, got, kid)
	}
	if !bytes.Equal(prot, wantProt) || !bytes.Equal(payload, wantPayload) || !bytes.Equal(sig, wantSig) {
		t.Fatalf("fastEnvelope(%x) = %x %x %x, strict %x %x %x", env, prot, payload, sig, wantProt, wantPayload, wantSig)
	}
}

// TestFastEnvelope checks that every valid signed sample takes the fast
// path, and that among the samples' mutations and byte strings of every
// length encoding the fast path accepts nothing the strict path refuses.
func TestFastEnvelope(t *testing.T) {
	w := newWorld(t, "fast envelope")
	for _, s := range validSamples(t, w) {
		if s.raw[0] != coseTag {
			continue // an unsigned kind
		}
		t.Run(s.name, func(t *testing.T) {
			if _, _, _, ok := fastEnvelope(s.raw[1:]); !ok {
				t.Errorf("fastEnvelope refuses a valid %s", s.name)
			}
			for _, m := range mutations(s.raw) {
				if len(m) > 0 {
					checkFastEnvelope(t, m[1:])
				}
			}
		})
	}
	t.Run("LongLengths", func(t *testing.T) {
		// Byte strings at each length encoding, shortest and not.
		for _, n := range []int{0, 23, 24, 255, 256, 65535, 65536} {
			payload := make([]byte, n)
			for _, head := range [][]byte{cborArgHead(2, uint64(n)), {0x58, byte(n)}, {0x59, byte(n >> 8), byte(n)}, {0x5a, 0, byte(n >> 16), byte(n >> 8), byte(n)}} {
				env := joinBytes([]byte{0x84, 0x4d}, fastHeaderPrefix, make([]byte, 8), []byte{0xa0}, head, payload, []byte{0x58, 0x40}, make([]byte, 64))
				checkFastEnvelope(t, env)
			}
		}
	})
}

// FuzzFastEnvelope holds fastEnvelope to the strict path on arbitrary
// input (the seeds are every kind's valid envelope and near misses).
func FuzzFastEnvelope(f *testing.F) {
	w := fuzzWorld(f)
	for _, s := range validSamples(f, w) {
		for _, m := range mutations(s.raw) {
			if len(m) > 0 {
				f.Add(m[1:])
			}
		}
	}
	f.Fuzz(func(t *testing.T, env []byte) { checkFastEnvelope(t, env) })
}
