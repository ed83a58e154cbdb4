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
// with the time it was replaced, so what the aircraft signed for flights
// begun before still clears, unless the body marks the rotation compromised.
// The body must name a new nkey. A plain PUT with another key stays a 409
// conflict.
func (s *Server) postAircraftKey(c *call) error {
	var req AircraftRequest
	if err := c.decode(&req); err != nil {
		return err
	}
	key, err := crypto.ParsePublicKey(crypto.Aircraft, req.Key)
	if err != nil {
		return invalid("key: %v", err)
	}
	a, _, err := s.reg.RotateAircraftKey(c.r.Context(), protocol.AircraftID(c.r.PathValue("aircraft")), key, req.NKey, req.Compromised)
	if err != nil {
		return err
	}
	return c.json(http.StatusOK, AircraftView{ID: a.ID, Key: a.Key.String(), NKey: a.NKey})
}

// RotateAircraftKey moves a registered aircraft to a new signing key and a
// new NATS nkey (POST /v1/aircraft/{id}/key).
func (c *Client) RotateAircraftKey(ctx context.Context, id protocol.AircraftID, key crypto.PublicKey, nkey string) (AircraftView, error) {
	return c.rotateAircraftKey(ctx, id, AircraftRequest{Key: key.String(), NKey: nkey})
}

// RotateCompromisedAircraftKey is RotateAircraftKey for an old key thought
// exposed: clearing accepts nothing the old key signed.
func (c *Client) RotateCompromisedAircraftKey(ctx context.Context, id protocol.AircraftID, key crypto.PublicKey, nkey string) (AircraftView, error) {
	return c.rotateAircraftKey(ctx, id, AircraftRequest{Key: key.String(), NKey: nkey, Compromised: true})
}

func (c *Client) rotateAircraftKey(ctx context.Context, id protocol.AircraftID, in AircraftRequest) (AircraftView, error) {
	var v AircraftView
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/aircraft/" + url.PathEscape(string(id)) + "/key", in: in, out: &v})
	return v, err
}
