package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/natsvc"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/pgtest"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testService records that Main ran and stopped it.
type testService struct {
	started, stopped chan struct{}
}

func (s *testService) Run(ctx context.Context) error {
	close(s.started)
	<-ctx.Done()
	close(s.stopped)
	return nil
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func startMain(t *testing.T, dir string, wire func(context.Context, app.Deps) (app.Extensions, error)) *app.Main {
	t.Helper()
	m := &app.Main{Config: app.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0", HeartbeatInterval: 50 * time.Millisecond, Logger: quiet}, Wire: wire}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMainEndToEnd(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	svc := &testService{started: make(chan struct{}), stopped: make(chan struct{})}
	var deps app.Deps
	m := startMain(t, dir, func(_ context.Context, d app.Deps) (app.Extensions, error) {
		deps = d
		return app.Extensions{Services: []app.Service{svc}}, nil
	})
	defer m.Close()
	if deps.Registry == nil || deps.JetStream == nil || deps.Issuer.IsZero() {
		t.Fatalf("Wire got incomplete deps: %+v", deps)
	}
	var _ ground.Directory = deps.Registry

	token, err := os.ReadFile(filepath.Join(dir, "backoffice.token"))
	if err != nil {
		t.Fatal(err)
	}
	issuerPub, err := crypto.ReadPublicKeyFile(filepath.Join(dir, "issuer.pub"), crypto.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	c := &api.Client{BaseURL: "http://" + m.HTTPAddr(), Token: strings.TrimSpace(string(token))}

	// Back office: an aircraft and tomorrow's flight.
	// It logs in to NATS with its own nkey.
	ak, _ := crypto.GenerateKey(crypto.Aircraft, nil)
	nk, _ := nkeys.CreateUser()
	nkPub, _ := nk.PublicKey()
	if _, err := c.RegisterAircraft(ctx, "D-AIUA", ak.Public(), nkPub); err != nil {
		t.Fatal(err)
	}
	date := time.Now().UTC().AddDate(0, 0, 1)
	fv, err := c.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "7", Date: date.Format(time.DateOnly), Aircraft: "D-AIUA", Currency: "EUR",
		Catalog: []protocol.CatalogItem{{SKU: "water", Name: "Water", Price: protocol.M(200, "EUR")}}})
	if err != nil {
		t.Fatal(err)
	}
	// A passenger whose score is eligible (the hash scorer decides, so
	// try devices until one is).
	var (
		dev  crypto.PrivateKey
		cred api.Credential
	)
	for i := 0; ; i++ {
		if i == 20 {
			t.Fatal("no eligible passenger in 20 tries")
		}
		dev, _ = crypto.GenerateKey(crypto.Device, nil)
		acct, err := c.CreatePassenger(ctx, dev, "")
		if err != nil {
			t.Fatal(err)
		}
		// A card: a prepaid wallet's limit is its balance, and this ground
		// has no clearing service to top one up.
		card := ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: "tok_visa_main", Last4: "4242", ExpMonth: 12, ExpYear: date.Year() + 3}
		if _, err := c.SetFunding(ctx, dev, card); err != nil {
			t.Fatal(err)
		}
		if acct.Score < acct.Threshold {
			continue
		}
		if cred, err = c.OptIn(ctx, dev, fv.ID); err != nil {
			t.Fatal(err)
		}
		break
	}

	// The aircraft fetches its manifest over NATS and trusts only issuer.pub.
	if _, err := nats.Connect(m.NATSURL()); err == nil {
		t.Fatal("a NATS client with no credentials connected")
	}
	nc, err := nats.Connect(m.NATSURL(), nats.Nkey(nkPub, nk.Sign), nats.CustomInboxPrefix(protocol.InboxPrefix("D-AIUA")))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(protocol.HeartbeatSubject)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := nc.Request(protocol.ManifestSubject("D-AIUA", fv.ID), nil, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if h := msg.Header.Get(protocol.ErrorHeader); h != "" {
		t.Fatalf("manifest request refused: %s", h)
	}
	man, err := protocol.ParseManifest(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	tl, _ := crypto.NewTrustList(crypto.TrustedKey{Key: issuerPub, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)})
	if _, err := man.VerifyTrusted(tl, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	creds, _ := man.Body.ParseCredentials()
	if len(creds) != 1 || creds[0].Body.ID != cred.ID {
		t.Fatalf("manifest credentials = %d, want the passenger's", len(creds))
	}
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("no heartbeat: %v", err)
	}
	// The invoice stream takes the aircraft's publishes (the wired test
	// service does not clear them).
	js, _ := jetstream.New(nc)
	if _, err := js.Publish(ctx, protocol.InvoiceSubject("D-AIUA", fv.ID), []byte("not an invoice")); err != nil {
		t.Fatalf("invoice stream: %v", err)
	}

	waitFor(t, 10*time.Second, "service started", func() bool { return closed(svc.started) })
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !closed(svc.stopped) {
		t.Fatal("Close returned before the service stopped")
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Restart on the same directory: same issuer key, same token, same
	// passenger.
	m2 := startMain(t, dir, nil)
	defer m2.Close()
	again, err := crypto.ReadPublicKeyFile(filepath.Join(dir, "issuer.pub"), crypto.Issuer)
	if err != nil || !again.Equal(issuerPub) {
		t.Fatalf("issuer key after restart = %v, %v; want %v", again, err, issuerPub)
	}
	c.BaseURL = "http://" + m2.HTTPAddr()
	if _, err := c.Account(ctx, dev); err != nil {
		t.Fatalf("account after restart: %v", err)
	}
	if _, err := c.Flight(ctx, fv.ID); err != nil {
		t.Fatalf("back office after restart: %v", err)
	}
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestMainExternalNATS(t *testing.T) {
	s, err := natsvc.StartServer(natsvc.ServerConfig{Port: -1, StoreDir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { s.Shutdown(); s.WaitForShutdown() }()
	m := &app.Main{Config: app.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", NATSURL: s.ClientURL(), HeartbeatInterval: 50 * time.Millisecond,
		BackOfficeToken: "external-nats-test-token", Logger: quiet}}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := os.Stat(filepath.Join(m.Config.DataDir, "nats")); !os.IsNotExist(err) {
		t.Fatalf("an embedded JetStream directory exists with --nats-url: %v", err)
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.Stream(context.Background(), protocol.StreamReceipts); err != nil {
		t.Fatalf("receipt stream on the external server: %v", err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+m.HTTPAddr()+"/v1/arrears", nil)
	req.Header.Set("Authorization", "Bearer external-nats-test-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("back office with the configured token: %d", resp.StatusCode)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if !s.Running() {
		t.Fatal("Close shut down an external server")
	}
}

func TestMainRunFailureCleansUp(t *testing.T) {
	dir := t.TempDir()
	m := &app.Main{Config: app.Config{DataDir: dir, HTTPAddr: "not an address", NATSListen: "127.0.0.1:0", Logger: quiet}}
	if err := m.Run(context.Background()); err == nil {
		t.Fatal("Run with a bad HTTP address = nil")
	}
	// Everything Run opened was closed: the same directory starts again.
	m2 := startMain(t, dir, nil)
	if err := m2.Close(); err != nil {
		t.Fatal(err)
	}
	bad := &app.Main{Config: app.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0", BackOfficeToken: "short", Logger: quiet}}
	if err := bad.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("Run with a short token = %v", err)
	}
}

// TestMainRefusesBusyDirAndPort: a second ground service on a data
// directory in use is refused, and so is a NATS port in use, each with an
// error naming the problem at once.
func TestMainRefusesBusyDirAndPort(t *testing.T) {
	dir := t.TempDir()
	first := startMain(t, dir, nil)
	defer first.Close()
	second := &app.Main{Config: app.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0", Logger: quiet}}
	if err := second.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "in use by another ground service") {
		second.Close()
		t.Fatalf("second ground on the same data dir: %v, want refused as in use", err)
	}

	// Without the check before the server starts, the error would be the
	// server's readiness timeout, which does not say why.
	busy := strings.TrimPrefix(first.NATSURL(), "nats://")
	other := &app.Main{Config: app.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", NATSListen: busy, Logger: quiet}}
	err := other.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		other.Close()
		t.Fatalf("ground on a NATS port in use: %v, want an error saying the address is in use", err)
	}
}

// syncBuffer is a bytes.Buffer safe for the logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestServeCommand(t *testing.T) {
	getenv = func(string) string { return "" }
	defer func() { getenv = os.Getenv }()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve", "--data-dir", t.TempDir(), "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, &stdout, &stderr)
	}()
	waitFor(t, 30*time.Second, "ground service up", func() bool { return strings.Contains(stderr.String(), "ground service up") })
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit code %d, want 0; log:\n%s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "ground service stopped") {
		t.Fatalf("no clean stop in the log:\n%s", stderr.String())
	}
}

// TestHelpAndUsage pins the Go tools' conventions: help on stdout with exit
// 0, a bad command line on stderr with the usage and exit 2.
func TestHelpAndUsage(t *testing.T) {
	serveFlags := []string{"-data-dir", "-http", "-nats-listen", "-nats-url", "-nats-replicas", "-nats-nkey", "-nats-callout-key", "-nats-tls-cert", "-nats-tls-key", "-issuer-key", "-heartbeat", "-shutdown-timeout", "-log-level", tokenEnv}
	reportFlags := []string{"-flight", "-settlement", "-format", "-data-dir"}
	commands := []string{"serve", "report", "help"}
	for _, tc := range []struct {
		args []string
		want []string // on stdout
	}{
		{[]string{"help"}, commands},
		{[]string{"-h"}, commands},
		{[]string{"-help"}, commands},
		{[]string{"--help"}, commands},
		{[]string{"help", "serve"}, serveFlags},
		{[]string{"help", "report"}, reportFlags},
		{[]string{"serve", "--help"}, serveFlags},
		{[]string{"serve", "-h"}, serveFlags},
		{[]string{"serve", "help"}, serveFlags},
		{[]string{"report", "--help"}, reportFlags},
		{[]string{"report", "help"}, reportFlags},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 0 {
				t.Fatalf("ground %q: exit code %d, want 0; stderr %q", tc.args, code, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("ground %q wrote to stderr: %q", tc.args, stderr.String())
			}
			for _, want := range tc.want {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("ground %q does not mention %s:\n%s", tc.args, want, stdout.String())
				}
			}
		})
	}
	for _, tc := range []struct {
		args []string
		want string // on stderr
	}{
		{[]string{"fly"}, `ground: unknown command "fly"`},
		{[]string{"help", "fly"}, `ground: unknown command "fly"`},
		{[]string{"--bogus"}, "flag provided but not defined: -bogus\nusage: ground serve"},
		{[]string{"serve", "--bogus"}, "flag provided but not defined: -bogus\nusage: ground serve"},
		{[]string{"serve", "extra"}, "ground serve: unexpected arguments: extra"},
		{[]string{"serve", "--log-level", "loud"}, `--log-level "loud": want debug, info, warn or error`},
		{[]string{"serve", "--heartbeat", "5"}, `invalid value "5" for flag -heartbeat: want a duration with a unit, such as 30s, 2m or 1h30m`},
		{[]string{"serve", "--score-ref", "alice"}, `invalid value "alice" for flag -score-ref: want ref=score with a score from 300 to 850`},
		{[]string{"serve", "--score-ref", "alice=900"}, `invalid value "alice=900" for flag -score-ref: want ref=score`},
		{[]string{"report", "--bogus"}, "flag provided but not defined: -bogus\nusage: ground report"},
		{[]string{"report"}, "ground report: give exactly one of --flight and --settlement\nusage: ground report"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(context.Background(), tc.args, &stdout, &stderr); code != 2 {
				t.Fatalf("ground %q: exit code %d, want 2", tc.args, code)
			}
			if stdout.Len() != 0 {
				t.Errorf("ground %q wrote to stdout: %q", tc.args, stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("ground %q: stderr %q, want it to contain %q", tc.args, stderr.String(), tc.want)
			}
		})
	}
}

