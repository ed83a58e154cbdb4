package clearing

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/airtab/airtab/protocol"
)

// Format is an export format of the reports.
type Format string

// Export formats.
const (
	FormatJSON Format = "json"
	FormatCSV  Format = "csv"
)

// ParseFormat accepts "json" or "csv"; "" means JSON.
func ParseFormat(s string) (Format, error) {
	switch Format(s) {
	case "", FormatJSON:
		return FormatJSON, nil
	case FormatCSV:
		return FormatCSV, nil
	}
	return "", fmt.Errorf("format %q: want json or csv", s)
}

// WriteReport writes the reconciliation report of flight in format ("json"
// or "csv") to w: what the `ground report --flight X` command calls. The
// JSON lists the invoices page asks for; the CSV always lists them all.
func WriteReport(ctx context.Context, db *sql.DB, flight protocol.FlightID, format string, page Page, w io.Writer) error {
	f, err := ParseFormat(format)
	if err != nil {
		return err
	}
	rep, err := Reports{DB: db}.Flight(ctx, flight)
	if err != nil {
		return err
	}
	if f == FormatCSV {
		return rep.WriteCSV(w)
	}
	return rep.WriteJSONPage(w, page)
}

// Page picks the invoice lines a flight report's JSON lists: a big flight's
// list is megabytes, so by default (the zero Page) it lists none and gives
// only their count.
type Page struct {
	// Limit is how many lines to list at most: 0 none, AllLines every one.
	Limit int
	// After lists only lines whose sequence number is above it: the
	// next_after of the previous page.
	After uint64
}

// AllLines as Page.Limit lists every line.
const AllLines = -1

// ParsePage reads a page from the text of ?sales= (or --sales): "" or "0"
// for none, "all" for every line, or a count; and of ?after= (or --after),
// a sequence number, "" for the start.
func ParsePage(sales, after string) (Page, error) {
	var p Page
	switch sales {
	case "", "0":
	case "all":
		p.Limit = AllLines
	default:
		n, err := strconv.Atoi(sales)
		if err != nil || n < 0 {
			return p, fmt.Errorf("sales %q: want all, or how many invoice lines to list", sales)
		}
		p.Limit = n
	}
	if after != "" {
		n, err := strconv.ParseUint(after, 10, 64)
		if err != nil {
			return p, fmt.Errorf("after %q: want a sequence number (next_after of the previous page)", after)
		}
		p.After = n
	}
	return p, nil
}

// pageOf returns the lines of page: those after p.After in sequence order,
// at most p.Limit of them plus any that share the last one's sequence
// number (a page never splits a sequence number), and the After of the
// next page, 0 when this one reaches the end.
func pageOf(lines []ReportLine, p Page) (page []ReportLine, nextAfter uint64) {
	if p.Limit == 0 {
		return nil, 0
	}
	i := 0
	for i < len(lines) && lines[i].Seq <= p.After {
		i++
	}
	rest := lines[i:]
	if p.Limit == AllLines || p.Limit >= len(rest) {
		return rest, 0
	}
	n := p.Limit
	for n < len(rest) && rest[n].Seq == rest[n-1].Seq {
		n++
	}
	if n == len(rest) {
		return rest, 0
	}
	return rest[:n], rest[n-1].Seq
}

// WriteSettlement writes the settlement summary of the UTC day holding day in
// format ("json" or "csv") to w.
func WriteSettlement(ctx context.Context, db *sql.DB, day time.Time, format string, w io.Writer) error {
	f, err := ParseFormat(format)
	if err != nil {
		return err
	}
	s, err := Reports{DB: db}.Settlement(ctx, day)
	if err != nil {
		return err
	}
	if f == FormatCSV {
		return s.WriteCSV(w)
	}
	return s.WriteJSON(w)
}

// flightReportPage is a flight report with one page of its lines: the
// summary first, then the count of lines, the page, and where the next one
// starts.
type flightReportPage struct {
	*FlightReport
	InvoiceCount int          `json:"invoice_count"`        // lines in the whole report
	Invoices     []ReportLine `json:"invoices,omitempty"`   // this page's; shadows FlightReport.Invoices
	NextAfter    uint64       `json:"next_after,omitempty"` // Page.After of the next page; absent on the last
}

// WriteJSONPage writes the report as indented JSON: the summary, then
// invoice_count, the lines page picks, and next_after when more follow.
func (rep *FlightReport) WriteJSONPage(w io.Writer, page Page) error {
	lines, next := pageOf(rep.Invoices, page)
	rep.fillEmpty()
	return writeJSON(w, flightReportPage{FlightReport: rep, InvoiceCount: len(rep.Invoices), Invoices: lines, NextAfter: next})
}

// WriteJSON writes the whole report, every line included, as indented JSON.
func (rep *FlightReport) WriteJSON(w io.Writer) error {
	rep.fillEmpty()
	return writeJSON(w, rep)
}

// fillEmpty makes empty totals encode as [] rather than null.
func (rep *FlightReport) fillEmpty() {
	for _, b := range []*Bucket{&rep.Settled, &rep.Collections, &rep.Posted, &rep.Voided, &rep.Voids, &rep.VoidsPending, &rep.Quarantined, &rep.Disputed} {
		if b.Totals == nil {
			b.Totals = []protocol.Money{}
		}
	}
}

