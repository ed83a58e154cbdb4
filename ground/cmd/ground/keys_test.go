package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/keys"
	"github.com/airtab/airtab/ground/store"
)

// keysRunT runs "ground keys args..." at now and returns the exit code and
// the output.
func keysRunT(t *testing.T, now time.Time, args ...string) (int, string, string) {
	t.Helper()
	old := clock
	clock = func() time.Time { return now }
	defer func() { clock = old }()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"keys"}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// statusOf returns the status column of key id in a keys listing.
func statusOf(t *testing.T, listing, id string) string {
	t.Helper()
	for line := range strings.Lines(listing) {
		if f := strings.Fields(line); len(f) > 1 && f[0] == id {
			return f[1]
		}
	}
	t.Fatalf("key %s not listed:\n%s", id, listing)
	return ""
}

// TestKeysCommand walks an operator's rotation: add a standby key, rotate to
// it, retire and revoke the old one, with the statuses, the trust file and
// the refusals along the way.
func TestKeysCommand(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	code, out, errOut := keysRunT(t, now, "list", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("keys list: exit %d, %s", code, errOut)
	}
	first := strings.TrimSpace(strings.TrimPrefix(out[strings.Index(out, "first key "):], "first key "))
	first = strings.Fields(first)[0]
	if got := statusOf(t, out, first); got != "active" {
		t.Fatalf("first key status %q, want active", got)
	}

	code, out, errOut = keysRunT(t, now, "add", "--data-dir", dir)
	if code != 0 {
		t.Fatalf("keys add: exit %d, %s", code, errOut)
	}
	trust, err := crypto.ReadTrustFile(filepath.Join(dir, keys.TrustFile), crypto.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := trust.Len(), 2; got != want {
		t.Fatalf("trust file after add: %d keys, want %d", got, want)
	}

	later := now.Add(time.Hour)
	code, out, errOut = keysRunT(t, later, "rotate", "--data-dir", dir, "--overlap", "48h")
	if code != 0 {
		t.Fatalf("keys rotate: exit %d, %s", code, errOut)
	}
	s, _, err := keys.Open(dir, "", later, nil)
	if err != nil {
		t.Fatal(err)
	}
	second := s.Active
	if second == first {
		t.Fatal("rotate left the first key signing")
	}
	if got := statusOf(t, out, first); got != "retiring" {
		t.Errorf("old key after rotate: status %q, want retiring", got)
	}
	pub, err := crypto.ReadPublicKeyFile(filepath.Join(dir, keys.PubFile), crypto.Issuer)
	if err != nil || pub.ID().String() != second {
		t.Errorf("issuer.pub after rotate = %v, %v; want key %s", pub.ID(), err, second)
	}
	if _, out, _ = keysRunT(t, later.Add(49*time.Hour), "list", "--data-dir", dir); statusOf(t, out, first) != "expired" {
		t.Errorf("old key after its overlap: status %q, want expired", statusOf(t, out, first))
	}

	t.Run("ErrRevokeSigningKey", func(t *testing.T) {
		code, _, errOut := keysRunT(t, later, "revoke", second, "--data-dir", dir)
		if code != 1 || !strings.Contains(errOut, "it is the signing key") {
			t.Fatalf("revoke the signing key: exit %d, %q", code, errOut)
		}
	})
	t.Run("ErrUnknownKey", func(t *testing.T) {
		code, _, errOut := keysRunT(t, later, "retire", "0011223344556677", "--data-dir", dir)
		if code != 1 || !strings.Contains(errOut, "no such key") {
			t.Fatalf("retire an unknown key: exit %d, %q", code, errOut)
		}
	})
	t.Run("ErrGroundRunning", func(t *testing.T) {
		lock, err := store.LockDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer lock.Close()
		code, _, errOut := keysRunT(t, later, "revoke", first, "--data-dir", dir)
		if code != 1 || !strings.Contains(errOut, "stop the ground service first") {
			t.Fatalf("revoke while ground runs: exit %d, %q", code, errOut)
		}
	})

	code, out, errOut = keysRunT(t, later, "retire", first, "--data-dir", dir, "--at", later.Add(2*time.Hour).Format(time.RFC3339))
	if code != 0 || !strings.Contains(out, later.Add(2*time.Hour).Format(time.RFC3339)) {
		t.Fatalf("keys retire: exit %d, %q, %s", code, out, errOut)
	}
	code, out, errOut = keysRunT(t, later, "revoke", first, "--data-dir", dir)
	if code != 0 || statusOf(t, out, first) != "revoked" {
		t.Fatalf("keys revoke: exit %d, %q, %s", code, out, errOut)
	}
	s, _, err = keys.Open(dir, "", later, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rev := s.Revoked(); len(rev) != 1 || rev[0].ID().String() != first {
		t.Fatalf("Revoked() = %v, want key %s", rev, first)
	}
	for _, k := range s.Trusted() {
		if k.Key.ID().String() == first {
			t.Fatal("a revoked key is still trusted")
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, keys.TrustFile))
	if err != nil || strings.Contains(string(b), s.Keys[0].Public) {
		t.Fatalf("trust file still names the revoked key (%v):\n%s", err, b)
	}
}

func TestKeysUsage(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"rotate", "--help"}} {
		code, out, _ := keysRunT(t, time.Now(), args...)
		if code != 0 || !strings.Contains(out, "usage: ground keys") || !strings.Contains(out, "-overlap") {
			t.Errorf("ground keys %q: exit %d, stdout %q", args, code, out)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"help", "keys"}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "revoke") {
		t.Errorf("ground help keys: exit %d, %q", code, stdout.String())
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "name an action"},
		{[]string{"spin"}, `unknown action "spin"`},
		{[]string{"revoke"}, "revoke takes the key id"},
		{[]string{"list", "extra"}, "unexpected arguments: extra"},
		{[]string{"rotate", "--overlap", "7"}, `invalid value "7" for flag -overlap: want a duration with a unit`},
		{[]string{"retire", "x", "--at", "tomorrow"}, `--at "tomorrow": want an RFC 3339 time`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, errOut := keysRunT(t, time.Now(), tc.args...)
			if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
				t.Fatalf("ground keys %q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errOut, tc.want)
			}
		})
	}
}
