package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/sim"
)

// writeJSON prints the report as one JSON object.
func writeJSON(w io.Writer, r *sim.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// writeHuman prints the report for a person: the per-flight table, the
// reconciliation, one payment code, the totals and the invariants.
func writeHuman(w io.Writer, r *sim.Report) {
	o := r.Options
	fmt.Fprintf(w, "\nAirtab simulator, seed %d: %s of %d seats, %d handhelds each%s\n\n", r.Seed, plural(o.Flights, "flight"), o.Passengers, o.Handhelds, switches(o))
	writeTable(w, r.Flights)
	if len(r.Flights) <= 3 {
		for _, f := range r.Flights {
			fmt.Fprintf(w, "\nReconciliation of %s (%s):\n", f.Flight, f.Aircraft)
			writeReconciliation(w, []sim.FlightReport{f})
		}
	} else {
		fmt.Fprintf(w, "\nReconciliation of the fleet (%d flights, all landed and replayed at once):\n", len(r.Flights))
		writeReconciliation(w, r.Flights)
	}
	if f := r.Feeder; f != nil {
		fmt.Fprintf(w, "\nFeeder flight %s: %d sales to passengers whose card ground then declined: %d in collections (%s), so the flights above deny them.\n",
			f.Flight, f.Approved, f.Collections, money(f.CollectionsMinor, f.Currency))
	}
	if r.SampleCode != "" {
		writeCode(w, r.SampleCode)
	}
	for _, name := range r.QRFiles {
		fmt.Fprintf(w, "wrote %s\n", name)
	}
	t := r.Totals
	fmt.Fprintf(w, "\ntotals: %d approved, %d declined, %d settled, %d in collections, %d voided; lost %d, double-charged %d; fraud attempts %d, accepted %d\n",
		t.Approved, t.Declined, t.Settled, t.Collections, t.Voided, t.Lost, t.DoubleCharged, t.FraudAttempts, t.FraudAccepted)
	writeInvariants(w, r)
	var ts []string
	for _, p := range r.Timings {
		ts = append(ts, fmt.Sprintf("%s %.1fs", p.Phase, p.Seconds))
	}
	fmt.Fprintf(w, "\ntook %.1fs: %s\n", r.Seconds, strings.Join(ts, ", "))
	if r.DataDir != "" {
		fmt.Fprintf(w, "data kept in %s\n", r.DataDir)
	}
	if r.OK {
		fmt.Fprintf(w, "\nOK: every invariant held (seed %d)\n", r.Seed)
	} else {
		fmt.Fprintf(w, "\nFAILED: replay with --seed %d\n", r.Seed)
	}
}

func switches(o sim.Options) string {
	var s []string
	if o.Outages {
		s = append(s, "flaky link")
	}
	if o.Crash {
		s = append(s, "cabin-server crashes")
	}
	if o.Fraud {
		s = append(s, "fraud")
	}
	if o.DeclineRate > 0 {
		s = append(s, fmt.Sprintf("%g%% card declines", o.DeclineRate*100))
	}
	if len(s) == 0 {
		return ""
	}
	return "; " + strings.Join(s, ", ")
}

func writeTable(w io.Writer, flights []sim.FlightReport) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "flight\taircraft\tpax\tregistered\trefused\tapproved\tdeclined\tsettled\tcollections\tvoided\tapproved amount\tsettled amount\tcrashes\treconciled\t")
	for _, f := range flights {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%d\t%v\t\n", f.Flight, f.Aircraft, f.Passengers, f.Registered, f.Refused,
			f.Approved, f.Declined, f.Settled, f.Collections, f.Voided, money(f.ApprovedMinor, f.Currency), money(f.SettledMinor, f.Currency), f.Crashes, f.Reconciled)
	}
	tw.Flush()
}

