package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/app"
	"github.com/airtab/airtab/onboard/client"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/onboard/sqlite"
	"github.com/airtab/airtab/protocol"
)

// The crash test runs the cabin server as a child process: this test binary
// again, told by childEnv to run the server with the arguments in argsEnv
// instead of the tests.
const (
	childEnv = "AIRTAB_ONBOARD_CHILD"
	argsEnv  = "AIRTAB_ONBOARD_ARGS"
	seedEnv  = "AIRTAB_CRASH_SEED" // replays a crash test run
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		code := run(ctx, strings.Split(os.Getenv(argsEnv), "\x1f"), os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

var ctx = context.Background()

// setup writes what a cabin server needs to start into a data directory:
// the aircraft key, the issuer's public key and a signed manifest. It
// returns the flags to run it with.
func setup(t *testing.T, f *ft.Flight, dataDir string) []string {
	t.Helper()
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := crypto.WriteKeyFile(filepath.Join(dataDir, "aircraft.key"), f.AircraftKey); err != nil {
		t.Fatal(err)
	}
	issuer := filepath.Join(t.TempDir(), "issuer.pub")
	if err := crypto.WritePublicKeyFile(issuer, f.Issuer.Public()); err != nil {
		t.Fatal(err)
	}
	manifest := filepath.Join(t.TempDir(), "manifest.cose")
	if err := os.WriteFile(manifest, f.SignManifest(nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return []string{"--data-dir", dataDir, "--listen", "127.0.0.1:0", "--aircraft", string(f.Aircraft),
		"--flight", string(f.ID), "--issuer-key", issuer, "--manifest-file", manifest, "--log-format", "json"}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"help", "-h", "-help", "--help"} {
		t.Run(arg, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(ctx, []string{arg}, &stdout, &stderr); code != 0 {
				t.Fatalf("onboard %s: exit code %d, want 0; stderr %q", arg, code, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("onboard %s wrote to stderr: %q", arg, stderr.String())
			}
			for _, flag := range []string{"data-dir", "listen", "aircraft", "flight", "aircraft-key", "issuer-key",
				"manifest-file", "nats-url", "nats-creds", "nats-ca", "sync-interval", "tls-cert", "tls-key", "session-ttl",
				"shutdown-timeout", "log-format", "log-level", "memory-limit-mib", "reconnect-wait", "receipt-ack-wait"} {
				if !strings.Contains(stdout.String(), "-"+flag) {
					t.Errorf("onboard %s does not mention --%s", arg, flag)
				}
			}
		})
	}
}

func TestBadFlags(t *testing.T) {
	const flight = "XX123-2026-11-21"
	for _, tc := range []struct {
		name   string
		args   []string
		stderr string // what stderr must say
	}{
		{"NoFlags", []string{}, "--aircraft and --flight are required"},
		{"NoIssuerKey", []string{"--aircraft", "D-AIUA", "--flight", flight}, "--issuer-key is required"},
		{"BadAircraft", []string{"--aircraft", "not a mark", "--flight", flight, "--issuer-key", "x"}, "--aircraft"},
		{"BadLogFormat", []string{"--aircraft", "D-AIUA", "--flight", flight, "--issuer-key", "x", "--log-format", "xml"}, `--log-format "xml": want text or json`},
		{"UnknownFlag", []string{"--bogus"}, "flag provided but not defined: -bogus\nusage: onboard"},
		{"UnknownCommand", []string{"fly"}, "unexpected arguments: fly"},
		{"DurationWithoutUnit", []string{"--sync-interval", "5"},
			`invalid value "5" for flag -sync-interval: want a duration with a unit, such as 30s, 2m or 1h30m`},
		{"NotANumber", []string{"--replay-window", "lots"}, `invalid value "lots" for flag -replay-window: want a whole number`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(ctx, tc.args, &stdout, &stderr); code != 2 {
				t.Errorf("run %q: exit code %d, want 2", tc.args, code)
			}
			if stdout.Len() != 0 {
				t.Errorf("run %q wrote to stdout: %q", tc.args, stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("run %q: stderr %q, want it to contain %q", tc.args, stderr.String(), tc.stderr)
			}
		})
	}
}

// TestRun runs the cabin server in process, the way main does, sells over
// the handheld API and shuts down gracefully.
func TestRun(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1, RealTime: true})
	dataDir := filepath.Join(t.TempDir(), "data")
	m := app.NewMain()
	if err := m.ParseFlags(setup(t, f, dataDir), io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(ctx); err != nil {
		m.Close()
		t.Fatal(err)
	}
	defer m.Close()
	c, err := client.New(client.Config{URL: "https://" + m.Addr(), Fingerprint: m.Fingerprint(), Handheld: "hh-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SignIn(ctx, ft.Attendant.ID, ft.Attendant.PIN); err != nil {
		t.Fatal(err)
	}
	d, err := c.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: f.Passengers[0].Code(),
		Lines: ft.Basket("COFFEE", 1)})
	if err != nil || !d.Approved {
		t.Fatalf("authorize = %+v, %v", d, err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	// The aircraft's public key was written for ground to register.
	pub, err := crypto.ReadPublicKeyFile(filepath.Join(dataDir, "aircraft.pub"), crypto.Aircraft)
	if err != nil || !pub.Equal(f.AircraftKey.Public()) {
		t.Fatalf("aircraft.pub = %v, %v", pub, err)
	}
}

// TestDataDirInUse: a second cabin server on the same data directory is
// refused while the first runs (two writers would each keep their own
// sequence and chain head), and may start once the first has stopped. A
// missing trust anchor fails before anything is written.
func TestDataDirInUse(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1, RealTime: true})
	dataDir := filepath.Join(t.TempDir(), "data")
	args := setup(t, f, dataDir)
	start := func() (*app.Main, error) {
		m := app.NewMain()
		if err := m.ParseFlags(args, io.Discard); err != nil {
			t.Fatal(err)
		}
		if err := m.Run(ctx); err != nil {
			m.Close()
			return nil, err
		}
		return m, nil
	}
	first, err := start()
	if err != nil {
		t.Fatal(err)
	}
	if second, err := start(); err == nil || !strings.Contains(err.Error(), "in use by another cabin server") {
		if second != nil {
			second.Close()
		}
		first.Close()
		t.Fatalf("second cabin server on the same data dir: %v, want refused as in use", err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := start()
	if err != nil {
		t.Fatalf("after the first stopped: %v", err)
	}
	again.Close()

	fresh := filepath.Join(t.TempDir(), "fresh")
	m := app.NewMain()
	if err := m.ParseFlags([]string{"--data-dir", fresh, "--aircraft", string(f.Aircraft), "--flight", string(f.ID),
		"--issuer-key", filepath.Join(t.TempDir(), "missing.pub")}, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(ctx); err == nil || !strings.Contains(err.Error(), "issuer trust anchor") {
		m.Close()
		t.Fatalf("run with a missing issuer key: %v", err)
	}
	m.Close()
	if _, err := os.Stat(fresh); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed start left %s behind (%v)", fresh, err)
	}
}

// child is a cabin server running as a child process.
type child struct {
	cmd  *exec.Cmd
	addr string
	fp   string
	done chan error // the process's exit
	logs *tail
}

// tail keeps the last lines a child logged, for failure messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > 100 {
		t.lines = t.lines[1:]
	}
}

// String returns the lines kept, for a failure message.
func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// startChild starts the cabin server with args as a child process and
// waits until it listens.
func startChild(t *testing.T, args []string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1", argsEnv+"="+strings.Join(args, "\x1f"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &child{cmd: cmd, done: make(chan error, 1), logs: &tail{}}
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ch.logs.add(sc.Text())
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "cabin server listening" {
				ready <- rec
			}
		}
		ch.done <- cmd.Wait()
	}()
	select {
	case rec := <-ready:
		ch.addr, _ = rec["addr"].(string)
		ch.fp, _ = rec["fingerprint"].(string)
	case err := <-ch.done:
		t.Fatalf("cabin server exited before listening: %v\n%s", err, ch.logs)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("cabin server not listening after 30 s\n%s", ch.logs)
	}
	return ch
}

