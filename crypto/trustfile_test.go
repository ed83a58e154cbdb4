package crypto

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTrustFileRoundTrip(t *testing.T) {
	a, b := testKey(t, Issuer, 40), testKey(t, Issuer, 41)
	keys := []TrustedKey{{Key: a.Public(), NotBefore: t0, NotAfter: t1}, {Key: b.Public(), NotBefore: t0.Add(1e9 * 3600), NotAfter: t1.AddDate(1, 0, 0)}}
	path := filepath.Join(t.TempDir(), "issuer-trust.txt")
	if err := WriteTrustFile(path, "Airtab issuer trust list\nkey, valid from, valid until", keys); err != nil {
		t.Fatal(err)
	}
	tl, err := ReadTrustFile(path, Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tl.Len(), 2; got != want {
		t.Fatalf("Len = %d, want %d", got, want)
	}
	for _, k := range keys {
		if got := tl.Lookup(k.Key.ID(), Issuer, k.NotBefore); len(got) != 1 || !got[0].Equal(k.Key) {
			t.Errorf("Lookup(%s at NotBefore) = %v, want the key", k.Key.ID(), got)
		}
		if got := tl.Lookup(k.Key.ID(), Issuer, k.NotAfter); len(got) != 0 {
			t.Errorf("Lookup(%s at NotAfter) = %v, want none: the window is over", k.Key.ID(), got)
		}
	}
}

func TestTrustFilePublicKeyFile(t *testing.T) {
	a := testKey(t, Issuer, 42)
	path := filepath.Join(t.TempDir(), "issuer.pub")
	if err := WritePublicKeyFile(path, a.Public()); err != nil {
		t.Fatal(err)
	}
	tl, err := ReadTrustFile(path, Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if got := tl.Lookup(a.ID(), Issuer, t0); len(got) != 1 {
		t.Fatalf("a public key file read as a trust file: Lookup = %v, want the key", got)
	}
}

func TestTrustFileErrors(t *testing.T) {
	a := testKey(t, Issuer, 43).Public()
	dev := testKey(t, Device, 44).Public()
	for _, tt := range []struct{ name, text, want string }{
		{"Empty", "# nothing\n\n", "no issuer key"},
		{"WrongPurpose", dev.String() + "\n", "holds a device public key, want an issuer public key"},
		{"TwoFields", a.String() + " 2026-01-01T00:00:00Z\n", "got 2 fields"},
		{"BadTime", a.String() + " yesterday 2030-01-01T00:00:00Z\n", `valid-from "yesterday"`},
		{"Inverted", a.String() + " 2030-01-01T00:00:00Z 2026-01-01T00:00:00Z\n", "is not after"},
		{"Twice", a.String() + "\n" + a.String() + "\n", "line 2: trust list"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "trust.txt")
			if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadTrustFile(path, Issuer)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadTrustFile = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestTrustListRemove(t *testing.T) {
	a, b := testKey(t, Issuer, 45).Public(), testKey(t, Issuer, 46).Public()
	tl, err := NewTrustList(TrustedKey{Key: a, NotBefore: t0, NotAfter: t1}, TrustedKey{Key: a, NotBefore: t1, NotAfter: t1.AddDate(1, 0, 0)},
		TrustedKey{Key: b, NotBefore: t0, NotAfter: t1})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := tl.Remove(a), 2; got != want {
		t.Fatalf("Remove(a) = %d, want %d", got, want)
	}
	if got, want := tl.Len(), 1; got != want {
		t.Fatalf("Len after Remove = %d, want %d", got, want)
	}
	if _, err := tl.Verify(a.ID(), Issuer, t0, testDomain, []byte("m"), make([]byte, 64)); err == nil {
		t.Fatal("a removed key still verifies")
	}
	if got := tl.Lookup(b.ID(), Issuer, t0); len(got) != 1 {
		t.Fatalf("the other key: Lookup = %v, want it kept", got)
	}
}
