package crypto

import (
	"bytes"
	"strings"
	"testing"
)

// Every parser has a fuzz target. Each seed corpus holds valid inputs and,
// made from them, bit-flipped, truncated, re-cased and wrong-type inputs.
// The properties: no input panics, and whatever parses re-encodes to exactly
// the text it was parsed from (one value, one text form).

// variants returns s and damaged copies of it.
func variants(s string) []string {
	out := []string{s, "", s[:len(s)/2], s[:max(len(s)-1, 0)], s + "\n", " " + s, strings.ToUpper(s), s + s}
	for _, i := range []int{0, len(s) / 3, len(s) / 2, len(s) - 1} {
		if i < 0 || i >= len(s) {
			continue
		}
		for _, bit := range []byte{0x01, 0x20, 0x80} {
			b := []byte(s)
			b[i] ^= bit
			out = append(out, string(b))
		}
	}
	return out
}

// keyTexts returns the public and private text forms of a key of every
// purpose, a seal key and a key id: valid for one parser, wrong-type for the
// others.
func keyTexts(t testing.TB) []string {
	var out []string
	for i, p := range allPurposes {
		k := testKey(t, p, uint64(200+i))
		priv, _ := k.MarshalText()
		out = append(out, k.Public().String(), string(priv))
	}
	seal, _ := testSealKey(t, 210).MarshalText()
	return append(out, string(seal), testKey(t, Device, 211).ID().String())
}

func addStringSeeds(f *testing.F, valid ...string) {
	for _, s := range valid {
		for _, v := range variants(s) {
			f.Add(v)
		}
	}
}

func FuzzParsePublicKey(f *testing.F) {
	addStringSeeds(f, keyTexts(f)...)
	f.Fuzz(func(t *testing.T, s string) {
		parsed := 0
		for _, p := range allPurposes {
			k, err := ParsePublicKey(p, s)
			if err != nil {
				continue
			}
			parsed++
			if k.Purpose() != p {
				t.Fatalf("ParsePublicKey(%s, %q) has purpose %s", p, s, k.Purpose())
			}
			if got := k.String(); got != s {
				t.Fatalf("ParsePublicKey(%s, %q) re-encodes to %q", p, s, got)
			}
		}
		if parsed > 1 {
			t.Fatalf("%q parses as a public key of %d purposes", s, parsed)
		}
	})
}

func FuzzPublicKeyUnmarshalText(f *testing.F) {
	addStringSeeds(f, keyTexts(f)...)
	f.Fuzz(func(t *testing.T, s string) {
		var k PublicKey
		if err := k.UnmarshalText([]byte(s)); err != nil {
			return
		}
		text, err := k.MarshalText()
		if err != nil || string(text) != s {
			t.Fatalf("UnmarshalText(%q) re-encodes to %q, %v", s, text, err)
		}
		if k2, err := ParsePublicKey(k.Purpose(), s); err != nil || !k2.Equal(k) {
			t.Fatalf("UnmarshalText(%q) = %v, but ParsePublicKey = %v, %v", s, k, k2, err)
		}
	})
}

func FuzzParsePrivateKey(f *testing.F) {
	addStringSeeds(f, keyTexts(f)...)
	f.Fuzz(func(t *testing.T, s string) {
		parsed := 0
		for _, p := range allPurposes {
			k, err := ParsePrivateKey(p, s)
			if err != nil {
				continue
			}
			parsed++
			if k.Purpose() != p || k.Public().Purpose() != p {
				t.Fatalf("ParsePrivateKey(%s, …) has purpose %s", p, k.Purpose())
			}
			// ParsePrivateKey ignores surrounding white space (key files
			// end in a newline); the rest must re-encode exactly.
			if text, _ := k.MarshalText(); string(text) != strings.TrimSpace(s) {
				t.Fatalf("ParsePrivateKey(%s, …) does not re-encode to its input", p)
			}
		}
		if parsed > 1 {
			t.Fatalf("input parses as a private key of %d purposes", parsed)
		}
	})
}

func FuzzParseKeyID(f *testing.F) {
	addStringSeeds(f, keyTexts(f)...)
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseKeyID(s)
		if err != nil {
			return
		}
		if got := id.String(); got != s {
			t.Fatalf("ParseKeyID(%q) re-encodes to %q", s, got)
		}
	})
}

