package backoffice

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/protocol"
)

// maxLinesDetailed bounds the invoices of one flight page whose items and
// charge are read from their records; the rest show the report's columns.
const maxLinesDetailed = 2000

// InvoiceView is one invoice line of a flight page: the report's line and,
// from clearing's record, what was sold and how it was charged.
type InvoiceView struct {
	clearing.ReportLine
	Items     []protocol.OrderLine
	CreatedAt time.Time // the aircraft's time of the sale
	Funding   ground.FundingKind
	Tries     int
	Detailed  bool
}

// Bucket names a report bucket for the reconciliation table.
type Bucket struct {
	Name string
	clearing.Bucket
}

func (s *Server) flightPage(w http.ResponseWriter, r *http.Request, sess *session) {
	name := r.PathValue("flight")
	format := ""
	for _, ext := range []string{".csv", ".json"} {
		if base, ok := strings.CutSuffix(name, ext); ok {
			name, format = base, ext[1:]
		}
	}
	f, err := protocol.ParseFlightID(name)
	if err != nil {
		s.fail(w, r, sess, http.StatusBadRequest, err.Error())
		return
	}
	rep, err := s.reports.Flight(r.Context(), f)
	if err != nil && !errors.Is(err, clearing.ErrNoData) {
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	if rep == nil { // nothing received: a flight still to land, or a mistyped id
		if _, err := s.reg.Flight(r.Context(), f); errors.Is(err, ground.ErrNotFound) {
			s.fail(w, r, sess, http.StatusNotFound, fmt.Sprintf("Flight %s is not known to ground: no flight is registered with this id. Check it against the flights list.", f))
			return
		} else if err != nil {
			s.fail(w, r, sess, http.StatusInternalServerError, "", err)
			return
		}
	}
	if format != "" {
		s.download(w, r, sess, rep, string(f)+"."+format)
		return
	}
	if rep == nil {
		s.render(w, r, http.StatusOK, "flight", sess, map[string]any{"Flight": f})
		return
	}
	lines, err := s.invoiceViews(r.Context(), rep)
	if err != nil {
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	e := flightEntry{ID: f, Aircraft: rep.Aircraft, Manifested: true}
	state, progress, hasProgress := stateOf(e, rep, s.now())
	s.render(w, r, http.StatusOK, "flight", sess, map[string]any{
		"Flight": f, "Report": rep, "Lines": lines, "State": state, "Progress": progress, "HasProgress": hasProgress,
		"Buckets": []Bucket{{"Settled", rep.Settled}, {"Collections", rep.Collections}, {"Posted, not yet charged", rep.Posted},
			{"Voided", rep.Voided}, {"Voids applied", rep.Voids}, {"Voids pending", rep.VoidsPending}, {"Quarantined", rep.Quarantined},
			{"Disputed", rep.Disputed}},
		"SalesByHour": salesByHour(lines),
		"Replay":      replayChart(rep),
		"Truncated":   len(rep.Invoices) > maxLinesDetailed,
		"CanResolve":  s.cfg.Disputes != nil,
	})
}

// download writes the report in the export format the file name ends in,
// with the same writers as the API and the CLI.
func (s *Server) download(w http.ResponseWriter, r *http.Request, sess *session, rep *clearing.FlightReport, file string) {
	if rep == nil {
		s.fail(w, r, sess, http.StatusNotFound, "Clearing has received nothing for this flight yet.")
		return
	}
	var buf bytes.Buffer
	var err error
	if strings.HasSuffix(file, ".csv") {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		err = rep.WriteCSV(&buf)
	} else {
		w.Header().Set("Content-Type", "application/json")
		err = rep.WriteJSON(&buf)
	}
	if err != nil {
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="`+file+`"`)
	w.Write(buf.Bytes())
}

// invoiceViews adds each authenticated invoice's items and charge from its
// record, for the first maxLinesDetailed lines.
func (s *Server) invoiceViews(ctx context.Context, rep *clearing.FlightReport) ([]InvoiceView, error) {
	out := make([]InvoiceView, len(rep.Invoices))
	for i, l := range rep.Invoices {
		out[i].ReportLine = l
		if !l.Authenticated || i >= maxLinesDetailed {
			continue
		}
		rec, ok, err := clearing.LookupInvoice(ctx, s.cfg.DB, l.Invoice)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		out[i].CreatedAt, out[i].Funding, out[i].Tries, out[i].Detailed = rec.CreatedAt, rec.Funding, rec.Tries, true
		if inv, err := protocol.ParseInvoice(rec.Raw); err == nil {
			out[i].Items = inv.Body.Lines
		}
	}
	return out, nil
}

// resolveDispute charges or voids a disputed sale of the flight, with the
// note the form carries, and goes back to the flight page.
func (s *Server) resolveDispute(w http.ResponseWriter, r *http.Request, sess *session) {
	if s.cfg.Disputes == nil {
		s.fail(w, r, sess, http.StatusServiceUnavailable, "Disputes cannot be resolved from here: this ground runs without its clearing service.")
		return
	}
	f, err := protocol.ParseFlightID(r.PathValue("flight"))
	if err != nil {
		s.fail(w, r, sess, http.StatusBadRequest, err.Error())
		return
	}
	id, err := protocol.ParseID(r.PostFormValue("invoice"))
	if err != nil {
		s.fail(w, r, sess, http.StatusBadRequest, "invoice: "+err.Error())
		return
	}
	var charge bool
	switch d := r.PostFormValue("decision"); d {
	case "charge":
		charge = true
	case "void":
	default:
		s.fail(w, r, sess, http.StatusBadRequest, fmt.Sprintf("decision %q: want charge or void", d))
		return
	}
	rec, found, err := clearing.LookupInvoice(r.Context(), s.cfg.DB, id)
	switch {
	case err != nil:
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	case !found || rec.Flight != f:
		s.fail(w, r, sess, http.StatusNotFound, fmt.Sprintf("Invoice %s is not an invoice of flight %s.", id, f))
		return
	}
	rec, err = s.cfg.Disputes.ResolveDispute(r.Context(), id, charge, r.PostFormValue("note"))
	switch {
	case errors.Is(err, clearing.ErrDisputeNote):
		s.fail(w, r, sess, http.StatusBadRequest, fmt.Sprintf("Write a note saying why (at most %d characters), then choose again.", clearing.MaxDisputeNote))
		return
	case errors.Is(err, clearing.ErrNotDisputed):
		s.fail(w, r, sess, http.StatusConflict, fmt.Sprintf("Invoice %s is not disputed any more: reload the flight page.", id))
		return
	case err != nil:
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	s.log.Info("back office resolved a dispute", "invoice", id, "flight", f, "charge", charge, "status", rec.Status)
	done := fmt.Sprintf("Dispute of invoice %s resolved: %s.", id, rec.Status)
	http.Redirect(w, r, Prefix+"flights/"+url.PathEscape(string(f))+"?done="+url.QueryEscape(done), http.StatusSeeOther)
}
