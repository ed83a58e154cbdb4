package cli

import (
	"bytes"
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"
)

func newFlags() (*flag.FlagSet, *time.Duration, *int, *bool) {
	fs := flag.NewFlagSet("cmd", flag.ContinueOnError)
	d := fs.Duration("sync-interval", 30*time.Second, "how often to sync")
	n := fs.Int("window", 512, "publishes in flight")
	b := fs.Bool("json", false, "print JSON")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: cmd [flags]")
		fs.PrintDefaults()
	}
	return fs, d, n, b
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name       string
		args       []string
		code       int
		ok         bool
		stdout     string // substring, "" for empty
		stderr     string // substring, "" for empty
		wantSyncIv time.Duration
	}{
		{"OK", []string{"--sync-interval", "5s", "--json"}, ExitOK, true, "", "", 5 * time.Second},
		{"Help", []string{"--help"}, ExitOK, false, "usage: cmd", "", 30 * time.Second},
		{"H", []string{"-h"}, ExitOK, false, "-sync-interval duration", "", 30 * time.Second},
		{"HelpWord", []string{"help"}, ExitOK, false, "usage: cmd", "", 30 * time.Second},
		{"UnknownFlag", []string{"--bogus"}, ExitUsage, false, "", "flag provided but not defined: -bogus", 30 * time.Second},
		{"DurationWithoutUnit", []string{"--sync-interval", "5"}, ExitUsage, false, "",
			`invalid value "5" for flag -sync-interval: want a duration with a unit, such as 30s, 2m or 1h30m`, 0}, // the flag package zeroes a value that does not parse
		{"NotANumber", []string{"--window", "many"}, ExitUsage, false, "", `invalid value "many" for flag -window: want a whole number`, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fs, d, _, _ := newFlags()
			var stdout, stderr bytes.Buffer
			code, ok := Parse(fs, tc.args, &stdout, &stderr)
			if code != tc.code || ok != tc.ok {
				t.Fatalf("Parse(%q) = %d, %v, want %d, %v; stderr %q", tc.args, code, ok, tc.code, tc.ok, stderr.String())
			}
			check := func(name, got, want string) {
				t.Helper()
				if want == "" && got != "" {
					t.Errorf("%s = %q, want nothing", name, got)
				}
				if !strings.Contains(got, want) {
					t.Errorf("%s = %q, want it to contain %q", name, got, want)
				}
			}
			check("stdout", stdout.String(), tc.stdout)
			check("stderr", stderr.String(), tc.stderr)
			if *d != tc.wantSyncIv {
				t.Errorf("sync interval = %v, want %v", *d, tc.wantSyncIv)
			}
		})
	}
}

// The flag values are the flag package's own again after Parse, so the
// defaults print as they were defined.
func TestParseRestoresValues(t *testing.T) {
	fs, _, _, _ := newFlags()
	var want bytes.Buffer
	fs.SetOutput(&want)
	fs.PrintDefaults()
	if _, ok := Parse(fs, []string{"--window", "3"}, &bytes.Buffer{}, &bytes.Buffer{}); !ok {
		t.Fatal("Parse failed")
	}
	var got bytes.Buffer
	fs.SetOutput(&got)
	fs.PrintDefaults()
	if strings.Replace(got.String(), "(default 512)", "", 1) != strings.Replace(want.String(), "(default 512)", "", 1) {
		t.Errorf("defaults after Parse:\n%s\nwant\n%s", got.String(), want.String())
	}
	if !strings.Contains(got.String(), "-window int") {
		t.Errorf("defaults after Parse lost the value name:\n%s", got.String())
	}
}

func TestUsage(t *testing.T) {
	fs, _, _, _ := newFlags()
	var stderr bytes.Buffer
	if got := Usage(fs, &stderr, "unexpected arguments: %s", "x"); got != ExitUsage {
		t.Fatalf("Usage = %d, want %d", got, ExitUsage)
	}
	if got, want := stderr.String(), "cmd: unexpected arguments: x\nusage: cmd"; !strings.HasPrefix(got, want) {
		t.Errorf("stderr = %q, want prefix %q", got, want)
	}
}

func TestIsHelp(t *testing.T) {
	for _, a := range []string{"help", "-h", "-help", "--help"} {
		if !IsHelp(a) {
			t.Errorf("IsHelp(%q) = false", a)
		}
	}
	for _, a := range []string{"", "h", "--h", "serve"} {
		if IsHelp(a) {
			t.Errorf("IsHelp(%q) = true", a)
		}
	}
}
