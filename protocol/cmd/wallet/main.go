// Command wallet is the reference passenger wallet on the command line: it
// registers a passenger with the ground service, opts in to flights and makes
// the signed payment codes cabin crew scan. It is protocol.Wallet behind a
// few subcommands, for trying Airtab end to end without a phone app.
//
//	go run ./protocol/cmd/wallet register --dir ./alice --ref alice --wallet --top-up 100.00 --currency EUR
//	go run ./protocol/cmd/wallet opt-in --dir ./alice --flight XX123-2026-11-21
//	go run ./protocol/cmd/wallet code --dir ./alice --flight XX123-2026-11-21
//
// The wallet lives in a directory (--dir): the device key (device.key, mode
// 0600, which never leaves it), the payment-code counter and one credential
// per flight, as protocol.Wallet keeps them. The command adds the file
// passenger (the id ground gave the passenger) and, while a top-up is in
// doubt, topup.pending (its idempotency key, so that a retry never credits
// twice). Passenger calls to ground are signed by the device key; making a
// payment code needs no network.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/airtab/airtab/protocol/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// commands are the subcommands.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"register": registerCommand,
	"opt-in":   optInCommand,
	"code":     codeCommand,
	"balance":  balanceCommand,
	"show":     showCommand,
}

// run runs the subcommand named by args[0] and returns the exit code: 0 done,
// 1 failed (ground refused, no credential, I/O), 2 bad command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return cli.ExitUsage
	}
	name, args := args[0], args[1:]
	if cli.IsHelp(name) {
		if name == "help" && len(args) > 0 { // "wallet help code"
			name, args = args[0], []string{"--help"}
		} else {
			usage(stdout)
			return cli.ExitOK
		}
	}
	cmd, ok := commands[name]
	if !ok && strings.HasPrefix(name, "-") {
		fmt.Fprintf(stderr, "wallet: flag %s before a command: flags come after it, as in \"wallet code --flight ID\"\n\n", name)
		usage(stderr)
		return cli.ExitUsage
	}
	if !ok {
		fmt.Fprintf(stderr, "wallet: unknown command %q\n\n", name)
		usage(stderr)
		return cli.ExitUsage
	}
	return cmd(ctx, args, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: wallet <command> [flags]

The reference Airtab passenger wallet: register with the ground service, opt
in to a flight, and make the signed payment codes cabin crew scan.

Commands:
  register   create the wallet and register the passenger: funding, top-up
  opt-in     opt in to a flight and store its issuer-signed credential
  code       make a payment code (text, terminal QR, PNG); works offline
  balance    the passenger's wallet balance in a currency
  show       what the wallet holds: device key, passenger, credentials
  help       show this text; "wallet help <command>" shows a command's flags

"wallet <command> --help" lists a command's flags.
`)
}

// defaultGround is ground serve's default HTTP address.
const defaultGround = "http://127.0.0.1:8080"

// newFlags returns the flag set of a subcommand, whose usage is text and
// the flags. parseFlags sends it to stdout for --help, to stderr for a bad
// flag.
func newFlags(name, text string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("wallet "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), text+"\nFlags:\n")
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args into fs and checks that --dir was given. It returns
// false and the exit code when the command must stop: 0 after help (--help,
// -h, or "help" after the command), 2 on a bad command line (the message
// already on stderr).
func parseFlags(fs *flag.FlagSet, args []string, dir *string, stdout, stderr io.Writer) (int, bool) {
	if code, ok := cli.Parse(fs, args, stdout, stderr); !ok {
		return code, false
	}
	if fs.NArg() > 0 {
		return usageError(stderr, fs.Name(), "unexpected arguments: %s", strings.Join(fs.Args(), " ")), false
	}
	if *dir == "" {
		return usageError(stderr, fs.Name(), "--dir is required: the wallet directory"), false
	}
	return 0, true
}

// usageError prints a command-line mistake and returns exit code 2.
func usageError(stderr io.Writer, cmd, format string, args ...any) int {
	fmt.Fprintf(stderr, "%s: %s\n", cmd, fmt.Sprintf(format, args...))
	return 2
}

// failure prints why a command failed and returns exit code 1.
func failure(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "%s: %v\n", cmd, err)
	return 1
}

// given reports whether the flag name was given on the command line.
func given(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			set = true
		}
	})
	return set
}
