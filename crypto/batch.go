package crypto

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha512"
	"fmt"
	"io"
	"sync"

	"filippo.io/edwards25519"
)

// Batch verification of Ed25519 signatures (RFC 8032), for a verifier with
// many signatures in hand at once: ground's clearing checks two per invoice,
// a few hundred invoices a batch.
//
// The batch equation is the cofactored one of ed25519consensus and ZIP 215:
// with a random 128-bit coefficient z_i per signature (R_i, S_i) by key A_i
// over message M_i, and k_i = SHA-512(R_i || A_i || M_i) mod ℓ,
//
//	[8] ( [-Σ z_i·S_i] B + Σ [z_i] R_i + Σ [z_i·k_i] A_i ) = identity
//
// which one multi-scalar multiplication computes (signatures by the same key
// share one point, their coefficients summed). Each signature valid alone
// makes every term vanish, so a batch of valid signatures always passes. A
// batch holding one or more signatures that fail the cofactored check alone
// passes with probability at most 2^-128 over the coefficients: the
// coefficients are drawn after the signatures are fixed, so no one can make
// the failures cancel, which a fixed coefficient (say all ones) would let
// anyone do (TestBatchRandomCoefficients).
//
// The single verifier, crypto/ed25519.Verify, is stricter: it is
// cofactorless (it recomputes R' = [S]B - [k]A and compares R's encoding
// with the signature's bytes). Verify never lets the batch say "valid" where
// the single verifier would say "invalid", as far as anyone but the key's
// holder can make a signature:
//
//   - S must be canonical (S < ℓ); a signature whose S is not is invalid,
//     as crypto/ed25519 says.
//   - A signature whose R or key A is a non-canonical encoding, not a point,
//     or a point of small order (the identity or another of the eight
//     torsion points) never enters the batch: crypto/ed25519.Verify decides
//     it alone. These are the encodings on which the two rules are known to
//     disagree for signatures anyone can make (a small-order A makes
//     R = [S]B a cofactored "signature" of every message).
//   - When the batch equation fails, every signature in it is checked again
//     alone with crypto/ed25519.Verify, which decides each one: a bad
//     signature is found and the good ones stay good.
//
// So a batch pass means that, for every signature in it, R and A are
// canonical points of large order and [8]([S]B - R - [k]A) is the identity
// (except with probability 2^-128): [S]B - [k]A equals R up to a torsion
// point T. When T is the identity, R's canonical encoding is the one
// crypto/ed25519 compares against, and it accepts too. T is not the identity
// only for an R (or an A) that carries a chosen torsion component while
// [S]B - [k]A hits the rest of it, and since k depends on R, finding such an
// S takes the discrete logarithm of A: only the key's holder, who could as
// well have signed the message properly, can make a signature that the
// batch accepts and crypto/ed25519 refuses. Ruling that out too would mean
// a full scalar multiplication per R (checking [ℓ]R = identity), the cost of
// a single verification, which is what batching saves.

// MaxBatch bounds the signatures one Batch holds: a caller with more makes
// several batches.
const MaxBatch = 4096

// Batch collects Ed25519 signatures to verify together. The zero value is
// an empty batch. It is not safe for concurrent use; a caller with several
// cores makes one Batch per goroutine.
type Batch struct {
	entries []batchEntry
}

type batchEntry struct {
	key PublicKey
	msg []byte // the bytes Ed25519 signed (framed already for Add)
	sig []byte
	bad bool // refused before any arithmetic: it verifies as false
}

// Add queues sig, k's signature over msg under domain, as PublicKey.Verify
// would check it. It returns the entry's index in Verify's answer. Adding
// more than MaxBatch entries panics: a programming error.
func (b *Batch) Add(k PublicKey, domain Domain, msg, sig []byte) int {
	if domain.check() != nil {
		return b.add(batchEntry{key: k, sig: sig, bad: true})
	}
	return b.add(batchEntry{key: k, msg: domain.frame(msg), sig: sig})
}

