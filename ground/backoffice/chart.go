package backoffice

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/protocol"
)

// Charts are drawn on the server as SVG (no chart library to vendor, no
// script): the chart types below hold coordinates in a fixed viewBox that
// the template draws, and CSS scales the SVG to the page's width.

const (
	chartW, chartH         = 640.0, 220.0
	padL, padR, padT, padB = 86.0, 12.0, 14.0, 28.0
	plotW, plotH           = chartW - padL - padR, chartH - padT - padB
	maxXLabels             = 12
	seriesClasses          = 4
)

// BarChart is a grouped bar chart: one group per label, one bar per series.
type BarChart struct {
	Title  string
	Series []Legend
	Groups []BarGroup
	Grid   []GridLine
	Empty  bool
	W, H   float64
}

// Legend names a series and its CSS class.
type Legend struct{ Name, Class string }

// BarGroup is one label's bars.
type BarGroup struct {
	Label  string
	LabelX float64
	Bars   []Bar
}

// Bar is one bar, with its value as a tooltip.
type Bar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

// GridLine is a horizontal line with its value.
type GridLine struct {
	Y     float64
	Label string
}

// LineChart is a step line, for cumulative counts over time.
type LineChart struct {
	Title   string
	Points  string // SVG polyline points
	Grid    []GridLine
	XLabels []XLabel
	Empty   bool
	W, H    float64
}

// XLabel is a label on the x axis; Anchor is its SVG text-anchor.
type XLabel struct {
	X      float64
	Label  string
	Anchor string
}

// niceMax rounds v up to 1, 2, 4 or 5 times a power of ten, and to an even
// number, so that the grid's middle line (half of it) is a whole number: a
// top of 5 would label its lines 0, 2, 5.
func niceMax(v int64) int64 {
	if v <= 2 {
		return 2
	}
	p := int64(math.Pow10(int(math.Floor(math.Log10(float64(v))))))
	for _, m := range []int64{1, 2, 4, 5, 10} {
		if m*p >= v && m*p%2 == 0 {
			return m * p
		}
	}
	return 10 * p
}

func grid(top int64, label func(int64) string) []GridLine {
	out := make([]GridLine, 0, 3)
	for _, f := range []int64{0, 1, 2} {
		v := top * f / 2
		out = append(out, GridLine{Y: padT + plotH - plotH*float64(v)/float64(top), Label: label(v)})
	}
	return out
}

// barChart lays out values[g][s] (group g, series s) under labels.
func barChart(title string, labels, series []string, values [][]int64, label func(int64) string) *BarChart {
	c := &BarChart{Title: title, W: chartW, H: chartH}
	for i, n := range series {
		c.Series = append(c.Series, Legend{Name: n, Class: "s" + strconv.Itoa(i%seriesClasses)})
	}
	var top int64
	for _, g := range values {
		for _, v := range g {
			top = max(top, v)
		}
	}
	c.Empty = top == 0
	top = niceMax(top)
	c.Grid = grid(top, label)
	if len(labels) == 0 {
		c.Empty = true
		return c
	}
	slot := plotW / float64(len(labels))
	barW := min(slot*0.8/float64(max(1, len(series))), 48)
	inset := (slot - barW*float64(max(1, len(series)))) / 2
	every := (len(labels) + maxXLabels - 1) / maxXLabels
	for gi, l := range labels {
		g := BarGroup{LabelX: padL + slot*(float64(gi)+0.5)}
		if (len(labels)-1-gi)%every == 0 { // the last (latest) always labelled
			g.Label = l
		}
		for si, v := range values[gi] {
			h := plotH * float64(v) / float64(top)
			g.Bars = append(g.Bars, Bar{
				X: padL + slot*float64(gi) + inset + barW*float64(si), Y: padT + plotH - h, W: barW, H: h,
				Class: c.Series[si].Class, Title: fmt.Sprintf("%s %s: %s", l, series[si], label(v)),
			})
		}
		c.Groups = append(c.Groups, g)
	}
	return c
}

func moneyLabel(c protocol.Currency) func(int64) string {
	return func(v int64) string { return protocol.M(v, c).String() }
}

