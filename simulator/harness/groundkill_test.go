package harness

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	gapp "github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

// The ground kill trial runs the ground service as a child process: this
// test binary again, told by groundChildEnv to run ground with the
// configuration in it instead of the tests. TestCabinProcessKill runs this
// test binary as a cabin server child likewise, told by CabinChildEnv.
const (
	groundChildEnv    = "AIRTAB_GROUND_CHILD"
	groundKillSeedEnv = "AIRTAB_GROUND_KILL_SEED" // replays a ground kill trial's kill points
)

func TestMain(m *testing.M) {
	if cfg := os.Getenv(groundChildEnv); cfg != "" {
		os.Exit(runGroundChild(cfg))
	}
	if cfg := os.Getenv(workerChildEnv); cfg != "" {
		os.Exit(runWorkerChild(cfg))
	}
	if os.Getenv(CabinChildEnv) == "1" {
		os.Exit(RunCabinChild())
	}
	os.Exit(m.Run())
}

// groundChildConfig is the part of gapp.Config a child ground process is
// given. The rest are values of the parent process, and the child runs with
// ground's defaults for them: the trial uses the default clock, random
// source and acquirer, the scorer only scores passengers as they register
// (none does while a child runs), and the child logs JSON to stderr.
type groundChildConfig struct {
	DataDir           string
	HTTPAddr          string
	NATSListen        string
	HeartbeatInterval time.Duration
	StreamDuplicates  time.Duration
}

// Clearing's timeouts in a child ground process. A kill can lose the
// consumer's record of acks sent in the last moments (nats-server writes a
// consumer's state at most ten times a second), and JetStream redelivers
// such a message only after the AckWait: a minute by default, which would
// make the trial wait a minute whenever a kill falls there. AckWait must
// exceed twice BatchTimeout, which must exceed ChargePhaseTimeout.
const (
	childAckWait            = 10 * time.Second
	childBatchTimeout       = 4 * time.Second
	childChargePhaseTimeout = 3 * time.Second
)

// runGroundChild runs the ground service with the configuration encoded in
// cfg until SIGTERM, and logs JSON to stderr for the parent to read. The
// clearing service is wired as gapp.Main wires it by default, with the
// shorter timeouts above. On SIGTERM it waits until the clearing consumer
// has nothing outstanding before it stops, so a message redelivered after
// an earlier kill is cleared by this process and not left to the next. It
// returns the exit code.
func runGroundChild(cfg string) int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var c groundChildConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		log.Error("ground child configuration", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &gapp.Main{Config: gapp.Config{DataDir: c.DataDir, HTTPAddr: c.HTTPAddr, NATSListen: c.NATSListen,
		HeartbeatInterval: c.HeartbeatInterval, StreamDuplicates: c.StreamDuplicates, Logger: log}}
	m.Wire = func(ctx context.Context, d gapp.Deps) (gapp.Extensions, error) {
		svc, err := clearing.New(ctx, clearing.Config{DB: d.DB, JS: d.JetStream, Directory: d.Registry, IssuerKey: d.Issuer,
			Acquirer: clearing.NewSimAcquirer(clearing.SimConfig{Clock: d.Clock}), Clock: d.Clock, Logger: d.Logger,
			AckWait: childAckWait, BatchTimeout: childBatchTimeout, ChargePhaseTimeout: childChargePhaseTimeout})
		if err != nil {
			return gapp.Extensions{}, err
		}
		return gapp.Extensions{Funder: svc, Reports: svc.Reports().Handler(), Services: []gapp.Service{svc}}, nil
	}
	if err := m.Run(ctx); err != nil {
		log.Error("ground child failed to start", "err", err)
		return 1
	}
	var err error
	select {
	case <-ctx.Done():
		err = waitConsumerDrained(m, time.Minute)
	case <-m.Done():
	}
	if err := errors.Join(err, m.Err(), m.Close()); err != nil {
		log.Error("ground child stopped with an error", "err", err)
		return 1
	}
	return 0
}

