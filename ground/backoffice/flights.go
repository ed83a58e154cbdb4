package backoffice

import (
	"cmp"
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// FlightState is where a flight is in its life, as the back office sees it
// from ground: registration, manifests, and what clearing received.
type FlightState string

// Flight states, in the order a flight goes through them.
const (
	// StateScheduled: registered, no manifest issued yet.
	StateScheduled FlightState = "scheduled"
	// StateManifestIssued: a manifest is issued, the departure day has
	// not come.
	StateManifestIssued FlightState = "manifest issued"
	// StateInTheAir: a manifest is issued, the departure day has come,
	// nothing received yet. Ground cannot see an aircraft in the air: this
	// is what it infers.
	StateInTheAir FlightState = "in the air"
	// StateInService: invoices are arriving while the flight is still
	// selling (the link is up in the air or at the gate); the purser has
	// not closed it, so no flight-close report has come.
	StateInService FlightState = "in service"
	// StateReplaying: the flight-close report is in and sequence numbers
	// it names are still missing.
	StateReplaying FlightState = "landed, replaying"
	// StateCleared: everything the aircraft reported is in, some sales are
	// posted and not yet charged (the report's posted bucket).
	StateCleared FlightState = "cleared"
	// StateReconciled: the report's Reconciled: everything matches.
	StateReconciled FlightState = "reconciled"
	// StateDiscrepancies: everything is in, and something does not match
	// (the report's Problems say what).
	StateDiscrepancies FlightState = "discrepancies"
)

// flightEntry is a registered flight from the index.
type flightEntry struct {
	ID         protocol.FlightID
	Aircraft   protocol.AircraftID
	Currency   protocol.Currency
	Manifested bool
}

// listFlights returns the registered flights, newest departure first, at
// most limit, and whether the registry holds more than one listing returns
// (registry.MaxListed, oldest first: the newest may then be missing). Only
// the flight ids and their manifest state come from here: every figure
// comes from clearing.Reports.
func (s *Server) listFlights(ctx context.Context, limit int) ([]flightEntry, bool, error) {
	list, more, err := s.reg.ListFlights(ctx, registry.FlightFilter{}, registry.MaxListed)
	if err != nil {
		return nil, false, err
	}
	out := make([]flightEntry, 0, len(list))
	for _, f := range list {
		out = append(out, flightEntry{ID: f.ID, Aircraft: f.Aircraft, Currency: f.Currency, Manifested: f.Serial > 0})
	}
	slices.SortFunc(out, func(a, b flightEntry) int {
		return cmp.Or(b.ID.Date().Compare(a.ID.Date()), cmp.Compare(a.ID, b.ID))
	})
	if len(out) > limit {
		out, more = out[:limit], true
	}
	return out, more, nil
}

// FlightRow is one line of the flights list.
type FlightRow struct {
	flightEntry
	State FlightState
	// Progress is the share of the reported invoices received, 0 to 1,
	// while replaying; HasProgress says whether the close report gave the
	// total.
	Progress    float64
	HasProgress bool
	Report      *clearing.FlightReport // nil before anything is received
}

// stateOf derives a flight's state from its report (nil when clearing holds
// nothing for it).
func stateOf(e flightEntry, rep *clearing.FlightReport, now time.Time) (FlightState, float64, bool) {
	if rep == nil {
		switch {
		case !e.Manifested:
			return StateScheduled, 0, false
		case now.Before(e.ID.Date()):
			return StateManifestIssued, 0, false
		}
		return StateInTheAir, 0, false
	}
	if rep.Reported == nil {
		return StateInService, 0, false
	}
	last := rep.Reported.LastSeq
	got := last - min(rep.Missing, last) // sequence numbers 1..last received
	progress := 1.0
	if last > 0 {
		progress = float64(got) / float64(last)
	}
	switch {
	case rep.Missing > 0:
		return StateReplaying, progress, true
	case rep.Reconciled:
		return StateReconciled, 1, true
	case onlyChargesUnderWay(rep):
		return StateCleared, 1, true
	}
	return StateDiscrepancies, progress, true
}

// onlyChargesUnderWay reports whether the one thing keeping the report from
// reconciling is sales posted and not yet charged.
func onlyChargesUnderWay(rep *clearing.FlightReport) bool {
	return len(rep.Problems) == 1 && rep.Posted.Count > 0
}

// rowsMaxAge is how long the flights list's rows are reused: each open
// flights page polls, and building the rows reads every flight's report on
// the database's one connection, which clearing needs too.
const rowsMaxAge = 2 * time.Second

// rowsCache holds the last rows built.
type rowsCache struct {
	mu   sync.Mutex
	at   time.Time // wall time, not the service's clock: this only bounds load
	rows []FlightRow
	more bool // flights were left out
}

// flightRowsData returns the flights list's rows, built at most every
// rowsMaxAge whoever asks.
func (s *Server) flightRowsData(ctx context.Context) ([]FlightRow, bool, error) {
	s.rows.mu.Lock()
	defer s.rows.mu.Unlock()
	if s.rows.rows != nil && time.Since(s.rows.at) < rowsMaxAge {
		return s.rows.rows, s.rows.more, nil
	}
	rows, more, err := s.buildFlightRows(ctx)
	if err != nil {
		return nil, false, err
	}
	s.rows.rows, s.rows.more, s.rows.at = rows, more, time.Now()
	return rows, more, nil
}

func (s *Server) buildFlightRows(ctx context.Context) ([]FlightRow, bool, error) {
	entries, more, err := s.listFlights(ctx, s.cfg.MaxFlights)
	if err != nil {
		return nil, false, err
	}
	now := s.now()
	out := make([]FlightRow, 0, len(entries))
	for _, e := range entries {
		rep, err := s.reports.Flight(ctx, e.ID)
		if errors.Is(err, clearing.ErrNoData) {
			rep, err = nil, nil
		}
		if err != nil {
			return nil, false, err
		}
		row := FlightRow{flightEntry: e, Report: rep}
		row.State, row.Progress, row.HasProgress = stateOf(e, rep, now)
		out = append(out, row)
	}
	return out, more, nil
}

func (s *Server) flightsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	rows, more, err := s.flightRowsData(r.Context())
	if err != nil {
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	s.render(w, r, http.StatusOK, "flights", sess, map[string]any{"Rows": rows, "More": more, "Max": registry.MaxListed,
		"PollMS": s.cfg.PollSeconds * 1000, "PollSeconds": s.cfg.PollSeconds, "Now": s.now()})
}

// flightRows serves the table body alone: the flights page's poll swaps it
// in, so the rows are drawn by the same template either way.
func (s *Server) flightRows(w http.ResponseWriter, r *http.Request, sess *session) {
	rows, _, err := s.flightRowsData(r.Context())
	if err != nil {
		s.log.Error("back-office flight rows failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := s.pages["flights"].ExecuteTemplate(w, "rows", rows); err != nil {
		s.log.Error("back-office flight rows failed", "err", err)
	}
}

// Class is the state's CSS class name.
func (st FlightState) Class() string {
	return strings.NewReplacer(" ", "-", ",", "").Replace(string(st))
}
