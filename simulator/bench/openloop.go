package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/protocol"
)

// openLoopMethod says in the output how the open-loop figures were made.
const openLoopMethod = "after the closed-loop run, on the same cabin server child: each handheld has its own " +
	"Poisson arrival schedule (exponential gaps, seeded) at offered_per_s ÷ handhelds, so together they offer " +
	"offered_per_s; a handheld sends each sale at its scheduled time, or as soon as its previous answer is in when " +
	"it is late, and latency runs from the scheduled time to the answer (no coordinated omission: a slow answer " +
	"delays the sales queued behind it, and their wait counts). Payment codes are made before the clock. " +
	"achieved_per_s is approvals ÷ the time from the start to the last answer. send_lag_p99_ms is how late the " +
	"sends were (a handheld still waiting for its previous answer, or its goroutine waiting for a core), " +
	"service_p50_ms and service_p99_ms the latency from the actual send: p99_ms well above service_p99_ms means " +
	"the lateness is the load generator's or the machine's, not the answers'."

// openLoop runs the open-loop section at OpenLoopRate sales per second for
// OpenLoopSeconds, spread over the handhelds.
func (w *world) openLoop(ctx context.Context, c *authorizeCabin, hs []*client.Client, baskets [][]onboard.Line,
	f protocol.FlightID) (OpenLoopResult, error) {
	o := w.opts
	r := OpenLoopResult{OfferedPerSecond: o.OpenLoopRate, Handhelds: len(hs), ScheduleSeconds: o.OpenLoopSeconds,
		Method: openLoopMethod}
	sched := poissonSchedules(o.Seed, len(hs), o.OpenLoopRate, time.Duration(o.OpenLoopSeconds*float64(time.Second)))
	n := 0
	for _, s := range sched {
		n += len(s)
	}
	r.Scheduled = n
	start := time.Now()
	codes, err := w.codes(ctx, f, n)
	if err != nil {
		return r, err
	}
	progress(o.Progress, "open loop: %d sales scheduled over %g s on %d handhelds; codes made in %.1f s",
		n, o.OpenLoopSeconds, len(hs), time.Since(start).Seconds())

	before, err := c.stats(ctx)
	if err != nil {
		return r, err
	}
	cpu0, err := procCPU(c.proc.Pid())
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	runs := make([]scheduledRun, len(hs))
	var wg sync.WaitGroup
	next := 0
	start = time.Now().Add(50 * time.Millisecond) // every goroutine is waiting before the first arrival
	for i, h := range hs {
		mine := codes[next : next+len(sched[i])]
		next += len(sched[i])
		wg.Go(func() {
			var err error
			if runs[i], err = sendOnSchedule(ctx, h, start, sched[i], mine, baskets, i); err != nil {
				cancel(fmt.Errorf("bench: open loop: authorize on handheld %d: %w", i+1, err))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return r, fmt.Errorf("%w\n%s", err, c.proc.Logs())
	}
	cpu1, err := procCPU(c.proc.Pid())
	if err != nil {
		return r, err
	}
	after, err := c.stats(ctx)
	if err != nil {
		return r, err
	}
	if approved := after.Approved - before.Approved; approved > 0 {
		r.CommitsPerApproval = float64(after.Commits-before.Commits) / float64(approved)
	}
	summarizeOpen(&r, runs)
	r.Seconds = elapsed.Seconds()
	r.AchievedPerSecond = ratio(float64(r.Approved), r.Seconds)
	if r.Approved > 0 {
		r.ServerCPUUSPerApproval = us(cpu1-cpu0) / float64(r.Approved)
	}
	progress(o.Progress, "open loop: offered %.0f/s, achieved %.0f/s (%d approved, %d declined in %.2f s): p50 %.2f ms, p99 %.2f ms, max %.2f ms (from the send: p50 %.2f ms, p99 %.2f ms; send lag p99 %.2f ms); %.0f µs server CPU per approval, %.2f commits per approval",
		r.OfferedPerSecond, r.AchievedPerSecond, r.Approved, r.Declined, r.Seconds, r.P50MS, r.P99MS, r.MaxMS,
		r.ServiceP50MS, r.ServiceP99MS, r.SendLagP99MS, r.ServerCPUUSPerApproval, r.CommitsPerApproval)
	if r.Approved == 0 {
		return r, fmt.Errorf("bench: open loop: no sale approved")
	}
	return r, nil
}

// scheduledRun is what one handheld saw in the open loop, latencies per
// sale in the order sent.
type scheduledRun struct {
	approved, declined int
	latency            []time.Duration // scheduled time to the answer
	lag                []time.Duration // scheduled time to the send
	service            []time.Duration // send to the answer
}

// sendOnSchedule sends the sale with codes[k] at start+at[k], or as soon as
// the previous answer is in when that is later, until ctx ends or a call
// fails. Basket k comes from baskets, offset by the handheld's index i.
func sendOnSchedule(ctx context.Context, h *client.Client, start time.Time, at []time.Duration, codes []string,
	baskets [][]onboard.Line, i int) (scheduledRun, error) {
	run := scheduledRun{latency: make([]time.Duration, 0, len(at)), lag: make([]time.Duration, 0, len(at)),
		service: make([]time.Duration, 0, len(at))}
	for k := range at {
		due := start.Add(at[k])
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return run, nil
			}
		}
		req := onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: codes[k], Lines: baskets[(i+k)%len(baskets)]}
		sent := time.Now()
		d, err := h.Authorize(ctx, req)
		done := time.Now()
		run.latency = append(run.latency, done.Sub(due))
		run.lag = append(run.lag, max(sent.Sub(due), 0))
		run.service = append(run.service, done.Sub(sent))
		if err != nil {
			return run, err
		}
		if d.Approved {
			run.approved++
		} else {
			run.declined++
		}
	}
	return run, nil
}

// summarizeOpen adds up the handhelds' runs into r: answers and the
// latency percentiles.
func summarizeOpen(r *OpenLoopResult, runs []scheduledRun) {
	var lat, lag, svc []time.Duration
	for _, run := range runs {
		r.Approved += run.approved
		r.Declined += run.declined
		lat = append(lat, run.latency...)
		lag = append(lag, run.lag...)
		svc = append(svc, run.service...)
	}
	for _, d := range [][]time.Duration{lat, lag, svc} {
		slices.Sort(d)
	}
	r.P50MS, r.P99MS = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99))
	if len(lat) > 0 {
		r.MaxMS = ms(lat[len(lat)-1])
	}
	r.SendLagP99MS = ms(percentile(lag, 0.99))
	r.ServiceP50MS, r.ServiceP99MS = ms(percentile(svc, 0.50)), ms(percentile(svc, 0.99))
}

// poissonSchedules returns, for each of n handhelds, the offsets from the
// start at which it sends its sales: a Poisson process of rate/n per
// second over d, seeded by seed and the handheld's index, so a run's
// schedule replays from its seed.
func poissonSchedules(seed uint64, n int, rate float64, d time.Duration) [][]time.Duration {
	out := make([][]time.Duration, n)
	per := rate / float64(n) // arrivals per second per handheld
	for i := range out {
		rng := rand.New(rand.NewPCG(seed, 0x6f70656e+uint64(i))) // "open"
		var t time.Duration
		for {
			t += time.Duration(rng.ExpFloat64() / per * float64(time.Second))
			if t >= d {
				break
			}
			out[i] = append(out[i], t)
		}
	}
	return out
}
