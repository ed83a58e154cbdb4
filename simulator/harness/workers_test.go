package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"

	gapp "github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/store/pgtest"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

// The failover trials of ground beyond one process: a shared PostgreSQL
// (a throwaway server from ground/store/pgtest), an external JetStream (an
// in-process natscluster), an API process, and clearing workers on one
// durable consumer. Where PostgreSQL is not installed they skip and say so
// (under CI=true they fail: CI installs it).

// workerChildEnv makes this test binary run a clearing worker (ground with
// --role clearing) with the configuration in it instead of the tests.
const workerChildEnv = "AIRTAB_WORKER_CHILD"

// workerChildConfig is what a clearing worker child is given.
type workerChildConfig struct {
	DataDir      string
	Postgres     string
	NATSURL      string
	NATSNKeyFile string // ground's login on the cluster
	NATSReplicas int
	// AcquirerLatency is each card call's time at the simulated
	// acquirer: it keeps a batch in a worker's hands long enough for a
	// kill to find one there. Each capture is logged as it starts
	// (captureStarted).
	AcquirerLatency time.Duration
}

// captureStarted is the message a worker child logs as a card capture
// starts: its batch is then posted and not yet acknowledged.
const captureStarted = "capture started"

// announcingAcquirer logs each capture as it starts.
type announcingAcquirer struct {
	clearing.Acquirer
	log *slog.Logger
}

func (a announcingAcquirer) Capture(ctx context.Context, req clearing.CaptureRequest) (clearing.CaptureResult, error) {
	a.log.Info(captureStarted, "invoice", req.Key)
	return a.Acquirer.Capture(ctx, req)
}

