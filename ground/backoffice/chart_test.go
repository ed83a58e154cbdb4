package backoffice

import (
	"testing"
	"time"

	"github.com/airtab/airtab/ground/clearing"
)

// TestNiceMaxHalvesWhole: every chart top is even, so the grid's middle
// line is a whole number, and it is the least of 1, 2, 4 or 5 times a
// power of ten at or above the value.
func TestNiceMaxHalvesWhole(t *testing.T) {
	for _, c := range []struct{ v, want int64 }{
		{0, 2}, {1, 2}, {2, 2}, {3, 4}, {5, 10}, {7, 10}, {10, 10}, {11, 20},
		{35, 40}, {45, 50}, {51, 100}, {2700, 4000}, {27000, 40000},
	} {
		if got := niceMax(c.v); got != c.want {
			t.Errorf("niceMax(%d) = %d, want %d", c.v, got, c.want)
		}
	}
	for v := range int64(100000) {
		top := niceMax(v)
		if top < v || top%2 != 0 {
			t.Fatalf("niceMax(%d) = %d: below the value or odd", v, top)
		}
	}
}

// TestReplayChartLabels: a replay spread over time is labelled at both
// ends; one that arrived in a single instant gets one label, where it is
// drawn, not the same time twice.
func TestReplayChartLabels(t *testing.T) {
	at := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	one := &clearing.FlightReport{Invoices: []clearing.ReportLine{{ReceivedAt: at}, {ReceivedAt: at}}}
	c := replayChart(one)
	if len(c.XLabels) != 1 || c.XLabels[0].Anchor != "end" || c.XLabels[0].X != padL+plotW {
		t.Errorf("one instant: labels %+v, want one at the right end", c.XLabels)
	}
	spread := &clearing.FlightReport{Invoices: []clearing.ReportLine{{ReceivedAt: at}, {ReceivedAt: at.Add(3 * time.Second)}}}
	c = replayChart(spread)
	if len(c.XLabels) != 2 || c.XLabels[0].Label == c.XLabels[1].Label {
		t.Errorf("spread over 3 s: labels %+v, want two different ones", c.XLabels)
	}
	if got := []string{c.Grid[0].Label, c.Grid[1].Label, c.Grid[2].Label}; got[1] != "1" || got[2] != "2" {
		t.Errorf("grid labels %v for 2 invoices, want 0, 1, 2", got)
	}
}
