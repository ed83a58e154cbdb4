package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/harness"
)

// clearingMethod says in the output how the clearing figure was made.
const clearingMethod = "the invoices are sold offline by a real cabin server (in-process Cabin.Authorize, real " +
	"wallet codes) and replayed by its real replayer into ground's JetStream INVOICES stream while ground's " +
	"clearing service is built but not running; the cabin server is then stopped, and the clock runs from " +
	"clearing's Run to the server timestamp of the last of the N receipts in the RECEIPTS stream (verify aircraft " +
	"and device signatures, post to the double-entry ledger, charge wallet or simulated card acquirer, sign and " +
	"publish the receipt, ack); half the passengers pay by wallet, half by card. The bound is crypto/ed25519.Verify " +
	"calls per second on GOMAXPROCS goroutines, measured just before clearing starts, ÷ verifications_per_invoice: " +
	"2 per invoice (aircraft, device) plus each credential's issuer signature once per clearing process " +
	"(ground caches it by hash), spread over the invoices."

// clearing runs the clearing section.
func (w *world) clearing(ctx context.Context) (ClearingResult, error) {
	o := w.opts
	n := o.ClearingInvoices
	f := w.flights[flightClearing].ID
	r := ClearingResult{Invoices: n, Passengers: min(len(w.pax), n), Method: clearingMethod}
	r.VerificationsPerInvoice = 2 + float64(r.Passengers)/float64(n)

	fillStart := time.Now()
	sig, err := w.fillInvoices(ctx, n)
	if err != nil {
		return r, err
	}
	r.FillSeconds = time.Since(fillStart).Seconds()
	progress(o.Progress, "clearing: %d invoices sold offline and replayed into JetStream in %.1f s", n, r.FillSeconds)

	receipts, err := w.js.Stream(ctx, protocol.StreamReceipts)
	if err != nil {
		return r, err
	}
	info, err := receipts.Info(ctx)
	if err != nil {
		return r, err
	}
	before := info.State.Msgs
	if r.VerifyPerSecond, r.VerifyWorkers, err = verifyRate(ctx, sig); err != nil {
		return r, err
	}
	r.BoundPerSecond = r.VerifyPerSecond / r.VerificationsPerInvoice
	progress(o.Progress, "clearing: bound %.0f verifications/s ÷ %.3f per invoice; clearing starts",
		r.VerifyPerSecond, r.VerificationsPerInvoice)

	idle, err := idleCPU(ctx, receipts, idleWindow)
	if err != nil {
		return r, err
	}
	stopProfile, err := startProfile(o.ClearingCPUProfile)
	if err != nil {
		return r, err
	}
	runCtx, stop := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	var runErr error
	cpu0, cpuOK := selfCPU()
	start := time.Now()
	go func() {
		defer close(stopped)
		runErr = w.clearer.Run(runCtx)
	}()
	last, err := waitReceipts(ctx, receipts, before+uint64(n), stopped)
	cpu1, _ := selfCPU()
	err = errors.Join(err, stopProfile())
	window := time.Since(start)
	stop()
	<-stopped
	if runErr != nil {
		err = errors.Join(err, fmt.Errorf("bench: clearing stopped: %w", runErr))
	}
	if err != nil {
		return r, err
	}
	elapsed := last.Sub(start)
	if elapsed <= 0 { // the server's clock and ours are the same clock; guard anyway
		elapsed = time.Since(start)
	}
	r.Seconds = elapsed.Seconds()
	r.PerSecond = ratio(float64(n), r.Seconds)
	r.Ratio = ratio(r.PerSecond, r.BoundPerSecond)
	if cpuOK && idle.ok {
		c := clearingCPU(cpu1-cpu0, window, idle, n)
		r.CPU = &c
		progress(o.Progress, "clearing: process CPU %.0f µs per invoice (%.2f s over %.2f s, less %.0f ms of idle polling)",
			r.CPU.MicrosPerInvoice, r.CPU.ProcessSeconds, r.CPU.WindowSeconds, 1000*r.CPU.IdleSeconds)
		r.CPUMicrosPerInvoice = r.CPU.MicrosPerInvoice
	}

	rep, err := w.clearer.Reports().Flight(ctx, f)
	if err != nil {
		return r, err
	}
	r.Settled, r.Quarantined = rep.Settled.Count, rep.Quarantined.Count
	if r.Settled != n {
		return r, fmt.Errorf("bench: clearing: %d of %d invoices settled (%d quarantined: %v)", r.Settled, n, r.Quarantined, rep.Reasons)
	}
	progress(o.Progress, "clearing: %d invoices cleared in %.2f s: %.0f/s; bound %.0f/s, ratio %.2f",
		n, r.Seconds, r.PerSecond, r.BoundPerSecond, r.Ratio)
	return r, nil
}

