// Command ground runs Airtab's ground services: passenger registration and
// credential issuance, flight manifests over NATS, clearing of replayed
// invoices into the ledger, and reconciliation.
//
//	go run ./ground/cmd/ground            # the same as "ground serve"
//	go run ./ground/cmd/ground serve --help
//	go run ./ground/cmd/ground report --flight XX123-2026-11-21 --format csv
//
// By default everything lives in ./airtab-ground: the SQLite database, the
// issuer key (and issuer.pub, the public key to give cabin servers), the
// back-office token and the embedded nats-server's JetStream files.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/airtab/airtab/protocol/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// commands are the subcommands. "serve" is the default.
var commands = map[string]func(ctx context.Context, args []string, stdout, stderr io.Writer) int{
	"serve":  serveCommand,
	"report": reportCommand,
	"keys":   keysCommand,
}

// run runs the subcommand named by args[0] (serve when args is empty or
// starts with a flag other than a help flag) and returns the exit code: 0
// done or help printed, 1 failed, 2 bad command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && cli.IsHelp(args[0]) {
		if args[0] == "help" && len(args) > 1 { // "ground help report"
			if cmd, ok := commands[args[1]]; ok {
				return cmd(ctx, []string{"--help"}, stdout, stderr)
			}
			return unknownCommand(args[1], stderr)
		}
		usage(stdout)
		return cli.ExitOK
	}
	name := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		name, args = args[0], args[1:]
	}
	cmd, ok := commands[name]
	if !ok {
		return unknownCommand(name, stderr)
	}
	return cmd(ctx, args, stdout, stderr)
}

func unknownCommand(name string, stderr io.Writer) int {
	fmt.Fprintf(stderr, "ground: unknown command %q\n\n", name)
	usage(stderr)
	return cli.ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: ground [command] [flags]

Airtab ground services: passenger registration, credentials, flight manifests
over NATS, clearing of replayed invoices, and reconciliation.

Commands:
  serve    run the ground service (the default when no command is given)
  report   print a flight's reconciliation (JSON or CSV) or a day's settlement
  keys     list, add, rotate, retire or revoke issuer keys (ground stopped)
  help     show this text; "ground help <command>" shows a command's flags

"ground <command> --help" lists a command's flags.
`)
}