// waitConsumerDrained waits until the clearing consumer of m has neither
// messages to deliver nor deliveries awaiting their ack.
func waitConsumerDrained(m *gapp.Main, timeout time.Duration) error {
	ctx := context.Background()
	js, err := jetstream.New(m.NATS())
	if err != nil {
		return err
	}
	return Poll(ctx, timeout, "clearing consumer drained", func() (bool, error) {
		cons, err := js.Consumer(ctx, protocol.StreamInvoices, "airtab-clearing")
		if err != nil {
			return false, err
		}
		ci, err := cons.Info(ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0, err
	})
}

// groundChild is a ground service running as a child process.
type groundChild struct {
	cmd  *exec.Cmd
	http string        // the API's address
	done chan struct{} // closed when the process has exited and its stderr is read
	err  error         // cmd.Wait's result, once done is closed
	logs *logTail
	// captures counts the child's "capture started" log records (a
	// clearing worker child of workers_test.go logs one per card call).
	captures atomic.Int64
}

// startGroundChild runs ground with cfg as a child process and waits until
// it is up. The child is killed when the test ends, and its log goes to the
// test log if the test failed.
func startGroundChild(t *testing.T, name string, cfg gapp.Config) *groundChild {
	t.Helper()
	enc, err := json.Marshal(groundChildConfig{DataDir: cfg.DataDir, HTTPAddr: cfg.HTTPAddr, NATSListen: cfg.NATSListen,
		HeartbeatInterval: cfg.HeartbeatInterval, StreamDuplicates: cfg.StreamDuplicates})
	if err != nil {
		t.Fatal(err)
	}
	return startChild(t, name, groundChildEnv+"="+string(enc))
}

// startChild runs this test binary as a child process with env added to
// its environment, which makes TestMain run a ground process instead of
// the tests, and waits until the child logs that it is up.
func startChild(t *testing.T, name, env string) *groundChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), env)
	setChildAttrs(cmd) // the child dies with this test binary, however it ends
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch := &groundChild{cmd: cmd, done: make(chan struct{}), logs: &logTail{max: 200}}
	t.Cleanup(func() {
		// A no-op once the child has exited; the wait below returns at
		// once after a kill, so nothing outlives the test.
		cmd.Process.Kill()
		<-ch.done
		if t.Failed() {
			t.Logf("%s (%v) logged:\n%s", name, ch.err, ch.logs)
		}
	})
	up := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ch.logs.add(sc.Text())
			var rec struct{ Msg, HTTP string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "ground service up" {
				select {
				case up <- rec.HTTP:
				default:
				}
			}
			if rec.Msg == captureStarted {
				ch.captures.Add(1)
			}
		}
		// A scan error (a line over the buffer) ends the loop early: read
		// the rest, or the child blocks on its next log write.
		io.Copy(io.Discard, stderr)
		ch.err = cmd.Wait()
		close(ch.done)
	}()
	select {
	case ch.http = <-up:
	case <-ch.done:
		t.Fatalf("%s exited before it was up: %v", name, ch.err)
	case <-time.After(time.Minute):
		t.Fatalf("%s not up after a minute", name)
	}
	return ch
}

// kill kills the child with SIGKILL and checks that it was still running
// then: a child that had exited on its own was not killed mid-stream.
func (ch *groundChild) kill(t *testing.T, name string) {
	t.Helper()
	select {
	case <-ch.done:
		t.Fatalf("%s exited with %v before it was killed", name, ch.err)
	default:
	}
	if err := ch.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("kill %s: %v", name, err)
	}
	<-ch.done
	if ws, ok := ch.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s exited with %v before it was killed", name, ch.err)
	}
}

// stop stops the child with SIGTERM and checks that it shut down cleanly:
// the child first waits up to a minute for its clearing consumer to drain.
func (ch *groundChild) stop(t *testing.T, name string) {
	t.Helper()
	if err := ch.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop %s: %v", name, err)
	}
	select {
	case <-ch.done:
	case <-time.After(2 * time.Minute):
		t.Fatalf("%s did not stop within two minutes of SIGTERM", name)
	}
	if ch.err != nil {
		t.Fatalf("%s: exit %v after SIGTERM, want a clean shutdown", name, ch.err)
	}
}

