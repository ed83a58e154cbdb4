package clearing

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/protocol"
)

// waitClose waits for the close report's receipt.
func (h *harness) waitClose() {
	h.t.Helper()
	waitFor(h.t, func() error {
		if len(h.receipts()[protocol.ID{}]) == 0 {
			return errors.New("no close receipt")
		}
		return nil
	})
}

func csvRows(t *testing.T, b []byte) [][]string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestReconcileGap(t *testing.T) {
	h := newHarness(t)
	h.start()
	p := h.passenger(card, 1000_00)
	var invs []*protocol.SignedInvoice
	for i := range 5 {
		invs = append(invs, h.sale(p, int64(10_00+i)))
	}
	sent := slices.Delete(slices.Clone(invs), 2, 3) // seq 3 never arrives
	h.send(sent...)
	h.sendClose()
	h.waitReceipts(sent...)
	h.waitClose()

	rep, err := h.svc.Reports().Flight(h.ctx, testFlight)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reconciled {
		t.Fatal("a flight with a missing invoice reconciled")
	}
	if got, want := rep.Gaps, []SeqRange{{3, 3}}; !slices.Equal(got, want) {
		t.Errorf("gaps = %v, want %v", got, want)
	}
	if rep.Missing != 1 {
		t.Errorf("missing = %d, want 1", rep.Missing)
	}
	if !rep.HeadMatches {
		t.Errorf("head %s does not match the close report's", rep.Head)
	}
	if len(rep.ChainBreaks) != 0 {
		t.Errorf("chain breaks = %v: a gap is not a break", rep.ChainBreaks)
	}
	if got, want := rep.Reported.SalesTotal, []protocol.Money{eur(50_10)}; !slices.Equal(got, want) {
		t.Errorf("reported sales total = %v, want %v", got, want)
	}
	if got, want := rep.Received.SalesTotal, []protocol.Money{eur(50_10 - 10_02)}; !slices.Equal(got, want) {
		t.Errorf("received sales total = %v, want %v", got, want)
	}
	for _, want := range []string{"1 sequence numbers missing", "sales total", "reported 5 sales"} {
		if !slices.ContainsFunc(rep.Problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("problems %q do not mention %q", rep.Problems, want)
		}
	}
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows := csvRows(t, buf.Bytes())
	if got, want := len(invoiceRows(rows)), 4; got != want {
		t.Errorf("CSV invoice rows = %d, want %d", got, want)
	}
	if last := rows[len(rows)-1]; last[3] != CSVKindReconciled || last[4] != "false" || !strings.Contains(last[10], "1 sequence numbers missing") {
		t.Errorf("last CSV row = %q, want the reconciled flag, false, with the problems", last)
	}
}

