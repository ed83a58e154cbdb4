package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The commands that talk to ground are tested against a real ground server
// in simulator/walletcli, which runs the built command: nothing under
// protocol/ imports ground/, tests included.

// result is one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

func wallet(t *testing.T, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, &out, &errb)
	return result{code, out.String(), errb.String()}
}

// field returns the value printed after "name " at the start of a line.
func field(out, name string) string {
	for l := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestGroundDown(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "erin")
	r := wallet(t, "register", "--dir", dir, "--ground", "http://127.0.0.1:1", "--wallet")
	if r.code != 1 || !strings.Contains(r.stderr, "ground at http://127.0.0.1:1 (--ground)") {
		t.Fatalf("ground down = %d %q", r.code, r.stderr)
	}
}

func TestBadCommandLine(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{nil, "usage: wallet"},
		{[]string{"pay"}, `unknown command "pay"`},
		{[]string{"--bogus"}, `flag --bogus before a command: flags come after it`},
		{[]string{"register", "--wallet"}, "--dir is required"},
		{[]string{"code", "--flight", "XX123-2026-11-21"}, "--dir is required"},
		{[]string{"register", "--dir", dir, "--card", "diners", "--card-token", "tok_123456", "--last4", "1234", "--exp", "12/2099"}, `--card "diners": want visa, mastercard, amex, discover or jcb`},
		{[]string{"register", "--dir", dir, "--card", "visa"}, "--card visa needs --card-token, --last4 and --exp"},
		{[]string{"register", "--dir", dir, "--card", "visa", "--wallet"}, "not both"},
		{[]string{"register", "--dir", dir, "--card", "visa", "--card-token", "tok_123456", "--last4", "1234", "--exp", "2029-12"}, `--exp "2029-12": want MM/YYYY`},
		{[]string{"register", "--dir", dir, "--card", "visa", "--card-token", "4111111111111111", "--last4", "1111", "--exp", "12/2030"}, "looks like a card number"},
		{[]string{"register", "--dir", dir, "--wallet", "--top-up", "12.345", "--currency", "EUR"}, `--top-up "12.345": EUR has 2 decimals`},
		{[]string{"register", "--dir", dir, "--wallet", "--top-up", "1.5", "--currency", "JPY"}, `--top-up "1.5": JPY has no decimals`},
		{[]string{"register", "--dir", dir, "--wallet", "--top-up", "12,50", "--currency", "EUR"}, `--top-up "12,50": not a positive decimal amount`},
		{[]string{"register", "--dir", dir, "--wallet", "--top-up", "-5", "--currency", "EUR"}, `--top-up "-5": not a positive decimal amount`},
		{[]string{"register", "--dir", dir, "--wallet", "--top-up", "0.00", "--currency", "EUR"}, "must be more than zero"},
		{[]string{"register", "--dir", dir, "--wallet", "--top-up", "10000.01", "--currency", "EUR"}, "at most 10000.00 EUR"},
		{[]string{"register", "--dir", dir, "--wallet", "--top-up", "99999999999999999999", "--currency", "EUR"}, "too large"},
		{[]string{"register", "--dir", dir, "--wallet", "--top-up", "10"}, "--top-up needs --currency"},
		{[]string{"register", "--dir", dir, "--wallet", "--top-up", "10", "--currency", "XYZ"}, `currency "XYZ"`},
		{[]string{"opt-in", "--dir", dir, "--flight", "XX123"}, "--flight"},
		{[]string{"code", "--dir", dir, "--flight", "XX123-2026-11-21", "--png-size", "10"}, "--png-size 10"},
		{[]string{"balance", "--dir", dir}, "--currency"},
		{[]string{"show", "--dir", dir, "extra"}, "unexpected arguments: extra"},
		{[]string{"register", "--dir", dir, "--colour", "blue"}, "flag provided but not defined: -colour"},
	} {
		r := wallet(t, c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%q = %d, stderr %q; want 2 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
	// Nothing was made of the directory by a refused command line.
	if _, err := os.Stat(filepath.Join(dir, "device.key")); !os.IsNotExist(err) {
		t.Fatalf("a refused command line made a wallet: %v", err)
	}
	// Commands other than register need an existing wallet.
	for _, args := range [][]string{
		{"code", "--dir", dir, "--flight", "XX123-2026-11-21"},
		{"show", "--dir", dir},
		{"opt-in", "--dir", dir, "--flight", "XX123-2026-11-21", "--ground", "http://127.0.0.1:1"},
	} {
		if r := wallet(t, args...); r.code != 1 || !strings.Contains(r.stderr, "no wallet in "+dir) {
			t.Errorf("%q = %d %q, want 1 and no wallet", args, r.code, r.stderr)
		}
	}
}

// TestHelp pins the Go tools' conventions: help on stdout with exit 0, an
// unknown command or flag on stderr with the usage and exit 2.
func TestHelp(t *testing.T) {
	for name := range commands {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {name, "help"}, {"help", name}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				r := wallet(t, args...)
				if r.code != 0 || !strings.Contains(r.stdout, "usage: wallet "+name) || !strings.Contains(r.stdout, "-dir") || r.stderr != "" {
					t.Errorf("wallet %q = %d:\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
				}
			})
		}
	}
	for _, arg := range []string{"help", "-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			if r := wallet(t, arg); r.code != 0 || !strings.Contains(r.stdout, "opt-in") || r.stderr != "" {
				t.Errorf("wallet %s = %d %q %q", arg, r.code, r.stdout, r.stderr)
			}
		})
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pay"}, "wallet: unknown command \"pay\"\n\nusage: wallet"},
		{[]string{"help", "pay"}, "wallet: unknown command \"pay\"\n\nusage: wallet"},
		{[]string{"code", "--colour", "blue"}, "flag provided but not defined: -colour\nusage: wallet code"},
		{[]string{"code", "--png-size", "big"}, `invalid value "big" for flag -png-size: want a whole number`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			if r := wallet(t, tc.args...); r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("wallet %q = %d, stdout %q, stderr %q; want 2 and %q on stderr", tc.args, r.code, r.stdout, r.stderr, tc.want)
			}
		})
	}
}
