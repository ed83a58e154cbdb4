package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// maxResponse bounds what the client reads of a response, in bytes (a
// manifest view is about 1.2 MiB at most).
const maxResponse = 4 << 20

// Client is a Go client of the API, for the simulator and the back office
// (passenger apps use passengerapi.Client, which needs nothing of ground). Passenger calls take the device key that signs
// them; back-office calls use Token. A refused call returns the server's
// *registry.Error, so callers can switch on its Code.
type Client struct {
	// BaseURL is the server's root, for example "http://127.0.0.1:8080".
	BaseURL string
	// HTTP is the client used. Default: one with a 30 s timeout.
	HTTP *http.Client
	// Token is the back-office bearer token.
	Token string
	// Clock gives request timestamps. Default time.Now.
	Clock func() time.Time
	// Rand gives request nonces. Default crypto/rand. A reader shared by
	// goroutines must be safe for concurrent use.
	Rand io.Reader
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// request is one call: who signs it and what to send.
type request struct {
	method, path string
	in, out      any
	dev          Signer // passenger call: signs the request
	proof        Signer // enroll call: signs the same string as the new key
	backOffice   bool
}

// do sends the request and decodes the response into out. It returns the
// HTTP status.
func (c *Client) do(ctx context.Context, r request) (int, error) {
	var body []byte
	if r.in != nil {
		var err error
		if body, err = json.Marshal(r.in); err != nil {
			return 0, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, r.method, strings.TrimSuffix(c.BaseURL, "/")+r.path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	now := time.Now
	if c.Clock != nil {
		now = c.Clock
	}
	switch {
	case r.dev != nil:
		msg := SignRequest(req, body, r.dev, now(), c.Rand)
		if r.proof != nil {
			req.Header.Set(HeaderProof, base64.StdEncoding.EncodeToString(r.proof.Sign(SigningDomain, msg)))
		}
	case r.backOffice:
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read response: %w", r.method, r.path, err)
	}
	if len(data) > maxResponse {
		return resp.StatusCode, fmt.Errorf("%s %s: response over %d bytes", r.method, r.path, maxResponse)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			return resp.StatusCode, &registry.Error{Code: registry.Code(eb.Error.Code), Message: eb.Error.Message}
		}
		return resp.StatusCode, fmt.Errorf("%s %s: HTTP %d: %s", r.method, r.path, resp.StatusCode, trunc(string(data)))
	}
	if r.out != nil {
		if err := json.Unmarshal(data, r.out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: decode response: %w", r.method, r.path, err)
		}
	}
	return resp.StatusCode, nil
}

// CreatePassenger registers a passenger with dev as their first device,
// signing the request with it. externalRef is optional.
func (c *Client) CreatePassenger(ctx context.Context, dev Signer, externalRef string) (Account, error) {
	var a Account
	in := CreatePassengerRequest{DeviceKey: dev.Public().String(), ExternalRef: externalRef}
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/passengers", in: in, out: &a, dev: dev})
	return a, err
}

// Account returns the account of the passenger dev belongs to.
func (c *Client) Account(ctx context.Context, dev Signer) (Account, error) {
	var a Account
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/me", out: &a, dev: dev})
	return a, err
}

// SetFunding links a funding source.
func (c *Client) SetFunding(ctx context.Context, dev Signer, f ground.FundingSource) (Account, error) {
	var a Account
	in := passengerapi.Funding{Kind: passengerapi.FundingKind(f.Kind), Network: string(f.Network), Token: f.Token,
		Last4: f.Last4, ExpMonth: f.ExpMonth, ExpYear: f.ExpYear}
	_, err := c.do(ctx, request{method: http.MethodPut, path: "/v1/me/funding", in: in, out: &a, dev: dev})
	return a, err
}

// Charges returns up to limit of the passenger's charges (all up to
// passengerapi.MaxCharges when limit is 0).
func (c *Client) Charges(ctx context.Context, dev Signer, limit int) (passengerapi.ChargeList, error) {
	var l passengerapi.ChargeList
	path := "/v1/me/charges"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	_, err := c.do(ctx, request{method: http.MethodGet, path: path, out: &l, dev: dev})
	return l, err
}

// EnrollDevice adds newDev to the passenger dev belongs to; both sign.
func (c *Client) EnrollDevice(ctx context.Context, dev, newDev Signer) (Account, error) {
	var a Account
	in := DeviceRequest{DeviceKey: newDev.Public().String()}
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/me/devices", in: in, out: &a, dev: dev, proof: newDev})
	return a, err
}

// TopUp credits amount to the wallet; ref makes it idempotent. It returns
// the balance after.
func (c *Client) TopUp(ctx context.Context, dev Signer, amount protocol.Money, ref protocol.ID) (protocol.Money, error) {
	var b Balance
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/me/wallet/topups", in: TopUpRequest{Amount: amount, Ref: ref}, out: &b, dev: dev})
	return b.Balance, err
}

// WalletBalance returns the wallet balance in currency cur.
func (c *Client) WalletBalance(ctx context.Context, dev Signer, cur protocol.Currency) (protocol.Money, error) {
	var b Balance
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/me/wallet/" + url.PathEscape(string(cur)), out: &b, dev: dev})
	return b.Balance, err
}

// OptIn opts the passenger in to flight f and returns the credential bound
// to dev. The same call again returns the same credential.
func (c *Client) OptIn(ctx context.Context, dev Signer, f protocol.FlightID) (Credential, error) {
	var cr Credential
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/me/credentials", in: OptInRequest{Flight: f}, out: &cr, dev: dev})
	return cr, err
}

// RegisterAircraft registers an aircraft with its signing key and optional
// NATS user nkey.
func (c *Client) RegisterAircraft(ctx context.Context, id protocol.AircraftID, key crypto.PublicKey, nkey string) (AircraftView, error) {
	var v AircraftView
	in := AircraftRequest{Key: key.String(), NKey: nkey}
	_, err := c.do(ctx, request{method: http.MethodPut, path: "/v1/aircraft/" + url.PathEscape(string(id)), in: in, out: &v, backOffice: true})
	return v, err
}

// RegisterFlight registers or updates a flight.
func (c *Client) RegisterFlight(ctx context.Context, f FlightRequest) (FlightView, error) {
	var v FlightView
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/flights", in: f, out: &v, backOffice: true})
	return v, err
}

// Flight returns a registered flight.
func (c *Client) Flight(ctx context.Context, f protocol.FlightID) (FlightView, error) {
	var v FlightView
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/flights/" + url.PathEscape(string(f)), out: &v, backOffice: true})
	return v, err
}

// SetCrew replaces a flight's crew roster.
func (c *Client) SetCrew(ctx context.Context, f protocol.FlightID, crew []CrewEntry) (FlightView, error) {
	var v FlightView
	_, err := c.do(ctx, request{method: http.MethodPut, path: "/v1/flights/" + url.PathEscape(string(f)) + "/crew", in: CrewRequest{Crew: crew}, out: &v, backOffice: true})
	return v, err
}

// BuildManifest builds and signs a new manifest for flight f now.
func (c *Client) BuildManifest(ctx context.Context, f protocol.FlightID) (ManifestView, error) {
	var v ManifestView
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/flights/" + url.PathEscape(string(f)) + "/manifests", out: &v, backOffice: true})
	return v, err
}

// Passenger returns a passenger's account, for the back office.
func (c *Client) Passenger(ctx context.Context, id protocol.ID) (Account, error) {
	var a Account
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/passengers/" + id.String(), out: &a, backOffice: true})
	return a, err
}

// Revoke revokes a credential.
func (c *Client) Revoke(ctx context.Context, credential protocol.ID) (Credential, error) {
	var cr Credential
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/credentials/" + credential.String() + "/revoke", out: &cr, backOffice: true})
	return cr, err
}

// Arrears lists up to limit passengers' open arrears.
func (c *Client) Arrears(ctx context.Context, limit int) (ArrearsList, error) {
	var l ArrearsList
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/arrears?limit=" + strconv.Itoa(limit), out: &l, backOffice: true})
	return l, err
}
