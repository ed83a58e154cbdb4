package crypto

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
)

func TestPublicKeyTextRoundTrip(t *testing.T) {
	for _, p := range allPurposes {
		t.Run(p.String(), func(t *testing.T) {
			pub := testKey(t, p, 1).Public()
			text, err := pub.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			if got, want := string(text), "airtab-"+p.String()+"-pub:"+hex.EncodeToString(pub.Bytes()); got != want {
				t.Fatalf("MarshalText = %q, want %q", got, want)
			}
			if got, want := pub.String(), string(text); got != want {
				t.Fatalf("String = %q, want %q", got, want)
			}
			got, err := ParsePublicKey(p, string(text))
			if err != nil {
				t.Fatalf("ParsePublicKey: %v", err)
			}
			if !got.Equal(pub) {
				t.Fatalf("ParsePublicKey = %v, want %v", got, pub)
			}
			var u PublicKey
			if err := u.UnmarshalText(text); err != nil {
				t.Fatalf("UnmarshalText: %v", err)
			}
			if !u.Equal(pub) || u.Purpose() != p {
				t.Fatalf("UnmarshalText = %v, want %v", u, pub)
			}
		})
	}
}

func TestPrivateKeyTextRoundTrip(t *testing.T) {
	for _, p := range allPurposes {
		t.Run(p.String(), func(t *testing.T) {
			k := testKey(t, p, 2)
			text, err := k.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(text), "airtab-"+p.String()+"-priv:") {
				t.Fatalf("MarshalText = %q, want the %s private prefix", text, p)
			}
			got, err := ParsePrivateKey(p, string(text)+"\n")
			if err != nil {
				t.Fatalf("ParsePrivateKey: %v", err)
			}
			if !got.Public().Equal(k.Public()) || got.Purpose() != p {
				t.Fatalf("ParsePrivateKey = %v, want %v", got, k)
			}
			msg := []byte("round trip")
			if !k.Public().Verify("airtab/test/v1", msg, got.Sign("airtab/test/v1", msg)) {
				t.Fatal("parsed key's signature does not verify under the original public key")
			}
		})
	}
}

func TestParseWrongPurpose(t *testing.T) {
	for _, p := range allPurposes {
		k := testKey(t, p, 3)
		priv, _ := k.MarshalText()
		for _, q := range allPurposes {
			if p == q {
				continue
			}
			t.Run(p.String()+"As"+q.String(), func(t *testing.T) {
				if got, err := ParsePublicKey(q, k.Public().String()); err == nil {
					t.Fatalf("ParsePublicKey(%s, %s key) = %v, want error", q, p, got)
				}
				if got, err := ParsePrivateKey(q, string(priv)); err == nil {
					t.Fatalf("ParsePrivateKey(%s, %s key) = %v, want error", q, p, got)
				}
			})
		}
		// A private key text is never a public key and vice versa.
		if _, err := ParsePublicKey(p, string(priv)); err == nil {
			t.Fatalf("ParsePublicKey(%s, private key text) succeeded", p)
		}
		if _, err := ParsePrivateKey(p, k.Public().String()); err == nil {
			t.Fatalf("ParsePrivateKey(%s, public key text) succeeded", p)
		}
	}
}

func TestParseRejectsNonCanonical(t *testing.T) {
	pub := testKey(t, Device, 4).Public()
	priv, _ := testKey(t, Device, 4).MarshalText()
	upper := func(s string) string {
		i := strings.IndexByte(s, ':') + 1
		return s[:i] + strings.ToUpper(s[i:])
	}
	tests := map[string]func() error{
		"PublicUpperHex": func() error { _, err := ParsePublicKey(Device, upper(pub.String())); return err },
		"PublicSpace":    func() error { _, err := ParsePublicKey(Device, pub.String()+" "); return err },
		"PublicShort":    func() error { _, err := ParsePublicKey(Device, pub.String()[:len(pub.String())-2]); return err },
		"PublicOddHex":   func() error { _, err := ParsePublicKey(Device, pub.String()[:len(pub.String())-1]); return err },
		"PrivUpperHex":   func() error { _, err := ParsePrivateKey(Device, upper(string(priv))); return err },
		"KeyIDUpper":     func() error { _, err := ParseKeyID(strings.ToUpper(pub.ID().String())); return err },
		"KeyIDShort":     func() error { _, err := ParseKeyID(pub.ID().String()[2:]); return err },
		"UnknownPrefix":  func() error { var k PublicKey; return k.UnmarshalText([]byte("airtab-crew-pub:00")) },
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			if err := f(); err == nil {
				t.Fatal("parse succeeded, want error")
			}
		})
	}
}

