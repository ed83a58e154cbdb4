package protocol

import (
	"bytes"
	"reflect"
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

// checkPaymentCodeFast holds PaymentCode.decodeFast to decodeStrict: what
// it accepts, the strict decoder accepts as the same body.
func checkPaymentCodeFast(t *testing.T, b []byte) {
	t.Helper()
	var got PaymentCode
	if !got.decodeFast(b) {
		if !reflect.DeepEqual(got, PaymentCode{}) {
			t.Fatalf("decodeFast(%x) refuses but changed the body to %+v", b, got)
		}
		return
	}
	var want PaymentCode
	if err := decodeStrict("payment code", b, MaxPaymentCodeSize, &want); err != nil {
		t.Fatalf("decodeFast(%x) accepts, decodeStrict refuses: %v", b, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("decodeFast(%x) = %#v, decodeStrict %#v", b, got, want)
	}
}

// TestPaymentCodeFast checks that a compact code's payload takes the fast
// path, and holds it to the strict decoder on near misses.
func TestPaymentCodeFast(t *testing.T) {
	w := newWorld(t, "fast code")
	cred := w.credential(w.device.Public())
	code := mustSign(t, w.paymentCodeBody(1, cred, false), w.device, cred.Body.ID[:])
	var p PaymentCode
	if !p.decodeFast(code.payload) {
		t.Fatalf("decodeFast refuses a compact code's payload %x", code.payload)
	}
	full := mustSign(t, w.paymentCodeBody(2, cred, true), w.device, cred.Body.ID[:])
	for _, b := range append(mutations(code.payload), mutations(full.payload)...) {
		checkPaymentCodeFast(t, b)
	}
	for _, c := range []uint64{0, 1, 23, 24, 255, 256, 65535, 65536, 1<<32 - 1, 1 << 32, 1 << 62, 1<<62 + 1, 1<<63 + 5} {
		for _, head := range [][]byte{cborArgHead(0, c), {0x18, byte(c)}, {0x19, byte(c >> 8), byte(c)}, cborArgHead(1, c)} {
			checkPaymentCodeFast(t, joinBytes([]byte{0xa2, 0x01}, head, []byte{0x02}, cborArgHead(0, 1_800_000_000)))
			checkPaymentCodeFast(t, joinBytes([]byte{0xa2, 0x01, 0x07, 0x02}, head))
			checkPaymentCodeFast(t, joinBytes([]byte{0xa2, 0x01, 0x07, 0x02}, head, []byte{0}))
		}
	}
}

// FuzzPaymentCodeFast holds PaymentCode.decodeFast to decodeStrict on
// arbitrary payloads.
func FuzzPaymentCodeFast(f *testing.F) {
	w := fuzzWorld(f)
	cred := w.credential(w.device.Public())
	for i, full := range []bool{false, true} {
		code := mustSign(f, w.paymentCodeBody(uint64(i+1), cred, full), w.device, cred.Body.ID[:])
		for _, m := range mutations(code.payload) {
			f.Add(m)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkPaymentCodeFast(t, b) })
}