// salesByHour charts each currency's sales by the aircraft's hour of sale
// (UTC), from the invoice lines' records.
func salesByHour(lines []InvoiceView) []*BarChart {
	byCur := map[protocol.Currency]map[time.Time]int64{}
	for _, l := range lines {
		if l.Kind != "sale" || !l.Detailed {
			continue
		}
		c := l.Amount.Currency
		if byCur[c] == nil {
			byCur[c] = map[time.Time]int64{}
		}
		byCur[c][l.CreatedAt.UTC().Truncate(time.Hour)] += l.Amount.Minor
	}
	var out []*BarChart
	for _, c := range slices.Sorted(maps.Keys(byCur)) {
		hours := slices.SortedFunc(maps.Keys(byCur[c]), time.Time.Compare)
		var labels []string
		var values [][]int64
		for h := hours[0]; !h.After(hours[len(hours)-1]); h = h.Add(time.Hour) {
			labels = append(labels, h.Format("15:04"))
			values = append(values, []int64{byCur[c][h]})
		}
		out = append(out, barChart("Sales by hour of flight (UTC), "+string(c), labels, []string{"sales"}, values, moneyLabel(c)))
	}
	return out
}

// replayChart charts the invoices received over time: the replay's
// progress, against the close report's last sequence number when known.
func replayChart(rep *clearing.FlightReport) *LineChart {
	c := &LineChart{Title: "Replay: invoices received over time", W: chartW, H: chartH}
	var times []time.Time
	for _, l := range rep.Invoices {
		if !l.ReceivedAt.IsZero() {
			times = append(times, l.ReceivedAt)
		}
	}
	if len(times) == 0 {
		c.Empty = true
		return c
	}
	slices.SortFunc(times, time.Time.Compare)
	total := int64(len(times))
	if rep.Reported != nil {
		total = max(total, int64(rep.Reported.LastSeq))
	}
	top := niceMax(total)
	c.Grid = grid(top, func(v int64) string { return strconv.FormatInt(v, 10) })
	first, last := times[0], times[len(times)-1]
	span := last.Sub(first)
	x := func(t time.Time) float64 {
		if span <= 0 {
			return padL + plotW
		}
		return padL + plotW*float64(t.Sub(first))/float64(span)
	}
	y := func(n int) float64 { return padT + plotH - plotH*float64(n)/float64(top) }
	var pts strings.Builder
	fmt.Fprintf(&pts, "%.1f,%.1f", padL, y(0))
	for i, t := range times {
		fmt.Fprintf(&pts, " %.1f,%.1f %.1f,%.1f", x(t), y(i), x(t), y(i+1))
	}
	c.Points = pts.String()
	layout := "15:04:05"
	if span < time.Minute {
		layout = "15:04:05.000" // a replay at the gate takes seconds
	}
	end := XLabel{X: padL + plotW, Label: last.UTC().Format(layout), Anchor: "end"}
	if span <= 0 { // everything at one instant, drawn at the right: one label, there
		c.XLabels = []XLabel{end}
		return c
	}
	c.XLabels = []XLabel{{X: padL, Label: first.UTC().Format(layout), Anchor: "start"}, end}
	return c
}

// settlementChart charts settled against collections per day, per
// currency, from the daily settlement summaries (oldest first).
func settlementChart(days []*clearing.Settlement) []*BarChart {
	curs := map[protocol.Currency]bool{}
	for _, d := range days {
		for _, l := range d.Currencies {
			curs[l.Currency] = true
		}
	}
	var out []*BarChart
	for _, c := range slices.Sorted(maps.Keys(curs)) {
		var labels []string
		var values [][]int64
		for _, d := range days {
			var settled, coll int64
			for _, l := range d.Currencies {
				if l.Currency == c {
					settled, coll = l.Settled.Total.Minor, l.Collections.Total.Minor
				}
			}
			labels = append(labels, d.Date[5:])
			values = append(values, []int64{settled, coll})
		}
		out = append(out, barChart("Settled vs collections per day, "+string(c), labels, []string{"settled", "collections"}, values, moneyLabel(c)))
	}
	return out
}
