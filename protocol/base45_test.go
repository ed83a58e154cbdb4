package protocol

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
)

// base45Vectors are the examples of RFC 9285 sections 4.3 and 4.4 plus the
// value boundaries: 0, 255 and 65535 are the largest values a pair and a
// triple may carry.
var base45Vectors = []struct {
	name    string
	decoded string
	encoded string
}{
	{"Empty", "", ""},
	{"RFC_AB", "AB", "BB8"},
	{"RFC_Hello", "Hello!!", "%69 VD92EX0"},
	{"RFC_base-45", "base-45", "UJCLQE7W581"},
	{"RFC_ietf", "ietf!", "QED8WEX0"},
	{"Zero", "\x00", "00"},
	{"ZeroPair", "\x00\x00", "000"},
	{"MaxPair", "\xff", "U5"},
	{"MaxTriple", "\xff\xff", "FGW"},
}

func TestBase45Encode(t *testing.T) {
	for _, tc := range base45Vectors {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := Base45Encode([]byte(tc.decoded)), tc.encoded; got != want {
				t.Fatalf("Base45Encode(%q) = %q, want %q", tc.decoded, got, want)
			}
		})
	}
}

func TestBase45Decode(t *testing.T) {
	for _, tc := range base45Vectors {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Base45Decode(tc.encoded)
			if err != nil {
				t.Fatalf("Base45Decode(%q): %v", tc.encoded, err)
			}
			if want := []byte(tc.decoded); !bytes.Equal(got, want) {
				t.Fatalf("Base45Decode(%q) = %q, want %q", tc.encoded, got, want)
			}
		})
	}
}

func TestBase45DecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		in         string
		wantOffset int
		wantReason string
	}{
		{"ErrTripleOverflow", "GGW", 0, "triple value 65536 exceeds 65535"},
		{"ErrTripleMaxDigits", "BB8:::", 3, "triple value 91124 exceeds 65535"},
		{"ErrPairOverflow", "V5", 0, "pair value 256 exceeds 255"},
		{"ErrPairGG", "BB8GG", 3, "pair value 736 exceeds 255"},
		{"ErrDanglingOne", "A", 0, "dangling single character"},
		{"ErrDanglingAfterTriple", "BB8A", 3, "dangling single character"},
		{"ErrLowercase", "bb8", 0, "character 'b' is outside the Base45 alphabet"},
		{"ErrLowercaseInPair", "BB8Ab", 4, "character 'b' is outside"},
		{"ErrLowercaseDangling", "BB8a", 3, "character 'a' is outside"},
		{"ErrBase64Char", "BB8B=8", 4, "character '=' is outside"},
		{"ErrNUL", "BB\x00", 2, "byte 0x00 is outside"},
		{"ErrUTF8", "BB\xc3\xa9", 2, "byte 0xc3 is outside"},
		{"ErrNewline", "BB8\n", 3, "byte 0x0a is outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Base45Decode(tc.in)
			if err == nil {
				t.Fatalf("Base45Decode(%q) = %q, want error", tc.in, got)
			}
			var b45 *Base45Error
			if !errors.As(err, &b45) {
				t.Fatalf("Base45Decode(%q) error %T %v, want *Base45Error", tc.in, err, err)
			}
			if got, want := b45.Offset, tc.wantOffset; got != want {
				t.Errorf("offset = %d, want %d (%v)", got, want, err)
			}
			if !strings.Contains(b45.Reason, tc.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", b45.Reason, tc.wantReason)
			}
		})
	}
}

// TestBase45RoundTrip encodes seeded random byte slices of every length from
// 0 to 300 and checks they decode back, and that the text uses only the
// alphabet at the length RFC 9285 gives.
func TestBase45RoundTrip(t *testing.T) {
	const seed = 45
	rng := rand.New(rand.NewPCG(seed, seed))
	for n := 0; n <= 300; n++ {
		for range 4 {
			b := make([]byte, n)
			for i := range b {
				b[i] = byte(rng.UintN(256))
			}
			s := Base45Encode(b)
			if got, want := len(s), n/2*3+n%2*2; got != want {
				t.Fatalf("seed %d: len(Base45Encode(%x)) = %d, want %d", seed, b, got, want)
			}
			if i := strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune(base45Alphabet, r) }); i >= 0 {
				t.Fatalf("seed %d: Base45Encode(%x) = %q has non-alphabet character at %d", seed, b, s, i)
			}
			got, err := Base45Decode(s)
			if err != nil {
				t.Fatalf("seed %d: Base45Decode(Base45Encode(%x)): %v", seed, b, err)
			}
			if !bytes.Equal(got, b) {
				t.Fatalf("seed %d: round trip of %x = %x", seed, b, got)
			}
		}
	}
}

// TestBase45AllPairs checks every two-byte value, so the triple arithmetic is
// exercised at each boundary and not only where random input happens to land.
func TestBase45AllPairs(t *testing.T) {
	for n := 0; n <= 0xffff; n++ {
		b := []byte{byte(n >> 8), byte(n)}
		got, err := Base45Decode(Base45Encode(b))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("round trip of %x = %x, %v", b, got, err)
		}
	}
}

func BenchmarkBase45Decode(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	raw := make([]byte, 97)
	for i := range raw {
		raw[i] = byte(rng.UintN(256))
	}
	s := Base45Encode(raw)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if _, err := Base45Decode(s); err != nil {
			b.Fatal(err)
		}
	}
}
