package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airtab/airtab/ground/keys"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol/cli"
)

// clock is the keys command's time, replaced in tests.
var clock = time.Now

// keysActions are the keys subcommands; each takes its positional
// arguments after the flags.
var keysActions = map[string]struct {
	args   int // positional arguments: 0, or 1 (a key id)
	change bool
}{
	"list":   {0, false},
	"add":    {0, true},
	"rotate": {0, true},
	"retire": {1, true},
	"revoke": {1, true},
}

// keysCommand lists or changes the issuer key set in the data directory
// (ground/keys). Changes need the ground service stopped: they take the data
// directory's lock, and the service reads the set at start.
func keysCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ground keys", flag.ContinueOnError)
	data := fs.String("data-dir", "airtab-ground", "data `directory` of the ground service (holds issuer-keys.json)")
	overlap := fs.Duration("overlap", 7*24*time.Hour, "rotate: how long the old signing key stays trusted after the rotation, so what it signed still verifies; longer than a credential lives")
	valid := fs.Duration("valid", keys.DefaultValid, "add, rotate: how long a new key is trusted")
	at := fs.String("at", "", "retire: the RFC 3339 `time` the key's window ends (default now)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: ground keys list|add|rotate|retire <id>|revoke <id> [flags]

Lists or changes the issuer keys that sign credentials, manifests and clearing
receipts (the set is <data-dir>/issuer-keys.json; each private key is a file
beside it). A change needs the ground service stopped; the next start uses it,
and every manifest from then on carries it.

  list     the keys with their status: active (signs now), standby (trusted,
           not signing yet), retiring (signed before, trusted until its
           window ends), expired, revoked, pending
  add      make a standby key trusted from now; give the cabin servers the new
           <data-dir>/issuer-trust.txt (onboard --issuer-key) before rotating
  rotate   make the newest standby key (a new one if there is none) the
           signing key; the old one stays trusted for --overlap, then expires
  retire   end key <id>'s window at --at (default now): refused from then on;
           only shortens a window (never past its end, nor for a revoked key)
  revoke   revoke key <id> at once (compromised): it leaves the trust list,
           every manifest names it revoked, and a cabin server that takes the
           next manifest refuses whatever it signs; clearing refuses it too

Every change rewrites <data-dir>/issuer.pub and <data-dir>/issuer-trust.txt.

Flags:
`)
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		return cli.Usage(fs, stderr, "name an action: list, add, rotate, retire or revoke")
	}
	action := args[0]
	if cli.IsHelp(action) {
		action, args = "list", append([]string{"--help"}, args[1:]...)
	} else {
		args = args[1:]
	}
	a, ok := keysActions[action]
	if !ok {
		return cli.Usage(fs, stderr, "unknown action %q: want list, add, rotate, retire or revoke", action)
	}
	var id []string
	if a.args == 1 && len(args) > 0 && !strings.HasPrefix(args[0], "-") && !cli.IsHelp(args[0]) {
		id, args = args[:1], args[1:] // "retire <id> --at ...": the id may come first
	}
	if code, ok := cli.Parse(fs, args, stdout, stderr); !ok {
		return code
	}
	rest := append(id, fs.Args()...)
	if len(rest) != a.args {
		if a.args == 1 {
			return cli.Usage(fs, stderr, "%s takes the key id (see ground keys list)", action)
		}
		return cli.Usage(fs, stderr, "unexpected arguments: %s", strings.Join(rest, " "))
	}
	now := clock()
	end := now
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return cli.Usage(fs, stderr, "--at %q: want an RFC 3339 time such as 2026-12-10T00:00:00Z", *at)
		}
		end = t
	}
	if err := keysRun(*data, action, strings.Join(rest, ""), now, end, *overlap, *valid, a.change, stdout); err != nil {
		fmt.Fprintf(stderr, "ground keys %s: %v\n", action, err)
		return cli.ExitFailed
	}
	return cli.ExitOK
}

func keysRun(dir, action, id string, now, at time.Time, overlap, valid time.Duration, change bool, w io.Writer) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("no ground data directory at %s (--data-dir): %w", dir, err)
	}
	if change {
		lock, err := store.LockDir(dir)
		if err != nil {
			return fmt.Errorf("%w: stop the ground service first", err)
		}
		defer lock.Close()
	}
	s, created, err := keys.Open(dir, "", now, nil)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(w, "made the issuer key set %s from the first key %s\n", filepath.Join(dir, keys.SetFile), s.Active)
	}
	switch action {
	case "add":
		e, err := s.Add(now, valid, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "added standby key %s, trusted %s to %s\n", e.ID, day(e.NotBefore), day(e.NotAfter))
	case "rotate":
		old, next, err := s.Rotate(now, overlap, valid, nil)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "signing key is now %s; %s stays trusted until %s\n", next.ID, old.ID, day(old.NotAfter))
	case "retire":
		e, err := s.Retire(id, at)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "key %s trusted until %s\n", e.ID, day(e.NotAfter))
	case "revoke":
		e, err := s.Revoke(id, now)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "key %s revoked; the next manifest of every flight names it\n", e.ID)
	}
	if change {
		if err := s.Save(now); err != nil {
			return err
		}
		fmt.Fprintf(w, "wrote %s: give it to every cabin server (onboard --issuer-key)\n", filepath.Join(dir, keys.TrustFile))
	}
	return listKeys(w, s, now)
}

func listKeys(w io.Writer, s *keys.Set, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tVALID FROM\tVALID UNTIL\tREVOKED\tFILE")
	for _, k := range s.List(now) {
		rev := "-"
		if !k.RevokedAt.IsZero() {
			rev = day(k.RevokedAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Status, day(k.NotBefore), day(k.NotAfter), rev, k.File)
	}
	return tw.Flush()
}

func day(t time.Time) string { return t.UTC().Format(time.RFC3339) }