// approval is what a handheld was told about an approved sale.
type approval struct {
	id    protocol.ID
	seq   uint64
	total protocol.Money
	hash  protocol.Hash
}

// TestCrashRecovery starts the cabin server as a child process, drives
// concurrent authorizations from several goroutines, kills the server with
// SIGKILL at a random moment, restarts it on the same data directory, and
// checks that every approval a client received is in the journal with the
// same sequence number, total and hash; twenty times over. The last run ends
// with SIGTERM and must shut down cleanly. Set AIRTAB_CRASH_SEED to replay
// a run's kill timings.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(seedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", seedEnv, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, seedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	// 20 SIGKILLs at random moments under load, then one SIGTERM that must
	// shut down cleanly.
	const clients, kills = 8, 20
	const rounds = kills + 1
	f := ft.New(t, ft.Options{Passengers: clients, RealTime: true, Limit: protocol.M(100_000_000, "EUR"),
		TxCap: protocol.M(100_000, "EUR"),
		Caps: protocol.Caps{AircraftExposure: protocol.M(1_000_000_000, "EUR"), CodeFreshSeconds: 120,
			ClockSkewSeconds: 30, VelocityCount: 1_000_000, VelocityWindowSeconds: 60}})
	dataDir := filepath.Join(t.TempDir(), "data")
	args := setup(t, f, dataDir)
	var all []approval
	for round := range rounds {
		ch := startChild(t, args)
		approvals := drive(t, ch, f, clients, func() {
			if round == rounds-1 {
				time.Sleep(200 * time.Millisecond)
				ch.cmd.Process.Signal(syscall.SIGTERM)
				return
			}
			time.Sleep(time.Duration(50+rng.IntN(450)) * time.Millisecond)
			ch.cmd.Process.Signal(syscall.SIGKILL)
		})
		err := <-ch.done
		if round == rounds-1 {
			if err != nil {
				t.Fatalf("SIGTERM: exit %v, want a clean shutdown\n%s", err, ch.logs)
			}
		} else if ws, ok := ch.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: child exited with %v before it was killed\n%s", round, err, ch.logs)
		}
		all = append(all, approvals...)
		n := checkApprovals(t, f, dataDir, all)
		t.Logf("round %d: %d approvals received, %d invoices in the journal", round, len(approvals), n)
	}
	if len(all) == 0 {
		t.Fatal("no approvals at all: the test proved nothing")
	}
}

