package bench

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/harness"
)

// authorizeMethod says in the output how the authorize figure was made.
const authorizeMethod = "a real cabin server (onboard/app, SQLite journal with synchronous=FULL, group commit) " +
	"in process with its link down, each client a separate signed-in handheld (onboard/client, HTTPS with a " +
	"pinned certificate, one connection) sending one sale at a time with a fresh compact payment code and a " +
	"basket of 1 to 4 items; per_second counts approvals answered, each committed with fsync before its answer; " +
	"latency is per request, client send to answer; the bound is crypto/ed25519.Verify calls per second over " +
	"a real payment-code signature on GOMAXPROCS goroutines (best of 5 × 200 ms, just before the clients start) " +
	"÷ 1 verification per compact-code sale (the device signature; the credential was verified at manifest load). " +
	"Clients and server share the machine's cores."

// authorize runs the authorize section.
func (w *world) authorize(ctx context.Context) (AuthorizeResult, error) {
	o := w.opts
	f := w.flights[flightAuthorize].ID
	r := AuthorizeResult{Clients: o.Clients, VerificationsPerAuthorization: 1, Passengers: len(w.pax), Method: authorizeMethod}
	c, err := harness.StartCabin(ctx, w.g, w.aircraft[flightAuthorize], f, harness.CabinOptions{Logger: o.Logger})
	if err != nil {
		return r, err
	}
	defer c.Close()
	c.Link.SetState(linkemu.Down) // in the air: the bench measures the cabin server alone

	handhelds, err := w.signIn(ctx, c)
	if err != nil {
		return r, err
	}
	defer func() {
		for _, h := range handhelds {
			h.Close()
		}
	}()
	var codes []string
	if o.AuthorizeCount > 0 {
		start := time.Now()
		if codes, err = w.codes(ctx, f, o.AuthorizeCount); err != nil {
			return r, err
		}
		progress(o.Progress, "authorize: %d payment codes made by %d wallets in %.1f s (before the clock)",
			len(codes), len(w.pax), time.Since(start).Seconds())
	}
	baskets := make([][]onboard.Line, 64)
	for i := range baskets {
		baskets[i] = w.basket()
	}
	sample, err := w.pax[0].Wallet.PaymentCode(f, false)
	if err != nil {
		return r, err
	}
	cred, _ := w.pax[0].Wallet.Credential(f)
	sig, err := paymentCodeSignature(sample, cred)
	if err != nil {
		return r, err
	}
	if r.VerifyPerSecond, r.VerifyWorkers, err = verifyRate(ctx, sig); err != nil {
		return r, err
	}
	r.BoundPerSecond = r.VerifyPerSecond / float64(r.VerificationsPerAuthorization)
	progress(o.Progress, "authorize: bound %.0f verifications/s on %d goroutines; %d clients start",
		r.VerifyPerSecond, r.VerifyWorkers, o.Clients)

	before := c.Main.Cabin().Stats()
	runs, elapsed, err := w.drive(ctx, handhelds, codes, baskets, f)
	if err != nil {
		return r, err
	}
	after := c.Main.Cabin().Stats()
	r.Seconds = elapsed.Seconds()
	var lat []time.Duration
	for _, cr := range runs {
		r.Approved += cr.approved
		r.Declined += cr.declined
		for k, n := range cr.reasons {
			if r.DeclineReasons == nil {
				r.DeclineReasons = map[string]int{}
			}
			r.DeclineReasons[k] += n
		}
		lat = append(lat, cr.latency...)
	}
	slices.Sort(lat)
	r.P50MS, r.P99MS = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99))
	if len(lat) > 0 {
		r.MaxMS = ms(lat[len(lat)-1])
	}
	r.PerSecond = ratio(float64(r.Approved), r.Seconds)
	r.Ratio = ratio(r.PerSecond, r.BoundPerSecond)
	if approved := after.Approved - before.Approved; approved > 0 {
		r.CommitsPerApproval = float64(after.Commits-before.Commits) / float64(approved)
	}
	r.MaxBatch = after.MaxBatch
	if r.Approved == 0 {
		return r, fmt.Errorf("bench: authorize: no sale approved (declines: %v)", r.DeclineReasons)
	}
	progress(o.Progress, "authorize: %d approved, %d declined in %.2f s: %.0f/s, p50 %.2f ms, p99 %.2f ms; bound %.0f/s, ratio %.2f",
		r.Approved, r.Declined, r.Seconds, r.PerSecond, r.P50MS, r.P99MS, r.BoundPerSecond, r.Ratio)
	return r, nil
}

// signIn signs in one handheld per client, a crew member on each four.
func (w *world) signIn(ctx context.Context, c *harness.Cabin) ([]*client.Client, error) {
	crew := w.crew[flightAuthorize]
	var hs []*client.Client
	for i := range w.opts.Clients {
		m := crew[i/4]
		h, err := c.Handheld(ctx, fmt.Sprintf("hh-%03d", i+1), m.id, m.pin)
		if err != nil {
			for _, h := range hs {
				h.Close()
			}
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// clientRun is what one client saw.
type clientRun struct {
	approved, declined int
	reasons            map[string]int
	latency            []time.Duration
}

// drive runs one goroutine per handheld until the codes run out (count
// mode: client i sends codes i, i+clients, …) or AuthorizeSeconds pass (the
// client makes each code just before it sends it, passenger by passenger).
// It returns what each client saw and the time from the start to the last
// answer. Any error other than a decline stops the run: a transport or
// server failure is a bug to report, not a figure.
func (w *world) drive(ctx context.Context, hs []*client.Client, codes []string, baskets [][]onboard.Line,
	f protocol.FlightID) ([]clientRun, time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	runs := make([]clientRun, len(hs))
	deadline := time.Now().Add(time.Duration(w.opts.AuthorizeSeconds * float64(time.Second)))
	var wg sync.WaitGroup
	start := time.Now()
	for i, h := range hs {
		wg.Go(func() {
			cr := &runs[i]
			cr.latency = make([]time.Duration, 0, len(codes)/len(hs)+1)
			for k := i; ; k += len(hs) {
				if ctx.Err() != nil {
					return
				}
				var code string
				if codes != nil {
					if k >= len(codes) {
						return
					}
					code = codes[k]
				} else {
					if !time.Now().Before(deadline) {
						return
					}
					var err error
					if code, err = w.pax[k%len(w.pax)].Wallet.PaymentCode(f, false); err != nil {
						cancel(err)
						return
					}
				}
				req := onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: baskets[k%len(baskets)]}
				t0 := time.Now()
				d, err := h.Authorize(ctx, req)
				cr.latency = append(cr.latency, time.Since(t0))
				if err != nil {
					cancel(fmt.Errorf("bench: authorize on handheld %d: %w", i+1, err))
					return
				}
				if d.Approved {
					cr.approved++
					continue
				}
				cr.declined++
				if cr.reasons == nil {
					cr.reasons = map[string]int{}
				}
				if d.Decline != nil {
					cr.reasons[d.Decline.Name]++
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return nil, 0, err
	}
	return runs, elapsed, nil
}

// percentile returns the p-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
