package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
)

// WriteJSON writes the result as one indented JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the result as a table for a person: each figure, its
// same-run bound, the ratio and the target of ARCHITECTURE.md.
func (r *Result) WriteTable(w io.Writer) error {
	m := r.Machine
	fmt.Fprintf(w, "Airtab bench: %s %s/%s, GOMAXPROCS %d of %d CPUs", m.GoVersion, m.OS, m.Arch, m.GOMAXPROCS, m.NumCPU)
	if m.CPU != "" {
		fmt.Fprintf(w, " (%s)", m.CPU)
	}
	fmt.Fprintf(w, ", seed %d\n\n", r.Seed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "section\tmeasured\tbound (same run)\tratio\ttarget\tmet")
	a := r.Authorize
	fmt.Fprintf(tw, "authorize\t%.0f approvals/s, p50 %.2f ms, p99 %.2f ms (closed loop)\t%.0f/s (%.0f verify/s ÷ %d)\t%.2f\t≥ 0.30\t%s\n",
		a.PerSecond, a.P50MS, a.P99MS, a.BoundPerSecond, a.VerifyPerSecond, a.VerificationsPerAuthorization, a.Ratio,
		met(r.Targets, "authorize"))
	fmt.Fprintf(tw, "authorize CPU\t%.0f µs cabin server CPU per approval\t%.1f µs (verify on one core × %d)\t%.2f\t≥ 0.50\t%s\n",
		a.ServerCPUUSPerApproval, a.VerifyUS*float64(a.VerificationsPerAuthorization), a.VerificationsPerAuthorization,
		a.CPURatio, met(r.Targets, "authorize_cpu"))
	if ol := a.OpenLoop; ol != nil {
		fmt.Fprintf(tw, "authorize open loop\t%.0f/s offered, %.0f/s achieved: p50 %.2f ms, p99 %.2f ms\t\t\tp99 < 10 ms\t%s\n",
			ol.OfferedPerSecond, ol.AchievedPerSecond, ol.P50MS, ol.P99MS, met(r.Targets, "authorize_open_loop"))
	}
	p := r.Replay
	if p.Measured {
		fmt.Fprintf(tw, "replay\t%.1f s for %d invoices, %.0f B/invoice\t%.1f s (bytes ÷ %d kbit/s + %d ms)\t%.2f\t≤ 1.50\t%s\n",
			p.Seconds, p.Invoices, p.BytesPerInvoice, p.BoundSeconds, p.LinkKbitPerS, p.RTTMS, p.Ratio, met(r.Targets, "replay"))
	} else {
		fmt.Fprintf(tw, "replay\tnot measured\t\t\t≤ 1.50\t-\n")
	}
	c := r.Clearing
	fmt.Fprintf(tw, "clearing\t%.0f invoices/s (%d in %.2f s)\t%.0f/s (%.0f verify/s ÷ %.2f)\t%.2f\t≥ 0.50\t%s\n",
		c.PerSecond, c.Invoices, c.Seconds, c.BoundPerSecond, c.VerifyPerSecond, c.VerificationsPerInvoice, c.Ratio,
		met(r.Targets, "clearing"))
	if cw := r.ClearingWorkers; cw != nil {
		for _, run := range cw.Runs {
			fmt.Fprintf(tw, "clearing, %d worker(s)\t%.0f invoices/s (%d in %.2f s, PostgreSQL)\t\t\t\t-\n",
				run.Workers, run.PerSecond, cw.Invoices, run.Seconds)
		}
		fmt.Fprintf(tw, "clearing workers\t2 workers ÷ 1: %.2f\t\t\t\t-\n", cw.Speedup)
	}
	fmt.Fprintf(tw, "qr\tversion %d at %s (%d chars; full form version %d)\t\t\t≤ 6\t%s\n",
		r.QR.Version, r.QR.ECC, r.QR.Chars, r.QR.FullVersion, met(r.Targets, "qr"))
	if s := r.OnboardRSS; s != nil {
		fmt.Fprintf(tw, "onboard memory\t%.1f MiB peak (VmHWM), %.1f MiB now (VmRSS); %d passengers, %d sales\t\t\t< 64 MiB\t%s\n",
			s.VmHWMMiB, s.VmRSSMiB, s.Passengers, s.Sales, met(r.Targets, "onboard_rss"))
	} else {
		fmt.Fprintf(tw, "onboard memory\tnot measured\t\t\t< 64 MiB\t-\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nauthorize: %d clients, %d approved, %d declined in %.2f s; %.3f commits per approval (group commit), max batch %d\n",
		a.Clients, a.Approved, a.Declined, a.Seconds, a.CommitsPerApproval, a.MaxBatch)
	fmt.Fprintf(w, "clearing: %d settled, %d quarantined; the stream was filled in %.1f s beforehand\n",
		c.Settled, c.Quarantined, c.FillSeconds)
	if !p.Measured && p.Note != "" {
		fmt.Fprintf(w, "replay: %s\n", p.Note)
	}
	_, err := fmt.Fprintf(w, "setup %.1f s, total %.1f s; --json for the methods in full\n", r.SetupSeconds, r.TotalSeconds)
	return err
}

func met(targets map[string]bool, k string) string {
	ok, found := targets[k]
	switch {
	case !found:
		return "-"
	case ok:
		return "yes"
	}
	return "no"
}
