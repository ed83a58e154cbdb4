// Package walletcli tests the command-line passenger wallet
// (protocol/cmd/wallet) against a real ground service: the command is built
// once and run as a passenger would run it. It lives under simulator/
// because nothing under protocol/ may import ground/.
package walletcli

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// Files and sizes of the command that the tests look at.
const (
	pendingTopUpFile = "topup.pending"
	defaultPNGSize   = 400
)

// walletBin is the built command.
var walletBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "airtab-walletcli-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	walletBin = filepath.Join(dir, "wallet")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", walletBin, "github.com/airtab/airtab/protocol/cmd/wallet")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the wallet command:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// testGround is a real ground service on a temporary directory, with a
// flight registered through the back-office API.
type testGround struct {
	url        string
	dataDir    string
	backOffice *api.Client
	flight     protocol.FlightID
}

// scores pins the credit scores of the test passengers, by reference: the
// default scorer hashes a random passenger id.
var scores = map[string]int{"alice": 720, "bob": 510, "carol": 700}

func startGround(t *testing.T) *testGround {
	t.Helper()
	dir := t.TempDir()
	m := &app.Main{Config: app.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Scorer: registry.StaticScorer{ByRef: scores}}}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	token, err := os.ReadFile(filepath.Join(dir, "backoffice.token"))
	if err != nil {
		t.Fatal(err)
	}
	g := &testGround{url: "http://" + m.HTTPAddr(), dataDir: dir}
	g.backOffice = &api.Client{BaseURL: g.url, Token: strings.TrimSpace(string(token))}
	ctx := context.Background()
	ak, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.backOffice.RegisterAircraft(ctx, "D-AIUA", ak.Public(), ""); err != nil {
		t.Fatal(err)
	}
	fv, err := g.backOffice.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "123", Date: time.Now().UTC().AddDate(0, 0, 1).Format(time.DateOnly),
		Aircraft: "D-AIUA", Currency: "EUR", Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR")}}})
	if err != nil {
		t.Fatal(err)
	}
	g.flight = fv.ID
	return g
}

// result is one run of the command.
type result struct {
	code           int
	stdout, stderr string
}

