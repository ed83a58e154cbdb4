package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/airtab/airtab/simulator/sim"
)

// soak runs the --duration soak and prints its report: 0 only when every
// run kept every invariant.
func soak(ctx context.Context, cfg sim.Config, asJSON bool, stdout, stderr io.Writer) int {
	rep, err := sim.Soak(ctx, cfg, cfg.Soak)
	if err != nil {
		fmt.Fprintf(stderr, "simulator: %v\n", err)
		return 1
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			fmt.Fprintf(stderr, "simulator: %v\n", err)
			return 1
		}
	} else {
		writeSoak(stdout, rep)
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// writeSoak prints the soak's totals per hour for a person.
func writeSoak(w io.Writer, r *sim.SoakReport) {
	o := r.Options
	fmt.Fprintf(w, "\nAirtab simulator soak of %s: runs of %s of %d seats, %d handhelds each%s\n\n",
		r.Duration, plural(o.Flights, "flight"), o.Passengers, o.Handhelds, switches(o))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "hour\truns\tflights\tapproved\tdeclined\tcharged\tcollections\tvoided\tfraud refused\tfraud accepted\tlost\tdouble-charged\tinvariants held\t")
	row := func(name string, h sim.HourTotals) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d of %d\t\n", name, h.Runs, h.Flights, h.Approved, h.Declined,
			h.Charged, h.Collections, h.Voided, h.FraudRefused, h.FraudAccepted, h.Lost, h.DoubleCharged, h.InvariantsHeld, h.Runs)
	}
	for _, h := range r.Hours {
		row(fmt.Sprint(h.Hour), h)
	}
	row("total", r.Total)
	tw.Flush()
	fmt.Fprintf(w, "\ntook %.1fs\n", r.Seconds)
	for _, run := range r.Runs {
		if !run.OK {
			fmt.Fprintf(w, "FAILED run: replay with --seed %d (%v)\n", run.Seed, run.Problems)
		}
	}
	if r.OK {
		fmt.Fprintf(w, "\nOK: every invariant held in all %d runs\n", len(r.Runs))
	} else {
		fmt.Fprintf(w, "\nFAILED: an invariant broke, or no run ended\n")
	}
}
