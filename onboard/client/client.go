// Package client is the Go client of the cabin server's handheld API (see
// onboard/httpapi), for handhelds, the simulator and the tests. It speaks
// HTTPS to a server whose self-signed certificate it pins by SHA-256
// fingerprint, signs a crew member in, and calls every endpoint.
//
// A decline is a Decision with Approved false, not an error. An error from
// the API is an *HTTPError that wraps the server's *onboard.Error, so
// errors.AsType[*onboard.Error] gives its code, reason and message.
package client

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/httpapi"
	"github.com/airtab/airtab/protocol"
)

// Config configures a Client.
type Config struct {
	// URL is the cabin server's base URL, for example
	// "https://10.0.0.1:8443". Required.
	URL string
	// Fingerprint is the hex SHA-256 of the server's certificate, as the
	// server logs it at start. Required: the client trusts that
	// certificate and no other.
	Fingerprint string
	// Handheld is this handheld's id (1 to 64 letters, digits, '.', '_',
	// ':' or '-'). Required.
	Handheld string
	// Timeout bounds each call. Default: 15 s.
	Timeout time.Duration
	// MaxConns bounds the connections to the server. Default: 4.
	MaxConns int
}

// maxResponseBytes bounds a response body the client reads.
const maxResponseBytes = 1 << 20

// Client calls one cabin server as one handheld. It is safe for concurrent
// use.
type Client struct {
	cfg  Config
	base string
	hc   *http.Client

	mu    sync.Mutex
	token string
}

// New returns a client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.URL == "" || cfg.Handheld == "" {
		return nil, errors.New("client: URL and Handheld are required")
	}
	pin, err := hex.DecodeString(cfg.Fingerprint)
	if err != nil || len(pin) != sha256.Size {
		return nil, fmt.Errorf("client: fingerprint %q: want %d hex bytes (SHA-256 of the server certificate)", cfg.Fingerprint, sha256.Size)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 4
	}
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{
			MinVersion: tls.VersionTLS13,
			// The server's certificate is self-signed: no CA vouches for
			// it. The pin below is the whole check.
			InsecureSkipVerify: true,
			VerifyConnection: func(cs tls.ConnectionState) error {
				if len(cs.PeerCertificates) == 0 {
					return errors.New("client: server sent no certificate")
				}
				sum := sha256.Sum256(cs.PeerCertificates[0].Raw)
				if subtle.ConstantTimeCompare(sum[:], pin) != 1 {
					return fmt.Errorf("client: server certificate %x does not match the pinned fingerprint %s", sum, cfg.Fingerprint)
				}
				return nil
			},
		},
		MaxConnsPerHost:     cfg.MaxConns,
		MaxIdleConnsPerHost: cfg.MaxConns,
		IdleConnTimeout:     time.Minute,
		TLSHandshakeTimeout: 10 * time.Second,
		ForceAttemptHTTP2:   false,
	}
	return &Client{cfg: cfg, base: strings.TrimRight(cfg.URL, "/"), hc: &http.Client{Transport: tr, Timeout: cfg.Timeout}}, nil
}

// Close closes idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// HTTPError is an error answer from the cabin server: the HTTP status and
// the server's error.
type HTTPError struct {
	StatusCode int
	Err        *onboard.Error
}

// Error returns the status and the server's error.
func (e *HTTPError) Error() string { return fmt.Sprintf("HTTP %d: %v", e.StatusCode, e.Err) }

// Unwrap returns the server's error.
func (e *HTTPError) Unwrap() error { return e.Err }

// SignIn signs a crew member in on this handheld; later calls use the
// session.
func (c *Client) SignIn(ctx context.Context, crewID, pin string) (httpapi.Session, error) {
	var s httpapi.Session
	err := c.do(ctx, http.MethodPost, httpapi.PathSessions, httpapi.SignInRequest{CrewID: crewID, PIN: pin}, &s)
	if err == nil {
		c.SetToken(s.Token)
	}
	return s, err
}

// SignOut ends the session.
func (c *Client) SignOut(ctx context.Context) error {
	err := c.do(ctx, http.MethodDelete, httpapi.PathSessions, nil, nil)
	c.SetToken("")
	return err
}

