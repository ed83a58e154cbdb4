package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/airtab/airtab/protocol"
)

// FlightReport is one flight's outcome, counted from what the parts did:
// the handhelds' own records of approvals, the cabin server's journal and
// the ground ledger. Nothing here comes from the simulator's plan.
type FlightReport struct {
	Flight           string  `json:"flight"`
	Aircraft         string  `json:"aircraft"`
	Currency         string  `json:"currency"`
	Passengers       int     `json:"passengers"`
	Registered       int     `json:"registered"`
	Refused          int     `json:"refused_registration"`
	Approved         int     `json:"approved"`
	Declined         int     `json:"declined"`
	Settled          int     `json:"settled"`
	Collections      int     `json:"collections"`
	Voided           int     `json:"voided"`
	Quarantined      int     `json:"quarantined"`
	ApprovedMinor    int64   `json:"approved_minor"`
	SettledMinor     int64   `json:"settled_minor"`
	CollectionsMinor int64   `json:"collections_minor"`
	VoidedMinor      int64   `json:"voided_minor"`
	Crashes          int     `json:"crashes"`
	Outages          int     `json:"outages"`
	ReplaySeconds    float64 `json:"replay_seconds"`
	Reconciled       bool    `json:"reconciled"`
	// Declines counts declines by reason name.
	Declines map[string]int `json:"declines,omitempty"`
}

// Totals add up every flight.
type Totals struct {
	Approved      int `json:"approved"`
	Declined      int `json:"declined"`
	Settled       int `json:"settled"`
	Collections   int `json:"collections"`
	Voided        int `json:"voided"`
	Lost          int `json:"lost"`
	DoubleCharged int `json:"double_charged"`
	FraudAttempts int `json:"fraud_attempts"`
	FraudAccepted int `json:"fraud_accepted"`
}

// Invariants are the money rules every run must keep.
type Invariants struct {
	NoLostInvoice   bool `json:"no_lost_invoice"`
	ExactlyOnce     bool `json:"exactly_once"`
	LedgerBalanced  bool `json:"ledger_balanced"`
	LimitsRespected bool `json:"limits_respected"`
	FraudRejected   bool `json:"fraud_rejected"`
	Reconciled      bool `json:"reconciled"`
}

// OK reports whether every invariant held.
func (iv Invariants) OK() bool {
	return iv.NoLostInvoice && iv.ExactlyOnce && iv.LedgerBalanced && iv.LimitsRespected && iv.FraudRejected && iv.Reconciled
}

// Report is the whole run, printed as one JSON object with --json.
type Report struct {
	Seed       uint64         `json:"seed"`
	Flights    []FlightReport `json:"flights"`
	Totals     Totals         `json:"totals"`
	Invariants Invariants     `json:"invariants"`
	Violations []string       `json:"violations,omitempty"`
	OK         bool           `json:"ok"`
}

func (r *Report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func (r *Report) writeHuman(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "flight\tpax\tapproved\tdeclined\tsettled\tcollections\tvoided\tapproved amount\tsettled amount\treconciled\t")
	for _, f := range r.Flights {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%v\t\n", f.Flight, f.Passengers, f.Approved, f.Declined,
			f.Settled, f.Collections, f.Voided, money(f.ApprovedMinor, f.Currency), money(f.SettledMinor, f.Currency), f.Reconciled)
	}
	tw.Flush()
	t := r.Totals
	fmt.Fprintf(w, "\ntotals: %d approved, %d declined, %d settled, %d in collections, %d voided; lost %d, double-charged %d; fraud attempts %d, accepted %d\n",
		t.Approved, t.Declined, t.Settled, t.Collections, t.Voided, t.Lost, t.DoubleCharged, t.FraudAttempts, t.FraudAccepted)
	iv := r.Invariants
	fmt.Fprintln(w, "invariants:")
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"no approved invoice lost", iv.NoLostInvoice},
		{"every invoice charged exactly once", iv.ExactlyOnce},
		{"ledger balanced", iv.LedgerBalanced},
		{"passenger limits respected", iv.LimitsRespected},
		{"every fraud attempt rejected", iv.FraudRejected},
		{"every flight reconciled", iv.Reconciled},
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
	if r.OK {
		fmt.Fprintf(w, "\nOK: every invariant held (seed %d)\n", r.Seed)
	} else {
		fmt.Fprintf(w, "\nFAILED: replay with --seed %d\n", r.Seed)
	}
}

func money(minor int64, cur string) string {
	return protocol.M(minor, protocol.Currency(cur)).String()
}