// CSVHeader is the header row of a flight report's CSV export.
var CSVHeader = []string{
	"flight", "seq", "invoice", "kind", "status", "amount", "amount_minor", "currency",
	"reason_code", "reason", "detail", "decline", "passenger", "voids", "authenticated", "hash", "received_at",
}

// WriteCSV writes one row per invoice, in sequence order, under CSVHeader,
// then the summary rows (summaryRows): the totals and, last, whether the
// flight reconciled. Amounts are in minor units and, for a person, in
// major units with the currency's exponent.
func (rep *FlightReport) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, l := range rep.Invoices {
		amount, minor := "", ""
		if l.Amount.Currency != "" {
			amount = majorText(l.Amount)
			minor = strconv.FormatInt(l.Amount.Minor, 10)
		}
		reason := ""
		if l.Reason != 0 {
			reason = l.Reason.String()
		}
		row := []string{
			string(rep.Flight), strconv.FormatUint(l.Seq, 10), idText(l.Invoice), l.Kind, string(l.Status), amount, minor,
			string(l.Amount.Currency), strconv.Itoa(int(l.Reason)), reason, l.Detail, l.Decline, idText(l.Passenger),
			idText(l.Voids), strconv.FormatBool(l.Authenticated), l.Hash.String(), l.ReceivedAt.UTC().Format(time.RFC3339Nano),
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	if err := cw.WriteAll(rep.summaryRows()); err != nil {
		return err
	}
	cw.Flush()
	return cw.Error()
}

// CSV summary rows: kind is "total" for a total, with the total's name in
// the status column, its count in detail and one row per currency (one
// without an amount when there is none); the last row's kind is
// "reconciled", its status "true" or "false", and its detail the problems.
const (
	CSVKindTotal      = "total"
	CSVKindReconciled = "reconciled"
)

// summaryRows are the CSV's closing rows, each as wide as CSVHeader.
func (rep *FlightReport) summaryRows() [][]string {
	var rows [][]string
	row := func(kind, status, amount, minor, currency, detail string) {
		r := make([]string, len(CSVHeader))
		r[0], r[3], r[4], r[5], r[6], r[7], r[10] = string(rep.Flight), kind, status, amount, minor, currency, detail
		rows = append(rows, r)
	}
	total := func(name string, count int, totals []protocol.Money) {
		detail := strconv.Itoa(count) + " invoices"
		if count == 1 {
			detail = "1 invoice"
		}
		if len(totals) == 0 {
			row(CSVKindTotal, name, "", "", "", detail)
		}
		for _, m := range totals {
			row(CSVKindTotal, name, majorText(m), strconv.FormatInt(m.Minor, 10), string(m.Currency), detail)
		}
	}
	if c := rep.Reported; c != nil {
		total("reported_sales", int(c.Sales), c.SalesTotal)
		total("reported_voids", int(c.Voids), c.VoidsTotal)
	} else {
		row(CSVKindTotal, "reported_sales", "", "", "", "no flight-close report")
	}
	total("received_sales", rep.Received.Sales, rep.Received.SalesTotal)
	total("received_voids", rep.Received.Voids, rep.Received.VoidsTotal)
	for _, b := range []struct {
		name string
		b    *Bucket
	}{
		// "charging" is the JSON's posted (sales posted, not yet charged),
		// named so since the CSV's first version: readers match it.
		{"settled", &rep.Settled}, {"collections", &rep.Collections}, {"charging", &rep.Posted},
		{"voided", &rep.Voided}, {"voids", &rep.Voids}, {"voids_pending", &rep.VoidsPending},
		{"quarantined", &rep.Quarantined}, {"disputed", &rep.Disputed},
	} {
		total(b.name, b.b.Count, b.b.Totals)
	}
	if rep.Garbage > 0 {
		row(CSVKindTotal, "garbage", "", "", "", strconv.Itoa(rep.Garbage)+" messages that decode as nothing (not a problem)")
	}
	row(CSVKindReconciled, strconv.FormatBool(rep.Reconciled), "", "", "", strings.Join(rep.Problems, "; "))
	return rows
}

// majorText is m in major units without the currency: "7.00".
func majorText(m protocol.Money) string {
	s := m.String()
	return s[:len(s)-len(m.Currency)-1]
}

func idText(id protocol.ID) string {
	if id.IsZero() {
		return ""
	}
	return id.String()
}

// WriteJSON writes the summary as indented JSON.
func (s *Settlement) WriteJSON(w io.Writer) error { return writeJSON(w, s) }

// WriteCSV writes one row per currency: counts and minor-unit totals.
func (s *Settlement) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	header := []string{"date", "currency"}
	for _, n := range []string{"sales", "voided", "wallet_charged", "card_captured", "settled", "refunded", "top_ups", "collections"} {
		header = append(header, n+"_count", n+"_minor")
	}
	header = append(header, "net_minor")
	if err := cw.Write(header); err != nil {
		return err
	}
	for _, l := range s.Currencies {
		row := []string{s.Date, string(l.Currency)}
		for _, a := range []Amounts{l.Sales, l.Voided, l.WalletCharged, l.CardCaptured, l.Settled, l.Refunded, l.TopUps, l.Collections} {
			row = append(row, strconv.FormatInt(a.Count, 10), strconv.FormatInt(a.Total.Minor, 10))
		}
		row = append(row, strconv.FormatInt(l.Net.Minor, 10))
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