// TestScoreRef: --score-ref pins a passenger's score by external reference,
// and leaves everyone else to the default scorer.
func TestScoreRef(t *testing.T) {
	cfg, err := parseServeFlags([]string{"--score-ref", "alice=720", "--score-ref", "bob=549"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]int{"alice": 720, "bob": 549} {
		got, err := cfg.Scorer.Score(context.Background(), registry.Applicant{ExternalRef: ref})
		if err != nil || got != want {
			t.Errorf("score of %s = %d, %v; want %d", ref, got, err, want)
		}
	}
	other := registry.Applicant{ExternalRef: "carol", Passenger: protocol.ID{1}}
	got, _ := cfg.Scorer.Score(context.Background(), other)
	if want, _ := (registry.HashScorer{}).Score(context.Background(), other); got != want {
		t.Errorf("score of an unpinned passenger = %d, want the default scorer's %d", got, want)
	}
}

func TestReportCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"report", "--data-dir", dir, "--flight", "XX1-2026-11-21"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "no ground database") {
		t.Fatalf("report without a database = %d %q", code, errb.String())
	}
	m := startMain(t, dir, nil)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"report"}, {"report", "--flight", "XX1-2026-11-21", "--settlement", "2026-11-21"}} {
		if code := run(ctx, args, &out, &errb); code != 2 {
			t.Fatalf("%v = %d, want 2", args, code)
		}
	}
	out.Reset()
	errb.Reset()
	if code := run(ctx, []string{"report", "--data-dir", dir, "--settlement", "2026-11-21", "--format", "csv"}, &out, &errb); code != 0 {
		t.Fatalf("settlement = %d: %s", code, errb.String())
	}
	if out.Len() == 0 {
		t.Fatal("settlement printed nothing")
	}
	t.Run("UnknownFlight", func(t *testing.T) {
		out.Reset()
		errb.Reset()
		code := run(ctx, []string{"report", "--data-dir", dir, "--flight", "XX999-2026-12-03"}, &out, &errb)
		if want := "flight XX999-2026-12-03 is not known to ground"; code != 1 || !strings.Contains(errb.String(), want) || out.Len() != 0 {
			t.Fatalf("report of a flight never registered = %d, stderr %q, stdout %q; want 1, %q and nothing on stdout", code, errb.String(), out.String(), want)
		}
	})
	t.Run("RegisteredNothingReceived", func(t *testing.T) {
		// Registration takes no date in the past: tomorrow's flight.
		date := time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly)
		registerFlight(t, dir, "XX", "7", date, "D-AIUA")
		out.Reset()
		errb.Reset()
		code := run(ctx, []string{"report", "--data-dir", dir, "--flight", "XX7-" + date}, &out, &errb)
		got := errb.String()
		if want := "flight XX7-" + date + " (aircraft D-AIUA) is registered but nothing has been received for it yet"; code != 1 || !strings.Contains(got, want) || strings.Contains(got, "not known") {
			t.Fatalf("report of a registered flight with nothing received = %d %q; want 1 and %q", code, got, want)
		}
	})
}