// writeReconciliation compares, over flights, what the handhelds were told,
// what the aircraft reported, what ground received and where the money went.
func writeReconciliation(w io.Writer, flights []sim.FlightReport) {
	var s sim.FlightReport
	declines, fraud, rejections := map[string]int{}, map[string]int{}, map[string]int{}
	var problems []string
	for _, f := range flights {
		s.Currency = f.Currency
		s.Approved += f.Approved
		s.ApprovedMinor += f.ApprovedMinor
		s.Journal.Sales += f.Journal.Sales
		s.Journal.SalesMinor += f.Journal.SalesMinor
		s.Journal.Voids += f.Journal.Voids
		s.Journal.VoidsMinor += f.Journal.VoidsMinor
		s.Journal.Cleared += f.Journal.Cleared
		s.Journal.LastSeq += f.Journal.LastSeq
		s.Ground.Sales += f.Ground.Sales
		s.Ground.SalesMinor += f.Ground.SalesMinor
		s.Ground.Voids += f.Ground.Voids
		s.Ground.VoidsMinor += f.Ground.VoidsMinor
		s.Ground.Missing += f.Ground.Missing
		s.Settled += f.Settled
		s.SettledMinor += f.SettledMinor
		s.Collections += f.Collections
		s.CollectionsMinor += f.CollectionsMinor
		s.Voided += f.Voided
		s.VoidedMinor += f.VoidedMinor
		s.Outages += f.Outages
		s.Crashes += f.Crashes
		s.ReplaySeconds = max(s.ReplaySeconds, f.ReplaySeconds)
		maps.Copy(declines, sumInto(declines, f.Declines))
		maps.Copy(fraud, sumInto(fraud, f.Fraud))
		maps.Copy(rejections, sumInto(rejections, f.Rejections))
		for _, p := range f.Problems {
			problems = append(problems, f.Flight+": "+p)
		}
	}
	cur := s.Currency
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  handhelds were told\t%d sales approved\t%s\n", s.Approved, money(s.ApprovedMinor, cur))
	fmt.Fprintf(tw, "  aircraft close report\t%d sales, %d voids\t%s sold, %s voided\n", s.Journal.Sales, s.Journal.Voids, money(s.Journal.SalesMinor, cur), money(s.Journal.VoidsMinor, cur))
	fmt.Fprintf(tw, "  ground received\t%d sales, %d voids\t%s sold, %s voided\t%d sequence numbers missing\n", s.Ground.Sales, s.Ground.Voids, money(s.Ground.SalesMinor, cur), money(s.Ground.VoidsMinor, cur), s.Ground.Missing)
	fmt.Fprintf(tw, "  settled\t%d sales\t%s\n", s.Settled, money(s.SettledMinor, cur))
	fmt.Fprintf(tw, "  in collections\t%d sales\t%s\n", s.Collections, money(s.CollectionsMinor, cur))
	fmt.Fprintf(tw, "  voided by crew\t%d sales\t%s\n", s.Voided, money(s.VoidedMinor, cur))
	fmt.Fprintf(tw, "  cleared on board\t%d of %d invoices\treplay after landing %.1fs\n", s.Journal.Cleared, s.Journal.LastSeq, s.ReplaySeconds)
	tw.Flush()
	if len(declines) > 0 {
		fmt.Fprintf(w, "  declined on board: %s\n", counts(declines))
	}
	if len(fraud) > 0 {
		fmt.Fprintf(w, "  fraud attempts: %s\n  turned away as: %s\n", counts(fraud), counts(rejections))
	}
	if s.Outages > 0 || s.Crashes > 0 {
		fmt.Fprintf(w, "  link windows in flight: %d; cabin-server crashes and restarts: %d\n", s.Outages, s.Crashes)
	}
	for _, p := range problems {
		fmt.Fprintf(w, "  problem: %s\n", p)
	}
}

func sumInto(dst, src map[string]int) map[string]int {
	out := maps.Clone(dst)
	for k, v := range src {
		out[k] += v
	}
	return out
}

func counts(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	slices.SortStableFunc(keys, func(a, b string) int { return m[b] - m[a] })
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func writeCode(w io.Writer, code string) {
	qr, err := protocol.TerminalQR(code)
	if err != nil {
		fmt.Fprintf(w, "\n(payment code not drawn: %v)\n", err)
		return
	}
	version, _ := protocol.QRVersion(code)
	fmt.Fprintf(w, "\nA payment code scanned on this flight (%d characters, QR version %d):\n%s%s\n", len(code), version, qr, code)
}

func writeInvariants(w io.Writer, r *sim.Report) {
	iv := r.Invariants
	fmt.Fprintln(w, "invariants:")
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"no approved invoice lost", iv.NoLostInvoice},
		{"every invoice posted and charged exactly once", iv.ExactlyOnce},
		{"ledger balanced", iv.LedgerBalanced},
		{"passenger limits respected", iv.LimitsRespected},
		{"every fraud attempt rejected", iv.FraudRejected},
		{"every flight reconciled", iv.Reconciled},
		{"every approved sale settled, in collections or voided: none unpaid", iv.NoneUnpaid},
		{"no credential issued with the link up was unknown on board", iv.ChangesOnBoard},
		{"no prepaid sale in collections for want of balance", iv.PrepaidCovered},
	} {
		mark := "ok  "
		if !c.ok {
			mark = "FAIL"
		}
		fmt.Fprintf(w, "  %s %s\n", mark, c.name)
	}
	for _, v := range r.Violations {
		fmt.Fprintf(w, "  violation: %s\n", v)
	}
}

func money(minor int64, cur string) string {
	return protocol.M(minor, protocol.Currency(cur)).String()
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
