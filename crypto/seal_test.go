package crypto

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

func testSealKey(t testing.TB, seed uint64) SealKey {
	t.Helper()
	k, err := GenerateSealKey(testRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := testSealKey(t, 60)
	aad := []byte("airtab/onboard/acquirer-token")
	for _, pt := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte("secret"), 1000)} {
		sealed, err := Seal(k, pt, aad, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(sealed), len(pt)+1+24+16; got != want {
			t.Fatalf("len(sealed) = %d, want %d", got, want)
		}
		got, err := Open(k, sealed, aad)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		if !bytes.Equal(got, pt) {
			t.Fatalf("Open = %q, want %q", got, pt)
		}
	}
}

// TestSealGolden pins the sealed format: version 1, the nonce, then
// XChaCha20-Poly1305 over the plaintext with additional data version || aad.
func TestSealGolden(t *testing.T) {
	k := testSealKey(t, 61)
	pt, aad := []byte("card token 4242"), []byte("aad")
	sealed, err := Seal(k, pt, aad, testRand(62))
	if err != nil {
		t.Fatal(err)
	}
	nonce := make([]byte, 24)
	testRand(62).Read(nonce)
	aead, err := chacha20poly1305.NewX(k.k[:])
	if err != nil {
		t.Fatal(err)
	}
	want := append([]byte{1}, nonce...)
	want = aead.Seal(want, nonce, pt, append([]byte{1}, aad...))
	if !bytes.Equal(sealed, want) {
		t.Fatalf("Seal =\n%x\nwant\n%x", sealed, want)
	}
}

func TestOpenRejects(t *testing.T) {
	k := testSealKey(t, 63)
	aad := []byte("aad")
	sealed, err := Seal(k, []byte("pin pepper"), aad, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("TamperAnyByte", func(t *testing.T) {
		for i := range sealed {
			for _, bit := range []byte{0x01, 0x80} {
				bad := bytes.Clone(sealed)
				bad[i] ^= bit
				if _, err := Open(k, bad, aad); err == nil {
					t.Fatalf("Open with byte %d ^ %#x succeeded", i, bit)
				}
			}
		}
	})
	tests := []struct {
		name      string
		key       SealKey
		sealed    []byte
		aad       []byte
		wantErr   error
		wantInErr string
	}{
		{"WrongAAD", k, sealed, []byte("aae"), ErrSealAuthFailed, "authentication failed"},
		{"NoAAD", k, sealed, nil, ErrSealAuthFailed, "authentication failed"},
		{"WrongKey", testSealKey(t, 64), sealed, aad, ErrSealAuthFailed, "authentication failed"},
		{"Truncated", k, sealed[:len(sealed)-1], aad, ErrSealAuthFailed, "authentication failed"},
		{"TooShort", k, sealed[:40], aad, nil, "too short: 40 bytes"},
		{"Empty", k, nil, aad, nil, "too short: 0 bytes"},
		{"Version2", k, append([]byte{2}, sealed[1:]...), aad, nil, "unknown version 2"},
		{"ZeroKey", SealKey{}, sealed, aad, nil, "zero key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.key, tt.sealed, tt.aad)
			if err == nil {
				t.Fatal("Open succeeded, want error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Open error = %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("Open error = %q, want it to contain %q", err, tt.wantInErr)
			}
		})
	}
}

func TestSealRejects(t *testing.T) {
	if _, err := Seal(SealKey{}, []byte("x"), nil, nil); err == nil {
		t.Fatal("Seal with zero key succeeded")
	}
	if _, err := Seal(testSealKey(t, 65), make([]byte, MaxSealPlaintext+1), nil, nil); err == nil {
		t.Fatal("Seal over MaxSealPlaintext succeeded")
	}
}

func TestSealKeyText(t *testing.T) {
	k := testSealKey(t, 66)
	text, err := k.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(text), "airtab-seal-key:"+hex.EncodeToString(k.k[:]); got != want {
		t.Fatalf("MarshalText = %q, want %q", got, want)
	}
	got, err := ParseSealKey(string(text))
	if err != nil || got != k {
		t.Fatalf("ParseSealKey = %v, %v; want the same key", got, err)
	}
	var u SealKey
	if err := u.UnmarshalText(text); err != nil || u != k {
		t.Fatalf("UnmarshalText = %v, %v; want the same key", u, err)
	}
	hexPart := string(text[len("airtab-seal-key:"):])
	for name, s := range map[string]string{
		"UpperHex":  "airtab-seal-key:" + strings.ToUpper(hexPart),
		"Short":     string(text[:len(text)-2]),
		"NoPrefix":  hexPart,
		"AllZero":   "airtab-seal-key:" + strings.Repeat("0", 64),
		"DeviceKey": testKey(t, Device, 67).Public().String(),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseSealKey(s)
			if err == nil {
				t.Fatal("ParseSealKey succeeded, want error")
			}
			if strings.Contains(err.Error(), hexPart[:8]) {
				t.Fatalf("error %q echoes key material", err)
			}
		})
	}
	if _, err := SealKeyFromBytes(make([]byte, 31)); err == nil {
		t.Fatal("SealKeyFromBytes(31 bytes) succeeded")
	}
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d"} {
		if out := fmt.Sprintf(verb, k); strings.Contains(out, hexPart[:8]) || strings.Contains(out, fmt.Sprint(k.k[0], " ", k.k[1])) || strings.Contains(out, fmt.Sprintf("%#x, %#x", k.k[0], k.k[1])) {
			t.Fatalf("Sprintf(%q) = %q shows key material", verb, out)
		}
	}
}