// SetToken sets the session token the client sends, for a session made
// elsewhere; "" sends none.
func (c *Client) SetToken(token string) {
	c.mu.Lock()
	c.token = token
	c.mu.Unlock()
}

// Catalog returns what is for sale.
func (c *Client) Catalog(ctx context.Context) (httpapi.Catalog, error) {
	var cat httpapi.Catalog
	return cat, c.do(ctx, http.MethodGet, httpapi.PathCatalog, nil, &cat)
}

// Authorize asks for a sale. Choose req.InvoiceID once, keep it, and send
// the same request again after any error: the server answers a retry with
// the original approval.
func (c *Client) Authorize(ctx context.Context, req onboard.SaleRequest) (onboard.Decision, error) {
	var d onboard.Decision
	return d, c.do(ctx, http.MethodPost, httpapi.PathSales, req, &d)
}

// CreateOrder prices a basket as an order for two-way mode.
func (c *Client) CreateOrder(ctx context.Context, lines []onboard.Line) (onboard.OrderQR, error) {
	var o onboard.OrderQR
	return o, c.do(ctx, http.MethodPost, httpapi.PathOrders, onboard.OrderRequest{Lines: lines}, &o)
}

// Void reverses a sale. Like a sale, a void's invoice id is chosen once and
// kept for retries.
func (c *Client) Void(ctx context.Context, req onboard.VoidRequest) (*onboard.Sale, error) {
	var s onboard.Sale
	if err := c.do(ctx, http.MethodPost, httpapi.PathVoids, req, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Sale looks up an invoice of this flight.
func (c *Client) Sale(ctx context.Context, id protocol.ID) (*onboard.Sale, error) {
	var s onboard.Sale
	if err := c.do(ctx, http.MethodGet, httpapi.PathSales+"/"+id.String(), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Limit returns the passenger's remaining limit for a scanned code, without
// using the code up.
func (c *Client) Limit(ctx context.Context, code string) (onboard.LimitAnswer, error) {
	var a onboard.LimitAnswer
	return a, c.do(ctx, http.MethodPost, httpapi.PathLimit, onboard.LimitRequest{Code: code}, &a)
}

// CloseFlight closes the flight (a purser's session only) and returns the
// signed report.
func (c *Client) CloseFlight(ctx context.Context) (*onboard.CloseReport, error) {
	var r onboard.CloseReport
	if err := c.do(ctx, http.MethodPost, httpapi.PathFlightClose, struct{}{}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Status returns the cabin server's status.
func (c *Client) Status(ctx context.Context) (onboard.Status, error) {
	var s onboard.Status
	return s, c.do(ctx, http.MethodGet, httpapi.PathStatus, nil, &s)
}

// Health checks that the server answers.
func (c *Client) Health(ctx context.Context) error {
	return c.do(ctx, http.MethodGet, httpapi.PathHealth, nil, nil)
}

// do sends one request with a JSON body (when in is not nil) and decodes a
// 2xx answer into out (when not nil); any other answer is an *HTTPError.
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if sr, ok := in.(onboard.SaleRequest); ok {
		// The hot call is encoded without reflection (wire.go).
		body = bytes.NewReader(appendSaleRequest(make([]byte, 0, 512), &sr))
	} else if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(httpapi.HandheldHeader, c.cfg.Handheld)
	c.mu.Lock()
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	c.mu.Unlock()
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if len(b) > maxResponseBytes {
		return fmt.Errorf("%s %s: answer over %d bytes", method, path, maxResponseBytes)
	}
	if resp.StatusCode/100 != 2 {
		return httpError(resp.StatusCode, b)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if d, ok := out.(*onboard.Decision); ok {
		if decodeDecision(b, d) {
			return nil
		}
		*d = onboard.Decision{} // anything outside the fast path's subset
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func httpError(status int, body []byte) error {
	var eb httpapi.ErrorBody
	if err := json.Unmarshal(body, &eb); err != nil || eb.Error == nil {
		eb.Error = &onboard.Error{Code: onboard.CodeInternal, Message: strings.TrimSpace(string(body))}
	}
	return &HTTPError{StatusCode: status, Err: eb.Error}
}
