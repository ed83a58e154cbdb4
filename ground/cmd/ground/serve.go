package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol/cli"
)

// tokenEnv names the environment variable that carries the back-office
// token (not a flag: flags show in ps).
const tokenEnv = "AIRTAB_BACKOFFICE_TOKEN"

// postgresEnv holds the PostgreSQL URL when --postgres is not given: a URL
// with a password is better kept out of the process list.
const postgresEnv = "AIRTAB_POSTGRES"

// getenv is os.Getenv, replaced in tests.
var getenv = os.Getenv

// serveCommand parses the serve flags, runs Main until ctx is cancelled
// (SIGINT, SIGTERM) or a part fails, and closes it.
func serveCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseServeFlags(args, stdout, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return cli.ExitOK
	case errors.Is(err, errUsagePrinted):
		return cli.ExitUsage
	case err != nil:
		fmt.Fprintf(stderr, "ground serve: %v\n", err)
		return cli.ExitUsage
	}
	m := &app.Main{Config: cfg}
	if err := m.Run(ctx); err != nil {
		cfg.Logger.Error("ground service did not start", "err", err)
		return 1
	}
	code := cli.ExitOK
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down", "cause", context.Cause(ctx))
	case <-m.Done():
		code = 1
	}
	if err := m.Close(); err != nil {
		cfg.Logger.Error("shutdown", "err", err)
		code = 1
	}
	return code
}

// errUsagePrinted is a bad command line whose error and usage the flag
// package has printed already.
var errUsagePrinted = errors.New("bad command line")

