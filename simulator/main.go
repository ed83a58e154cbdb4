// Command simulator flies whole Airtab flights end to end with real parts
// (ground with embedded NATS and SQLite, cabin servers behind the link
// emulator, passengers' wallets, handhelds over the real API), prints what
// happened and exits 0 only when every money invariant held.
//
//	go run ./simulator [flags]         fly (see --help)
//	go run ./simulator bench [flags]   the performance bench
//	go run ./simulator demo [flags]    a running world to click through
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
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/cli"
	"github.com/airtab/airtab/simulator/bench"
	"github.com/airtab/airtab/simulator/harness"
	"github.com/airtab/airtab/simulator/sim"
)

func main() {
	if os.Getenv(harness.CabinChildEnv) == "1" {
		// This program is a cabin server child of its own (the bench's
		// memory section, the simulator's --crash).
		os.Exit(harness.RunCabinChild())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command: it returns the exit status, 0 only when every
// invariant held, 1 when one did not or the run broke, 2 for bad usage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 1 && args[0] == "help" { // "simulator help bench" is "simulator bench --help"
		args = []string{args[1], "--help"}
	}
	if len(args) > 0 && args[0] == "bench" {
		return benchMain(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "demo" {
		return demoMain(ctx, args[1:], stdout, stderr)
	}
	cfg, asJSON, verbose, err := parseFlags(args, stdout, stderr)
	if err == flag.ErrHelp {
		return 0
	}
	if err != nil {
		return 2
	}
	cfg.Progress = stderr
	if verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	closeStore, err := openStore(ctx, &cfg.Postgres, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "simulator: %v\n", err)
		return 1
	}
	defer closeStore()
	if cfg.Soak > 0 {
		return soak(ctx, cfg, asJSON, stdout, stderr)
	}
	rep, err := sim.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintf(stderr, "simulator: %v\n", err)
		return 1
	}
	if asJSON {
		if err := writeJSON(stdout, rep); err != nil {
			fmt.Fprintf(stderr, "simulator: %v\n", err)
			return 1
		}
	} else {
		writeHuman(stdout, rep)
	}
	if !rep.OK {
		return 1
	}
	return 0
}

func parseFlags(args []string, stdout, stderr io.Writer) (cfg sim.Config, asJSON, verbose bool, err error) {
	cfg = sim.DefaultConfig()
	fs := flag.NewFlagSet("simulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of every random choice: the same seed gives the same totals")
	fs.IntVar(&cfg.Passengers, "passengers", cfg.Passengers, fmt.Sprintf("seats per flight (10 to %d)", sim.MaxPassengers))
	fs.IntVar(&cfg.Handhelds, "handhelds", cfg.Handhelds, fmt.Sprintf("handhelds per cabin, working at once (1 to %d)", sim.MaxHandhelds))
	fs.IntVar(&cfg.Flights, "flights", cfg.Flights, fmt.Sprintf("aircraft flying at once, each with its own cabin server and link, landing and replaying together into one ground (1 to %d)", sim.MaxFlights))
	fs.BoolVar(&cfg.Outages, "outages", false, "a flaky link in flight: brief up periods with connection resets and black holes, so invoices replay in part mid-flight")
	fs.BoolVar(&cfg.Crash, "crash", false, "kill each cabin server with SIGKILL at random moments of the service and once during the replay, and restart it on the same data directory (the cabin servers then run as child processes of this program)")
	fs.BoolVar(&cfg.Fraud, "fraud", false, "forged, tampered, screenshot-replayed, double-scanned, over-limit, deny-listed, wrong-flight and expired codes and a re-opt-in after revocation: every one must be declined; and one counter signed for two flights at once: both sales must be charged (at least 2 flights)")
	fs.Float64Var(&cfg.DeclineRate, "decline-rate", 0, "share of cards (0 to 1) the simulated acquirer declines on the ground: those sales end in collections")
	fs.StringVar(&cfg.QROut, "qr-out", "", "directory to write sample payment codes to as PNG")
	currency := fs.String("currency", string(cfg.Currency), "the flights' currency (EUR, USD, GBP, CHF, JPY)")
	fs.BoolVar(&asJSON, "json", false, "print the report as one JSON object on stdout (progress stays on stderr)")
	fs.DurationVar(&cfg.Soak, "duration", 0, "soak: fly runs of these flights one after another, each with the next seed, until this much time has passed (e.g. 8h), and report totals per hour")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the data directory (ground and cabin SQLite files, JetStream, wallets) and print where it is")
	fs.BoolVar(&verbose, "v", false, "log what the parts log, on stderr")
	stores := addStoreFlags(fs)
	fs.IntVar(&cfg.NATSCluster, "nats-cluster", 0, fmt.Sprintf("run ground on an in-process JetStream cluster of this many nodes (1 to %d; 3 for production's shape) with R3 streams and aircraft let in by ground's auth callout, instead of embedded NATS", sim.MaxNATSCluster))
	fs.IntVar(&cfg.GroundWorkers, "ground-workers", 0, fmt.Sprintf("run ground as an API process and this many clearing workers on one JetStream consumer (0 to %d), on a 3-node in-process NATS cluster; needs --postgres or --store postgres", sim.MaxGroundWorkers))
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: go run ./simulator [flags]
       go run ./simulator bench [flags]
       go run ./simulator demo [flags]

Flies Airtab flights end to end with real parts: ground with an embedded
nats-server and SQLite, a cabin server per aircraft behind a link emulator,
passengers' reference wallets, handhelds over the real API. Prints what
happened and exits 0 only when every money invariant held.

flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := cli.Parse(fs, args, stdout, stderr); !ok {
		if code == cli.ExitOK {
			return cfg, false, false, flag.ErrHelp
		}
		return cfg, false, false, errors.New("bad command line")
	}
	if fs.NArg() > 0 {
		what := "unexpected argument"
		if fs.NArg() == len(args) { // the first word: meant as a command
			what = "unknown command"
		}
		cli.Usage(fs, stderr, "%s %q", what, fs.Arg(0))
		return cfg, false, false, errors.New(what)
	}
	cfg.Currency = protocol.Currency(*currency)
	if cfg.Postgres, err = stores.url(); err != nil {
		fmt.Fprintf(stderr, "simulator: %v\n", err)
		return cfg, false, false, err
	}
	if err = cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "simulator: %v\n", err)
		return cfg, false, false, err
	}
	return cfg, asJSON, verbose, nil
}

