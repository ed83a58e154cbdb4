package api

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/airtab/airtab/protocol"
)

// UpdateFlight changes a flight's catalog and caps (PUT /v1/flights/{id}).
func (c *Client) UpdateFlight(ctx context.Context, f FlightRequest) (FlightView, error) {
	date, err := parseDate(f.Date)
	if err != nil {
		return FlightView{}, err
	}
	id, err := protocol.NewFlightID(f.Carrier, f.Number, date)
	if err != nil {
		return FlightView{}, err
	}
	var v FlightView
	_, err = c.do(ctx, request{method: http.MethodPut, path: "/v1/flights/" + string(id), in: f, out: &v})
	return v, err
}

// Flights lists flights (GET /v1/flights); date ("YYYY-MM-DD"), aircraft
// and state may be empty.
func (c *Client) Flights(ctx context.Context, date string, aircraft protocol.AircraftID, state FlightState, limit int) (FlightList, error) {
	q := url.Values{}
	for k, v := range map[string]string{"date": date, "aircraft": string(aircraft), "state": string(state)} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/flights"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var l FlightList
	_, err := c.do(ctx, request{method: http.MethodGet, path: path, out: &l})
	return l, err
}

// AircraftList lists registered aircraft (GET /v1/aircraft).
func (c *Client) AircraftList(ctx context.Context, limit int) (AircraftList, error) {
	path := "/v1/aircraft"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	var l AircraftList
	_, err := c.do(ctx, request{method: http.MethodGet, path: path, out: &l})
	return l, err
}

// Aircraft returns a registered aircraft (GET /v1/aircraft/{id}).
func (c *Client) Aircraft(ctx context.Context, id protocol.AircraftID) (AircraftView, error) {
	var v AircraftView
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/aircraft/" + url.PathEscape(string(id)), out: &v})
	return v, err
}

// RevokeFor revokes a credential for a reason ("revoked", "device_lost",
// "fraud_suspected", "passenger_request"), with a note for the audit.
func (c *Client) RevokeFor(ctx context.Context, credential protocol.ID, reason, note string) (Credential, error) {
	var cr Credential
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/credentials/" + credential.String() + "/revoke",
		in: RevokeRequest{Reason: reason, Note: note}, out: &cr})
	return cr, err
}

// Reinstate lifts a credential's revocation; note says who asked and why.
func (c *Client) Reinstate(ctx context.Context, credential protocol.ID, note string) (Credential, error) {
	var cr Credential
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/credentials/" + credential.String() + "/reinstate",
		in: ReinstateRequest{Note: note}, out: &cr})
	return cr, err
}

func parseDate(s string) (time.Time, error) {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return d, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return d, nil
}