// AddRaw queues sig, k's plain Ed25519 signature over msg, as
// PublicKey.VerifyRaw would check it. It returns the entry's index in
// Verify's answer.
func (b *Batch) AddRaw(k PublicKey, msg, sig []byte) int {
	return b.add(batchEntry{key: k, msg: msg, sig: sig})
}

func (b *Batch) add(e batchEntry) int {
	if len(b.entries) >= MaxBatch {
		panic(fmt.Sprintf("crypto: more than %d signatures in one Batch (MaxBatch)", MaxBatch))
	}
	if e.key.IsZero() || len(e.sig) != SignatureSize {
		e.bad = true
	}
	b.entries = append(b.entries, e)
	return len(b.entries) - 1
}

// Len returns how many signatures the batch holds.
func (b *Batch) Len() int { return len(b.entries) }

// Reset empties the batch for reuse.
func (b *Batch) Reset() { clear(b.entries); b.entries = b.entries[:0] }

// Verify checks every signature of the batch and reports, per entry in the
// order they were added, whether it is valid. The coefficients are read from
// rnd, crypto/rand when rnd is nil; only tests pass another reader. See the
// comment at the top of this file for how the answer relates to checking
// each signature alone with PublicKey.VerifyRaw.
func (b *Batch) Verify(rnd io.Reader) []bool {
	ok := make([]bool, len(b.entries))
	var in []int      // entries in the batch equation
	var pts []*parsed // their R and A
	for i := range b.entries {
		e := &b.entries[i]
		if e.bad {
			continue
		}
		p, verdict := parseEntry(e)
		switch verdict {
		case entryInvalid:
		case entrySingle:
			ok[i] = e.single()
		default:
			in = append(in, i)
			pts = append(pts, p)
		}
	}
	switch {
	case len(in) == 0:
		return ok
	case len(in) == 1:
		ok[in[0]] = b.entries[in[0]].single()
		return ok
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	z, err := coefficients(rnd, len(in))
	if err == nil && batchEquation(b.entries, in, pts, z) {
		for _, i := range in {
			ok[i] = true
		}
		return ok
	}
	// A failed batch (or no randomness to make one): each signature alone.
	for _, i := range in {
		ok[i] = b.entries[i].single()
	}
	return ok
}

// single is the reference check of one entry.
func (e *batchEntry) single() bool {
	return ed25519.Verify(ed25519.PublicKey(e.key.k[:]), e.msg, e.sig)
}

// parsed is what the batch equation needs of one signature.
type parsed struct {
	r, a *edwards25519.Point
	s, k *edwards25519.Scalar
}

type entryVerdict int

const (
	entryBatch   entryVerdict = iota // canonical, large order: in the batch
	entryInvalid                     // invalid whatever the rule (S ≥ ℓ)
	entrySingle                      // an edge case: crypto/ed25519 decides
)

func parseEntry(e *batchEntry) (*parsed, entryVerdict) {
	s, err := edwards25519.NewScalar().SetCanonicalBytes(e.sig[32:])
	if err != nil {
		return nil, entryInvalid // crypto/ed25519 refuses S ≥ ℓ too
	}
	a, ok := largePoint(e.key.k[:], true)
	if !ok {
		return nil, entrySingle
	}
	r, ok := largePoint(e.sig[:32], false)
	if !ok {
		return nil, entrySingle
	}
	h := sha512.New()
	h.Write(e.sig[:32])
	h.Write(e.key.k[:])
	h.Write(e.msg)
	var digest [sha512.Size]byte
	k, err := edwards25519.NewScalar().SetUniformBytes(h.Sum(digest[:0]))
	if err != nil {
		panic("crypto: SHA-512 output is not 64 bytes")
	}
	return &parsed{r: r, a: a, s: s, k: k}, entryBatch
}

// largePoint decodes b when it is the canonical encoding of a point of
// large order (not one of the eight small-order points), which is what the
// batch takes. cache: keys repeat across batches, so their decoding is
// remembered; an R never repeats.
func largePoint(b []byte, cache bool) (*edwards25519.Point, bool) {
	var key [32]byte
	copy(key[:], b)
	if cache {
		if p, ok := points.get(key); ok {
			return p, p != nil
		}
	}
	p := decodeLarge(b)
	if cache {
		points.put(key, p)
	}
	return p, p != nil
}

func decodeLarge(b []byte) *edwards25519.Point {
	if !canonicalY(b) {
		return nil
	}
	p, err := new(edwards25519.Point).SetBytes(b)
	if err != nil {
		return nil
	}
	// With y < p, the only other non-canonical encodings are x = 0 with the
	// sign bit set: y = ±1, the identity and the point of order 2, which
	// are small-order and refused here.
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil
	}
	return p
}

