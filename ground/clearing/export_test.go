package clearing

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
)

// invoiceRows are the CSV rows of invoices: neither the header nor the
// summary rows.
func invoiceRows(rows [][]string) [][]string {
	var out [][]string
	for _, r := range rows[1:] {
		if r[3] != CSVKindTotal && r[3] != CSVKindReconciled {
			out = append(out, r)
		}
	}
	return out
}

func TestParsePage(t *testing.T) {
	for _, tc := range []struct {
		sales, after string
		want         Page
		err          string
	}{
		{"", "", Page{}, ""},
		{"0", "", Page{}, ""},
		{"all", "", Page{Limit: AllLines}, ""},
		{"100", "250", Page{Limit: 100, After: 250}, ""},
		{"-1", "", Page{}, `sales "-1": want all`},
		{"some", "", Page{}, `sales "some": want all`},
		{"10", "x", Page{}, `after "x": want a sequence number`},
	} {
		t.Run(tc.sales+"/"+tc.after, func(t *testing.T) {
			got, err := ParsePage(tc.sales, tc.after)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParsePage = %v, %v; want error %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePage = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestPageOf: a page never splits a sequence number (a reject received
// twice under one) and the last page says so with next 0.
func TestPageOf(t *testing.T) {
	var lines []ReportLine
	for _, seq := range []uint64{1, 2, 2, 3, 4} {
		lines = append(lines, ReportLine{Seq: seq})
	}
	seqs := func(ls []ReportLine) []uint64 {
		var out []uint64
		for _, l := range ls {
			out = append(out, l.Seq)
		}
		return out
	}
	for _, tc := range []struct {
		page Page
		want []uint64
		next uint64
	}{
		{Page{}, nil, 0},
		{Page{Limit: AllLines}, []uint64{1, 2, 2, 3, 4}, 0},
		{Page{Limit: 2}, []uint64{1, 2, 2}, 2},
		{Page{Limit: 1, After: 2}, []uint64{3}, 3},
		{Page{Limit: 1, After: 3}, []uint64{4}, 0},
		{Page{Limit: 10, After: 4}, nil, 0},
	} {
		t.Run(fmt.Sprintf("%+v", tc.page), func(t *testing.T) {
			got, next := pageOf(lines, tc.page)
			if !slices.Equal(seqs(got), tc.want) || next != tc.next {
				t.Errorf("pageOf = %v, next %d; want %v, next %d", seqs(got), next, tc.want, tc.next)
			}
		})
	}
}

// syncBuffer is a bytes.Buffer safe for the logger's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogLines: at info level, clearing says what each batch cleared of a
// flight, and once that the closed flight reconciled.
func TestLogLines(t *testing.T) {
	var logs syncBuffer
	h := newHarness(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	h.start()
	pc := h.passenger(card, 100_00)
	pd := h.passenger(cardWith("tok_insufficient_7"), 100_00)
	s1, s2, s3 := h.sale(pc, 7_00), h.sale(pc, 3_50), h.sale(pd, 4_00)
	h.send(s1, s2, s3)
	h.waitReceipts(s1, s2, s3)
	h.sendClose()
	h.waitClose()
	waitFor(t, func() error {
		if !strings.Contains(logs.String(), `msg="flight reconciled"`) {
			return fmt.Errorf("no reconciliation in the log:\n%s", logs.String())
		}
		return nil
	})
	out := logs.String()
	var cleared []string
	for l := range strings.Lines(out) {
		if strings.Contains(l, `msg="invoices cleared"`) {
			cleared = append(cleared, l)
		}
	}
	if len(cleared) == 0 {
		t.Fatalf("no invoices-cleared line in the log:\n%s", out)
	}
	// However JetStream cut the batches, the lines add up to the flight.
	invoices, settled, collections, posted := 0, 0, 0, 0
	for _, l := range cleared {
		if !strings.Contains(l, "level=INFO") || !strings.Contains(l, "flight="+string(testFlight)) {
			t.Errorf("cleared line %q: want info level and the flight", l)
		}
		// The buckets go by the report's names: posted, not "charging".
		if !strings.Contains(l, " posted=") || strings.Contains(l, "charging") {
			t.Errorf("cleared line %q: want the report's bucket name posted", l)
		}
		var n, st, co, po int
		for f := range strings.FieldsSeq(l) {
			fmt.Sscanf(f, "invoices=%d", &n)
			fmt.Sscanf(f, "settled=%d", &st)
			fmt.Sscanf(f, "collections=%d", &co)
			fmt.Sscanf(f, "posted=%d", &po)
		}
		invoices, settled, collections, posted = invoices+n, settled+st, collections+co, posted+po
	}
	if invoices != 3 || settled != 2 || collections != 1 || posted != 0 {
		t.Errorf("cleared lines count %d invoices, %d settled, %d in collections, %d posted; want 3, 2, 1, 0:\n%s", invoices, settled, collections, posted, strings.Join(cleared, ""))
	}
	rep, err := h.svc.Reports().Flight(h.ctx, testFlight)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Settled.Count != settled || rep.Collections.Count != collections || rep.Posted.Count != posted {
		t.Errorf("report buckets settled %d, collections %d, posted %d; the log said %d, %d, %d", rep.Settled.Count, rep.Collections.Count, rep.Posted.Count, settled, collections, posted)
	}
	if len(cleared) == 1 && !strings.Contains(cleared[0], `sales_amount="14.50 EUR"`) {
		t.Errorf("cleared line %q: want the amount 14.50 EUR", cleared[0])
	}
	if got := strings.Count(out, `msg="flight reconciled"`); got != 1 {
		t.Errorf("%d reconciliation lines, want 1:\n%s", got, out)
	}
	for _, want := range []string{"flight=" + string(testFlight), "sales=3", `settled="10.50 EUR"`, `collections="4.00 EUR"`} {
		if l := lineWith(out, `msg="flight reconciled"`); !strings.Contains(l, want) {
			t.Errorf("reconciliation line %q lacks %s", l, want)
		}
	}
}

// lineWith is the first line of out containing s.
func lineWith(out, s string) string {
	for l := range strings.Lines(out) {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}
