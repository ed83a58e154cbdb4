package api

import (
	"context"
	"net/http"
	"net/url"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// postAircraftKey rotates an aircraft's signing key (POST
// /v1/aircraft/{aircraft}/key, body AircraftRequest): the old key is kept
// with the time it was replaced, so what the aircraft signed before still
// clears. A plain PUT with another key stays a 409 conflict.
func (s *Server) postAircraftKey(c *call) error {
	var req AircraftRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	key, err := crypto.ParsePublicKey(crypto.Aircraft, req.Key)
	if err != nil {
		return invalid("key: %v", err)
	}
	a, _, err := s.reg.RotateAircraftKey(c.r.Context(), protocol.AircraftID(c.r.PathValue("aircraft")), key, req.NKey)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, AircraftView{ID: a.ID, Key: a.Key.String(), NKey: a.NKey})
}

// RotateAircraftKey moves a registered aircraft to a new signing key and,
// when nkey is not empty, a new NATS nkey (POST /v1/aircraft/{id}/key).
func (c *Client) RotateAircraftKey(ctx context.Context, id protocol.AircraftID, key crypto.PublicKey, nkey string) (AircraftView, error) {
	var v AircraftView
	in := AircraftRequest{Key: key.String(), NKey: nkey}
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/aircraft/" + url.PathEscape(string(id)) + "/key", in: in, out: &v, backOffice: true})
	return v, err
}
