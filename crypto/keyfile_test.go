package crypto

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

func TestKeyFileRoundTrip(t *testing.T) {
	for _, p := range allPurposes {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "key")
			k := testKey(t, p, 70)
			if err := WriteKeyFile(path, k); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := fi.Mode().Perm(), fs.FileMode(0o600); got != want && runtime.GOOS != "windows" {
				t.Fatalf("mode = %04o, want %04o", got, want)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			text, _ := k.MarshalText()
			if got, want := string(b), string(text)+"\n"; got != want {
				t.Fatalf("file = %q, want %q", got, want)
			}
			got, err := ReadKeyFile(path, p)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Public().Equal(k.Public()) {
				t.Fatalf("ReadKeyFile = %v, want %v", got, k)
			}
			assertNoTempFiles(t, dir)
		})
	}
}

func TestWriteKeyFileRefusesOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "issuer.key")
	first := testKey(t, Issuer, 71)
	if err := WriteKeyFile(path, first); err != nil {
		t.Fatal(err)
	}
	err := WriteKeyFile(path, testKey(t, Issuer, 72))
	if !errors.Is(err, fs.ErrExist) || !strings.Contains(err.Error(), path) {
		t.Fatalf("second WriteKeyFile error = %v, want fs.ErrExist naming %s", err, path)
	}
	got, err := ReadKeyFile(path, Issuer)
	if err != nil || !got.Public().Equal(first.Public()) {
		t.Fatalf("after refused overwrite ReadKeyFile = %v, %v; want the first key", got, err)
	}
	assertNoTempFiles(t, dir)
}

// TestWriteKeyFileRace has writers race for one path: exactly one wins.
func TestWriteKeyFileRace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "k")
	var keys []PrivateKey
	for i := range 8 {
		keys = append(keys, testKey(t, Aircraft, uint64(80+i)))
	}
	var mu sync.Mutex
	wins := 0
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() {
			err := WriteKeyFile(path, k)
			if err != nil && !errors.Is(err, fs.ErrExist) {
				t.Error(err)
			}
			if err == nil {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d writers won, want 1", wins)
	}
	assertNoTempFiles(t, dir)
}

