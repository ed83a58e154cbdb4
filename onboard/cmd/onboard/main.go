// Command onboard runs the cabin server: it authorizes sales on the aircraft
// against the cached flight manifest, journals every approved invoice in
// SQLite before it answers, and serves the handheld API over TLS.
//
//	go run ./onboard/cmd/onboard --aircraft D-AIUA --flight XX123-2026-11-21 \
//	    --issuer-key issuer.pub --manifest-file manifest.cose
//
// Run with --help for every flag.
package main

import (
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
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr))
}

// run parses args, runs the cabin server until ctx ends and shuts it down
// gracefully. It returns the process exit code.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	m := app.NewMain()
	if err := m.ParseFlags(args, stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "onboard:", err)
		return 2
	}
	m.Logger = newLogger(stderr, m.Config.LogFormat, m.Config.LogLevel)
	if err := m.Run(ctx); err != nil {
		m.Logger.Error("cabin server failed to start", "err", err)
		m.Close()
		return 1
	}
	<-ctx.Done()
	m.Logger.Info("shutting down: draining requests and the writer")
	if err := m.Close(); err != nil {
		m.Logger.Error("shutdown", "err", err)
		return 1
	}
	m.Logger.Info("stopped")
	return 0
}

func newLogger(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