func TestEqual(t *testing.T) {
	a := testKey(t, Device, 5).Public()
	b := testKey(t, Device, 6).Public()
	aIssuer, err := PublicKeyFromBytes(Issuer, a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	aCopy, err := PublicKeyFromBytes(Device, a.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		x, y PublicKey
		want bool
	}{
		{"Same", a, aCopy, true},
		{"OtherBytes", a, b, false},
		{"OtherPurpose", a, aIssuer, false},
		{"Zero", a, PublicKey{}, false},
		{"BothZero", PublicKey{}, PublicKey{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.x.Equal(tt.y); got != tt.want {
				t.Fatalf("Equal = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestKeyID(t *testing.T) {
	pub := testKey(t, Aircraft, 7).Public()
	sum := sha256.Sum256(pub.Bytes())
	id := pub.ID()
	if got, want := id[:], sum[:8]; string(got) != string(want) {
		t.Fatalf("ID = %x, want %x", got, want)
	}
	if got, want := testKey(t, Aircraft, 7).ID(), id; got != want {
		t.Fatalf("PrivateKey.ID = %v, want %v", got, want)
	}
	parsed, err := ParseKeyID(id.String())
	if err != nil || parsed != id {
		t.Fatalf("ParseKeyID(%q) = %v, %v; want %v", id.String(), parsed, err, id)
	}
	fromBytes, err := KeyIDFromBytes(sum[:8])
	if err != nil || fromBytes != id {
		t.Fatalf("KeyIDFromBytes = %v, %v; want %v", fromBytes, err, id)
	}
	if _, err := KeyIDFromBytes(sum[:7]); err == nil {
		t.Fatal("KeyIDFromBytes(7 bytes) succeeded")
	}
}

// TestGolden pins the text forms and a signature for a fixed seed. If this
// changes, every stored key file and signed message changes with it.
func TestGolden(t *testing.T) {
	seed := make([]byte, SeedSize)
	for i := range seed {
		seed[i] = byte(i)
	}
	k, err := PrivateKeyFromSeed(Issuer, seed)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := k.MarshalText()
	sig := k.Sign("airtab/test/v1", []byte("hello"))
	for _, c := range []struct{ name, got, want string }{
		{"priv", string(priv), "airtab-issuer-priv:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"},
		{"pub", k.Public().String(), "airtab-issuer-pub:03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8"},
		{"id", k.ID().String(), "56475aa75463474c"},
		{"sig", hex.EncodeToString(sig), goldenSig},
	} {
		if c.got != c.want {
			t.Errorf("%s = %s, want %s", c.name, c.got, c.want)
		}
	}
}

// goldenSig was checked independently with Python's cryptography package:
// Ed25519PrivateKey.from_private_bytes(bytes(range(32))).sign(b"\x0eairtab/test/v1hello").
const goldenSig = "9cabc1669a5ebf119355892068bfba51d6399f6cd6e0c437b7dd615c79af2f19a907ad3b22cd0b1954188813772214062898244d5d38e8fd49bbef7dcc326706"

func TestPrivateKeyNeverPrinted(t *testing.T) {
	k := testKey(t, Device, 8)
	text, _ := k.MarshalText()
	seedHex := string(text[strings.IndexByte(string(text), ':')+1:])
	seedDec := strings.Trim(fmt.Sprint(k.seed[:6]), "[]")                   // as %v or %d print raw bytes
	seedGo := fmt.Sprintf("%#x, %#x, %#x", k.seed[0], k.seed[1], k.seed[2]) // as %#v prints them
	type holder struct{ Key PrivateKey }
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d"} {
		for _, v := range []any{k, &k, holder{k}} {
			out := fmt.Sprintf(verb, v)
			if strings.Contains(strings.ToLower(out), seedHex[:16]) || strings.Contains(out, seedDec) || strings.Contains(out, seedGo) {
				t.Errorf("Sprintf(%q, %T) = %q shows key material", verb, v, out)
			}
		}
	}
}

func TestSignVerify(t *testing.T) {
	k := testKey(t, Device, 9)
	msg := []byte("order 42")
	sig := k.Sign("airtab/consent/v1", msg)
	// The signature is plain Ed25519 over len(domain) || domain || msg.
	framed := append([]byte{byte(len("airtab/consent/v1"))}, "airtab/consent/v1"...)
	framed = append(framed, msg...)
	if !ed25519.Verify(ed25519.PublicKey(k.Public().Bytes()), framed, sig) {
		t.Fatal("signature does not verify as Ed25519 over the documented framing")
	}
	tests := []struct {
		name   string
		key    PublicKey
		domain Domain
		msg    []byte
		sig    []byte
		want   bool
	}{
		{"OK", k.Public(), "airtab/consent/v1", msg, sig, true},
		{"OtherDomain", k.Public(), "airtab/code/v1", msg, sig, false},
		{"OtherMessage", k.Public(), "airtab/consent/v1", []byte("order 43"), sig, false},
		{"OtherKey", testKey(t, Device, 10).Public(), "airtab/consent/v1", msg, sig, false},
		{"ShortSig", k.Public(), "airtab/consent/v1", msg, sig[:63], false},
		{"EmptyDomain", k.Public(), "", msg, sig, false},
		{"ZeroKey", PublicKey{}, "airtab/consent/v1", msg, sig, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.key.Verify(tt.domain, tt.msg, tt.sig); got != tt.want {
				t.Fatalf("Verify = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDomainFramingUnambiguous(t *testing.T) {
	k := testKey(t, Issuer, 11)
	sig := k.Sign("ab", []byte("c"))
	if k.Public().Verify("a", []byte("bc"), sig) {
		t.Fatal(`signature over ("ab", "c") verifies as ("a", "bc")`)
	}
	if got, other := Domain("ab").frame([]byte("c")), Domain("a").frame([]byte("bc")); string(got) == string(other) {
		t.Fatalf("frames are equal: %q", got)
	}
}

func TestDomainCheck(t *testing.T) {
	tests := map[string]struct {
		d  Domain
		ok bool
	}{
		"OK":       {"airtab/credential/v1", true},
		"Empty":    {"", false},
		"Max":      {Domain(strings.Repeat("a", MaxDomainLen)), true},
		"TooLong":  {Domain(strings.Repeat("a", MaxDomainLen+1)), false},
		"Space":    {"airtab credential", false},
		"NonASCII": {"airtab/é", false},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if got := tt.d.check() == nil; got != tt.ok {
				t.Fatalf("check(%q) ok = %v, want %v", tt.d, got, tt.ok)
			}
		})
	}
	t.Run("SignPanics", func(t *testing.T) {
		defer func() {
			if recover() == nil {
				t.Fatal("Sign with an empty domain did not panic")
			}
		}()
		testKey(t, Issuer, 12).Sign("", []byte("x"))
	})
}
