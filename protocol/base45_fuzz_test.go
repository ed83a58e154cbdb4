package protocol

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// base45FuzzSeeds returns the seed corpus for FuzzBase45Decode: valid
// encodings, each with bit-flipped, truncated and lowercased variants, and
// text in other alphabets.
func base45FuzzSeeds() []string {
	valid := []string{"", "BB8", "%69 VD92EX0", "UJCLQE7W581", "QED8WEX0", "00", "000", "U5", "FGW",
		Base45Encode([]byte("AT1 payment code with a signature"))}
	var seeds []string
	for _, v := range valid {
		seeds = append(seeds, v, strings.ToLower(v))
		for cut := 1; cut < len(v) && cut <= 4; cut++ {
			seeds = append(seeds, v[:len(v)-cut])
		}
		for i := 0; i < len(v); i += 3 {
			for _, bit := range []byte{0x01, 0x20, 0x80} {
				b := []byte(v)
				b[i] ^= bit
				seeds = append(seeds, string(b))
			}
		}
	}
	return append(seeds,
		"GGW", "V5", "GG", "A", ":::", "   ", "QUJD", "QUJDRA==", "6162", "bb8",
		"BB8\n", "BB\xc3\xa9", "\x00\x00\x00", "€€€")
}

// FuzzBase45Decode checks that Base45Decode never panics, that a rejection
// is a *Base45Error pointing inside the input, and that decoding is
// canonical: any accepted string is exactly what Base45Encode gives for the
// decoded bytes.
func FuzzBase45Decode(f *testing.F) {
	for _, s := range base45FuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b, err := Base45Decode(s)
		if err != nil {
			var b45 *Base45Error
			if !errors.As(err, &b45) {
				t.Fatalf("Base45Decode(%q) error %T %v, want *Base45Error", s, err, err)
			}
			if b45.Offset < 0 || b45.Offset >= len(s) {
				t.Fatalf("Base45Decode(%q) error offset %d outside input of length %d", s, b45.Offset, len(s))
			}
			return
		}
		if got := Base45Encode(b); got != s {
			t.Fatalf("Base45Encode(Base45Decode(%q)) = %q: decoding is not canonical", s, got)
		}
	})
}

// FuzzBase45RoundTrip checks that any byte slice survives encoding and
// decoding.
func FuzzBase45RoundTrip(f *testing.F) {
	for _, v := range base45Vectors {
		f.Add([]byte(v.decoded))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Base45Decode(Base45Encode(b))
		if err != nil {
			t.Fatalf("Base45Decode(Base45Encode(%x)): %v", b, err)
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("round trip of %x = %x", b, got)
		}
	})
}