// benchMain runs the bench subcommand: every performance figure, each
// against a bound measured in the same run.
func benchMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("simulator bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := bench.Options{}
	asJSON := fs.Bool("json", false, "print one JSON object on stdout instead of the table")
	fs.IntVar(&o.Clients, "clients", 64, "concurrent handheld clients for authorize")
	fs.IntVar(&o.AuthorizeCount, "authorize-count", 20000, "sales to authorize")
	fs.Float64Var(&o.AuthorizeSeconds, "authorize-seconds", 0, "authorize for this many seconds instead of a count")
	fs.IntVar(&o.ReplayInvoices, "invoices", 5000, "invoices in the replayed flight")
	fs.IntVar(&o.LinkKbit, "link-kbit", 1000, "emulated link bandwidth for the replay, kbit/s each way")
	fs.DurationVar(&o.RTT, "rtt", 600*time.Millisecond, "emulated link round trip for the replay")
	fs.IntVar(&o.ClearingInvoices, "clearing-invoices", 5000, "invoices cleared from a filled stream")
	fs.IntVar(&o.Passengers, "passengers", 850, "passengers on the flight whose cabin server memory is measured")
	fs.BoolVar(&o.SkipRSS, "skip-rss", false, "skip the cabin server memory measurement")
	fs.Uint64Var(&o.Seed, "seed", 42, "random seed")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file (go tool pprof reads it)")
	fs.StringVar(&o.CabinCPUProfile, "cabin-cpuprofile", "", "write a CPU profile of the authorize section's cabin server process to this file")
	fs.StringVar(&o.ClearingCPUProfile, "clearing-cpuprofile", "", "write a CPU profile of the clearing section's timed window to this file (not with --cpuprofile)")
	fs.Float64Var(&o.OpenLoopRate, "open-loop-rate", 1000, "sales per second offered in the open-loop authorize run (Poisson arrivals); negative skips it")
	fs.Float64Var(&o.OpenLoopSeconds, "open-loop-seconds", 5, "length of the open-loop authorize run, in seconds")
	stores := addStoreFlags(fs)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: go run ./simulator bench [flags]

Measures authorize (64 handhelds over HTTPS, every approval fsynced), replay
of a full flight over an emulated 1 Mbit/s, 600 ms link, clearing from a
filled stream, the payment code's QR version and the cabin server's memory,
each against a bound measured in the same run. With --postgres or --store
postgres, ground runs on PostgreSQL, and clearing is also measured with one
and with two clearing workers on the same consumer, side by side. Targets are reported, not
asserted. Progress goes to stderr.

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
	if o.AuthorizeSeconds > 0 {
		o.AuthorizeCount = 0
	}
	var err error
	if o.Postgres, err = stores.url(); err != nil {
		return cli.Usage(fs, stderr, "%v", err)
	}
	closeStore, err := openStore(ctx, &o.Postgres, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "simulator bench: %v\n", err)
		return 1
	}
	defer closeStore()
	o.Progress = stderr
	bench.ReplayFunc = measureReplay
	if *cpuProfile != "" {
		stop, err := startCPUProfile(*cpuProfile)
		if err != nil {
			fmt.Fprintf(stderr, "simulator bench: %v\n", err)
			return 1
		}
		defer stop()
	}
	res, err := bench.Run(ctx, o)
	if err != nil {
		fmt.Fprintf(stderr, "simulator bench: %v\n", err)
		return 1
	}
	if *asJSON {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "simulator bench: %v\n", err)
		return 1
	}
	return 0
}

// measureReplay adapts the harness's replay measurement to the bench.
func measureReplay(ctx context.Context, o bench.ReplayOptions) (bench.ReplayMeasurement, error) {
	r, err := harness.MeasureReplay(ctx, o.Invoices, o.LinkKbit, o.RTT)
	if err != nil {
		return bench.ReplayMeasurement{}, err
	}
	// The emulated link caps each direction on its own, so the stricter
	// bound is the busier direction's bytes: that is the one reported.
	return bench.ReplayMeasurement{Seconds: r.Seconds, BoundSeconds: r.LineBoundSeconds, BytesPerInvoice: r.BytesPerInvoice,
		Method: fmt.Sprintf("a real cabin server's journal of approved invoices replayed through the link emulator to a real ground; "+
			"from the replayer seeing the link up to JetStream acknowledging every invoice; bound = the busier direction's bytes "+
			"(%d up, %d down) ÷ bandwidth + one round trip, as the emulated link caps each direction on its own; "+
			"against both directions' bytes together the bound is %.2f s and the ratio %.2f",
			r.BytesUp, r.BytesDown, r.BoundSeconds, r.Ratio)}, nil
}

// startCPUProfile profiles the process into path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}
