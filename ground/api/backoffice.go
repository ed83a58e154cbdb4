package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// defaultArrearsListed is how many arrears GET /v1/arrears lists without a
// limit parameter.
const defaultArrearsListed = 100

func created(yes bool) int {
	if yes {
		return http.StatusCreated
	}
	return http.StatusOK
}

func (s *Server) putAircraft(c *call) error {
	var req AircraftRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	key, err := crypto.ParsePublicKey(crypto.Aircraft, req.Key)
	if err != nil {
		return invalid("key: %v", err)
	}
	a := registry.Aircraft{ID: protocol.AircraftID(c.r.PathValue("aircraft")), Key: key, NKey: req.NKey}
	isNew, err := s.reg.RegisterAircraft(c.r.Context(), a)
	if err != nil {
		return err
	}
	return c.json(created(isNew), AircraftView{ID: a.ID, Key: key.String(), NKey: a.NKey})
}

func (s *Server) postFlight(c *call) error {
	spec, err := flightSpecOf(c)
	if err != nil {
		return err
	}
	f, isNew, err := s.reg.RegisterFlight(c.r.Context(), spec)
	if err != nil {
		return err
	}
	return s.flightAnswer(c, created(isNew), f)
}

// flightSpecOf decodes a FlightRequest.
func flightSpecOf(c *call) (registry.FlightSpec, error) {
	var req FlightRequest
	if err := c.decode(&req); err != nil {
		return registry.FlightSpec{}, err
	}
	date, err := time.Parse(time.DateOnly, req.Date)
	if err != nil {
		return registry.FlightSpec{}, invalid("date %q: want YYYY-MM-DD", trunc(req.Date))
	}
	spec := registry.FlightSpec{Carrier: req.Carrier, Number: req.Number, Date: date, Aircraft: req.Aircraft,
		Currency: req.Currency, Catalog: req.Catalog}
	if cp := req.Caps; cp != nil {
		spec.Caps = protocol.Caps{CodeFreshSeconds: cp.CodeFreshSeconds, ClockSkewSeconds: cp.ClockSkewSeconds,
			VelocityCount: cp.VelocityCount, VelocityWindowSeconds: cp.VelocityWindowSeconds}
		if cp.AircraftExposure != nil {
			spec.Caps.AircraftExposure = *cp.AircraftExposure
		}
	}
	return spec, nil
}

func flightParam(c *call) (protocol.FlightID, error) {
	f, err := protocol.ParseFlightID(c.r.PathValue("flight"))
	if err != nil {
		return f, invalid("%v", err)
	}
	return f, nil
}

func idParam(c *call, name string) (protocol.ID, error) {
	id, err := protocol.ParseID(c.r.PathValue(name))
	if err != nil {
		return id, invalid("%s: %v", name, err)
	}
	return id, nil
}

func (s *Server) getFlight(c *call) error {
	id, err := flightParam(c)
	if err != nil {
		return err
	}
	f, err := s.reg.FlightDetails(c.r.Context(), id)
	if err != nil {
		return err
	}
	return s.flightAnswer(c, http.StatusOK, f)
}

func (s *Server) putCrew(c *call) error {
	id, err := flightParam(c)
	if err != nil {
		return err
	}
	var req CrewRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	if len(req.Crew) > protocol.MaxCrew {
		return invalid("crew: %d members, over the limit of %d", len(req.Crew), protocol.MaxCrew)
	}
	in := make([]registry.CrewInput, 0, len(req.Crew))
	for _, m := range req.Crew {
		in = append(in, registry.CrewInput(m))
	}
	if err := s.reg.SetCrew(c.r.Context(), id, in); err != nil {
		return err
	}
	return s.getFlight(c)
}

func (s *Server) postManifest(c *call) error {
	id, err := flightParam(c)
	if err != nil {
		return err
	}
	m, err := s.reg.BuildManifest(c.r.Context(), id)
	if err != nil {
		return err
	}
	b := m.Body
	return c.json(http.StatusCreated, ManifestView{Flight: b.Flight, Serial: b.Serial, IssuedAt: b.IssuedAt.UTC(), ExpiresAt: b.ExpiresAt.UTC(),
		Credentials: len(b.Credentials), Deny: len(b.Deny), COSE: m.Raw})
}

func (s *Server) getPassenger(c *call) error {
	id, err := idParam(c, "passenger")
	if err != nil {
		return err
	}
	p, err := s.reg.Passenger(c.r.Context(), id)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, accountView(p, s.reg.Policy()))
}

func (s *Server) listArrears(c *call) error {
	limit := defaultArrearsListed
	if v := c.r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return invalid("limit %q: want a number", trunc(v))
		}
		limit = n
	}
	list, more, err := s.reg.ListArrears(c.r.Context(), limit)
	if err != nil {
		return err
	}
	out := ArrearsList{Arrears: []ArrearsEntry{}, Truncated: more}
	for _, a := range list {
		out.Arrears = append(out.Arrears, ArrearsEntry{Passenger: a.Passenger, Invoice: a.Invoice, Since: a.MarkedAt})
	}
	return c.json(http.StatusOK, out)
}