func TestReconcileComplete(t *testing.T) {
	h := newHarness(t)
	svc := h.start()
	pw := h.passenger(wallet, 1000_00)
	pc := h.passenger(card, 1000_00)
	pd := h.passenger(cardWith("tok_insufficient_7"), 1000_00)
	if err := svc.TopUp(h.ctx, pw.ID, eur(100_00), protocol.NewID(nil)); err != nil {
		t.Fatal(err)
	}
	s1 := h.sale(pw, 12_00)
	s2 := h.sale(pc, 8_50)
	s3 := h.sale(pd, 4_00) // declined: collections
	v2 := h.void(s2)       // card refund
	s4 := h.sale(pc, 1_25)
	all := []*protocol.SignedInvoice{s1, s2, s3, v2, s4}
	h.send(s1, s2, s3)
	h.waitReceipts(s1, s2, s3) // s2 is captured before its void arrives
	h.send(v2, s4)
	h.sendClose()
	h.waitReceipts(all...)
	h.waitClose()
	waitFor(t, func() error {
		if r := h.record(s2.Body.ID); r.Refund != RefundDone {
			return errors.New("refund not done")
		}
		return nil
	})

	rep, err := svc.Reports().Flight(h.ctx, testFlight)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reconciled {
		t.Fatalf("not reconciled: %q", rep.Problems)
	}
	for name, tc := range map[string]struct {
		b    Bucket
		want []protocol.Money
	}{
		"settled":     {rep.Settled, []protocol.Money{eur(13_25)}},
		"collections": {rep.Collections, []protocol.Money{eur(4_00)}},
		"voided":      {rep.Voided, []protocol.Money{eur(8_50)}},
		"voids":       {rep.Voids, []protocol.Money{eur(8_50)}},
	} {
		if !slices.Equal(tc.b.Totals, tc.want) {
			t.Errorf("%s = %v, want %v", name, tc.b.Totals, tc.want)
		}
	}
	if rep.Received.Sales != 4 || rep.Received.Voids != 1 || rep.Received.LastSeq != 5 {
		t.Errorf("received = %+v", rep.Received)
	}

	srv := httptest.NewServer(svc.Reports().Handler())
	defer srv.Close()
	get := func(path string) (int, []byte) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var buf bytes.Buffer
		buf.ReadFrom(resp.Body)
		return resp.StatusCode, buf.Bytes()
	}
	t.Run("JSON", func(t *testing.T) {
		for _, tc := range []struct {
			query     string
			seqs      []uint64
			nextAfter uint64
		}{
			{"", nil, 0}, // the summary alone
			{"?sales=all", []uint64{1, 2, 3, 4, 5}, 0},
			{"?sales=2", []uint64{1, 2}, 2},
			{"?sales=2&after=2", []uint64{3, 4}, 4},
			{"?sales=2&after=4", []uint64{5}, 0},
		} {
			t.Run(tc.query, func(t *testing.T) {
				code, body := get("/v1/reports/flights/" + string(testFlight) + tc.query)
				var got struct {
					FlightReport
					InvoiceCount int    `json:"invoice_count"`
					NextAfter    uint64 `json:"next_after"`
				}
				if err := json.Unmarshal(body, &got); code != 200 || err != nil {
					t.Fatalf("status %d, %v: %s", code, err, body)
				}
				var seqs []uint64
				for _, l := range got.Invoices {
					seqs = append(seqs, l.Seq)
				}
				if !got.Reconciled || got.InvoiceCount != 5 || !slices.Equal(seqs, tc.seqs) || got.NextAfter != tc.nextAfter {
					t.Errorf("reconciled %v, invoice_count %d, lines %v, next_after %d; want true, 5, %v, %d",
						got.Reconciled, got.InvoiceCount, seqs, got.NextAfter, tc.seqs, tc.nextAfter)
				}
				// The summary leads: the verdict comes before any line.
				if i, j := bytes.Index(body, []byte(`"reconciled"`)), bytes.Index(body, []byte(`"invoice_count"`)); i < 0 || j < i {
					t.Errorf("the summary does not lead the JSON:\n%s", body)
				}
			})
		}
		if code, _ := get("/v1/reports/flights/" + string(testFlight) + "?sales=many"); code != 400 {
			t.Errorf("?sales=many: status %d, want 400", code)
		}
	})
	t.Run("CSV", func(t *testing.T) {
		for _, path := range []string{"/v1/reports/flights/" + string(testFlight) + ".csv", "/v1/reports/flights/" + string(testFlight) + "?format=csv"} {
			code, body := get(path)
			rows := csvRows(t, body)
			if code != 200 || len(invoiceRows(rows)) != 5 {
				t.Fatalf("%s: status %d, %d invoice rows", path, code, len(invoiceRows(rows)))
			}
			totals := map[string][]string{}
			for _, r := range rows[1:] {
				if r[3] == CSVKindTotal {
					totals[r[4]] = r
				}
			}
			for name, want := range map[string][3]string{
				"settled": {"13.25", "1325", "2 invoices"}, "collections": {"4.00", "400", "1 invoice"},
				"voided": {"8.50", "850", "1 invoice"}, "received_sales": {"25.75", "2575", "4 invoices"},
				"reported_sales": {"25.75", "2575", "4 invoices"}, "quarantined": {"", "", "0 invoices"},
			} {
				if got := totals[name]; got == nil || got[5] != want[0] || got[6] != want[1] || got[10] != want[2] {
					t.Errorf("%s total row = %q, want amount %s, minor %s, detail %q", name, got, want[0], want[1], want[2])
				}
			}
			if last := rows[len(rows)-1]; last[3] != CSVKindReconciled || last[4] != "true" || last[10] != "" {
				t.Errorf("last row = %q, want reconciled true", last)
			}
			if !slices.Equal(rows[0], CSVHeader) {
				t.Errorf("header = %v", rows[0])
			}
			if got := rows[3]; got[1] != "3" || got[4] != "collections" || got[5] != "4.00" || got[6] != "400" || got[7] != "EUR" {
				t.Errorf("row of seq 3 = %v", got)
			}
		}
	})
	t.Run("Errors", func(t *testing.T) {
		for path, want := range map[string]int{
			"/v1/reports/flights/XX999-2026-11-21":                      404,
			"/v1/reports/flights/not-a-flight":                          400,
			"/v1/reports/flights/" + string(testFlight) + "?format=xml": 400,
			"/v1/reports/settlement?date=21.11.2026":                    400,
		} {
			if code, body := get(path); code != want || !bytes.Contains(body, []byte(`"error"`)) {
				t.Errorf("%s: status %d (%s), want %d", path, code, body, want)
			}
		}
	})
	t.Run("Settlement", func(t *testing.T) {
		code, body := get("/v1/reports/settlement?date=" + t0.Format(time.DateOnly))
		var s Settlement
		if err := json.Unmarshal(body, &s); code != 200 || err != nil {
			t.Fatalf("status %d, %v", code, err)
		}
		if len(s.Currencies) != 1 {
			t.Fatalf("currencies = %+v", s.Currencies)
		}
		l := s.Currencies[0]
		for name, tc := range map[string]struct {
			got  Amounts
			want int64
		}{
			"sales": {l.Sales, 25_75}, "voided": {l.Voided, 8_50}, "settled": {l.Settled, 12_00 + 8_50 + 1_25},
			"refunded": {l.Refunded, 8_50}, "top-ups": {l.TopUps, 100_00}, "collections": {l.Collections, 4_00},
		} {
			if tc.got.Total != eur(tc.want) {
				t.Errorf("%s = %v, want %v", name, tc.got.Total, eur(tc.want))
			}
		}
		if l.Net != eur(13_25) {
			t.Errorf("net = %v, want %v", l.Net, eur(13_25))
		}
		code, body = get("/v1/reports/settlement?format=csv&date=" + t0.Format(time.DateOnly))
		if rows := csvRows(t, body); code != 200 || len(rows) != 2 {
			t.Errorf("settlement CSV: status %d, %d rows", code, len(rows))
		}
	})
}

