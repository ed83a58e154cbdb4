package clearing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
)

// Several clearing workers: Services on one database and one durable
// JetStream consumer, as ground processes with --role clearing run them.
// The trials with worker processes killed and PostgreSQL restarted are in
// simulator/harness (workers_test.go).

// workerCount is an Observer counting the invoices one worker cleared.
type workerCount struct{ invoices, redelivered atomic.Int64 }

func (c *workerCount) BatchCleared(_ int, _ time.Duration, o BatchOutcomes) {
	c.invoices.Add(int64(o.Invoices))
	c.redelivered.Add(int64(o.Redelivered))
}

func (c *workerCount) ChargeRecorded(string, string) {}

// worker is one clearing Service of the harness's database and stream,
// run apart from h.svc.
type worker struct {
	svc    *Service
	count  *workerCount
	cancel context.CancelFunc
	done   chan error
}

// newWorker makes a Service with the harness's configuration (and tweaks)
// and its own observer; set hooks on it before run. On PostgreSQL it has a
// connection pool of its own, as a worker process has; on SQLite it shares
// the harness's one connection, as a ground process's services do.
func (h *harness) newWorker(tweak ...func(*Config)) *worker {
	h.t.Helper()
	cfg := h.cfg
	for _, f := range tweak {
		f(&cfg)
	}
	if store.IsPostgres(h.db) {
		db, err := store.Open(h.ctx, h.dsn)
		if err != nil {
			h.t.Fatal(err)
		}
		h.t.Cleanup(func() { db.Close() })
		cfg.DB = db
	}
	w := &worker{count: &workerCount{}}
	cfg.Observer = w.count
	svc, err := New(h.ctx, cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	w.svc = svc
	return w
}

// run starts the worker's Run; the worker is stopped when the test ends.
func (w *worker) run(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan error, 1)
	go func() { w.done <- w.svc.Run(ctx) }()
	t.Cleanup(func() { w.stop(t) })
}

// stop stops the worker and waits for Run to return. Safe to repeat.
func (w *worker) stop(t testing.TB) {
	if w.cancel == nil {
		return
	}
	w.cancel()
	if err := <-w.done; err != nil {
		t.Errorf("Run: %v", err)
	}
	w.cancel = nil
}

// wantOnce checks that each invoice is a settled sale with one sale
// transfer, one charge and one receipt in the receipt stream (the receipt
// of an invoice cleared by two workers is dropped by its Nats-Msg-Id).
func (h *harness) wantOnce(invs []*protocol.SignedInvoice) {
	h.t.Helper()
	rs := h.waitReceipts(invs...)
	for _, inv := range invs {
		id := inv.Body.ID
		wantStatus(h.t, h.record(id), StatusSettled)
		tr := h.transfers(id)
		sale, wallet, card := ledger.TransferSale.String(), ledger.TransferWalletCharge.String(), ledger.TransferCardCapture.String()
		if tr[sale] != 1 || tr[wallet]+tr[card] != 1 || len(tr) != 2 {
			h.t.Fatalf("invoice %s in the ledger: %v, want one sale and one charge", id, tr)
		}
		if n := len(rs[id]); n != 1 {
			h.t.Fatalf("invoice %s has %d receipts in the stream, want 1", id, n)
		}
	}
	h.checkLedger()
}

// sales makes n sales of minor each, spread over pax in turn.
func (h *harness) sales(pax []*clearingtest.Passenger, n int, minor int64) []*protocol.SignedInvoice {
	h.t.Helper()
	out := make([]*protocol.SignedInvoice, n)
	for i := range out {
		out[i] = h.sale(pax[i%len(pax)], minor)
	}
	return out
}

// TestWorkersShareConsumer: two workers on one durable consumer split the
// stream between them, and every invoice is cleared once. The first worker
// holds its first batch (after its commit) until the second has cleared
// some, so that both take a share however the fetches fall.
func TestWorkersShareConsumer(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BatchSize = 8 })
	var pax []*clearingtest.Passenger
	for i := range 4 {
		pax = append(pax, h.passenger(cardWith(fmt.Sprintf("tok_ok_%d", i)), 200_00))
	}
	invs := h.sales(pax, 160, 1_00)

	a, b := h.newWorker(), h.newWorker()
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	a.svc.hooks.afterPost = func() error {
		once.Do(func() { close(held); <-release })
		return nil
	}
	h.send(invs...)
	a.run(t)
	<-held
	b.run(t)
	waitFor(t, func() error {
		if n := b.count.invoices.Load(); n < 16 {
			return fmt.Errorf("the second worker cleared %d invoices, want 16", n)
		}
		return nil
	})
	close(release)
	h.wantOnce(invs)
	na, nb := a.count.invoices.Load(), b.count.invoices.Load()
	t.Logf("worker A cleared %d invoices, worker B %d", na, nb)
	if na == 0 || nb == 0 || na+nb < int64(len(invs)) {
		t.Fatalf("workers cleared %d and %d invoices of %d: want both a share, together all", na, nb, len(invs))
	}
}

