package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// ReplayOptions are what Run asks the replay measurement for.
type ReplayOptions struct {
	// Invoices is the flight's size: how many invoices wait on the
	// aircraft when the link comes up.
	Invoices int
	// LinkKbit is the link's bandwidth each way, in kbit/s; RTT its round
	// trip.
	LinkKbit int
	RTT      time.Duration
	Seed     uint64
	Progress io.Writer
	Logger   *slog.Logger
}

// ReplayMeasurement is what a replay measurement reports.
type ReplayMeasurement struct {
	// Seconds is the drain time: from the link coming up to the last
	// invoice acknowledged by ground.
	Seconds float64
	// BoundSeconds is the time the bytes alone need: the bytes on the wire
	// ÷ the bandwidth, plus one round trip.
	BoundSeconds float64
	// BytesPerInvoice is the bytes on the wire (both directions) per
	// invoice.
	BytesPerInvoice float64
	// Method says how it was measured, for the output.
	Method string
}

// ReplayFunc measures the replay of a full flight over the emulated link.
// The simulator's main sets it to the harness's replay measurement
// (simulator/harness: MeasureReplay), adapting its types; it is a variable
// because that measurement belongs to the harness, which this package does
// not own. When it is nil, Run reports the replay section as not measured.
var ReplayFunc func(ctx context.Context, o ReplayOptions) (ReplayMeasurement, error)

// replay runs the replay section through ReplayFunc.
func replay(ctx context.Context, o *Options) (ReplayResult, error) {
	r := ReplayResult{Invoices: o.ReplayInvoices, LinkKbitPerS: o.LinkKbit, RTTMS: o.RTT.Milliseconds()}
	if ReplayFunc == nil {
		r.Note = "not measured: bench.ReplayFunc is not wired (the simulator's main sets it to the harness's replay measurement)"
		progress(o.Progress, "replay: %s", r.Note)
		return r, nil
	}
	progress(o.Progress, "replay: %d invoices over %d kbit/s, %v round trip", o.ReplayInvoices, o.LinkKbit, o.RTT)
	m, err := ReplayFunc(ctx, ReplayOptions{Invoices: o.ReplayInvoices, LinkKbit: o.LinkKbit, RTT: o.RTT, Seed: o.Seed,
		Progress: o.Progress, Logger: o.Logger})
	if err != nil {
		return r, fmt.Errorf("bench: replay: %w", err)
	}
	if m.Seconds <= 0 || m.BoundSeconds <= 0 {
		return r, fmt.Errorf("bench: replay: measured %g s against a bound of %g s: both must be positive", m.Seconds, m.BoundSeconds)
	}
	r.Measured = true
	r.Seconds, r.BoundSeconds, r.BytesPerInvoice, r.Method = m.Seconds, m.BoundSeconds, m.BytesPerInvoice, m.Method
	r.Ratio = m.Seconds / m.BoundSeconds
	progress(o.Progress, "replay: %.1f s against a bound of %.1f s: ratio %.2f, %.0f bytes per invoice",
		r.Seconds, r.BoundSeconds, r.Ratio, r.BytesPerInvoice)
	return r, nil
}
