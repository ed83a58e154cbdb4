package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

// request is one back-office call: what to send, where the answer goes.
type request struct {
	method, path string
	in, out      any
}

// do sends a back-office request with the bearer token and decodes the
// response into out. It returns the HTTP status.
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
	req.Header.Set("Authorization", "Bearer "+c.Token)
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

// passenger is the passenger API client over the same server and
// transport: the passenger calls below go through it, so the request
// signing and the answer handling live in one place.
func (c *Client) passenger() *passengerapi.Client {
	return &passengerapi.Client{BaseURL: c.BaseURL, HTTP: c.HTTP, Clock: c.Clock, Rand: c.Rand}
}

// registryErr turns a refused passenger call's *passengerapi.Error into the
// *registry.Error this client's callers switch on.
func registryErr(err error) error {
	var pe *passengerapi.Error
	if errors.As(err, &pe) {
		return &registry.Error{Code: registry.Code(pe.Code), Message: pe.Message}
	}
	return err
}

// CreatePassenger registers a passenger with dev as their first device,
// signing the request with it. externalRef is optional.
func (c *Client) CreatePassenger(ctx context.Context, dev Signer, externalRef string) (Account, error) {
	a, _, err := c.passenger().CreatePassenger(ctx, dev, externalRef)
	return a, registryErr(err)
}

// Account returns the account of the passenger dev belongs to.
func (c *Client) Account(ctx context.Context, dev Signer) (Account, error) {
	a, err := c.passenger().Account(ctx, dev)
	return a, registryErr(err)
}

// SetFunding links a funding source.
func (c *Client) SetFunding(ctx context.Context, dev Signer, f ground.FundingSource) (Account, error) {
	in := passengerapi.Funding{Kind: passengerapi.FundingKind(f.Kind), Network: string(f.Network), Token: f.Token,
		Last4: f.Last4, ExpMonth: f.ExpMonth, ExpYear: f.ExpYear}
	a, err := c.passenger().SetFunding(ctx, dev, in)
	return a, registryErr(err)
}

// Charges returns up to limit of the passenger's charges (all up to
// passengerapi.MaxCharges when limit is 0).
func (c *Client) Charges(ctx context.Context, dev Signer, limit int) (passengerapi.ChargeList, error) {
	l, err := c.passenger().Charges(ctx, dev, limit)
	return l, registryErr(err)
}

// EnrollDevice adds newDev to the passenger dev belongs to; both sign.
func (c *Client) EnrollDevice(ctx context.Context, dev, newDev Signer) (Account, error) {
	a, err := c.passenger().EnrollDevice(ctx, dev, newDev)
	return a, registryErr(err)
}

// TopUp credits amount to the wallet; ref makes it idempotent. It returns
// the balance after.
func (c *Client) TopUp(ctx context.Context, dev Signer, amount protocol.Money, ref protocol.ID) (protocol.Money, error) {
	b, err := c.passenger().TopUp(ctx, dev, amount, ref)
	return b, registryErr(err)
}

// WalletBalance returns the wallet balance in currency cur.
func (c *Client) WalletBalance(ctx context.Context, dev Signer, cur protocol.Currency) (protocol.Money, error) {
	b, err := c.passenger().WalletBalance(ctx, dev, cur)
	return b, registryErr(err)
}

// OptIn opts the passenger in to flight f and returns the credential bound
// to dev. The same call again returns the same credential.
func (c *Client) OptIn(ctx context.Context, dev Signer, f protocol.FlightID) (Credential, error) {
	cr, err := c.passenger().OptIn(ctx, dev, f)
	return cr, registryErr(err)
}

// RegisterAircraft registers an aircraft with its signing key and optional
// NATS user nkey.
func (c *Client) RegisterAircraft(ctx context.Context, id protocol.AircraftID, key crypto.PublicKey, nkey string) (AircraftView, error) {
	var v AircraftView
	in := AircraftRequest{Key: key.String(), NKey: nkey}
	_, err := c.do(ctx, request{method: http.MethodPut, path: "/v1/aircraft/" + url.PathEscape(string(id)), in: in, out: &v})
	return v, err
}

// RegisterFlight registers or updates a flight.
func (c *Client) RegisterFlight(ctx context.Context, f FlightRequest) (FlightView, error) {
	var v FlightView
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/flights", in: f, out: &v})
	return v, err
}

// Flight returns a registered flight.
func (c *Client) Flight(ctx context.Context, f protocol.FlightID) (FlightView, error) {
	var v FlightView
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/flights/" + url.PathEscape(string(f)), out: &v})
	return v, err
}

// SetCrew replaces a flight's crew roster.
func (c *Client) SetCrew(ctx context.Context, f protocol.FlightID, crew []CrewEntry) (FlightView, error) {
	var v FlightView
	_, err := c.do(ctx, request{method: http.MethodPut, path: "/v1/flights/" + url.PathEscape(string(f)) + "/crew", in: CrewRequest{Crew: crew}, out: &v})
	return v, err
}

// BuildManifest builds and signs a new manifest for flight f now.
func (c *Client) BuildManifest(ctx context.Context, f protocol.FlightID) (ManifestView, error) {
	var v ManifestView
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/flights/" + url.PathEscape(string(f)) + "/manifests", out: &v})
	return v, err
}

// Passenger returns a passenger's account, for the back office.
func (c *Client) Passenger(ctx context.Context, id protocol.ID) (Account, error) {
	var a Account
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/passengers/" + id.String(), out: &a})
	return a, err
}

// Revoke revokes a credential.
func (c *Client) Revoke(ctx context.Context, credential protocol.ID) (Credential, error) {
	var cr Credential
	_, err := c.do(ctx, request{method: http.MethodPost, path: "/v1/credentials/" + credential.String() + "/revoke", out: &cr})
	return cr, err
}

// Arrears lists up to limit passengers' open arrears.
func (c *Client) Arrears(ctx context.Context, limit int) (ArrearsList, error) {
	var l ArrearsList
	_, err := c.do(ctx, request{method: http.MethodGet, path: "/v1/arrears?limit=" + strconv.Itoa(limit), out: &l})
	return l, err
}