func TestReadKeyFileRefusesOpenMode(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permission bits")
	}
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o644, 0o620, 0o700} {
		t.Run(mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "device.key")
			if err := WriteKeyFile(path, testKey(t, Device, 73)); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, mode); err != nil {
				t.Fatal(err)
			}
			_, err := ReadKeyFile(path, Device)
			if mode&0o077 == 0 {
				if err != nil {
					t.Fatalf("ReadKeyFile with mode %04o: %v", mode, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ReadKeyFile with mode %04o succeeded", mode)
			}
			for _, want := range []string{path, fmt.Sprintf("mode %04o", mode)} {
				if !strings.Contains(err.Error(), want) {
					t.Fatalf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestReadKeyFileWrongKind(t *testing.T) {
	dir := t.TempDir()
	device := filepath.Join(dir, "device.key")
	if err := WriteKeyFile(device, testKey(t, Device, 74)); err != nil {
		t.Fatal(err)
	}
	pub := filepath.Join(dir, "device.pub")
	if err := WritePublicKeyFile(pub, testKey(t, Device, 74).Public()); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pub, 0o600); err != nil {
		t.Fatal(err)
	}
	seal := filepath.Join(dir, "seal.key")
	if err := WriteSealKeyFile(seal, testSealKey(t, 75)); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk")
	if err := os.WriteFile(junk, []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		read      func() error
		wantInErr string
	}{
		{"DeviceAsIssuer", func() error { _, err := ReadKeyFile(device, Issuer); return err }, "holds a device private key, want an issuer private key"},
		{"PublicAsPrivate", func() error { _, err := ReadKeyFile(pub, Device); return err }, "holds a device public key"},
		{"SealAsPrivate", func() error { _, err := ReadKeyFile(seal, Device); return err }, "holds a seal key"},
		{"PrivateAsPublic", func() error { _, err := ReadPublicKeyFile(device, Device); return err }, "holds a device private key"},
		{"PrivateAsSeal", func() error { _, err := ReadSealKeyFile(device); return err }, "holds a device private key"},
		{"Junk", func() error { _, err := ReadKeyFile(junk, Device); return err }, "want prefix"},
		{"Missing", func() error { _, err := ReadKeyFile(filepath.Join(dir, "none"), Device); return err }, "no such file"},
		{"Directory", func() error { _, err := ReadPublicKeyFile(dir, Device); return err }, "not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.read()
			if err == nil {
				t.Fatal("read succeeded, want error")
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("error = %q, want it to contain %q", err, tt.wantInErr)
			}
		})
	}
}

func TestReadKeyFileTooBig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(path, make([]byte, maxKeyFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadKeyFile(path, Device); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("ReadKeyFile of a big file: error = %v, want the size limit", err)
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aircraft.key")
	k1, created, err := LoadOrCreateKeyFile(path, Aircraft, testRand(76))
	if err != nil || !created {
		t.Fatalf("first LoadOrCreateKeyFile = created %v, %v; want created", created, err)
	}
	k2, created, err := LoadOrCreateKeyFile(path, Aircraft, testRand(77))
	if err != nil || created {
		t.Fatalf("second LoadOrCreateKeyFile = created %v, %v; want loaded", created, err)
	}
	if !k1.Public().Equal(k2.Public()) {
		t.Fatalf("loaded key %v, want the created %v", k2, k1)
	}
	if _, _, err := LoadOrCreateKeyFile(path, Issuer, nil); err == nil {
		t.Fatal("LoadOrCreateKeyFile with the wrong purpose succeeded")
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateKeyFile(path, Aircraft, nil); err == nil {
		t.Fatal("LoadOrCreateKeyFile of a world-readable key succeeded")
	}
}

func TestPublicKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "issuer.pub")
	a, b := testKey(t, Issuer, 78).Public(), testKey(t, Issuer, 79).Public()
	for _, k := range []PublicKey{a, b} { // the second write replaces the first
		if err := WritePublicKeyFile(path, k); err != nil {
			t.Fatal(err)
		}
		got, err := ReadPublicKeyFile(path, Issuer)
		if err != nil || !got.Equal(k) {
			t.Fatalf("ReadPublicKeyFile = %v, %v; want %v", got, err, k)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := fi.Mode().Perm(), fs.FileMode(0o644); got != want && runtime.GOOS != "windows" {
		t.Fatalf("mode = %04o, want %04o", got, want)
	}
	if _, err := ReadPublicKeyFile(path, Device); err == nil || !strings.Contains(err.Error(), "holds an issuer public key") {
		t.Fatalf("ReadPublicKeyFile wrong purpose: error = %v", err)
	}
	if err := WritePublicKeyFile(path, PublicKey{}); err == nil {
		t.Fatal("WritePublicKeyFile of a zero key succeeded")
	}
	assertNoTempFiles(t, dir)
}

func TestSealKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seal.key")
	k := testSealKey(t, 80)
	if err := WriteSealKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	got, err := ReadSealKeyFile(path)
	if err != nil || got != k {
		t.Fatalf("ReadSealKeyFile = %v, %v; want the written key", got, err)
	}
	if err := WriteSealKeyFile(path, k); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second WriteSealKeyFile error = %v, want fs.ErrExist", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSealKeyFile(path); err == nil && runtime.GOOS != "windows" {
		t.Fatal("ReadSealKeyFile of a group-readable file succeeded")
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, data := range []string{"first\n", "second, longer than the first\n"} {
		if err := WriteFileAtomic(path, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != data {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("mode = %v, want 0600", got)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %v (%v), want the file alone: no temporary file left", entries, err)
	}
	if err := WriteFileAtomic(filepath.Join(dir, "missing", "x"), []byte("x"), 0o600); err == nil {
		t.Fatal("a write into a missing directory succeeded")
	}
}