// registerFlight starts ground on dir, registers an aircraft and its flight
// on date (YYYY-MM-DD) through the back-office API, and stops ground again.
func registerFlight(t *testing.T, dir, carrier, number, date string, aircraft protocol.AircraftID) {
	t.Helper()
	ctx := context.Background()
	m := startMain(t, dir, nil)
	defer m.Close()
	token, err := os.ReadFile(filepath.Join(dir, "backoffice.token"))
	if err != nil {
		t.Fatal(err)
	}
	c := &api.Client{BaseURL: "http://" + m.HTTPAddr(), Token: strings.TrimSpace(string(token))}
	ak, _ := crypto.GenerateKey(crypto.Aircraft, nil)
	nk, _ := nkeys.CreateUser()
	nkPub, _ := nk.PublicKey()
	if _, err := c.RegisterAircraft(ctx, aircraft, ak.Public(), nkPub); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RegisterFlight(ctx, api.FlightRequest{Carrier: carrier, Number: number, Date: date, Aircraft: aircraft, Currency: "EUR",
		Catalog: []protocol.CatalogItem{{SKU: "water", Name: "Water", Price: protocol.M(200, "EUR")}}}); err != nil {
		t.Fatal(err)
	}
}

func TestReportCommandPostgres(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Start(t).NewDatabase(t)
	var out, errb bytes.Buffer
	if code := run(ctx, []string{"report", "--postgres", url, "--settlement", "2026-11-21", "--format", "csv"}, &out, &errb); code != 0 {
		t.Fatalf("settlement from PostgreSQL = %d: %s", code, errb.String())
	}
	if out.Len() == 0 {
		t.Fatal("settlement printed nothing")
	}
	errb.Reset()
	if code := run(ctx, []string{"report", "--postgres", url, "--flight", "XX999-2026-12-03"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "is not known to ground") {
		t.Fatalf("report of an unknown flight from PostgreSQL = %d %q, want 1 and the flight not known", code, errb.String())
	}
	t.Run("FromEnvironment", func(t *testing.T) {
		getenv = func(k string) string {
			if k == postgresEnv {
				return url
			}
			return ""
		}
		defer func() { getenv = os.Getenv }()
		out.Reset()
		if code := run(ctx, []string{"report", "--settlement", "2026-11-21"}, &out, &errb); code != 0 {
			t.Fatalf("settlement from $%s = %d: %s", postgresEnv, code, errb.String())
		}
	})
	t.Run("NotAURL", func(t *testing.T) {
		errb.Reset()
		if code := run(ctx, []string{"report", "--postgres", "host=db", "--settlement", "2026-11-21"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "want postgres://") {
			t.Fatalf("report --postgres host=db = %d %q, want 2 and the form a URL takes", code, errb.String())
		}
	})
}

// TestServeCommandPostgres: ground serve --postgres keeps its tables in the
// PostgreSQL database, migrated at start, and none in the data directory.
func TestServeCommandPostgres(t *testing.T) {
	getenv = func(string) string { return "" }
	defer func() { getenv = os.Getenv }()
	url := pgtest.Start(t).NewDatabase(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"serve", "--postgres", url, "--data-dir", dir, "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0"}, &stdout, &stderr)
	}()
	waitFor(t, 30*time.Second, "ground service up", func() bool { return strings.Contains(stderr.String(), "ground service up") })
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit code %d, want 0; log:\n%s", code, stderr.String())
	}
	db, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, c := range []string{"registry", "ledger", "clearing"} {
		if v, err := store.SchemaVersion(context.Background(), db, c); err != nil || v < 1 {
			t.Errorf("schema version of %s in PostgreSQL = %d (%v), want at least 1", c, v, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "ground.db")); !os.IsNotExist(err) {
		t.Errorf("ground.db in the data directory: %v, want none with --postgres", err)
	}
}
