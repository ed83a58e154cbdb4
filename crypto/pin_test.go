package crypto

import (
	"encoding/base64"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
)

// cheapPIN keeps tests fast; TestPINDefaultParams covers the real cost.
var cheapPIN = PINParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

func TestPINHashVerify(t *testing.T) {
	enc, err := HashPIN("4821", cheapPIN, testRand(50))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pin  string
		want bool
	}{
		{"OK", "4821", true},
		{"WrongPIN", "4822", false},
		{"Prefix", "482", false},
		{"Longer", "48210", false},
		{"TooLong", strings.Repeat("4", 100), false},
		{"Empty", "", false},
		{"InvalidUTF8", "48\xff1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := VerifyPIN(enc, tt.pin)
			if err != nil {
				t.Fatalf("VerifyPIN: %v", err)
			}
			if got != tt.want {
				t.Fatalf("VerifyPIN(%q) = %v, want %v", tt.pin, got, tt.want)
			}
		})
	}
}

func TestPINSaltIsFresh(t *testing.T) {
	a, err := HashPIN("4821", cheapPIN, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := HashPIN("4821", cheapPIN, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two hashes of one PIN are equal: %s", a)
	}
}

// TestPINEncoding checks the PHC string against argon2.IDKey called
// directly, and that the parameters round trip through the string.
func TestPINEncoding(t *testing.T) {
	params := PINParams{MemoryKiB: 96, Iterations: 3, Parallelism: 2}
	enc, err := HashPIN("çrew-7", params, testRand(51))
	if err != nil {
		t.Fatal(err)
	}
	salt := make([]byte, 16)
	if _, err := testRand(51).Read(salt); err != nil {
		t.Fatal(err)
	}
	hash := argon2.IDKey([]byte("çrew-7"), salt, 3, 96, 2, 32)
	b64 := base64.RawStdEncoding.EncodeToString
	if got, want := enc, "$argon2id$v=19$m=96,t=3,p=2$"+b64(salt)+"$"+b64(hash); got != want {
		t.Fatalf("HashPIN = %s, want %s", got, want)
	}
	h, err := parsePINHash(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := h.params, params; got != want {
		t.Fatalf("parsed params = %+v, want %+v", got, want)
	}
	if got, want := h.String(), enc; got != want {
		t.Fatalf("re-encoded = %s, want %s", got, want)
	}
	if ok, err := VerifyPIN(enc, "çrew-7"); err != nil || !ok {
		t.Fatalf("VerifyPIN = %v, %v; want true", ok, err)
	}
}

func TestPINDefaultParams(t *testing.T) {
	enc, err := HashPIN("918273", DefaultPINParams, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Fatalf("HashPIN = %s, want the default parameters", enc)
	}
	if ok, err := VerifyPIN(enc, "918273"); err != nil || !ok {
		t.Fatalf("VerifyPIN = %v, %v; want true", ok, err)
	}
}

func TestHashPINRejects(t *testing.T) {
	tests := map[string]struct {
		pin    string
		params PINParams
	}{
		"ShortPIN":       {"123", cheapPIN},
		"LongPIN":        {"1234567890123", cheapPIN},
		"InvalidUTF8":    {"12\xff34", cheapPIN},
		"ZeroParams":     {"1234", PINParams{}},
		"ZeroIterations": {"1234", PINParams{MemoryKiB: 64, Parallelism: 1}},
		"ZeroLanes":      {"1234", PINParams{MemoryKiB: 64, Iterations: 1}},
		"HugeMemory":     {"1234", PINParams{MemoryKiB: MaxPINMemoryKiB + 1, Iterations: 1, Parallelism: 1}},
		"MemoryPerLane":  {"1234", PINParams{MemoryKiB: 15, Iterations: 1, Parallelism: 2}},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			if enc, err := HashPIN(tt.pin, tt.params, nil); err == nil {
				t.Fatalf("HashPIN = %s, want error", enc)
			}
		})
	}
	t.Run("Unicode12", func(t *testing.T) {
		if _, err := HashPIN("éééééééééééé", cheapPIN, nil); err != nil {
			t.Fatalf("HashPIN(12 two-byte characters): %v", err)
		}
	})
}

