package keys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
)

var t0 = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

// TestOpenKeepsFirstKey: a data directory from before rotation (issuer.key
// alone) keeps signing with that key, over the first window.
func TestOpenKeepsFirstKey(t *testing.T) {
	dir := t.TempDir()
	old, _, err := crypto.LoadOrCreateKeyFile(filepath.Join(dir, "issuer.key"), crypto.Issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, created, err := Open(dir, "", t0, nil)
	if err != nil || !created {
		t.Fatalf("Open = %v, created %v; want a new set", err, created)
	}
	if !s.Signer().Public().Equal(old.Public()) {
		t.Fatalf("signer %s, want the existing issuer.key %s", s.Signer().ID(), old.ID())
	}
	tr := s.Trusted()
	if len(tr) != 1 || !tr[0].NotBefore.Equal(DefaultFirstWindow[0]) || !tr[0].NotAfter.Equal(DefaultFirstWindow[1]) {
		t.Fatalf("Trusted = %+v, want the first key over DefaultFirstWindow", tr)
	}
	again, created, err := Open(dir, "", t0, nil)
	if err != nil || created || again.Active != s.Active {
		t.Fatalf("Open again = %v, created %v, active %s; want the same set", err, created, again.Active)
	}
}

func TestRotateRetireRevoke(t *testing.T) {
	dir := t.TempDir()
	s, _, err := Open(dir, "", t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := s.Active
	old, next, err := s.Rotate(t0, 24*time.Hour, 0, nil) // no standby: one is made
	if err != nil {
		t.Fatal(err)
	}
	if old.ID != first || next.ID == first || s.Active != next.ID {
		t.Fatalf("Rotate: old %s next %s active %s", old.ID, next.ID, s.Active)
	}
	if want := t0.Add(24 * time.Hour); !old.NotAfter.Equal(want) {
		t.Errorf("old key's window ends %s, want %s", old.NotAfter, want)
	}
	if err := s.Save(t0); err != nil {
		t.Fatal(err)
	}
	s, _, err = Open(dir, "", t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Active != next.ID || !s.Signer().Public().Equal(next.Key()) {
		t.Fatalf("after a reopen: active %s, want %s", s.Active, next.ID)
	}
	for _, tt := range []struct {
		name string
		at   time.Time
		want Status
	}{
		{"InOverlap", t0.Add(time.Hour), StatusRetiring},
		{"AfterOverlap", t0.Add(24 * time.Hour), StatusExpired},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.find(first).StatusAt(tt.at, s.Active); got != tt.want {
				t.Errorf("status = %s, want %s", got, tt.want)
			}
		})
	}
	if _, err := s.Retire(first, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(first, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Revoke(first, t0); err == nil || !strings.Contains(err.Error(), "revoked already") {
		t.Errorf("revoke twice: %v", err)
	}
	if len(s.Revoked()) != 1 || len(s.Trusted()) != 1 {
		t.Errorf("revoked %d, trusted %d; want 1 and 1", len(s.Revoked()), len(s.Trusted()))
	}
}

// TestRetireOnlyShortens: retire ends a key's window earlier, never later:
// an at past the window's end, or after the key expired, is refused and the
// window stays; a revoked key is refused too.
func TestRetireOnlyShortens(t *testing.T) {
	s, _, err := Open(t.TempDir(), "", t0, nil)
	if err != nil {
		t.Fatal(err)
	}
	old, _, err := s.Rotate(t0, time.Hour, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	end := old.NotAfter
	for _, tt := range []struct {
		name string
		at   time.Time
	}{
		{"ErrLengthens", end.Add(time.Hour)},
		{"ErrRevivesExpired", t0.AddDate(50, 0, 0)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Retire(old.ID, tt.at)
			if err == nil || !strings.Contains(err.Error(), "only shortens") {
				t.Fatalf("retire at %s (window ends %s): %v, want a refusal", tt.at, end, err)
			}
			if e := s.find(old.ID); !e.NotAfter.Equal(end) {
				t.Fatalf("window ends %s after a refused retire, want %s", e.NotAfter, end)
			}
		})
	}
	t.Run("Shortens", func(t *testing.T) {
		e, err := s.Retire(old.ID, t0.Add(30*time.Minute))
		if err != nil || !e.NotAfter.Equal(t0.Add(30*time.Minute)) {
			t.Fatalf("retire inside the window: %v, ends %v; want it to end at %s", err, e, t0.Add(30*time.Minute))
		}
	})
	t.Run("ErrRevoked", func(t *testing.T) {
		if _, err := s.Revoke(old.ID, t0); err != nil {
			t.Fatal(err)
		}
		_, err := s.Retire(old.ID, t0.Add(10*time.Minute))
		if err == nil || !strings.Contains(err.Error(), "revoked") {
			t.Fatalf("retire a revoked key: %v, want a refusal", err)
		}
	})
}

// TestOpenRefusesBrokenSet: a set whose signing key file holds another key,
// or that names no such key, is refused with the reason.
func TestOpenRefusesBrokenSet(t *testing.T) {
	for _, tt := range []struct {
		name     string
		breakSet func(t *testing.T, dir string, s *Set)
		want     string
	}{
		{"KeyFileSwapped", func(t *testing.T, dir string, s *Set) {
			other, _ := crypto.GenerateKey(crypto.Issuer, nil)
			path := filepath.Join(dir, s.Keys[0].File)
			os.Remove(path)
			if err := crypto.WriteKeyFile(path, other); err != nil {
				t.Fatal(err)
			}
		}, "holds key"},
		{"UnknownActive", func(t *testing.T, dir string, s *Set) {
			s.Active = "0011223344556677"
			if err := s.Save(t0); err != nil {
				t.Fatal(err)
			}
		}, "is not in the set"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _, err := Open(dir, "", t0, nil)
			if err != nil {
				t.Fatal(err)
			}
			tt.breakSet(t, dir, s)
			if _, _, err := Open(dir, "", t0, nil); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Open = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
