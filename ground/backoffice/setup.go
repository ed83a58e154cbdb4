package backoffice

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// The set-up screens: every form calls the registry function the JSON API
// calls for the same thing, so the rules (and their error messages) are the
// registry's.

// maxFormLines bounds the lines of a catalog or roster text area.
const maxFormLines = 500

// setupData is what the set-up page shows.
type setupData struct {
	Aircraft []protocol.AircraftID
	Flights  []flightEntry
	Selected *registry.Flight // ?flight=…
	Crew     []protocol.CrewMember
	Error    string
	Form     url.Values // the rejected form, to fill in again
}

func (s *Server) loadSetup(ctx context.Context, selected string) (*setupData, error) {
	d := &setupData{}
	flights, _, err := s.listFlights(ctx, s.cfg.MaxFlights)
	if err != nil {
		return nil, err
	}
	d.Flights = flights
	aircraft, _, err := s.reg.ListAircraft(ctx, registry.MaxListed)
	if err != nil {
		return nil, err
	}
	for _, a := range aircraft {
		d.Aircraft = append(d.Aircraft, a.ID)
	}
	if selected != "" {
		f, err := protocol.ParseFlightID(selected)
		if err != nil {
			return nil, registry.Errorf(registry.CodeInvalid, "%v", err)
		}
		fl, err := s.reg.FlightDetails(ctx, f)
		if err != nil {
			return nil, err
		}
		d.Selected = &fl
		for _, m := range fl.Crew {
			d.Crew = append(d.Crew, protocol.CrewMember{ID: m.ID, Role: m.Role}) // never the PIN hash
		}
	}
	return d, nil
}

func (s *Server) setupPage(w http.ResponseWriter, r *http.Request, sess *session) {
	d, err := s.loadSetup(r.Context(), r.URL.Query().Get("flight"))
	if err != nil {
		s.registryFail(w, r, sess, err)
		return
	}
	s.render(w, r, http.StatusOK, "setup", sess, d)
}

