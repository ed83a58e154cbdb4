package bench

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
)

// The clearing workers section, run when ground is on PostgreSQL
// (Options.Postgres): clearing throughput with one and with two clearing
// workers on the same durable consumer and database, one after the other
// in the same run, each from a stream filled with the same number of
// invoices.

// clearingWorkersMethod says in the output how the figures were made.
const clearingWorkersMethod = "for each worker count in turn: the clearing flight's cabin server sells N invoices offline " +
	"and replays them into the INVOICES stream as in the clearing section; then that many clearing services start at once, " +
	"each with its own PostgreSQL connection pool (as separate ground --role clearing processes have) on ground's " +
	"JetStream connection, sharing the durable consumer; the clock runs from their start to the server timestamp of " +
	"the last of the N receipts. Write transactions take turns on the database's writer lock (an advisory lock): " +
	"what runs in parallel across workers is verification, signing, the acquirer calls and NATS. The workers share " +
	"this machine's cores with ground's API, the embedded nats-server and PostgreSQL."

// ClearingWorkersResult is the clearing workers section.
type ClearingWorkersResult struct {
	// Invoices is N, the invoices each run clears.
	Invoices int `json:"invoices"`
	// Runs holds one run per worker count: 1, then 2.
	Runs []WorkersRun `json:"runs"`
	// Speedup is the two-worker throughput ÷ the one-worker throughput.
	Speedup float64 `json:"speedup_2_vs_1"`
	Method  string  `json:"method"`
}

// WorkersRun is one run of the clearing workers section.
type WorkersRun struct {
	Workers   int     `json:"workers"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	// Settled is how many of the run's invoices were settled (all, or the
	// section fails).
	Settled int `json:"settled"`
}

// clearingWorkers runs the clearing workers section.
func (w *world) clearingWorkers(ctx context.Context) (ClearingWorkersResult, error) {
	n := w.opts.ClearingInvoices
	r := ClearingWorkersResult{Invoices: n, Method: clearingWorkersMethod}
	for _, workers := range []int{1, 2} {
		run, err := w.clearWithWorkers(ctx, n, workers)
		if err != nil {
			return r, fmt.Errorf("bench: clearing with %d workers: %w", workers, err)
		}
		r.Runs = append(r.Runs, run)
		progress(w.opts.Progress, "clearing workers: %d worker(s) cleared %d invoices in %.2f s: %.0f/s",
			workers, n, run.Seconds, run.PerSecond)
	}
	r.Speedup = ratio(r.Runs[1].PerSecond, r.Runs[0].PerSecond)
	return r, nil
}

// clearWithWorkers fills the stream with n invoices and clears them with
// that many clearing services.
func (w *world) clearWithWorkers(ctx context.Context, n, workers int) (WorkersRun, error) {
	run := WorkersRun{Workers: workers}
	f := w.flights[flightClearing].ID
	before, err := w.clearer.Reports().Flight(ctx, f)
	if err != nil {
		return run, err
	}
	if _, err := w.fillInvoices(ctx, n); err != nil {
		return run, err
	}
	receipts, err := w.js.Stream(ctx, protocol.StreamReceipts)
	if err != nil {
		return run, err
	}
	info, err := receipts.Info(ctx)
	if err != nil {
		return run, err
	}
	svcs := make([]*clearing.Service, workers)
	for i := range svcs {
		db, err := store.Open(ctx, w.opts.Postgres)
		if err != nil {
			return run, err
		}
		defer db.Close()
		if svcs[i], err = w.newWorker(ctx, db); err != nil {
			return run, err
		}
	}
	runCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	errs := make([]error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	for i, s := range svcs {
		wg.Go(func() { errs[i] = s.Run(runCtx) })
	}
	go func() { wg.Wait(); close(stopped) }()
	last, err := waitReceipts(ctx, receipts, info.State.Msgs+uint64(n), stopped)
	stop()
	<-stopped
	if err := errors.Join(append(errs, err)...); err != nil {
		return run, err
	}
	elapsed := last.Sub(start)
	if elapsed <= 0 {
		elapsed = time.Since(start)
	}
	run.Seconds, run.PerSecond = elapsed.Seconds(), ratio(float64(n), elapsed.Seconds())
	after, err := w.clearer.Reports().Flight(ctx, f)
	if err != nil {
		return run, err
	}
	if run.Settled = after.Settled.Count - before.Settled.Count; run.Settled != n {
		return run, fmt.Errorf("%d of %d invoices settled (%d quarantined: %v)", run.Settled, n, after.Quarantined.Count, after.Reasons)
	}
	return run, nil
}

// newWorker is a clearing service like ground's, on its own database pool.
func (w *world) newWorker(ctx context.Context, db *sql.DB) (*clearing.Service, error) {
	return clearing.New(ctx, clearing.Config{DB: db, JS: w.js, Directory: w.g.Main.Registry(), IssuerKey: w.issuer,
		Acquirer: clearing.NewSimAcquirer(clearing.SimConfig{}), Logger: w.opts.Logger})
}
