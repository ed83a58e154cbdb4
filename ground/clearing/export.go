package clearing

import (
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
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
// or "csv") to w: what the `ground report --flight X` command calls.
func WriteReport(ctx context.Context, db *sql.DB, flight protocol.FlightID, format string, w io.Writer) error {
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
	return rep.WriteJSON(w)
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

// WriteJSON writes the report as indented JSON.
func (rep *FlightReport) WriteJSON(w io.Writer) error {
	for _, b := range []*Bucket{&rep.Settled, &rep.Collections, &rep.Posted, &rep.Voided, &rep.Voids, &rep.VoidsPending, &rep.Quarantined, &rep.Disputed} {
		if b.Totals == nil {
			b.Totals = []protocol.Money{}
		}
	}
	return writeJSON(w, rep)
}

// CSVHeader is the header row of a flight report's CSV export.
var CSVHeader = []string{
	"flight", "seq", "invoice", "kind", "status", "amount", "amount_minor", "currency",
	"reason_code", "reason", "detail", "decline", "passenger", "voids", "authenticated", "hash", "received_at",
}

// WriteCSV writes one row per invoice, in sequence order, under CSVHeader.
// Amounts are in minor units and, for a person, in major units with the
// currency's exponent.
func (rep *FlightReport) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, l := range rep.Invoices {
		amount, minor := "", ""
		if l.Amount.Currency != "" {
			amount = protocol.M(l.Amount.Minor, l.Amount.Currency).String()
			amount = amount[:len(amount)-len(l.Amount.Currency)-1]
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
	cw.Flush()
	return cw.Error()
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