// fillInvoices sells n invoices on the clearing flight's cabin server with
// its link down, brings the link up, waits until its replayer has put every
// one into the INVOICES stream, and stops the cabin server. It returns a
// real payment-code signature for the bound.
func (w *world) fillInvoices(ctx context.Context, n int) (signature, error) {
	f := w.flights[flightClearing].ID
	invoices, err := w.js.Stream(ctx, protocol.StreamInvoices)
	if err != nil {
		return signature{}, err
	}
	info, err := invoices.Info(ctx)
	if err != nil {
		return signature{}, err
	}
	before := info.State.Msgs
	c, err := harness.StartCabin(ctx, w.g, w.aircraft[flightClearing], f, harness.CabinOptions{Logger: w.opts.Logger})
	if err != nil {
		return signature{}, err
	}
	closeCabin := sync.OnceValue(c.Close)
	defer closeCabin()
	c.Link.SetState(linkemu.Down)
	codes, err := w.codes(ctx, f, n)
	if err != nil {
		return signature{}, err
	}
	cred, _ := w.pax[0].Wallet.Credential(f)
	sig, err := paymentCodeSignature(codes[0], cred)
	if err != nil {
		return signature{}, err
	}
	if err := w.sellInProcess(ctx, c.Main.Cabin(), codes); err != nil {
		return signature{}, err
	}
	c.Link.SetState(linkemu.Up)
	err = harness.Poll(ctx, 5*time.Minute, "invoices replayed into JetStream", func() (bool, error) {
		info, err := invoices.Info(ctx)
		return err == nil && info.State.Msgs >= before+uint64(n), err
	})
	if err != nil {
		return signature{}, err
	}
	return sig, closeCabin()
}

// sellInProcess approves one sale per code on cabin, 32 at a time.
func (w *world) sellInProcess(ctx context.Context, cabin *onboard.Cabin, codes []string) error {
	crew := w.crew[flightClearing][0].id
	baskets := make([][]onboard.Line, 64)
	for i := range baskets {
		baskets[i] = w.basket()
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 32)
	for k := range errs {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(codes) || ctx.Err() != nil {
					return
				}
				d, err := cabin.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: codes[i],
					Lines: baskets[i%len(baskets)], Crew: crew})
				if err == nil && !d.Approved {
					err = fmt.Errorf("bench: clearing flight sale declined: %s", d.Decline.Name)
				}
				if err != nil {
					errs[k] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitReceipts waits until the RECEIPTS stream holds want messages and
// returns the server's timestamp of the last one, or fails when clearing
// stops first. It polls every 20 ms; the timestamp, not the poll, ends the
// measurement.
func waitReceipts(ctx context.Context, receipts jetstream.Stream, want uint64, stopped <-chan struct{}) (time.Time, error) {
	timeout := time.After(10 * time.Minute)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		info, err := receipts.Info(ctx)
		if err != nil {
			return time.Time{}, err
		}
		if info.State.Msgs >= want {
			return info.State.LastTime, nil
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-stopped:
			return time.Time{}, fmt.Errorf("bench: clearing stopped with %d of %d receipts", info.State.Msgs, want)
		case <-timeout:
			return time.Time{}, fmt.Errorf("bench: %d of %d receipts after 10 minutes", info.State.Msgs, want)
		case <-tick.C:
		}
	}
}