// wallet runs the built command with args.
func wallet(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, walletBin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run wallet %q: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

// field returns the value printed after "name " at the start of a line.
func field(out, name string) string {
	for l := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func TestRegisterOptInCode(t *testing.T) {
	g := startGround(t)
	dir := filepath.Join(t.TempDir(), "alice")
	exp := "12/" + time.Now().UTC().AddDate(3, 0, 0).Format("2006")
	register := []string{"register", "--dir", dir, "--ground", g.url, "--ref", "alice",
		"--card", "visa", "--card-token", "tok_visa_alice", "--last4", "4242", "--exp", exp, "--top-up", "25.50", "--currency", "EUR"}
	r := wallet(t, register...)
	if r.code != 0 {
		t.Fatalf("register = %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	passenger := field(r.stdout, "passenger")
	if _, err := protocol.ParseID(passenger); err != nil {
		t.Fatalf("register printed passenger %q: %v\n%s", passenger, err, r.stdout)
	}
	for _, want := range []string{"720 (eligible from 550)", "eligible      yes", "visa ending 4242", "25.50 EUR"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("register output lacks %q:\n%s", want, r.stdout)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "device.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("device.key: %v, mode %v; want 0600", err, fi.Mode())
	}

	// Again: the same passenger, no second one; the top-up, asked for
	// again, is made again.
	r = wallet(t, register...)
	if r.code != 0 || field(r.stdout, "passenger") != passenger || !strings.Contains(r.stderr, "already registered") {
		t.Fatalf("register again = %d, passenger %q (want %s)\nstdout:\n%s\nstderr:\n%s", r.code, field(r.stdout, "passenger"), passenger, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "51.00 EUR") {
		t.Errorf("second top-up: balance not 51.00 EUR:\n%s", r.stdout)
	}
	if r := wallet(t, "balance", "--dir", dir, "--ground", g.url, "--currency", "EUR"); r.code != 0 || strings.TrimSpace(r.stdout) != "51.00 EUR" {
		t.Fatalf("balance = %d %q %s", r.code, r.stdout, r.stderr)
	}

	// A code before opting in: no credential, and it says what to do.
	if r := wallet(t, "code", "--dir", dir, "--flight", string(g.flight)); r.code != 1 || !strings.Contains(r.stderr, "wallet opt-in") {
		t.Fatalf("code before opt-in = %d %q", r.code, r.stderr)
	}

	r = wallet(t, "opt-in", "--dir", dir, "--ground", g.url, "--flight", string(g.flight), "--issuer-key", filepath.Join(g.dataDir, "issuer.pub"))
	if r.code != 0 {
		t.Fatalf("opt-in = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "250.00 EUR per flight, 100.00 EUR per sale") || !strings.Contains(r.stdout, "verified") {
		t.Errorf("opt-in output:\n%s", r.stdout)
	}
	w, err := protocol.OpenWallet(dir, protocol.WalletOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cred, ok := w.Credential(g.flight)
	if !ok || cred.Body.Passenger.String() != passenger {
		t.Fatalf("wallet holds no credential of passenger %s for %s", passenger, g.flight)
	}

	// Compact code: text only on a buffer, verifies under the device key
	// with the credential's id.
	r = wallet(t, "code", "--dir", dir, "--flight", string(g.flight), "--png", filepath.Join(dir, "code.png"))
	if r.code != 0 {
		t.Fatalf("code = %d %s", r.code, r.stderr)
	}
	text := strings.TrimSpace(r.stdout)
	pc, err := protocol.ParsePaymentCodeText(text)
	if err != nil {
		t.Fatalf("parse %q: %v", text, err)
	}
	if err := pc.Verify(w.DeviceKey(), cred.Body.ID[:]); err != nil {
		t.Fatalf("code does not verify against the credential: %v", err)
	}
	if pc.Body.Full() || time.Since(pc.Body.Time) > time.Minute {
		t.Fatalf("code: full %v, time %v", pc.Body.Full(), pc.Body.Time)
	}
	f, err := os.Open(filepath.Join(dir, "code.png"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil || img.Bounds().Dx() != defaultPNGSize {
		t.Fatalf("--png: %v, %v", err, img)
	}

	// Full code with the terminal QR: the last line is the code, it
	// carries the credential, and its counter is new.
	r = wallet(t, "code", "--dir", dir, "--flight", string(g.flight), "--full", "--qr")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if r.code != 0 || len(lines) < 20 || !strings.Contains(r.stdout, "█") {
		t.Fatalf("code --full --qr = %d, %d lines:\n%s%s", r.code, len(lines), r.stdout, r.stderr)
	}
	full, err := protocol.ParsePaymentCodeText(lines[len(lines)-1])
	if err != nil {
		t.Fatal(err)
	}
	if err := full.Verify(w.DeviceKey(), cred.Body.ID[:]); err != nil {
		t.Fatal(err)
	}
	emb, err := full.Body.EmbeddedCredential()
	if err != nil || !bytes.Equal(emb.Raw, cred.Raw) || full.Body.Counter <= pc.Body.Counter {
		t.Fatalf("full code: credential %v (%v), counter %d after %d", emb != nil, err, full.Body.Counter, pc.Body.Counter)
	}

	r = wallet(t, "show", "--dir", dir)
	if r.code != 0 || field(r.stdout, "passenger") != passenger || !strings.Contains(r.stdout, string(g.flight)+" "+cred.Body.ID.String()) ||
		field(r.stdout, "device id") != w.DeviceKey().ID().String() {
		t.Fatalf("show = %d:\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestIneligiblePassenger(t *testing.T) {
	g := startGround(t)
	dir := filepath.Join(t.TempDir(), "bob")
	r := wallet(t, "register", "--dir", dir, "--ground", g.url, "--ref", "bob", "--wallet")
	if r.code != 0 || !strings.Contains(r.stdout, "eligible      no: credit score 510 is below the eligibility threshold of 550") {
		t.Fatalf("register = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	r = wallet(t, "opt-in", "--dir", dir, "--ground", g.url, "--flight", string(g.flight))
	if r.code != 1 || !strings.Contains(r.stderr, "not eligible for "+string(g.flight)+": credit score 510 is below the eligibility threshold of 550") {
		t.Fatalf("opt-in = %d, stderr %q", r.code, r.stderr)
	}
	if r := wallet(t, "show", "--dir", dir); r.code != 0 || !strings.Contains(r.stdout, "none (wallet opt-in)") {
		t.Fatalf("show = %d\n%s", r.code, r.stdout)
	}
}

func TestNoFunding(t *testing.T) {
	g := startGround(t)
	dir := filepath.Join(t.TempDir(), "carol")
	r := wallet(t, "register", "--dir", dir, "--ground", g.url, "--ref", "carol")
	if r.code != 0 || !strings.Contains(r.stdout, "no funding source linked") {
		t.Fatalf("register without funding = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestReferenceTaken(t *testing.T) {
	g := startGround(t)
	if r := wallet(t, "register", "--dir", filepath.Join(t.TempDir(), "a"), "--ground", g.url, "--ref", "alice", "--wallet"); r.code != 0 {
		t.Fatalf("first = %d %s", r.code, r.stderr)
	}
	r := wallet(t, "register", "--dir", filepath.Join(t.TempDir(), "b"), "--ground", g.url, "--ref", "alice", "--wallet")
	if r.code != 1 || !strings.Contains(r.stderr, `external reference "alice" is already registered`) {
		t.Fatalf("second device with the same reference = %d %q", r.code, r.stderr)
	}
}

// A top-up whose answer was lost is retried under its recorded key and
// credited once.
func TestTopUpRetriedOnce(t *testing.T) {
	g := startGround(t)
	dir := filepath.Join(t.TempDir(), "dave")
	if r := wallet(t, "register", "--dir", dir, "--ground", g.url, "--wallet"); r.code != 0 {
		t.Fatalf("register = %d %s", r.code, r.stderr)
	}
	w, err := protocol.OpenWallet(dir, protocol.WalletOptions{})
	if err != nil {
		t.Fatal(err)
	}
	amount := protocol.M(1000, "EUR")
	ref := protocol.NewID(nil)
	if err := os.WriteFile(filepath.Join(dir, pendingTopUpFile), []byte(ref.String()+" "+amount.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Ground credited it; the answer never came back.
	if _, err := (&api.Client{BaseURL: g.url}).TopUp(context.Background(), w, amount, ref); err != nil {
		t.Fatal(err)
	}
	r := wallet(t, "register", "--dir", dir, "--ground", g.url, "--top-up", "10", "--currency", "EUR")
	if r.code != 0 || !strings.Contains(r.stdout, "10.00 EUR (after a top-up of 10.00 EUR)") {
		t.Fatalf("retried top-up = %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, pendingTopUpFile)); !os.IsNotExist(err) {
		t.Fatalf("pending top-up kept after success: %v", err)
	}
}
