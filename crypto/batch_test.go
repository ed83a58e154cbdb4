package crypto

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"filippo.io/edwards25519"
)

const batchDomain Domain = "airtab/test-batch/v1"

type signed struct {
	key PublicKey
	msg []byte
	sig []byte
}

// batchSigs makes n valid signatures over distinct messages by keys keys
// (cycled), deterministically from seed.
func batchSigs(t testing.TB, seed uint64, n, keys int) []signed {
	t.Helper()
	rng := mrand.New(mrand.NewPCG(seed, 1))
	var ks []PrivateKey
	for range keys {
		k, err := GenerateKey(Aircraft, readerFunc(func(p []byte) { fillRand(rng, p) }))
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, k)
	}
	out := make([]signed, n)
	for i := range out {
		msg := fmt.Appendf(nil, "message %d of batch %d", i, seed)
		k := ks[i%keys]
		out[i] = signed{key: k.Public(), msg: msg, sig: k.Sign(batchDomain, msg)}
	}
	return out
}

type readerFunc func([]byte)

func (f readerFunc) Read(p []byte) (int, error) { f(p); return len(p), nil }

func fillRand(rng *mrand.Rand, p []byte) {
	for i := range p {
		p[i] = byte(rng.Uint32())
	}
}

// verifyBoth runs the batch over sigs and each signature alone, and fails
// when they disagree anywhere. It returns the batch's answer.
func verifyBoth(t *testing.T, sigs []signed) []bool {
	t.Helper()
	var b Batch
	for i, s := range sigs {
		if got := b.Add(s.key, batchDomain, s.msg, s.sig); got != i {
			t.Fatalf("Add returned index %d, want %d", got, i)
		}
	}
	got := b.Verify(nil)
	for i, s := range sigs {
		if want := s.key.Verify(batchDomain, s.msg, s.sig); got[i] != want {
			t.Errorf("signature %d: batch says %v, single verification %v", i, got[i], want)
		}
	}
	return got
}

func TestBatchValid(t *testing.T) {
	for _, tc := range []struct{ n, keys int }{{1, 1}, {2, 2}, {3, 1}, {64, 64}, {256, 1}, {300, 17}} {
		t.Run(fmt.Sprintf("%d_signatures_%d_keys", tc.n, tc.keys), func(t *testing.T) {
			got := verifyBoth(t, batchSigs(t, uint64(tc.n), tc.n, tc.keys))
			if i := slices.Index(got, false); i >= 0 {
				t.Fatalf("valid signature %d reported invalid", i)
			}
		})
	}
	t.Run("Empty", func(t *testing.T) {
		var b Batch
		if got := b.Verify(nil); len(got) != 0 {
			t.Fatalf("empty batch answered %v", got)
		}
	})
}

func TestBatchFindsBadSignature(t *testing.T) {
	tamper := map[string]func(s *signed){
		"OtherMessage": func(s *signed) { s.msg = append(bytes.Clone(s.msg), '!') },
		"FlippedR":     func(s *signed) { s.sig = bytes.Clone(s.sig); s.sig[3] ^= 0x10 },
		"FlippedS":     func(s *signed) { s.sig = bytes.Clone(s.sig); s.sig[40] ^= 0x01 },
		"OtherKey": func(s *signed) {
			k, _ := GenerateKey(Aircraft, nil)
			s.key = k.Public()
		},
		"ShortSignature": func(s *signed) { s.sig = s.sig[:63] },
		"ZeroKey":        func(s *signed) { s.key = PublicKey{} },
	}
	for name, f := range tamper {
		t.Run(name, func(t *testing.T) {
			sigs := batchSigs(t, 7, 40, 5)
			bad := 17
			f(&sigs[bad])
			got := verifyBoth(t, sigs)
			for i, ok := range got {
				if ok != (i != bad) {
					t.Errorf("signature %d: valid = %v, want %v", i, ok, i != bad)
				}
			}
		})
	}
	t.Run("AllBad", func(t *testing.T) {
		sigs := batchSigs(t, 8, 10, 2)
		for i := range sigs {
			sigs[i].msg = []byte("something else")
		}
		if got := verifyBoth(t, sigs); slices.Contains(got, true) {
			t.Fatalf("a bad signature was reported valid: %v", got)
		}
	})
	t.Run("WrongDomain", func(t *testing.T) {
		sigs := batchSigs(t, 9, 4, 1)
		var b Batch
		for _, s := range sigs {
			b.Add(s.key, "airtab/other/v1", s.msg, s.sig)
		}
		if got := b.Verify(nil); slices.Contains(got, true) {
			t.Fatalf("a signature under another domain verified: %v", got)
		}
	})
}

