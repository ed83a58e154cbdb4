package passengerapi

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

	"github.com/airtab/airtab/protocol"
)

// maxResponse bounds what the client reads of an answer, in bytes.
const maxResponse = 1 << 20

// Client is a Go client of the passenger API, for passenger apps and the
// simulator. Every call takes the device key that signs it. A refused call
// returns an *Error, so callers can switch on its Code (ErrorCode).
type Client struct {
	// BaseURL is ground's root, for example "http://127.0.0.1:8080".
	BaseURL string
	// HTTP is the client used. Default: one with a 30 s timeout.
	HTTP *http.Client
	// Clock gives request timestamps. Default time.Now.
	Clock func() time.Time
	// Rand gives request nonces. Default crypto/rand. A reader shared by
	// goroutines must be safe for concurrent use.
	Rand io.Reader
}

var defaultHTTP = &http.Client{Timeout: 30 * time.Second}

// call is one signed request: what to send, who signs it.
type call struct {
	method, path string
	in, out      any
	dev          Signer // signs the request
	proof        Signer // enrolment: signs the same string as the new key
}

// do sends the request and decodes the answer into out.
func (c *Client) do(ctx context.Context, r call) error {
	_, err := c.doStatus(ctx, r)
	return err
}

// doStatus is do, also returning the HTTP status of a success.
func (c *Client) doStatus(ctx context.Context, r call) (int, error) {
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
	msg := SignRequest(req, body, r.dev, now(), c.Rand)
	if r.proof != nil {
		req.Header.Set(HeaderProof, base64.StdEncoding.EncodeToString(r.proof.Sign(SigningDomain, msg)))
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
		return 0, fmt.Errorf("%s %s: read answer: %w", r.method, r.path, err)
	}
	if len(data) > maxResponse {
		return 0, fmt.Errorf("%s %s: answer over %d bytes", r.method, r.path, maxResponse)
	}
	if resp.StatusCode >= 300 {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) == nil && eb.Error.Code != "" {
			return 0, &Error{Status: resp.StatusCode, Code: eb.Error.Code, Message: eb.Error.Message}
		}
		if len(data) > 200 {
			data = data[:200]
		}
		return 0, fmt.Errorf("%s %s: HTTP %d: %s", r.method, r.path, resp.StatusCode, data)
	}
	if r.out != nil {
		if err := json.Unmarshal(data, r.out); err != nil {
			return 0, fmt.Errorf("%s %s: decode answer: %w", r.method, r.path, err)
		}
	}
	return resp.StatusCode, nil
}

// CreatePassenger registers a passenger with dev as their first device,
// signing the request with it. externalRef is optional. created is false
// when ground already knew the key with this reference (a retry): the
// account is then the one registered before.
func (c *Client) CreatePassenger(ctx context.Context, dev Signer, externalRef string) (a Account, created bool, err error) {
	in := CreatePassengerRequest{DeviceKey: dev.Public().String(), ExternalRef: externalRef}
	status, err := c.doStatus(ctx, call{method: http.MethodPost, path: "/v1/passengers", in: in, out: &a, dev: dev})
	return a, status == http.StatusCreated, err
}

// Account returns the account of the passenger dev belongs to.
func (c *Client) Account(ctx context.Context, dev Signer) (Account, error) {
	var a Account
	return a, c.do(ctx, call{method: http.MethodGet, path: "/v1/me", out: &a, dev: dev})
}

// SetFunding links a funding source (a card's collections are retried).
func (c *Client) SetFunding(ctx context.Context, dev Signer, f Funding) (Account, error) {
	var a Account
	return a, c.do(ctx, call{method: http.MethodPut, path: "/v1/me/funding", in: f, out: &a, dev: dev})
}

// EnrollDevice adds newDev to the passenger dev belongs to; both sign.
func (c *Client) EnrollDevice(ctx context.Context, dev, newDev Signer) (Account, error) {
	var a Account
	in := DeviceRequest{DeviceKey: newDev.Public().String()}
	return a, c.do(ctx, call{method: http.MethodPost, path: "/v1/me/devices", in: in, out: &a, dev: dev, proof: newDev})
}

// TopUp credits amount to the wallet; ref makes it idempotent. It returns
// the balance after.
func (c *Client) TopUp(ctx context.Context, dev Signer, amount protocol.Money, ref protocol.ID) (protocol.Money, error) {
	var b Balance
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/me/wallet/topups", in: TopUpRequest{Amount: amount, Ref: ref}, out: &b, dev: dev})
	return b.Balance, err
}

// WalletBalance returns the wallet balance in currency cur.
func (c *Client) WalletBalance(ctx context.Context, dev Signer, cur protocol.Currency) (protocol.Money, error) {
	var b Balance
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/me/wallet/" + url.PathEscape(string(cur)), out: &b, dev: dev})
	return b.Balance, err
}

// OptIn opts the passenger in to flight f and returns the credential bound
// to dev. The same call again returns the same credential.
func (c *Client) OptIn(ctx context.Context, dev Signer, f protocol.FlightID) (Credential, error) {
	var cr Credential
	return cr, c.do(ctx, call{method: http.MethodPost, path: "/v1/me/credentials", in: OptInRequest{Flight: f}, out: &cr, dev: dev})
}

// Charges returns up to limit of the passenger's charges (MaxCharges when
// limit is 0), and what was charged and is owed in total.
func (c *Client) Charges(ctx context.Context, dev Signer, limit int) (ChargeList, error) {
	var l ChargeList
	path := "/v1/me/charges"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	return l, c.do(ctx, call{method: http.MethodGet, path: path, out: &l, dev: dev})
}