// registryFail shows a registry error: its message when it is for a person,
// "internal error" (and a log line) otherwise.
func (s *Server) registryFail(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	code := registry.ErrorCode(err)
	if code == registry.CodeInternal {
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	status := map[registry.Code]int{registry.CodeNotFound: http.StatusNotFound, registry.CodeConflict: http.StatusConflict}[code]
	if status == 0 {
		status = http.StatusBadRequest
	}
	s.fail(w, r, sess, status, registry.ErrorMessage(err))
}

func (s *Server) setupPost(w http.ResponseWriter, r *http.Request, sess *session) {
	ctx := r.Context()
	var (
		done   string
		flight string
		err    error
	)
	switch r.PathValue("what") {
	case "aircraft":
		done, err = s.postAircraft(ctx, r)
	case "flight":
		done, flight, err = s.postFlight(ctx, r)
	case "crew":
		flight = r.PostFormValue("flight")
		done, err = s.postCrew(ctx, r)
	case "manifest":
		flight = r.PostFormValue("flight")
		done, err = s.postManifest(ctx, r)
	case "revoke":
		done, err = s.postRevoke(ctx, r)
	default:
		s.fail(w, r, sess, http.StatusNotFound, "No such set-up form.")
		return
	}
	if err != nil {
		s.setupError(w, r, sess, err)
		return
	}
	s.log.Info("back-office set-up", "form", r.PathValue("what"), "done", done)
	q := url.Values{"done": {done}}
	if flight != "" {
		q.Set("flight", flight)
	}
	http.Redirect(w, r, Prefix+"setup?"+q.Encode(), http.StatusSeeOther)
}

// setupError shows the set-up page again with the error and the form as
// sent (PINs left out).
func (s *Server) setupError(w http.ResponseWriter, r *http.Request, sess *session, err error) {
	code := registry.ErrorCode(err)
	if code == registry.CodeInternal {
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	d, lerr := s.loadSetup(r.Context(), "")
	if lerr != nil {
		s.registryFail(w, r, sess, lerr)
		return
	}
	d.Error = registry.ErrorMessage(err)
	d.Form = r.PostForm
	d.Form.Del("roster")
	d.Form.Del(CSRFField)
	status := http.StatusBadRequest
	if code == registry.CodeConflict {
		status = http.StatusConflict
	} else if code == registry.CodeNotFound {
		status = http.StatusNotFound
	}
	s.render(w, r, status, "setup", sess, d)
}

func invalid(format string, args ...any) error {
	return registry.Errorf(registry.CodeInvalid, format, args...)
}

func (s *Server) postAircraft(ctx context.Context, r *http.Request) (string, error) {
	id := protocol.AircraftID(strings.TrimSpace(r.PostFormValue("aircraft")))
	if err := id.Validate(); err != nil {
		return "", invalid("%v", err)
	}
	key, err := crypto.ParsePublicKey(crypto.Aircraft, strings.TrimSpace(r.PostFormValue("key")))
	if err != nil {
		return "", invalid("aircraft key: %v", err)
	}
	created, err := s.reg.RegisterAircraft(ctx, registry.Aircraft{ID: id, Key: key, NKey: strings.TrimSpace(r.PostFormValue("nkey"))})
	if err != nil {
		return "", err
	}
	if !created {
		return fmt.Sprintf("Aircraft %s was already registered with this key.", id), nil
	}
	return fmt.Sprintf("Aircraft %s registered.", id), nil
}

func (s *Server) postFlight(ctx context.Context, r *http.Request) (string, string, error) {
	f := r.PostFormValue
	date, err := time.Parse(time.DateOnly, strings.TrimSpace(f("date")))
	if err != nil {
		return "", "", invalid("date %q: want YYYY-MM-DD", f("date"))
	}
	cur := protocol.Currency(strings.ToUpper(strings.TrimSpace(f("currency"))))
	catalog, err := parseCatalog(f("catalog"), cur)
	if err != nil {
		return "", "", err
	}
	caps, err := parseCaps(f, cur)
	if err != nil {
		return "", "", err
	}
	spec := registry.FlightSpec{Carrier: strings.ToUpper(strings.TrimSpace(f("carrier"))), Number: strings.TrimSpace(f("number")),
		Date: date, Aircraft: protocol.AircraftID(strings.TrimSpace(f("aircraft"))), Currency: cur, Catalog: catalog, Caps: caps}
	id, err := protocol.NewFlightID(spec.Carrier, spec.Number, spec.Date)
	if err != nil {
		return "", "", invalid("%v", err)
	}
	if _, err := s.reg.FlightDetails(ctx, id); registry.ErrorCode(err) == registry.CodeNotFound {
		fl, _, err := s.reg.RegisterFlight(ctx, spec)
		if err != nil {
			return "", "", err
		}
		return fmt.Sprintf("Flight %s registered.", fl.ID), string(fl.ID), nil
	} else if err != nil {
		return "", "", err
	}
	// Registered already: a change of catalog and caps, refused once the
	// flight has closed (what PUT /v1/flights/{flight} does).
	if s.cfg.Outcomes == nil {
		return "", "", registry.Errorf(registry.CodeUnavailable, "flight %s is registered, and without clearing this ground cannot tell whether it closed: not changed", id)
	}
	closed, _, err := s.cfg.Outcomes.FlightOutcome(ctx, id)
	if err != nil {
		return "", "", err
	}
	if closed {
		return "", "", registry.Errorf(registry.CodeConflict, "flight %s is closed: its catalog and caps can no longer change", id)
	}
	fl, err := s.reg.UpdateFlight(ctx, spec)
	if err != nil {
		return "", "", err
	}
	return fmt.Sprintf("Flight %s updated: its manifest is issued again with the new catalog and caps.", fl.ID), string(fl.ID), nil
}

// parseCatalog reads one item per line: "SKU | name | price | category",
// the price in major units of the flight's currency ("4.50").
func parseCatalog(text string, cur protocol.Currency) ([]protocol.CatalogItem, error) {
	var out []protocol.CatalogItem
	for i, line := range lines(text) {
		if i >= maxFormLines {
			return nil, invalid("catalog: over the limit of %d lines", maxFormLines)
		}
		parts := strings.Split(line, "|")
		if len(parts) != 4 {
			return nil, invalid("catalog line %d %q: want \"SKU | name | price | category\"", i+1, trunc(line))
		}
		for j := range parts {
			parts[j] = strings.TrimSpace(parts[j])
		}
		price, err := protocol.ParseMoney(parts[2] + " " + string(cur))
		if err != nil {
			return nil, invalid("catalog line %d: %v", i+1, err)
		}
		out = append(out, protocol.CatalogItem{SKU: parts[0], Name: parts[1], Price: price, Category: parts[3]})
	}
	return out, nil
}

// parseCaps reads the caps fields; an empty field takes the registry's
// default.
func parseCaps(f func(string) string, cur protocol.Currency) (protocol.Caps, error) {
	var c protocol.Caps
	if v := strings.TrimSpace(f("exposure")); v != "" {
		m, err := protocol.ParseMoney(v + " " + string(cur))
		if err != nil {
			return c, invalid("aircraft exposure cap: %v", err)
		}
		c.AircraftExposure = m
	}
	for _, p := range []struct {
		name string
		dst  *uint32
	}{
		{"code_fresh", &c.CodeFreshSeconds}, {"clock_skew", &c.ClockSkewSeconds},
		{"velocity_count", &c.VelocityCount}, {"velocity_window", &c.VelocityWindowSeconds},
	} {
		v := strings.TrimSpace(f(p.name))
		if v == "" {
			continue
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return c, invalid("%s %q: want a whole number", strings.ReplaceAll(p.name, "_", " "), trunc(v))
		}
		*p.dst = uint32(n)
	}
	return c, nil
}

// postCrew replaces a roster from one member per line: "id role PIN".
func (s *Server) postCrew(ctx context.Context, r *http.Request) (string, error) {
	f, err := protocol.ParseFlightID(strings.TrimSpace(r.PostFormValue("flight")))
	if err != nil {
		return "", invalid("%v", err)
	}
	var crew []registry.CrewInput
	for i, line := range lines(r.PostFormValue("roster")) {
		if i >= maxFormLines {
			return "", invalid("roster: over the limit of %d lines", maxFormLines)
		}
		fields := strings.Fields(line)
		if len(fields) != 3 {
			return "", invalid("roster line %d: want \"crew-id role PIN\" (role purser or attendant)", i+1)
		}
		crew = append(crew, registry.CrewInput{ID: fields[0], Role: fields[1], PIN: fields[2]})
	}
	if err := s.reg.SetCrew(ctx, f, crew); err != nil {
		return "", err
	}
	return fmt.Sprintf("Crew roster of %s set: %d members.", f, len(crew)), nil
}

func (s *Server) postManifest(ctx context.Context, r *http.Request) (string, error) {
	f, err := protocol.ParseFlightID(strings.TrimSpace(r.PostFormValue("flight")))
	if err != nil {
		return "", invalid("%v", err)
	}
	m, err := s.reg.BuildManifest(ctx, f)
	if err != nil {
		return "", err
	}
	b := m.Body
	return fmt.Sprintf("Manifest %d of %s issued: %d credentials, %d deny-list entries, expires %s.",
		b.Serial, f, len(b.Credentials), len(b.Deny), b.ExpiresAt.UTC().Format(time.RFC3339)), nil
}

func (s *Server) postRevoke(ctx context.Context, r *http.Request) (string, error) {
	id, err := protocol.ParseID(strings.TrimSpace(r.PostFormValue("credential")))
	if err != nil {
		return "", invalid("credential: %v", err)
	}
	reason, err := registry.ParseRevokeReason(r.PostFormValue("reason"))
	if err != nil {
		return "", err
	}
	if err := s.reg.RevokeFor(ctx, id, reason, strings.TrimSpace(r.PostFormValue("note"))); err != nil {
		return "", err
	}
	return fmt.Sprintf("Credential %s revoked, reason %s: the next manifest and delta of its flight deny it.", id, r.PostFormValue("reason")), nil
}

// lines returns the non-empty, trimmed lines of a text area.
func lines(text string) []string {
	var out []string
	for l := range strings.Lines(text) {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