// FuzzVerifyPIN fuzzes the PIN hash parser. It runs argon2 only for cheap
// parameters: the parser's bounds allow 256 MiB and 16 passes, which is
// right for a cabin server and far too slow for a fuzzer.
func FuzzVerifyPIN(f *testing.F) {
	var valid []string
	for i, params := range []PINParams{cheapPIN, {MemoryKiB: 32, Iterations: 2, Parallelism: 4}} {
		enc, err := HashPIN("4821", params, testRand(uint64(220+i)))
		if err != nil {
			f.Fatal(err)
		}
		valid = append(valid, enc)
	}
	const tail = "$c29tZXNhbHRzb21lc2FsdA$MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI"
	valid = append(valid,
		"$argon2id$v=19$m=19456,t=2,p=1"+tail,
		"$argon2id$v=19$m=4294967295,t=4294967295,p=255"+tail, // hostile
		"$argon2id$v=19$m=262145,t=1,p=1"+tail,
		"$argon2i$v=19$m=64,t=1,p=1"+tail,
		"$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", // bcrypt
	)
	valid = append(valid, keyTexts(f)...)
	for _, s := range valid {
		for _, v := range variants(s) {
			f.Add(v, "4821")
		}
	}
	f.Add(valid[0], "")
	f.Add(valid[0], "48\xff1")
	f.Fuzz(func(t *testing.T, encoded, pin string) {
		h, err := parsePINHash(encoded)
		if err != nil {
			if ok, verr := VerifyPIN(encoded, pin); ok || verr == nil {
				t.Fatalf("parse fails (%v) but VerifyPIN = %v, %v", err, ok, verr)
			}
			return
		}
		if got := h.String(); got != encoded {
			t.Fatalf("parsePINHash(%q) re-encodes to %q", encoded, got)
		}
		if h.params.check() != nil {
			t.Fatalf("parsePINHash(%q) accepted out-of-bounds parameters %+v", encoded, h.params)
		}
		if h.params.MemoryKiB > 1024 || h.params.Iterations > 2 {
			return
		}
		if _, err := VerifyPIN(encoded, pin); err != nil {
			t.Fatalf("parse succeeds but VerifyPIN: %v", err)
		}
	})
}

func FuzzParseSealKey(f *testing.F) {
	addStringSeeds(f, keyTexts(f)...)
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseSealKey(s)
		var u SealKey
		uerr := u.UnmarshalText([]byte(s))
		if (err == nil) != (uerr == nil) || u != k {
			t.Fatalf("ParseSealKey and UnmarshalText disagree: %v vs %v", err, uerr)
		}
		if err != nil {
			return
		}
		if text, err := k.MarshalText(); err != nil || string(text) != s {
			t.Fatalf("ParseSealKey does not re-encode to its input (%v)", err)
		}
	})
}

// FuzzOpen checks that Open never panics and that nothing but the exact
// sealed bytes and aad it was given opens: the fuzzer cannot forge a tag.
func FuzzOpen(f *testing.F) {
	key := testSealKey(f, 230)
	type sealedSeed struct{ sealed, aad, plaintext []byte }
	var valid []sealedSeed
	for i, pt := range []string{"", "x", "card token 4242 4242 4242 4242", strings.Repeat("z", 300)} {
		aad := []byte("aad")
		sealed, err := Seal(key, []byte(pt), aad, testRand(uint64(231+i)))
		if err != nil {
			f.Fatal(err)
		}
		valid = append(valid, sealedSeed{sealed, aad, []byte(pt)})
	}
	other, err := Seal(testSealKey(f, 240), []byte("other key"), nil, testRand(241))
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range valid {
		for _, s := range variants(string(v.sealed)) {
			f.Add([]byte(s), v.aad)
		}
		f.Add(v.sealed, []byte(nil))
		f.Add(v.sealed, []byte("aae"))
		f.Add(append([]byte{2}, v.sealed[1:]...), v.aad)
	}
	f.Add(other, []byte(nil))
	for _, s := range keyTexts(f) {
		f.Add([]byte(s), []byte(nil))
	}
	f.Fuzz(func(t *testing.T, sealed, aad []byte) {
		pt, err := Open(key, sealed, aad)
		if err != nil {
			return
		}
		for _, v := range valid {
			if bytes.Equal(sealed, v.sealed) && bytes.Equal(aad, v.aad) {
				if !bytes.Equal(pt, v.plaintext) {
					t.Fatalf("Open = %q, want %q", pt, v.plaintext)
				}
				return
			}
		}
		t.Fatalf("Open accepted bytes that Seal never made: %x (aad %q)", sealed, aad)
	})
}
