package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// FlightOutcomes tells the API which flights have closed and reconciled:
// ground/clearing's Service implements it, and the API uses Config.Funder
// for it when the funder implements it too (as clearing's does). Without
// it a flight is only ever planned or open, and PUT /v1/flights/{flight}
// cannot tell a closed flight.
type FlightOutcomes interface {
	FlightOutcome(ctx context.Context, f protocol.FlightID) (closed, reconciled bool, err error)
}

// defaultListed is how many flights or aircraft a listing returns without
// a limit parameter.
const defaultListed = 100

func (s *Server) outcomes() FlightOutcomes {
	o, _ := s.funder.(FlightOutcomes)
	return o
}

// flightState is where flight f (with latest manifest serial) is.
func (s *Server) flightState(ctx context.Context, f protocol.FlightID, serial uint64) (FlightState, error) {
	if o := s.outcomes(); o != nil {
		closed, reconciled, err := o.FlightOutcome(ctx, f)
		switch {
		case err != nil:
			return "", fmt.Errorf("state of %s: %w", f, err)
		case reconciled:
			return FlightReconciled, nil
		case closed:
			return FlightClosed, nil
		}
	}
	if serial == 0 {
		return FlightPlanned, nil
	}
	return FlightOpen, nil
}

func (s *Server) flightAnswer(c *call, status int, f registry.Flight) error {
	v := flightView(f)
	st, err := s.flightState(c.r.Context(), f.ID, f.Serial)
	if err != nil {
		return err
	}
	v.State = st
	return c.json(status, v)
}

// putFlight changes a flight's catalog and caps; the path's flight id must
// be the body's. A closed flight is refused (409).
func (s *Server) putFlight(c *call) error {
	id, err := flightParam(c)
	if err != nil {
		return err
	}
	spec, err := flightSpecOf(c)
	if err != nil {
		return err
	}
	bodyID, err := protocol.NewFlightID(spec.Carrier, spec.Number, spec.Date)
	switch {
	case err != nil:
		return invalid("%v", err)
	case bodyID != id:
		return invalid("the body describes flight %s, the path names %s", bodyID, id)
	}
	ctx := c.r.Context()
	if o := s.outcomes(); o != nil {
		closed, _, err := o.FlightOutcome(ctx, id)
		if err != nil {
			return fmt.Errorf("state of %s: %w", id, err)
		}
		if closed {
			return registry.Errorf(registry.CodeConflict, "flight %s is closed: its catalog and caps can no longer change", id)
		}
	}
	f, err := s.reg.UpdateFlight(ctx, spec)
	if err != nil {
		return err
	}
	return s.flightAnswer(c, http.StatusOK, f)
}

// limitParam reads ?limit=, default defaultListed, at most
// registry.MaxListed.
func limitParam(c *call) (int, error) {
	v := c.r.URL.Query().Get("limit")
	if v == "" {
		return defaultListed, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > registry.MaxListed {
		return 0, invalid("limit %q: want 1 to %d", trunc(v), registry.MaxListed)
	}
	return n, nil
}

// listFlights lists flights, filtered by ?date=YYYY-MM-DD and ?aircraft=,
// with their state; ?state= keeps only flights in that state.
func (s *Server) listFlights(c *call) error {
	q := c.r.URL.Query()
	var filter registry.FlightFilter
	if v := q.Get("date"); v != "" {
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return invalid("date %q: want YYYY-MM-DD", trunc(v))
		}
		filter.Date = d
	}
	if v := q.Get("aircraft"); v != "" {
		a := protocol.AircraftID(v)
		if err := a.Validate(); err != nil {
			return invalid("aircraft: %v", err)
		}
		filter.Aircraft = a
	}
	want := FlightState(q.Get("state"))
	switch want {
	case "", FlightPlanned, FlightOpen, FlightClosed, FlightReconciled:
	default:
		return invalid("state %q: want planned, open, closed or reconciled", trunc(string(want)))
	}
	limit, err := limitParam(c)
	if err != nil {
		return err
	}
	ctx := c.r.Context()
	list, more, err := s.reg.ListFlights(ctx, filter, limit)
	if err != nil {
		return err
	}
	out := FlightList{Flights: []FlightSummary{}, Truncated: more}
	for _, f := range list {
		st, err := s.flightState(ctx, f.ID, f.Serial)
		if err != nil {
			return err
		}
		if want != "" && st != want {
			continue
		}
		out.Flights = append(out.Flights, FlightSummary{ID: f.ID, Date: f.ID.Date().Format(time.DateOnly), Aircraft: f.Aircraft,
			Currency: f.Currency, State: st, Serial: f.Serial, Credentials: f.Credentials})
	}
	return c.json(http.StatusOK, out)
}

func aircraftView(a registry.Aircraft) AircraftView {
	return AircraftView{ID: a.ID, Key: a.Key.String(), NKey: a.NKey}
}

func (s *Server) listAircraft(c *call) error {
	limit, err := limitParam(c)
	if err != nil {
		return err
	}
	list, more, err := s.reg.ListAircraft(c.r.Context(), limit)
	if err != nil {
		return err
	}
	out := AircraftList{Aircraft: []AircraftView{}, Truncated: more}
	for _, a := range list {
		out.Aircraft = append(out.Aircraft, aircraftView(a))
	}
	return c.json(http.StatusOK, out)
}

func (s *Server) getAircraft(c *call) error {
	id := protocol.AircraftID(c.r.PathValue("aircraft"))
	if err := id.Validate(); err != nil {
		return invalid("aircraft: %v", err)
	}
	a, err := s.reg.AircraftDetails(c.r.Context(), id)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, aircraftView(a))
}

// revoke revokes a credential, for the reason in the optional body.
func (s *Server) revoke(c *call) error {
	id, err := idParam(c, "credential")
	if err != nil {
		return err
	}
	var req RevokeRequest
	if len(c.body) > 0 {
		if err := c.decode(&req); err != nil {
			return err
		}
	}
	reason, err := registry.ParseRevokeReason(req.Reason)
	if err != nil {
		return err
	}
	if err := s.reg.RevokeFor(c.r.Context(), id, reason, req.Note); err != nil {
		return err
	}
	return s.credentialAnswer(c, id)
}

// reinstate lifts a credential's revocation.
func (s *Server) reinstate(c *call) error {
	id, err := idParam(c, "credential")
	if err != nil {
		return err
	}
	var req ReinstateRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if err := s.reg.ReinstateCredential(c.r.Context(), id, req.Note); err != nil {
		return err
	}
	return s.credentialAnswer(c, id)
}

func (s *Server) credentialAnswer(c *call, id protocol.ID) error {
	ic, err := s.reg.IssuedCredentialByID(c.r.Context(), id)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, credentialView(ic))
}