// received asks the child's report API how many of flight f's invoices
// clearing has taken in. The report is not found until the first one.
func (ch *groundChild) received(ctx context.Context, token string, f protocol.FlightID) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ch.http+"/v1/reports/flights/"+string(f), nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, nil // clearing has nothing of the flight yet
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("flight report: %s", resp.Status)
	}
	var rep clearing.FlightReport
	if err := json.NewDecoder(resp.Body).Decode(&rep); err != nil {
		return 0, fmt.Errorf("flight report: %w", err)
	}
	return rep.Received.Invoices, nil
}

// crashState is what a killed ground process left in its database.
type crashState struct {
	received int64 // invoices clearing has taken in
	sales    int64 // sale transfers in the ledger
	charged  int64 // wallet charges and card captures in the ledger
}

// openGroundReadOnly opens, read-only, the SQLite database a stopped
// ground process left in its data directory dir.
func openGroundReadOnly(t *testing.T, dir string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "ground.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	return db
}

// groundCrashState reads, read-only, the database a killed ground process
// left in dir, and checks that it is sound as it stands: no invoice posted
// or charged twice, and the ledger balanced. Sales posted but not yet
// charged are allowed; the next process's recovery charges them.
func (tr *trial) groundCrashState(dir string) crashState {
	t, ctx := tr.t, tr.ctx
	t.Helper()
	db := openGroundReadOnly(t, dir)
	defer db.Close()
	var st crashState
	var sales, charged int64 // distinct invoices
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM clearing_invoices WHERE flight = ?`, tr.flight).Scan(&st.received); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT ref) FROM ledger_transfers
		WHERE code = ? AND reverses IS NULL`, ledger.TransferSale).Scan(&st.sales, &sales); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT ref) FROM ledger_transfers
		WHERE code IN (?, ?) AND reverses IS NULL`, ledger.TransferWalletCharge, ledger.TransferCardCapture).Scan(&st.charged, &charged); err != nil {
		t.Fatal(err)
	}
	if sales != st.sales || charged != st.charged {
		t.Fatalf("ground left %d sale transfers for %d invoices and %d charges for %d", st.sales, sales, st.charged, charged)
	}
	if err := ledger.Check(ctx, db); err != nil {
		t.Fatalf("ledger as ground left it: %v", err)
	}
	return st
}

// TestExactlyOnceGroundKilled kills the ground process with SIGKILL while
// it clears a bandwidth-limited replay, three times over, restarting it on
// the same data directory and NATS port each time: nothing of ground's
// shutdown runs, so whatever the database, the JetStream files and the
// clearing consumer's record of acks held at the kill is what the next
// process starts from. The kills fall at pseudo-random points of the
// stream (a number of invoices clearing has taken in) drawn from a seed;
// set AIRTAB_GROUND_KILL_SEED to replay a run's kill points (the timing
// around them varies from run to run). The aircraft's link goes down just
// before each kill and comes up again once the next process is up, so
// that how long the kill takes to land cannot let the rest of the flight
// in. After each kill the database as it was left must hold no invoice
// posted twice and a balanced ledger, and must still lack some invoices:
// a kill after the last one was posted did not fall mid-stream and fails
// the trial. The last process clears the rest and stops with SIGTERM;
// ground then runs in process on the same directory again for the
// end-state checks of every trial.
func TestExactlyOnceGroundKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills child processes")
	}
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(groundKillSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", groundKillSeedEnv, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, groundKillSeedEnv, seed)
	rng := rand.New(rand.NewPCG(seed, 0))

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tr := newTrial(t, ctx, trialOptions{ground: GroundOptions{Logger: testLogger()},
		cabin: CabinOptions{ReconnectWait: 50 * time.Millisecond, ReceiptAckWait: time.Second, Logger: testLogger()}})
	tr.c.Link.SetState(linkemu.Down)
	const sales, kills = 200, 3
	tr.sell(sales)
	tr.closeFlight()

	// Ground moves out of this process: what it wrote stays in its
	// directory, and each child in turn takes over its NATS port, where the
	// aircraft's link points. The link's cap spreads the replay over
	// several seconds, so that the kills fall while invoices still arrive.
	// The link stays down until the first child is up.
	cfg := tr.g.Config()
	if err := tr.g.Close(); err != nil {
		t.Fatal(err)
	}
	tr.c.Link.SetConfig(linkemu.Config{BitsPerSecond: 192_000, Latency: 20 * time.Millisecond})

	// Kill k falls once ground has taken in at least target invoices, drawn
	// from the k-th of equal slices of the stream between its first tenth
	// and its half, and at least one more than the process before it
	// posted: each killed process has cleared something, and there is more
	// to clear. At the target the link goes down (it closes every
	// connection and accepts none), so that nothing more reaches ground
	// however late the kill lands: the killed process can have posted only
	// what had crossed the link, and half the flight had not unless the
	// replay ran far ahead of clearing. A jitter between the two moves the
	// kill off the report it was read from, while clearing works through
	// what ground holds. The link comes up again once the next process is
	// up.
	lo, hi := sales/10, sales/2
	var posted int64 // sales posted when the last process was killed
	start := time.Now()
	for k := range kills {
		name := fmt.Sprintf("ground process %d", k+1)
		from, to := lo+k*(hi-lo)/kills, lo+(k+1)*(hi-lo)/kills
		target := max(int64(from+rng.IntN(to-from)), posted+1)
		jitter := time.Duration(rng.IntN(100)) * time.Millisecond
		ch := startGroundChild(t, name, cfg)
		tr.c.Link.SetState(linkemu.Up)
		// The report API may fail now and then on a loaded machine: only
		// the child exiting or the timeout ends the wait.
		var reportErr error // the report API's last error
		if err := Poll(ctx, 2*time.Minute, fmt.Sprintf("%s took in %d invoices", name, target), func() (bool, error) {
			select {
			case <-ch.done:
				return false, fmt.Errorf("%s exited: %v", name, ch.err)
			default:
			}
			n, err := ch.received(ctx, tr.g.API.Token, tr.flight)
			if err != nil {
				reportErr = err
				return false, nil
			}
			return int64(n) >= target, nil
		}); err != nil {
			t.Fatalf("%v (last report error: %v; aircraft counts %+v, replay %+v)",
				err, reportErr, tr.counts(), tr.c.Main.Replayer().Status())
		}
		tr.c.Link.SetState(linkemu.Down)
		time.Sleep(jitter)
		ch.kill(t, name)
		st := tr.groundCrashState(cfg.DataDir)
		t.Logf("kill %d at %v (target %d, +%v): ground had taken in %d invoices, posted %d sales, charged %d; aircraft counts %+v",
			k+1, time.Since(start).Round(time.Millisecond), target, jitter, st.received, st.sales, st.charged, tr.counts())
		switch {
		case st.sales >= sales:
			t.Fatalf("kill %d: ground had posted every invoice: it did not fall mid-stream", k+1)
		case st.sales <= posted:
			t.Fatalf("kill %d: %s posted nothing", k+1, name)
		}
		posted = st.sales
	}

	last := startGroundChild(t, "last ground process", cfg)
	tr.c.Link.SetState(linkemu.Up)
	tr.waitCleared(2 * time.Minute)
	t.Logf("every invoice cleared at %v", time.Since(start).Round(time.Millisecond))
	last.stop(t, "last ground process")
	if err := tr.g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tr.assertExactlyOnce()
	// The consumer numbers its deliveries, redeliveries included, as far as
	// the kills left its record of them.
	cons, err := tr.groundJS().Consumer(ctx, protocol.StreamInvoices, "airtab-clearing")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cons.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("clearing consumer: %d deliveries recorded for %d messages; done at %v",
		ci.Delivered.Consumer, ci.Delivered.Stream, time.Since(start).Round(time.Millisecond))
}