// canonicalY reports whether the 255-bit y of encoding b (its top bit is
// x's sign) is below p = 2^255 - 19.
func canonicalY(b []byte) bool {
	// y ≥ p only when bytes 1..30 are all 0xff, byte 31 (sign masked) is
	// 0x7f and byte 0 is at least 0xed.
	if b[31]&0x7f != 0x7f {
		return true
	}
	for i := 30; i >= 1; i-- {
		if b[i] != 0xff {
			return true
		}
	}
	return b[0] < 0xed
}

// coefficients returns n random scalars of 128 bits.
func coefficients(rnd io.Reader, n int) ([]*edwards25519.Scalar, error) {
	buf := make([]byte, 16*n)
	if _, err := io.ReadFull(rnd, buf); err != nil {
		return nil, err
	}
	z := make([]*edwards25519.Scalar, n)
	var wide [32]byte
	for i := range z {
		copy(wide[:16], buf[16*i:])
		s, err := edwards25519.NewScalar().SetCanonicalBytes(wide[:]) // < 2^128 < ℓ
		if err != nil {
			return nil, err
		}
		z[i] = s
	}
	return z, nil
}

// batchEquation reports whether the cofactored batch equation holds for the
// entries in (parsed as pts) with coefficients z.
func batchEquation(entries []batchEntry, in []int, pts []*parsed, z []*edwards25519.Scalar) bool {
	n := len(in)
	scalars := make([]*edwards25519.Scalar, 0, 2*n+1)
	points := make([]*edwards25519.Point, 0, 2*n+1)
	bScalar := edwards25519.NewScalar()
	keyAt := make(map[[32]byte]int, n) // a key's slot in scalars/points
	for j, i := range in {
		p := pts[j]
		bScalar.MultiplyAdd(z[j], p.s, bScalar)
		scalars = append(scalars, z[j])
		points = append(points, p.r)
		zk := edwards25519.NewScalar().Multiply(z[j], p.k)
		if at, ok := keyAt[entries[i].key.k]; ok {
			scalars[at].Add(scalars[at], zk)
			continue
		}
		keyAt[entries[i].key.k] = len(scalars)
		scalars = append(scalars, zk)
		points = append(points, p.a)
	}
	scalars = append(scalars, bScalar.Negate(bScalar))
	points = append(points, edwards25519.NewGeneratorPoint())
	sum := new(edwards25519.Point).VarTimeMultiScalarMult(scalars, points)
	return sum.MultByCofactor(sum).Equal(edwards25519.NewIdentityPoint()) == 1
}

// pointCache remembers decoded keys (nil: not batchable). Bounded; it
// forgets everything when full.
type pointCache struct {
	mu sync.Mutex
	m  map[[32]byte]*edwards25519.Point
}

const maxCachedPoints = 1 << 14

var points = &pointCache{m: map[[32]byte]*edwards25519.Point{}}

func (c *pointCache) get(k [32]byte) (*edwards25519.Point, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[k]
	return p, ok
}

func (c *pointCache) put(k [32]byte, p *edwards25519.Point) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedPoints {
		clear(c.m)
	}
	c.m[k] = p
}
