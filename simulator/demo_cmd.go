package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/cli"
	"github.com/airtab/airtab/simulator/demo"
)

// demoMain runs the demo subcommand: a whole world kept running for a
// person to click through, until Ctrl-C or --for.
func demoMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulator demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := demo.DefaultConfig()
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "`address` of the cabin server's HTTPS listener, where the handheld app is (0.0.0.0:8443 to reach it from a phone; add --host)")
	fs.Func("host", "`name or IP` a phone uses to reach this machine, for the cabin server's certificate (repeatable, or comma-separated)", func(v string) error {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				cfg.Hosts = append(cfg.Hosts, h)
			}
		}
		return nil
	})
	fs.IntVar(&cfg.Passengers, "passengers", cfg.Passengers, fmt.Sprintf("registered passengers with sample codes (1 to %d)", demo.MaxPassengers))
	currency := fs.String("currency", string(cfg.Currency), "the flight's currency (EUR, USD, GBP, CHF, JPY)")
	fs.DurationVar(&cfg.For, "for", 0, "stop after this `duration` (e.g. 30m); 0 runs until Ctrl-C")
	fs.StringVar(&cfg.Dir, "dir", "", "`directory` for every part's data (default: a temporary one, removed at the end)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the temporary data directory")
	verbose := fs.Bool("v", false, "log what the parts log, on stderr")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: go run ./simulator demo [flags]

Starts a whole Airtab world and keeps it running: ground (embedded NATS,
SQLite, back office), a cabin server with the crew handheld app on HTTPS,
and registered passengers whose fresh payment codes it writes as QR images
to a folder. The first line on stdout is one JSON object (handheld, crew,
ca_cert, codes, backoffice, ...); the lines after it say what to open.

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := cli.Parse(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.Usage(fs, stderr, "unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	cfg.Currency = protocol.Currency(*currency)
	cfg.Stdout = stdout
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if err := demo.Run(ctx, cfg); err != nil {
		fmt.Fprintf(stderr, "simulator demo: %v\n", err)
		return 1
	}
	return 0
}
