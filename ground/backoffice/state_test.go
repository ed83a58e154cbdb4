package backoffice

import (
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/protocol"
)

func TestStateOf(t *testing.T) {
	f := flightEntry{ID: "XX123-2026-11-21"}
	day := f.ID.Date()
	closed := &clearing.Reported{LastSeq: 10}
	for _, tc := range []struct {
		name       string
		manifested bool
		now        time.Time
		rep        *clearing.FlightReport
		want       FlightState
		progress   float64
	}{
		{"Scheduled", false, day, nil, StateScheduled, 0},
		{"ManifestIssued", true, day.Add(-time.Hour), nil, StateManifestIssued, 0},
		{"InTheAir", true, day.Add(time.Hour), nil, StateInTheAir, 0},
		{"InServiceNoClose", true, day, &clearing.FlightReport{Received: clearing.Received{Invoices: 4}}, StateInService, 0},
		{"ReplayingMissing", true, day, &clearing.FlightReport{Reported: closed, Missing: 6, Received: clearing.Received{Invoices: 4}}, StateReplaying, 0.4},
		{"Reconciled", true, day, &clearing.FlightReport{Reported: closed, Reconciled: true}, StateReconciled, 1},
		{"Cleared", true, day, &clearing.FlightReport{Reported: closed, Posted: clearing.Bucket{Count: 2},
			Problems: []string{"2 sales posted, not yet charged"}}, StateCleared, 1},
		{"Discrepancies", true, day, &clearing.FlightReport{Reported: closed, Problems: []string{"hash chain broken at 1 invoices"}}, StateDiscrepancies, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := f
			e.Manifested = tc.manifested
			got, progress, _ := stateOf(e, tc.rep, tc.now)
			if got != tc.want || progress != tc.progress {
				t.Fatalf("state = %q, %v; want %q, %v", got, progress, tc.want, tc.progress)
			}
		})
	}
}

func TestBarChart(t *testing.T) {
	c := barChart("t", []string{"a", "b"}, []string{"settled", "collections"}, [][]int64{{1500, 0}, {300, 700}}, moneyLabel("EUR"))
	if c.Empty || len(c.Groups) != 2 || len(c.Groups[0].Bars) != 2 {
		t.Fatalf("chart = %+v, want 2 groups of 2 bars", c)
	}
	if got, want := c.Grid[2].Label, protocol.M(2000, "EUR").String(); got != want {
		t.Fatalf("top grid line = %q, want %q (15.00 rounded up)", got, want)
	}
	tall, short := c.Groups[0].Bars[0], c.Groups[1].Bars[0]
	if tall.H <= short.H || tall.Y+tall.H != short.Y+short.H {
		t.Fatalf("bars %+v and %+v: want the larger value taller, both on the axis", tall, short)
	}
	if !strings.Contains(tall.Title, "15.00 EUR") {
		t.Fatalf("tooltip %q does not name the amount", tall.Title)
	}
	if e := barChart("t", nil, []string{"x"}, nil, moneyLabel("EUR")); !e.Empty {
		t.Fatal("a chart of nothing is not empty")
	}
}