// drive runs clients goroutines that sell until the server goes away, calls
// stop once selling has begun, and returns the approvals the clients got.
func drive(t *testing.T, ch *child, f *ft.Flight, clients int, stop func()) []approval {
	t.Helper()
	c, err := client.New(client.Config{URL: "https://" + ch.addr, Fingerprint: ch.fp, Handheld: "hh-crash",
		MaxConns: clients, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SignIn(ctx, ft.Attendant.ID, ft.Attendant.PIN); err != nil {
		t.Fatalf("sign in: %v\n%s", err, ch.logs)
	}
	var mu sync.Mutex
	var approvals []approval
	started := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for i := range clients {
		p := f.Passengers[i]
		wg.Go(func() {
			for {
				code, err := p.Wallet.PaymentCode(f.ID, false)
				if err != nil {
					t.Errorf("payment code: %v", err)
					return
				}
				req := onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: ft.Basket("COFFEE", 1+i%3)}
				d, err := c.Authorize(ctx, req)
				if err != nil {
					return // the server went away; what it answered before counts
				}
				if !d.Approved {
					t.Errorf("declined: %+v", d.Decline)
					return
				}
				mu.Lock()
				approvals = append(approvals, approval{id: req.InvoiceID, seq: d.Sale.Seq, total: d.Sale.Total, hash: d.Sale.Hash})
				mu.Unlock()
				once.Do(func() { close(started) })
			}
		})
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Errorf("no approval within 30 s\n%s", ch.logs)
	}
	stop()
	wg.Wait()
	return approvals
}

// checkApprovals opens the journal the child left and checks that it is
// sound (signatures, gapless sequence, hash chain) and holds every approval
// with the sequence number, total and hash the client was told. It returns
// the number of invoices.
func checkApprovals(t *testing.T, f *ft.Flight, dataDir string, approvals []approval) int {
	t.Helper()
	j, err := sqlite.Open(ctx, filepath.Join(dataDir, "journal-"+string(f.ID)+".db"), f.ID, f.Aircraft)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	byID := map[protocol.ID]*protocol.SignedInvoice{}
	var head protocol.Hash
	n := 0
	err = j.Invoices(ctx, func(rec onboard.Record) error {
		inv, err := protocol.ParseInvoice(rec.Raw)
		if err != nil {
			return err
		}
		if err := inv.Verify(f.AircraftKey.Public(), nil); err != nil {
			return err
		}
		n++
		if inv.Body.Seq != uint64(n) || inv.Body.Prev != head {
			return fmt.Errorf("invoice %s: seq %d prev %s, want seq %d prev %s", inv.Body.ID, inv.Body.Seq, inv.Body.Prev, n, head)
		}
		head = inv.Hash()
		byID[inv.Body.ID] = inv
		return nil
	})
	if err != nil {
		t.Fatalf("journal: %v", err)
	}
	for _, a := range approvals {
		inv, ok := byID[a.id]
		switch {
		case !ok:
			t.Errorf("approved invoice %s (seq %d) is not in the journal", a.id, a.seq)
		case inv.Body.Seq != a.seq || inv.Body.Total != a.total || inv.Hash() != a.hash:
			t.Errorf("approved invoice %s: journal has seq %d total %v, client was told seq %d total %v",
				a.id, inv.Body.Seq, inv.Body.Total, a.seq, a.total)
		}
	}
	return n
}

// TestMemory850Seats runs the cabin server as a child process with the
// manifest of a full 850-seat flight and production PIN hashing, sells four
// times to every passenger, and checks the peak resident size (VmHWM) stays
// under the 64 MiB budget of ARCHITECTURE.md.
func TestMemory850Seats(t *testing.T) {
	switch {
	case testing.Short():
		t.Skip("signs 850 credentials and 3400 codes")
	case raceEnabled:
		t.Skip("the race detector's shadow memory inflates resident size")
	case runtime.GOOS != "linux":
		t.Skip("reads /proc")
	}
	const seats, salesEach, budgetKiB = 850, 4, 64 << 10
	f := ft.New(t, ft.Options{Passengers: 1, Seats: seats - 1, RealTime: true, PINParams: crypto.DefaultPINParams,
		Limit: protocol.M(100_000_000, "EUR"), TxCap: protocol.M(100_000, "EUR"),
		Caps: protocol.Caps{AircraftExposure: protocol.M(1_000_000_000, "EUR"), CodeFreshSeconds: 600,
			ClockSkewSeconds: 30, VelocityCount: 1_000_000, VelocityWindowSeconds: 60}})
	ch := startChild(t, setup(t, f, filepath.Join(t.TempDir(), "data")))
	defer ch.cmd.Process.Kill()
	c, err := client.New(client.Config{URL: "https://" + ch.addr, Fingerprint: ch.fp, Handheld: "hh-mem", MaxConns: 16})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.SignIn(ctx, ft.Purser.ID, ft.Purser.PIN); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const workers = 16
	for w := range workers {
		wg.Go(func() {
			for i := w; i < seats*salesEach; i += workers {
				var code string
				if k := i % seats; k < len(f.Seats) {
					code = f.Seats[k].Code()
				} else {
					code = f.Passengers[0].Code()
				}
				d, err := c.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: ft.Basket("COFFEE", 1)})
				if err != nil || !d.Approved {
					t.Errorf("authorize = %+v, %v", d, err)
					return
				}
			}
		})
	}
	wg.Wait()
	st, err := c.Status(ctx)
	if err != nil || st.LastSeq != seats*salesEach {
		t.Fatalf("status = %+v, %v; want %d invoices", st, err, seats*salesEach)
	}
	hwm, rss := procStatusKiB(t, ch.cmd.Process.Pid, "VmHWM"), procStatusKiB(t, ch.cmd.Process.Pid, "VmRSS")
	t.Logf("850 seats, %d invoices: peak resident %d KiB, now %d KiB", st.LastSeq, hwm, rss)
	if hwm >= budgetKiB {
		t.Fatalf("peak resident size %d KiB, over the budget of %d KiB", hwm, budgetKiB)
	}
}

// procStatusKiB reads a "<field>: <n> kB" line of /proc/<pid>/status.
func procStatusKiB(t *testing.T, pid int, field string) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}