func TestVerifyPINMalformed(t *testing.T) {
	const salt, hash = "c29tZXNhbHRzb21lc2FsdA", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTI"
	enc := func(head string) string { return head + "$" + salt + "$" + hash }
	tests := []struct {
		name, encoded, wantInErr string
	}{
		{"Empty", "", "want $argon2id"},
		{"Argon2i", enc("$argon2i$v=19$m=64,t=1,p=1"), "algorithm"},
		{"Version16", enc("$argon2id$v=16$m=64,t=1,p=1"), "version"},
		{"NoVersion", "$argon2id$m=64,t=1,p=1$" + salt + "$" + hash, "want $argon2id"},
		{"HugeMemory", enc("$argon2id$v=19$m=4194304,t=1,p=1"), "m=4194304"},
		{"MemoryJustOver", enc("$argon2id$v=19$m=262145,t=1,p=1"), "m=262145"},
		{"ManyIterations", enc("$argon2id$v=19$m=64,t=17,p=1"), "t=17"},
		{"ZeroIterations", enc("$argon2id$v=19$m=64,t=0,p=1"), "t=0"},
		{"ManyLanes", enc("$argon2id$v=19$m=1024,t=1,p=17"), "p=17"},
		{"LanesWrap", enc("$argon2id$v=19$m=1024,t=1,p=257"), "p=257"},
		{"ZeroLanes", enc("$argon2id$v=19$m=64,t=1,p=0"), "p=0"},
		{"MemoryUnderLanes", enc("$argon2id$v=19$m=15,t=1,p=2"), "m=15"},
		{"Overflow", enc("$argon2id$v=19$m=4294967296,t=1,p=1"), "m=4294967296"},
		{"LeadingZero", enc("$argon2id$v=19$m=064,t=1,p=1"), "canonical"},
		{"Plus", enc("$argon2id$v=19$m=+64,t=1,p=1"), "canonical"},
		{"Reordered", enc("$argon2id$v=19$t=1,m=64,p=1"), "want m="},
		{"ExtraParam", enc("$argon2id$v=19$m=64,t=1,p=1,keyid=x"), "parameters"},
		{"ShortSalt", "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$" + hash, "salt is 4 bytes"},
		{"LongSalt", "$argon2id$v=19$m=64,t=1,p=1$" + strings.Repeat("A", 88) + "$" + hash, "salt is over 64"},
		{"ShortHash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$c2FsdA", "hash is 4 bytes"},
		{"LongHash", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + strings.Repeat("A", 88), "hash is over 64"},
		{"PaddedSalt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + hash, "salt is not canonical"},
		{"NewlineInSalt", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRz\nb21lc2FsdA$" + hash, "salt is not canonical"},
		{"StrayBits", "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdB$" + hash, "salt is not canonical"},
		{"TooLong", enc("$argon2id$v=19$m=64,t=1,p=1") + strings.Repeat("A", 300), "limit"},
		{"Trailing", enc("$argon2id$v=19$m=64,t=1,p=1") + "$", "want $argon2id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := VerifyPIN(tt.encoded, "1234")
			if err == nil {
				t.Fatalf("VerifyPIN = %v, nil; want error", ok)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("VerifyPIN error = %q, want it to contain %q", err, tt.wantInErr)
			}
		})
	}
	t.Run("WellFormed", func(t *testing.T) {
		if _, err := VerifyPIN(enc("$argon2id$v=19$m=64,t=1,p=1"), "1234"); err != nil {
			t.Fatalf("VerifyPIN of the unmodified base: %v", err)
		}
	})
}