// runWorkerChild runs a clearing worker with the configuration encoded in
// cfg until SIGTERM, logging JSON to stderr, and returns the exit code. Its
// clearing has the short timeouts of the ground kill trial, so a message a
// killed worker held comes back to the other in seconds.
func runWorkerChild(cfg string) int {
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	var c workerChildConfig
	if err := json.Unmarshal([]byte(cfg), &c); err != nil {
		log.Error("worker child configuration", "err", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := &gapp.Main{Config: gapp.Config{Role: gapp.RoleClearing, DataDir: c.DataDir, Postgres: c.Postgres, NATSURL: c.NATSURL,
		NATSNKeyFile: c.NATSNKeyFile, NATSReplicas: c.NATSReplicas, HTTPAddr: "127.0.0.1:0", Logger: log}}
	m.Wire = func(ctx context.Context, d gapp.Deps) (gapp.Extensions, error) {
		svc, err := clearing.New(ctx, clearing.Config{DB: d.DB, JS: d.JetStream, Directory: d.Registry, IssuerKey: d.Issuer,
			Acquirer: announcingAcquirer{clearing.NewSimAcquirer(clearing.SimConfig{Clock: d.Clock, Latency: c.AcquirerLatency}), log}, Clock: d.Clock, Logger: d.Logger,
			AckWait: childAckWait, BatchTimeout: childBatchTimeout, ChargePhaseTimeout: childChargePhaseTimeout})
		if err != nil {
			return gapp.Extensions{}, err
		}
		return gapp.Extensions{Services: []gapp.Service{svc}}, nil
	}
	if err := m.Run(ctx); err != nil {
		log.Error("worker child failed to start", "err", err)
		return 1
	}
	select {
	case <-ctx.Done():
	case <-m.Done():
	}
	if err := errors.Join(m.Err(), m.Close()); err != nil {
		log.Error("worker child stopped with an error", "err", err)
		return 1
	}
	return 0
}

// startWorkerChild runs a clearing worker of g as a child process, its
// simulated acquirer taking acquirerLatency per card call.
func startWorkerChild(t *testing.T, name string, g *Ground, acquirerLatency time.Duration) *groundChild {
	t.Helper()
	cfg := g.WorkerConfig()
	enc, err := json.Marshal(workerChildConfig{DataDir: cfg.DataDir, Postgres: cfg.Postgres, NATSURL: cfg.NATSURL,
		NATSNKeyFile: cfg.NATSNKeyFile, NATSReplicas: cfg.NATSReplicas, AcquirerLatency: acquirerLatency})
	if err != nil {
		t.Fatal(err)
	}
	return startChild(t, name, workerChildEnv+"="+string(enc))
}

// sharedGround is what a trial of several ground processes runs on: a
// fresh database on a throwaway PostgreSQL server, and a three-node
// JetStream cluster (R3 streams) as the external NATS.
func sharedGround(t *testing.T, ctx context.Context) (*pgtest.Server, GroundOptions) {
	t.Helper()
	// Durable: every commit on disk before it returns, as in production,
	// so that a server killed keeps what it committed.
	pg, err := pgtest.StartServer(ctx, pgtest.Options{Durable: true})
	if err != nil {
		pgtest.SkipOrFail(t, err)
	}
	t.Cleanup(func() {
		if err := pg.Close(); err != nil {
			t.Errorf("pgtest: %v", err)
		}
	})
	dsn := pg.NewDatabase(t)
	cl, err := StartNATSCluster(ctx, t.TempDir(), 3, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return pg, GroundOptions{Logger: testLogger(), Postgres: dsn, NATSCluster: cl}
}

// received is how many of the trial flight's invoices clearing has taken in.
func (tr *trial) received() int {
	tr.t.Helper()
	var n int
	if err := tr.g.Main.DB().QueryRowContext(tr.ctx, `SELECT count(*) FROM clearing_invoices WHERE flight = ?`, tr.flight).Scan(&n); err != nil {
		return -1 // the database is down (the restart trial): not yet
	}
	return n
}

// waitReceived waits until clearing has taken in at least n invoices.
func (tr *trial) waitReceived(n int) {
	tr.t.Helper()
	if err := Poll(tr.ctx, 2*time.Minute, fmt.Sprintf("clearing took in %d invoices", n), func() (bool, error) {
		return tr.received() >= n, nil
	}); err != nil {
		tr.t.Fatalf("%v (aircraft counts %+v)", err, tr.counts())
	}
}

// TestClearingWorkerKilled: two clearing workers, child processes on one
// PostgreSQL database and one durable JetStream consumer, clear a replay
// that a bandwidth-limited link spreads over seconds; one is killed with
// SIGKILL mid-stream. The other takes over what the killed one held (after
// the consumer's AckWait) and the rest of the stream: every invoice is
// posted and charged once, the ledger balances and the flight reconciles.
func TestClearingWorkerKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and kills child processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	_, gopts := sharedGround(t, ctx)
	gopts.Role = gapp.RoleAPI // clearing runs only in the workers
	tr := newTrial(t, ctx, trialOptions{ground: gopts,
		cabin: CabinOptions{ReconnectWait: 50 * time.Millisecond, ReceiptAckWait: time.Second, Logger: testLogger()}})
	tr.c.SetLinkState(linkemu.Down)
	const sales = 200
	tr.sell(sales)
	tr.closeFlight()

	// Worker 1's card captures take 2 s each, and it logs each as it
	// starts: it is killed just after it starts one, while that batch is
	// posted and not acknowledged. Worker 2's acquirer answers at once.
	w1 := startWorkerChild(t, "clearing worker 1", tr.g, 2*time.Second)
	w2 := startWorkerChild(t, "clearing worker 2", tr.g, 0)
	tr.c.SetLinkConfig(linkemu.Config{BitsPerSecond: 192_000, Latency: 20 * time.Millisecond})
	tr.c.SetLinkState(linkemu.Up)
	start := time.Now()
	tr.waitReceived(sales / 4)
	before := w1.captures.Load()
	if err := Poll(ctx, time.Minute, "worker 1 starting a capture", func() (bool, error) {
		return w1.captures.Load() > before, nil
	}); err != nil {
		t.Fatal(err)
	}
	w1.kill(t, "clearing worker 1")
	at := tr.received()
	t.Logf("worker 1 killed at %v with %d of %d invoices taken in", time.Since(start).Round(time.Millisecond), at, sales)
	if at >= sales {
		t.Fatalf("every invoice was in before the kill: it did not fall mid-stream")
	}
	tr.waitCleared(3 * time.Minute)
	t.Logf("every invoice cleared at %v", time.Since(start).Round(time.Millisecond))
	w2.stop(t, "clearing worker 2")
	tr.assertExactlyOnce()
	if delivered, msgs := tr.deliveries(); delivered <= msgs {
		t.Fatalf("clearing consumer: %d deliveries for %d messages: the killed worker held nothing for the other to take over", delivered, msgs)
	}
}

// deliveries logs and returns how many deliveries the clearing consumer
// made for how many messages: more deliveries than messages are
// redeliveries, of what a killed worker held or of batches that failed.
func (tr *trial) deliveries() (delivered, msgs uint64) {
	tr.t.Helper()
	cons, err := tr.groundJS().Consumer(tr.ctx, protocol.StreamInvoices, "airtab-clearing")
	if err != nil {
		tr.t.Fatal(err)
	}
	ci, err := cons.Info(tr.ctx)
	if err != nil {
		tr.t.Fatal(err)
	}
	tr.t.Logf("clearing consumer: %d deliveries for %d messages", ci.Delivered.Consumer, ci.Delivered.Stream)
	return ci.Delivered.Consumer, ci.Delivered.Stream
}

// TestPostgresRestartMidClearing: PostgreSQL is killed with SIGKILL, as a
// crash would end it, and restarted while two clearing workers clear a
// replay. The batches that fail for it are redelivered, the workers' pools
// reconnect, and every invoice is posted and charged once; nothing is
// quarantined or disputed for a database that was down (the flight
// reconciles with every sale settled).
func TestPostgresRestartMidClearing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and restarts PostgreSQL")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	pg, gopts := sharedGround(t, ctx)
	gopts.Workers = 2
	tr := newTrial(t, ctx, trialOptions{ground: gopts,
		cabin: CabinOptions{ReconnectWait: 50 * time.Millisecond, ReceiptAckWait: time.Second, Logger: testLogger()}})
	tr.c.SetLinkState(linkemu.Down)
	const sales = 200
	tr.sell(sales)
	tr.closeFlight()

	tr.c.SetLinkConfig(linkemu.Config{BitsPerSecond: 192_000, Latency: 20 * time.Millisecond})
	tr.c.SetLinkState(linkemu.Up)
	start := time.Now()
	tr.waitReceived(sales / 4)
	at := tr.received()
	if err := pg.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("PostgreSQL killed and restarted at %v with %d of %d invoices taken in", time.Since(start).Round(time.Millisecond), at, sales)
	if at >= sales {
		t.Fatalf("every invoice was in before the restart: it did not fall mid-stream")
	}
	tr.waitCleared(3 * time.Minute)
	t.Logf("every invoice cleared at %v", time.Since(start).Round(time.Millisecond))
	for i, w := range tr.g.Workers {
		if err := w.Err(); err != nil {
			t.Fatalf("clearing worker %d failed: %v", i+1, err)
		}
	}
	tr.assertExactlyOnce()
	tr.deliveries()
}