// TestBatchRandomCoefficients shows why the coefficients are random: two
// signatures broken so that their errors cancel (S₁+δ, S₂-δ by one key over
// their own messages) satisfy the batch equation with all coefficients 1,
// and Verify, drawing random ones, finds both bad.
func TestBatchRandomCoefficients(t *testing.T) {
	sigs := batchSigs(t, 11, 2, 1)
	delta := edwards25519.NewScalar()
	if _, err := delta.SetCanonicalBytes(append([]byte{5}, make([]byte, 31)...)); err != nil {
		t.Fatal(err)
	}
	shift := func(s *signed, sub bool) {
		v, err := edwards25519.NewScalar().SetCanonicalBytes(s.sig[32:])
		if err != nil {
			t.Fatal(err)
		}
		if sub {
			v.Subtract(v, delta)
		} else {
			v.Add(v, delta)
		}
		s.sig = append(bytes.Clone(s.sig[:32]), v.Bytes()...)
	}
	shift(&sigs[0], false)
	shift(&sigs[1], true)

	var b Batch
	for _, s := range sigs {
		b.Add(s.key, batchDomain, s.msg, s.sig)
	}
	in := []int{0, 1}
	var pts []*parsed
	for i := range b.entries {
		p, v := parseEntry(&b.entries[i])
		if v != entryBatch {
			t.Fatalf("entry %d not batchable (%d)", i, v)
		}
		pts = append(pts, p)
	}
	one, _ := edwards25519.NewScalar().SetCanonicalBytes(append([]byte{1}, make([]byte, 31)...))
	if !batchEquation(b.entries, in, pts, []*edwards25519.Scalar{one, one}) {
		t.Fatal("with coefficients 1 the cancelling pair should satisfy the batch equation (the attack random coefficients stop)")
	}
	for round := range 20 {
		z, err := coefficients(readerFunc(func(p []byte) { fillRand(mrand.New(mrand.NewPCG(uint64(round), 2)), p) }), 2)
		if err != nil {
			t.Fatal(err)
		}
		if batchEquation(b.entries, in, pts, z) {
			t.Fatalf("round %d: random coefficients let the cancelling pair through", round)
		}
	}
	if got := verifyBoth(t, sigs); slices.Contains(got, true) {
		t.Fatalf("Verify reported a broken signature valid: %v", got)
	}
}