// idleWindow is how long idleCPU watches the process with clearing not
// running: long enough for 25 polls.
const idleWindow = 500 * time.Millisecond

// idleRate is the process CPU spent per second of wall time while nothing
// but the bench's receipt poll (and idle ground) runs.
type idleRate struct {
	perSecond float64 // CPU seconds per wall second
	ok        bool
}

// idleCPU measures the process's CPU over d while polling receipts the
// way waitReceipts does, with clearing not yet running: what the clearing
// window would cost with no invoice to clear (the poll and its answers in
// the embedded NATS server, timers, idle ground), to be taken off the
// clearing figure.
func idleCPU(ctx context.Context, receipts jetstream.Stream, d time.Duration) (idleRate, error) {
	c0, ok := selfCPU()
	if !ok {
		return idleRate{}, nil
	}
	start := time.Now()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Since(start) < d {
		if _, err := receipts.Info(ctx); err != nil {
			return idleRate{}, err
		}
		select {
		case <-ctx.Done():
			return idleRate{}, ctx.Err()
		case <-tick.C:
		}
	}
	c1, _ := selfCPU()
	return idleRate{perSecond: (c1 - c0).Seconds() / time.Since(start).Seconds(), ok: true}, nil
}

// clearingCPU makes the CPU figure of the clearing section from the
// process CPU spent over the window from Run's start to the last receipt
// seen, less the idle rate over the same window.
func clearingCPU(spent, window time.Duration, idle idleRate, n int) ClearingCPU {
	c := ClearingCPU{
		ProcessSeconds: spent.Seconds(), WindowSeconds: window.Seconds(),
		IdleSeconds: idle.perSecond * window.Seconds(), Method: clearingCPUMethod,
	}
	c.MicrosPerInvoice = 1e6 * max(c.ProcessSeconds-c.IdleSeconds, 0) / float64(n)
	c.CoresBusy = ratio(c.ProcessSeconds-c.IdleSeconds, c.WindowSeconds)
	return c
}

// clearingCPUMethod says in the output how cpu_us_per_invoice was made.
const clearingCPUMethod = "user+system CPU of the bench process (getrusage RUSAGE_SELF) from clearing's Run to the bench " +
	"seeing the last receipt, less the process's CPU rate measured over 0.5 s just before with clearing not running " +
	"and the same 20 ms receipt poll going (the load generator's only work in the window; the cabin server that sold " +
	"and replayed the invoices is stopped by then), times the window. What remains is ground's: the clearing service, " +
	"the registry lookups, the embedded NATS server delivering invoices and storing receipts, SQLite, and the Go " +
	"runtime's GC over the whole bench process's heap."

// ClearingCPU is how the clearing section's CPU figure was made.
type ClearingCPU struct {
	MicrosPerInvoice float64 `json:"us_per_invoice"`
	// ProcessSeconds is the process's CPU over the window; IdleSeconds
	// the part of it taken off as the bench's own polling.
	ProcessSeconds float64 `json:"process_seconds"`
	IdleSeconds    float64 `json:"idle_seconds"`
	WindowSeconds  float64 `json:"window_seconds"`
	// CoresBusy is ground's CPU over the window ÷ the window: how many
	// cores clearing kept busy.
	CoresBusy float64 `json:"cores_busy"`
	Method    string  `json:"method"`
}

// startProfile starts a CPU profile into path, when path is set, and
// returns the function that stops it and closes the file.
func startProfile(path string) (func() error, error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("bench: clearing profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("bench: clearing profile: %w", err)
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}