func TestReconcileChainBreak(t *testing.T) {
	h := newHarness(t)
	h.start()
	p := h.passenger(card, 1000_00)
	s1 := h.sale(p, 1_00)
	s2 := h.sale(p, 2_00, func(inv *protocol.Invoice) { inv.Prev = protocol.Sum([]byte("an invoice that never was")) })
	s3 := h.sale(p, 3_00)
	h.send(s1, s2, s3)
	h.sendClose()
	h.waitReceipts(s1, s2, s3)
	h.waitClose()
	rep, err := h.svc.Reports().Flight(h.ctx, testFlight)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Reconciled || len(rep.ChainBreaks) != 1 || rep.ChainBreaks[0].Seq != 2 || rep.ChainBreaks[0].Want != s1.Hash() {
		t.Fatalf("reconciled %v, breaks %+v; want one break at seq 2", rep.Reconciled, rep.ChainBreaks)
	}
}

// TestBuildFlightReport checks the reconciliation rules on records made by
// hand: duplicates, numbers beyond the close, a head mismatch, no close.
func TestBuildFlightReport(t *testing.T) {
	rec := func(seq uint64, prev protocol.Hash, status Status) InvoiceRecord {
		id := protocol.NewID(nil)
		return InvoiceRecord{ID: id, Seq: seq, Prev: prev, Hash: protocol.Sum(id[:]), Kind: protocol.KindSale, Status: status, Total: eur(100), Flight: testFlight}
	}
	r1 := rec(1, protocol.Hash{}, StatusSettled)
	r2 := rec(2, r1.Hash, StatusSettled)
	r3 := rec(3, r2.Hash, StatusPosted)
	r3b := rec(3, r2.Hash, StatusSettled)
	r4 := rec(4, r3.Hash, StatusQuarantined)
	r4.Reason = protocol.ReasonOverPassengerLimit
	close := &CloseRecord{Flight: testFlight, Sales: 3, SalesTotal: []protocol.Money{eur(300)}, LastSeq: 3, Head: r3.Hash}

	rep := buildFlightReport(testFlight, []InvoiceRecord{r4, r3b, r2, r1, r3}, nil, close, t0)
	switch {
	case rep.Reconciled:
		t.Error("reconciled")
	case !slices.Equal(rep.DuplicateSeqs, []uint64{3}):
		t.Errorf("duplicates = %v", rep.DuplicateSeqs)
	case !slices.Equal(rep.BeyondLast, []uint64{4}):
		t.Errorf("beyond last = %v", rep.BeyondLast)
	case rep.HeadMatches:
		t.Error("head matches although seq 3 is ambiguous")
	case rep.Posted.Count != 1 || rep.Quarantined.Count != 1 || len(rep.Reasons) != 1 || rep.Reasons[0].Code != protocol.ReasonOverPassengerLimit:
		t.Errorf("posted %d, quarantined %d, reasons %v", rep.Posted.Count, rep.Quarantined.Count, rep.Reasons)
	case len(rep.Invoices) != 5 || rep.Invoices[0].Seq != 1:
		t.Errorf("lines = %d, first seq %d", len(rep.Invoices), rep.Invoices[0].Seq)
	}

	good := buildFlightReport(testFlight, []InvoiceRecord{r1, r2, r3b}, nil, &CloseRecord{Flight: testFlight, Sales: 3, SalesTotal: []protocol.Money{eur(300)}, LastSeq: 3, Head: r3b.Hash}, t0)
	if !good.Reconciled {
		t.Errorf("complete flight not reconciled: %q", good.Problems)
	}
	noClose := buildFlightReport(testFlight, []InvoiceRecord{r1, r2, r3b}, nil, nil, t0)
	if noClose.Reconciled || noClose.Reported != nil {
		t.Error("a flight without a close report reconciled")
	}
}
