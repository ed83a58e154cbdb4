package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelp pins the Go tools' conventions: help on stdout with exit 0, an
// unknown command or flag on stderr with the usage and exit 2. None of these
// command lines flies anything.
func TestHelp(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // on stdout
	}{
		{[]string{"help"}, "usage: go run ./simulator [flags]"},
		{[]string{"-h"}, "usage: go run ./simulator [flags]"},
		{[]string{"-help"}, "-seed"},
		{[]string{"--help"}, "bench [flags]"},
		{[]string{"help", "bench"}, "usage: go run ./simulator bench [flags]"},
		{[]string{"bench", "--help"}, "-authorize-count"},
		{[]string{"bench", "-h"}, "-authorize-count"},
		{[]string{"bench", "help"}, "-authorize-count"},
		{[]string{"help", "demo"}, "usage: go run ./simulator demo [flags]"},
		{[]string{"demo", "--help"}, "-passengers"},
		{[]string{"demo", "help"}, "-passengers"},
		{[]string{"--help"}, "demo [flags]"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 0 {
				t.Fatalf("simulator %q: exit code %d, want 0; stderr %q", tc.args, code, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("simulator %q wrote to stderr: %q", tc.args, stderr.String())
			}
			if !strings.Contains(stdout.String(), tc.want) {
				t.Errorf("simulator %q: stdout lacks %q:\n%s", tc.args, tc.want, stdout.String())
			}
		})
	}
	for _, tc := range []struct {
		args []string
		want string // on stderr
	}{
		{[]string{"fly"}, "simulator: unknown command \"fly\"\nusage: go run ./simulator"},
		{[]string{"help", "fly"}, "simulator: unknown command \"fly\""},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus\nusage: go run ./simulator"},
		{[]string{"--seed", "1", "extra"}, "simulator: unexpected argument \"extra\""},
		{[]string{"--decline-rate", "some"}, `invalid value "some" for flag -decline-rate: want a number, such as 0.05`},
		{[]string{"--passengers", "1"}, "simulator: "},
		{[]string{"bench", "--bogus"}, "flag provided but not defined: -bogus\nusage: go run ./simulator bench"},
		{[]string{"bench", "--rtt", "600"}, `invalid value "600" for flag -rtt: want a duration with a unit`},
		{[]string{"bench", "extra"}, "simulator bench: unexpected arguments: extra"},
		{[]string{"demo", "--bogus"}, "flag provided but not defined: -bogus\nusage: go run ./simulator demo"},
		{[]string{"demo", "--for", "30"}, `invalid value "30" for flag -for: want a duration with a unit`},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 2 {
				t.Fatalf("simulator %q: exit code %d, want 2", tc.args, code)
			}
			if stdout.Len() != 0 {
				t.Errorf("simulator %q wrote to stdout: %q", tc.args, stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("simulator %q: stderr %q, want it to contain %q", tc.args, stderr.String(), tc.want)
			}
		})
	}
}