// TestWorkerDiesMidBatch: a worker that posts a batch and stops before it
// charges, sends receipts or acks (as a killed process does) leaves its
// messages to JetStream, which redelivers them after AckWait to the other
// worker: that one finds the sales posted, charges them with the same
// idempotency key and sends their receipts. Each invoice once.
func TestWorkerDiesMidBatch(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.BatchSize = 8
		c.AckWait, c.BatchTimeout, c.ChargePhaseTimeout, c.CaptureTimeout, c.PublishTimeout =
			3*time.Second, 1400*time.Millisecond, time.Second, 500*time.Millisecond, time.Second
	})
	pax := []*clearingtest.Passenger{h.passenger(cardWith("tok_ok_1"), 200_00), h.passenger(wallet, 200_00)}
	if err := h.newWorker().svc.TopUp(h.ctx, pax[1].ID, eur(200_00), protocol.NewID(nil)); err != nil {
		t.Fatal(err)
	}
	invs := h.sales(pax, 40, 2_00)

	dying := h.newWorker()
	var died atomic.Bool
	dying.svc.hooks.afterPost = func() error {
		if died.CompareAndSwap(false, true) {
			go dying.cancel() // stop fetching: what it holds waits for AckWait
			return errors.New("killed after the commit")
		}
		return nil
	}
	h.send(invs...)
	dying.run(t)
	waitFor(t, func() error {
		if !died.Load() {
			return errors.New("the first worker has not posted a batch")
		}
		return nil
	})
	dying.stop(t)
	posted := 0
	for _, inv := range invs {
		if r, ok, err := LookupInvoice(h.ctx, h.db, inv.Body.ID); err != nil {
			t.Fatal(err)
		} else if ok {
			posted++
			if r.Status != StatusPosted && r.Status != StatusSettled {
				t.Fatalf("invoice %s left %s by the stopped worker", r.ID, r.Status)
			}
		}
	}
	if posted == 0 {
		t.Fatal("the stopped worker committed nothing")
	}
	other := h.newWorker()
	other.run(t)
	h.wantOnce(invs)
	t.Logf("the stopped worker committed %d invoices; the other cleared %d (%d redelivered)", posted, other.count.invoices.Load(), other.count.redelivered.Load())
}

// TestWorkersOnePassengerAtOnce: two workers clear many sales of one
// passenger at the same moment, in small batches that interleave. The
// wallet never goes negative, the flight limit holds, and each invoice is
// posted once, whichever worker clears it: 40 sales of 3.50 against a
// limit of 60.00 post 17 (59.50) and dispute the rest; a wallet of 40.00
// pays 11 of them (38.50) and leaves 6 in collections with 1.50 left.
func TestWorkersOnePassengerAtOnce(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.BatchSize = 2 })
	p := h.passenger(wallet, 60_00)
	a, b := h.newWorker(), h.newWorker()
	if err := a.svc.TopUp(h.ctx, p.ID, eur(40_00), protocol.NewID(nil)); err != nil {
		t.Fatal(err)
	}
	invs := h.sales([]*clearingtest.Passenger{p}, 40, 3_50)
	a.run(t)
	b.run(t)
	h.send(invs...)
	rs := h.waitReceipts(invs...)

	counts := map[Status]int{}
	var postedMinor int64
	for _, inv := range invs {
		r := h.record(inv.Body.ID)
		counts[r.Status]++
		tr := h.transfers(r.ID)
		switch r.Status {
		case StatusSettled, StatusCollections:
			postedMinor += r.Total.Minor
			if tr[ledger.TransferSale.String()] != 1 {
				t.Fatalf("posted invoice %s has transfers %v, want one sale", r.ID, tr)
			}
		case StatusDisputed:
			if r.Reason != protocol.ReasonOverPassengerLimit || len(tr) != 0 {
				t.Fatalf("disputed invoice %s: reason %s, transfers %v; want over the limit, none", r.ID, r.Reason, tr)
			}
		default:
			t.Fatalf("invoice %s is %s", r.ID, r.Status)
		}
		if len(rs[r.ID]) != 1 {
			t.Fatalf("invoice %s has %d receipts, want 1", r.ID, len(rs[r.ID]))
		}
	}
	if want := map[Status]int{StatusSettled: 11, StatusCollections: 6, StatusDisputed: 23}; fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("invoices by status %v, want %v", counts, want)
	}
	if postedMinor > 60_00 {
		t.Fatalf("posted %d minor on the flight, over the limit of 6000", postedMinor)
	}
	if got, want := h.balance(ledger.WalletAccount(p.ID, "EUR")), eur(1_50); got != want {
		t.Fatalf("wallet = %v, want %v", got, want)
	}
	h.checkLedger()
	t.Logf("worker A cleared %d invoices, worker B %d", a.count.invoices.Load(), b.count.invoices.Load())
}