// parseServeFlags turns the serve flags and environment into a Config. It
// returns flag.ErrHelp after printing the help on stdout, errUsagePrinted
// after printing a flag error on stderr, or another error to print.
func parseServeFlags(args []string, stdout, stderr io.Writer) (app.Config, error) {
	var cfg app.Config
	fs := flag.NewFlagSet("ground serve", flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data-dir", "airtab-ground", "data `directory`: SQLite database ground.db, issuer.key and issuer.pub, backoffice.token, JetStream files in nats/ (created, mode 0700)")
	fs.StringVar(&cfg.Postgres, "postgres", "", "keep registry, ledger and clearing in this PostgreSQL database (a `URL`: postgres://user:password@host:5432/airtab) instead of <data-dir>/ground.db; every ground process of a deployment names the same one; default from $"+postgresEnv+", else SQLite")
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:8080", "HTTP API listen `address`; port 0 picks a free port")
	fs.StringVar(&cfg.NATSListen, "nats-listen", "127.0.0.1:4222", "embedded nats-server client listen `address` (JetStream on, files in <data-dir>/nats); port 0 picks a free port")
	fs.StringVar(&cfg.NATSTLSCert, "nats-tls-cert", "", "PEM certificate `file` for the embedded NATS server; with --nats-tls-key, cabin servers must connect over TLS (give them this certificate or its CA with onboard --nats-ca)")
	fs.StringVar(&cfg.NATSTLSKey, "nats-tls-key", "", "PEM private key `file` for --nats-tls-cert")
	fs.StringVar(&cfg.NATSURL, "nats-url", "", "connect to this external NATS server or cluster (JetStream enabled) instead of embedding one: a `URL`, or a cluster's URLs separated by commas, for example nats://nats1.example:4222,nats://nats2.example:4222,nats://nats3.example:4222")
	fs.IntVar(&cfg.NATSReplicas, "nats-replicas", 1, "JetStream servers that hold each stream (`count`, 1 to 5): 3 on a production cluster; more than 1 needs --nats-url; an existing stream with another count is changed to it")
	fs.StringVar(&cfg.NATSNKeyFile, "nats-nkey", "", "ground's own nkey seed `file` on the external NATS (--nats-url): ground logs in with it as the servers' auth user; created with its public key in <file>.pub on first start")
	fs.StringVar(&cfg.NATSCalloutKeyFile, "nats-callout-key", "", "auth callout account nkey seed `file`: ground answers the external servers' authorization requests, letting each registered aircraft in by its nkey with its own subjects only; the servers' auth_callout issuer is its public key (<file>.pub, created on first start); needs --nats-nkey")
	fs.StringVar(&cfg.IssuerKeyFile, "issuer-key", "", "first issuer private key `file`, created on first start (default <data-dir>/issuer.key); later keys come from \"ground keys\"; each start writes <data-dir>/issuer.pub and <data-dir>/issuer-trust.txt for cabin servers")
	fs.BoolVar(&cfg.NATSOpen, "nats-open", false, "let any client connect to the embedded NATS server with full rights (closed lab networks only); by default aircraft log in with their registered nkey and may use only their own subjects")
	fs.DurationVar(&cfg.HeartbeatInterval, "heartbeat", 0, "interval between heartbeats on airtab.v1.heartbeat (default 5s)")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 0, "bound on each shutdown step: HTTP requests, services, NATS drain (default 15s)")
	role := fs.String("role", "all", "which parts this process runs: all (everything, the default), api (HTTP API, back office, manifest sync, notices, heartbeat) or clearing (a clearing worker on the shared JetStream consumer, /metrics and /healthz on --http); api and clearing need a shared PostgreSQL (--postgres) and an external NATS (--nats-url)")
	level := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	scores := scoreRefs{}
	fs.Var(scores, "score-ref", "pin the credit score of the passenger who registers with an external reference, as `ref=score` (300 to 850; repeatable), for labs and walkthroughs; everyone else gets the default scorer's")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: ground serve [flags]

Runs the Airtab ground service: the HTTP API (passenger registration and the
back office), the NATS endpoint aircraft sync manifests from and replay
invoices to (an embedded nats-server with JetStream unless --nats-url is
given), and the wired services (clearing). Stops cleanly on SIGINT or SIGTERM.

On a shared PostgreSQL and an external NATS, ground runs as several
processes: any number of "--role api" servers behind a load balancer and
"--role clearing" workers, which split the invoices of one JetStream
consumer between them.

Environment:
  %s   the back-office bearer token (at least 16 bytes). When unset,
                            it is read from <data-dir>/backoffice.token, which is created with
                            a random token on first start.
  %s           the PostgreSQL URL, when --postgres is not given.

Flags:
`, tokenEnv, postgresEnv)
		fs.PrintDefaults()
	}
	if code, ok := cli.Parse(fs, args, stdout, stderr); !ok {
		if code == cli.ExitOK {
			return cfg, flag.ErrHelp
		}
		return cfg, errUsagePrinted
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	r, err := app.ParseRole(*role)
	if err != nil {
		return cfg, fmt.Errorf("--role: %w", err)
	}
	cfg.Role = r
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return cfg, fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	cfg.BackOfficeToken = getenv(tokenEnv)
	if cfg.Postgres == "" {
		cfg.Postgres = getenv(postgresEnv)
	}
	if len(scores) > 0 {
		cfg.Scorer = registry.StaticScorer{ByRef: scores}
	}
	return cfg, nil
}

// scoreRefs is the --score-ref flag: credit scores by external reference.
type scoreRefs map[string]int

func (s scoreRefs) String() string {
	refs := slices.Sorted(maps.Keys(s))
	for i, r := range refs {
		refs[i] = r + "=" + strconv.Itoa(s[r])
	}
	return strings.Join(refs, ",")
}

func (s scoreRefs) Set(v string) error {
	ref, score, ok := strings.Cut(v, "=")
	n, err := strconv.Atoi(score)
	if !ok || ref == "" || err != nil || n < registry.MinScore || n > registry.MaxScore {
		return fmt.Errorf("want ref=score with a score from %d to %d, for example alice=720", registry.MinScore, registry.MaxScore)
	}
	s[ref] = n
	return nil
}
