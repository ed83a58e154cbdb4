// Package cli holds the command-line conventions every Airtab command
// (ground, onboard, wallet, simulator) follows, which are those of the Go
// tools:
//
//   - "help", -h, -help and --help, as the first argument or after a
//     subcommand, print the usage on stdout and exit 0;
//   - an unknown command or flag, or a flag value that does not parse, prints
//     what is wrong and the usage on stderr and exits 2;
//   - a flag value that does not parse says the form it wants, for example
//     `invalid value "5" for flag -sync-interval: want a duration with a
//     unit, such as 30s, 2m or 1h30m`.
//
// It sits under protocol/ because every command imports protocol and the
// top-level folders are fixed; it knows nothing of the protocol itself.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// Exit codes of every command.
const (
	// ExitOK is a finished command, or help asked for and printed.
	ExitOK = 0
	// ExitFailed is a command that ran and failed.
	ExitFailed = 1
	// ExitUsage is a bad command line.
	ExitUsage = 2
)

// IsHelp reports whether arg asks for help: "help", -h, -help or --help.
func IsHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

// Parse parses args with fs. A help request (-h, -help, --help, or "help" as
// the first argument) prints fs.Usage on stdout and returns ExitOK, false; a
// bad flag or flag value prints the error and fs.Usage on stderr and returns
// ExitUsage, false. Otherwise it returns ExitOK, true. fs.Usage must write
// to fs.Output(); Parse leaves the output set to stderr.
func Parse(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) (code int, ok bool) {
	var buf bytes.Buffer
	fs.SetOutput(&buf)
	defer fs.SetOutput(stderr)
	if len(args) > 0 && args[0] == "help" {
		fs.Usage()
		stdout.Write(buf.Bytes())
		return ExitOK, false
	}
	err := ParseFlags(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		stdout.Write(buf.Bytes())
		return ExitOK, false
	case err != nil:
		stderr.Write(buf.Bytes())
		return ExitUsage, false
	}
	return ExitOK, true
}

// Usage prints "<fs name>: <message>" and fs.Usage on stderr, as the flag
// package does for a bad flag, and returns ExitUsage. It is for mistakes
// found after parsing (a missing or an extra argument).
func Usage(fs *flag.FlagSet, stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "%s: %s\n", fs.Name(), fmt.Sprintf(format, args...))
	fs.SetOutput(stderr)
	fs.Usage()
	return ExitUsage
}

// ParseFlags is fs.Parse(args), with the parse errors of duration, number
// and boolean flag values saying the form they want instead of the flag
// package's bare "parse error". Output goes where fs's output is set.
func ParseFlags(fs *flag.FlagSet, args []string) error {
	restore := explainValues(fs)
	defer restore()
	usage := fs.Usage
	fs.Usage = func() {
		// Print the defaults of the flags as defined, not of the wrappers.
		restore()
		if usage != nil {
			usage()
		} else {
			fmt.Fprintf(fs.Output(), "Usage of %s:\n", fs.Name())
			fs.PrintDefaults()
		}
	}
	defer func() { fs.Usage = usage }()
	return fs.Parse(args)
}

// explainValues wraps the value of every duration, number and boolean flag
// of fs in one whose Set error says the expected form, and returns the
// function that puts the original values back (safe to call again).
func explainValues(fs *flag.FlagSet) (restore func()) {
	orig := map[*flag.Flag]flag.Value{}
	fs.VisitAll(func(f *flag.Flag) {
		g, ok := f.Value.(flag.Getter)
		if !ok {
			return
		}
		want := ""
		switch g.Get().(type) {
		case time.Duration:
			want = "want a duration with a unit, such as 30s, 2m or 1h30m"
		case int, int64:
			want = "want a whole number"
		case uint, uint64:
			want = "want a whole number, 0 or more"
		case float64:
			want = "want a number, such as 0.05"
		case bool:
			want = "want true or false"
		default:
			return
		}
		orig[f] = f.Value
		f.Value = &explained{Getter: g, want: want}
	})
	return func() {
		for f, v := range orig {
			f.Value = v
		}
		clear(orig)
	}
}

// explained is a flag value whose Set error names the expected form.
type explained struct {
	flag.Getter
	want string
}

func (e *explained) Set(s string) error {
	if err := e.Getter.Set(s); err != nil {
		return errors.New(e.want)
	}
	return nil
}

// IsBoolFlag keeps "-flag" without a value working for a boolean flag.
func (e *explained) IsBoolFlag() bool {
	b, ok := e.Getter.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func (e *explained) String() string {
	if e == nil || e.Getter == nil {
		return ""
	}
	return e.Getter.String()
}