// smallOrder returns the canonical encodings of the eight small-order
// points.
func smallOrder(t *testing.T) [][]byte {
	t.Helper()
	// A point of order 8 (RFC 8032 test vectors, "Taming the many EdDSAs"):
	// y = 0x7a0327...; its multiples are the torsion subgroup.
	t8, err := new(edwards25519.Point).SetBytes(hexBytes(t, "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	p := edwards25519.NewIdentityPoint()
	for range 8 {
		out = append(out, p.Bytes())
		p = new(edwards25519.Point).Add(p, t8)
	}
	if !bytes.Equal(p.Bytes(), edwards25519.NewIdentityPoint().Bytes()) {
		t.Fatal("the torsion generator is not of order 8")
	}
	return out
}

func hexBytes(t *testing.T, s string) []byte {
	t.Helper()
	b, err := decodeLowerHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBatchEdgeCases(t *testing.T) {
	l := hexBytes(t, "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010") // ℓ, little-endian
	addL := func(s []byte) []byte {
		out := make([]byte, 32)
		carry := 0
		for i := range 32 {
			v := int(s[i]) + int(l[i]) + carry
			out[i], carry = byte(v), v>>8
		}
		return out
	}
	torsion := smallOrder(t)
	cases := map[string]func(t *testing.T, s *signed){
		// S + ℓ: the same scalar, not canonical; crypto/ed25519 refuses it.
		"NonCanonicalS": func(t *testing.T, s *signed) {
			s.sig = append(bytes.Clone(s.sig[:32]), addL(s.sig[32:])...)
		},
		// R of small order: a "signature" with R = T and S = 0 verifies
		// nowhere (it would need [k]A to be torsion).
		"SmallOrderR": func(t *testing.T, s *signed) {
			s.sig = append(bytes.Clone(torsion[3]), make([]byte, 32)...)
		},
		// A of small order: R = [S]B signs every message under the
		// cofactored rule, and crypto/ed25519 accepts it too when [k]A is
		// the identity; the batch must say what crypto/ed25519 says.
		"SmallOrderA": func(t *testing.T, s *signed) {
			for _, T := range torsion {
				k, err := PublicKeyFromBytes(Aircraft, T)
				if err != nil {
					t.Fatal(err)
				}
				sc, _ := edwards25519.NewScalar().SetCanonicalBytes(append([]byte{9}, make([]byte, 31)...))
				r := new(edwards25519.Point).ScalarBaseMult(sc)
				s.key, s.sig = k, append(r.Bytes(), sc.Bytes()...)
				if ed25519.Verify(ed25519.PublicKey(T), batchDomain.frame(s.msg), s.sig) {
					return // one that crypto/ed25519 accepts: the batch must too
				}
			}
		},
		"IdentityA": func(t *testing.T, s *signed) {
			k, _ := PublicKeyFromBytes(Aircraft, torsion[0])
			sc, _ := edwards25519.NewScalar().SetCanonicalBytes(append([]byte{9}, make([]byte, 31)...))
			s.key, s.sig = k, append(new(edwards25519.Point).ScalarBaseMult(sc).Bytes(), sc.Bytes()...)
		},
		// R with y ≥ p: a non-canonical encoding of a point with y = 1
		// (the identity) or y = 2.
		"NonCanonicalR": func(t *testing.T, s *signed) {
			r := hexBytes(t, "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f") // p + 1
			s.sig = append(r, bytes.Clone(s.sig[32:])...)
		},
		// A with y ≥ p.
		"NonCanonicalA": func(t *testing.T, s *signed) {
			k, _ := PublicKeyFromBytes(Aircraft, hexBytes(t, "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"))
			s.key = k
		},
		"NotAPoint": func(t *testing.T, s *signed) {
			// y = 2 has no x on the curve.
			r := make([]byte, 32)
			r[0] = 2
			s.sig = append(r, bytes.Clone(s.sig[32:])...)
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			sigs := batchSigs(t, 13, 12, 3)
			f(t, &sigs[5])
			got := verifyBoth(t, sigs) // the batch says what single verification says, entry by entry
			for i, ok := range got {
				if i != 5 && !ok {
					t.Errorf("valid signature %d reported invalid", i)
				}
			}
		})
	}
	if new(edwards25519.Point).MultByCofactor(mustPoint(t, torsion[0])).Equal(edwards25519.NewIdentityPoint()) != 1 {
		t.Fatal("identity is not small-order")
	}
}

func mustPoint(t *testing.T, b []byte) *edwards25519.Point {
	t.Helper()
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestBatchMixedOrderR pins the one known difference from crypto/ed25519
// (see batch.go): the key's holder can sign with R = [r]B + T, T a torsion
// point, which the cofactored batch accepts and crypto/ed25519 refuses.
// Nobody without the private key can make one.
func TestBatchMixedOrderR(t *testing.T) {
	sigs := batchSigs(t, 17, 4, 4)
	seed := make([]byte, 32)
	seed[0] = 42
	priv := ed25519.NewKeyFromSeed(seed)
	h := sha512.Sum512(seed)
	a, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := PublicKeyFromBytes(Aircraft, priv.Public().(ed25519.PublicKey))
	r, _ := edwards25519.NewScalar().SetCanonicalBytes(append([]byte{77}, make([]byte, 31)...))
	R := new(edwards25519.Point).Add(new(edwards25519.Point).ScalarBaseMult(r), mustPoint(t, smallOrder(t)[1]))
	msg := []byte("crafted by the key's holder")
	framed := batchDomain.frame(msg)
	d := sha512.New()
	d.Write(R.Bytes())
	d.Write(pub.k[:])
	d.Write(framed)
	k, _ := edwards25519.NewScalar().SetUniformBytes(d.Sum(nil))
	S := edwards25519.NewScalar().MultiplyAdd(k, a, r)
	crafted := signed{key: pub, msg: msg, sig: append(R.Bytes(), S.Bytes()...)}
	if pub.Verify(batchDomain, msg, crafted.sig) {
		t.Fatal("crypto/ed25519 accepted a signature with a torsion component in R")
	}
	var b Batch
	for _, s := range append(sigs, crafted) {
		b.Add(s.key, batchDomain, s.msg, s.sig)
	}
	if got := b.Verify(nil); !got[len(sigs)] {
		t.Fatal("the cofactored batch refused it: batch.go's comment is out of date")
	}
}

func TestBatchLimit(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("adding past MaxBatch did not panic")
		}
	}()
	var b Batch
	s := batchSigs(t, 1, 1, 1)[0]
	for range MaxBatch + 1 {
		b.Add(s.key, batchDomain, s.msg, s.sig)
	}
}

func TestBatchReset(t *testing.T) {
	var b Batch
	for _, s := range batchSigs(t, 3, 5, 1) {
		b.Add(s.key, batchDomain, s.msg, s.sig)
	}
	b.Reset()
	if b.Len() != 0 {
		t.Fatalf("Len after Reset = %d", b.Len())
	}
	s := batchSigs(t, 4, 1, 1)[0]
	b.Add(s.key, batchDomain, s.msg, s.sig)
	if got := b.Verify(nil); len(got) != 1 || !got[0] {
		t.Fatalf("after Reset: %v", got)
	}
}

// BenchmarkBatchVerify compares batch verification with single
// verification: ns/sig is one signature's share (Add included).
func BenchmarkBatchVerify(b *testing.B) {
	for _, tc := range []struct {
		name    string
		n, keys int
	}{{"Single", 1, 1}, {"Batch64_64keys", 64, 64}, {"Batch256_256keys", 256, 256}, {"Batch256_1key", 256, 1}, {"Batch512_257keys", 512, 257}} {
		sigs := batchSigs(b, 5, tc.n, tc.keys)
		b.Run(tc.name, func(b *testing.B) {
			var batch Batch
			for b.Loop() {
				if tc.n == 1 {
					if s := sigs[0]; !s.key.Verify(batchDomain, s.msg, s.sig) {
						b.Fatal("invalid")
					}
					continue
				}
				batch.Reset()
				for _, s := range sigs {
					batch.Add(s.key, batchDomain, s.msg, s.sig)
				}
				if slices.Contains(batch.Verify(nil), false) {
					b.Fatal("invalid")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tc.n), "ns/sig")
		})
	}
}
