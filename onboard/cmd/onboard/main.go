// Command onboard runs the cabin server: it authorizes sales on the aircraft
// against the cached flight manifest, journals every approved invoice in
// SQLite before it answers, and serves the handheld API over TLS.
//
//	go run ./onboard/cmd/onboard --aircraft D-AIUA --flight XX123-2026-11-21 \
//	    --issuer-key issuer.pub --manifest-file manifest.cose
//
// Run with --help (or "onboard help") for every flag.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/airtab/airtab/onboard/app"
	"github.com/airtab/airtab/protocol/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run parses args, runs the cabin server until ctx ends and shuts it down
// gracefully. It returns the process exit code: 0 stopped cleanly or help
// printed (on stdout), 1 failed, 2 bad command line (usage on stderr). Logs
// go to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	m := app.NewMain()
	if len(args) > 0 && args[0] == "help" {
		args = []string{"--help"} // the command has no subcommands: "help" is --help
	}
	// The flag package prints the usage, for --help as for a bad flag, to
	// the one output it has: collect it and send it where it belongs.
	var out bytes.Buffer
	if err := m.ParseFlags(args, &out); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			stdout.Write(out.Bytes())
			return cli.ExitOK
		}
		stderr.Write(out.Bytes())
		if out.Len() == 0 { // not a flag error: the flag package said nothing
			fmt.Fprintln(stderr, "onboard:", err)
			fmt.Fprintln(stderr, `run "onboard --help" for the flags`)
		}
		return cli.ExitUsage
	}
	m.Logger = newLogger(stderr, m.Config.LogFormat, m.Config.LogLevel)
	if err := m.Run(ctx); err != nil {
		m.Logger.Error("cabin server failed to start", "err", err)
		m.Close()
		return cli.ExitFailed
	}
	<-ctx.Done()
	m.Logger.Info("shutting down: draining requests and the writer")
	if err := m.Close(); err != nil {
		m.Logger.Error("shutdown", "err", err)
		return cli.ExitFailed
	}
	m.Logger.Info("stopped")
	return cli.ExitOK
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
