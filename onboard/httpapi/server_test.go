package httpapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/onboard/httpapi"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

var ctx = context.Background()

// env is a cabin server with its handheld API on 127.0.0.1 over TLS.
type env struct {
	f     *ft.Flight
	cabin *onboard.Cabin
	url   string
	fp    string
}

func newEnv(tb testing.TB, opts ft.Options, mut func(*httpapi.Config)) *env {
	tb.Helper()
	f := ft.New(tb, opts)
	cabin, _ := f.OpenCabin(f.SignManifest(nil), nil)
	dir := tb.TempDir()
	cert, created, err := httpapi.LoadOrCreateCertificate(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), nil, time.Now(), nil)
	if err != nil || !created {
		tb.Fatalf("certificate: created %v, %v", created, err)
	}
	cfg := httpapi.Config{Cabin: cabin, Clock: f.Now}
	if mut != nil {
		mut(&cfg)
	}
	hs := httpapi.New(cfg).HTTPServer(cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go hs.ServeTLS(ln, "", "")
	tb.Cleanup(func() { hs.Close() })
	return &env{f: f, cabin: cabin, url: "https://" + ln.Addr().String(), fp: httpapi.Fingerprint(cert)}
}

func (e *env) client(tb testing.TB, handheld string) *client.Client {
	tb.Helper()
	c, err := client.New(client.Config{URL: e.url, Fingerprint: e.fp, Handheld: handheld, MaxConns: 64})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

func (e *env) signedIn(tb testing.TB, handheld string, who ft.CrewLogin) *client.Client {
	tb.Helper()
	c := e.client(tb, handheld)
	if _, err := c.SignIn(ctx, who.ID, who.PIN); err != nil {
		tb.Fatalf("sign in %s: %v", who.ID, err)
	}
	return c
}

// httpStatus returns the HTTP status of an API error, 0 for nil.
func httpStatus(t *testing.T, err error) int {
	t.Helper()
	if err == nil {
		return 0
	}
	he, ok := errors.AsType[*client.HTTPError](err)
	if !ok {
		t.Fatalf("not an API error: %v", err)
	}
	return he.StatusCode
}

func sale(code string, lines ...onboard.Line) onboard.SaleRequest {
	return onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: lines}
}

func TestHandheldFlow(t *testing.T) {
	e := newEnv(t, ft.Options{Passengers: 2}, nil)
	fa := e.signedIn(t, "hh-1", ft.Attendant)
	p := e.f.Passengers[0]

	cat, err := fa.Catalog(ctx)
	if err != nil || cat.Currency != "EUR" || len(cat.Items) != len(ft.Catalog) {
		t.Fatalf("catalog = %+v, %v", cat, err)
	}

	req := sale(p.Code(), ft.Basket("COFFEE", 2)...)
	d, err := fa.Authorize(ctx, req)
	if err != nil || !d.Approved || d.Sale.Total != protocol.M(700, "EUR") || d.Sale.Crew != ft.Attendant.ID {
		t.Fatalf("authorize = %+v, %v; want approved 7.00 EUR by fa1", d, err)
	}
	again, err := fa.Authorize(ctx, req)
	if err != nil || !again.Approved || again.Sale.Hash != d.Sale.Hash {
		t.Fatalf("retry = %+v, %v; want the original approval", again, err)
	}

	declined, err := fa.Authorize(ctx, sale(p.Code(), ft.Basket("PERFUME", 2)...))
	if err != nil || declined.Approved || declined.Decline.Reason != protocol.ReasonOverTransactionCap ||
		declined.Decline.Name != "over_transaction_cap" || declined.Decline.Message == "" {
		t.Fatalf("over-cap sale = %+v, %v; want a decline with reason 14", declined, err)
	}

	looked, err := fa.Sale(ctx, req.InvoiceID)
	if err != nil || looked.Seq != 1 || looked.Status != onboard.StatusPending {
		t.Fatalf("look up = %+v, %v", looked, err)
	}
	if _, err := fa.Sale(ctx, protocol.NewID(nil)); httpStatus(t, err) != http.StatusNotFound {
		t.Fatalf("look up unknown sale: %v, want 404", err)
	}

	lim, err := fa.Limit(ctx, p.Code())
	if err != nil || !lim.Valid || lim.Remaining != protocol.M(20000-700, "EUR") {
		t.Fatalf("limit = %+v, %v", lim, err)
	}

	o, err := fa.CreateOrder(ctx, ft.Basket("SANDWICH", 1))
	if err != nil || !strings.HasPrefix(o.Text, protocol.PrefixOrder) {
		t.Fatalf("order = %+v, %v", o, err)
	}
	consent := e.f.Passengers[1].Consent(o.Text)
	d2, err := fa.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: consent, OrderID: o.OrderID})
	if err != nil || !d2.Approved || d2.Sale.Total != o.Total {
		t.Fatalf("two-way sale = %+v, %v", d2, err)
	}

	v, err := fa.Void(ctx, onboard.VoidRequest{InvoiceID: protocol.NewID(nil), SaleID: req.InvoiceID})
	if err != nil || v.Kind != "void" || v.Voids != req.InvoiceID {
		t.Fatalf("void = %+v, %v", v, err)
	}

	st, err := fa.Status(ctx)
	if err != nil || !st.SalesOpen || st.Invoices.Pending != 3 || st.LastSeq != 3 || st.Link != onboard.LinkUnknown {
		t.Fatalf("status = %+v, %v", st, err)
	}

	if _, err := fa.CloseFlight(ctx); httpStatus(t, err) != http.StatusForbidden {
		t.Fatalf("attendant closing the flight: %v, want 403", err)
	}
	purser := e.signedIn(t, "hh-2", ft.Purser)
	rep, err := purser.CloseFlight(ctx)
	if err != nil || rep.Sales != 2 || rep.Voids != 1 || rep.LastSeq != 3 || rep.Head != v.Hash {
		t.Fatalf("close = %+v, %v", rep, err)
	}
	after, err := fa.Authorize(ctx, sale(p.Code(), ft.Basket("COFFEE", 1)...))
	if err != nil || after.Approved || after.Decline.Reason != protocol.ReasonFlightClosed {
		t.Fatalf("sale after close = %+v, %v; want flight closed", after, err)
	}
	if err := fa.Health(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fa.SignOut(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := fa.Status(ctx); httpStatus(t, err) != http.StatusUnauthorized {
		t.Fatalf("after sign-out: %v, want 401", err)
	}
}

func TestUnauthenticated(t *testing.T) {
	e := newEnv(t, ft.Options{Passengers: 1}, nil)
	c := e.client(t, "hh-1")
	calls := map[string]func() error{
		"catalog": func() error { _, err := c.Catalog(ctx); return err },
		"authorize": func() error {
			_, err := c.Authorize(ctx, sale(e.f.Passengers[0].Code(), ft.Basket("COFFEE", 1)...))
			return err
		},
		"sale":   func() error { _, err := c.Sale(ctx, protocol.NewID(nil)); return err },
		"order":  func() error { _, err := c.CreateOrder(ctx, ft.Basket("COFFEE", 1)); return err },
		"void":   func() error { _, err := c.Void(ctx, onboard.VoidRequest{}); return err },
		"limit":  func() error { _, err := c.Limit(ctx, "AT1:"); return err },
		"close":  func() error { _, err := c.CloseFlight(ctx); return err },
		"status": func() error { _, err := c.Status(ctx); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			c.SetToken("")
			if got := httpStatus(t, call()); got != http.StatusUnauthorized {
				t.Fatalf("no session: status %d, want 401", got)
			}
			c.SetToken("forged-token")
			if got := httpStatus(t, call()); got != http.StatusUnauthorized {
				t.Fatalf("forged token: status %d, want 401", got)
			}
		})
	}
	t.Run("OtherHandheld", func(t *testing.T) {
		s, err := e.client(t, "hh-2").SignIn(ctx, ft.Attendant.ID, ft.Attendant.PIN)
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(s.Token) // a token lifted from hh-2, used on hh-1
		if _, err := c.Status(ctx); httpStatus(t, err) != http.StatusUnauthorized {
			t.Fatalf("token from another handheld: %v, want 401", err)
		}
	})
	if err := c.Health(ctx); err != nil {
		t.Fatalf("healthz needs no session: %v", err)
	}
}

func TestSignIn(t *testing.T) {
	e := newEnv(t, ft.Options{Passengers: 1}, nil)
	t.Run("WrongPIN", func(t *testing.T) {
		_, err := e.client(t, "hh-1").SignIn(ctx, ft.Purser.ID, "9999")
		if got := httpStatus(t, err); got != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", got)
		}
	})
	t.Run("RateLimitPerCrew", func(t *testing.T) {
		var last error
		for i := range 6 { // from six handhelds, so only the crew limit applies
			_, last = e.client(t, "hh-crew-"+string(rune('a'+i))).SignIn(ctx, ft.Attendant.ID, "0000")
		}
		he, ok := errors.AsType[*client.HTTPError](last)
		if !ok || he.StatusCode != http.StatusTooManyRequests || he.Err.Code != onboard.CodeRateLimited {
			t.Fatalf("6th attempt: %v, want 429", last)
		}
		// Even the right PIN waits until the window has passed.
		if _, err := e.client(t, "hh-z").SignIn(ctx, ft.Attendant.ID, ft.Attendant.PIN); httpStatus(t, err) != http.StatusTooManyRequests {
			t.Fatalf("right PIN while limited: %v, want 429", err)
		}
		e.f.Clock.Advance(61 * time.Second)
		if _, err := e.client(t, "hh-z").SignIn(ctx, ft.Attendant.ID, ft.Attendant.PIN); err != nil {
			t.Fatalf("after the window: %v", err)
		}
	})
	t.Run("RateLimitPerHandheld", func(t *testing.T) {
		c := e.client(t, "hh-guesser")
		var last error
		for i := range 6 { // six crew ids from one handheld
			_, last = c.SignIn(ctx, "crew"+string(rune('a'+i)), "0000")
		}
		if got := httpStatus(t, last); got != http.StatusTooManyRequests {
			t.Fatalf("6th attempt from one handheld: status %d, want 429", got)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		c := e.signedIn(t, "hh-exp", ft.Purser)
		if _, err := c.Status(ctx); err != nil {
			t.Fatal(err)
		}
		e.f.Clock.Advance(12*time.Hour + time.Second)
		_, err := c.Status(ctx)
		he, ok := errors.AsType[*client.HTTPError](err)
		if !ok || he.StatusCode != http.StatusUnauthorized || !strings.Contains(he.Err.Message, "expired") {
			t.Fatalf("expired session: %v, want 401 session expired", err)
		}
	})
	t.Run("NoHandheldHeader", func(t *testing.T) {
		resp := rawPostAs(t, e, "", httpapi.PathSessions, "", `{"crew_id":"purser1","pin":"2468"}`)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
	})
	t.Run("RetryAfter", func(t *testing.T) {
		// The fake clock stands still: the 6th attempt must wait the whole
		// window, and the header and the message both say 60 seconds.
		body := `{"crew_id":"` + ft.Purser.ID + `","pin":"0000"}`
		var resp *http.Response
		for range 6 {
			resp = rawPostAs(t, e, "hh-retry", httpapi.PathSessions, "", body)
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("6th attempt: status %d, want 429", resp.StatusCode)
		}
		if got, want := resp.Header.Get("Retry-After"), "60"; got != want {
			t.Errorf("Retry-After = %q, want %q", got, want)
		}
		var eb httpapi.ErrorBody
		if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || eb.Error == nil {
			t.Fatalf("429 body: %v %+v", err, eb)
		}
		if want := "try again in 60 s"; !strings.Contains(eb.Error.Message, want) {
			t.Errorf("429 message %q, want it to say %q", eb.Error.Message, want)
		}
		e.f.Clock.Advance(61 * time.Second)
	})
}

// rawPost posts body to path as handheld with token, without the client's
// help, and returns the response with its body read into a buffer.
func rawPost(t *testing.T, e *env, path, token, body string) *http.Response {
	t.Helper()
	return rawPostAs(t, e, "hh-raw", path, token, body)
}

// rawPostAs is rawPost from handheld; "" sends no handheld header.
func rawPostAs(t *testing.T, e *env, handheld, path, token, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if handheld != "" {
		req.Header.Set(httpapi.HandheldHeader, handheld)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, ft.Options{Passengers: 1}, nil)
	s, err := e.client(t, "hh-raw").SignIn(ctx, ft.Attendant.ID, ft.Attendant.PIN)
	if err != nil {
		t.Fatal(err)
	}
	code := e.f.Passengers[0].Code()
	body := func(code string, lines string) string {
		return `{"invoice_id":"` + protocol.NewID(nil).String() + `","code":"` + code + `","lines":` + lines + `}`
	}
	cases := []struct {
		name       string
		body       string
		status     int
		errCode    onboard.Code
		wantReason protocol.Reason
	}{
		{"MalformedJSON", `{"invoice_id":`, 400, onboard.CodeInvalid, protocol.ReasonMalformed},
		{"UnknownField", `{"price":1}`, 400, onboard.CodeInvalid, protocol.ReasonMalformed},
		{"TrailingData", body(code, `[{"sku":"COFFEE","quantity":1}]`) + `{}`, 400, onboard.CodeInvalid, protocol.ReasonMalformed},
		{"BadInvoiceID", `{"invoice_id":"XYZ","code":"` + code + `"}`, 400, onboard.CodeInvalid, protocol.ReasonMalformed},
		{"MalformedQR", body("AT1:***", `[{"sku":"COFFEE","quantity":1}]`), 400, onboard.CodeInvalid, protocol.ReasonMalformed},
		{"UnknownSKU", body(code, `[{"sku":"CAVIAR","quantity":1}]`), 400, onboard.CodeInvalid, protocol.ReasonUnknownSKU},
		{"ZeroQuantity", body(code, `[{"sku":"COFFEE","quantity":0}]`), 400, onboard.CodeInvalid, protocol.ReasonInvalidQuantity},
		{"NegativeQuantity", body(code, `[{"sku":"COFFEE","quantity":-2}]`), 400, onboard.CodeInvalid, protocol.ReasonInvalidQuantity},
		{"PriceFromHandheld", body(code, `[{"sku":"COFFEE","quantity":1,"unit_price":{"minor":1,"currency":"EUR"}}]`), 400, onboard.CodeInvalid, protocol.ReasonMalformed},
		{"Oversize", body(code, `[{"sku":"`+strings.Repeat("A", 20<<10)+`","quantity":1}]`), 413, onboard.CodeTooLarge, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawPost(t, e, httpapi.PathSales, s.Token, tc.body)
			var eb httpapi.ErrorBody
			if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil || eb.Error == nil {
				t.Fatalf("status %d, body not an error body: %v", resp.StatusCode, err)
			}
			if resp.StatusCode != tc.status || eb.Error.Code != tc.errCode || eb.Error.Reason != tc.wantReason || eb.Error.Message == "" {
				t.Fatalf("status %d, error %+v; want %d %s reason %d", resp.StatusCode, eb.Error, tc.status, tc.errCode, tc.wantReason)
			}
		})
	}
	// Nothing was written, and the code is still good.
	fa := e.client(t, "hh-raw")
	fa.SetToken(s.Token)
	st, err := fa.Status(ctx)
	if err != nil || st.LastSeq != 0 {
		t.Fatalf("status = %+v, %v; want nothing journaled", st, err)
	}
	if d, err := fa.Authorize(ctx, sale(code, ft.Basket("COFFEE", 1)...)); err != nil || !d.Approved {
		t.Fatalf("code after bad requests = %+v, %v; want approved", d, err)
	}
}

// TestDeclineWireForm pins the JSON of a decline: HTTP 200 with approved
// false, the reason's number, name and message, and for a decline over a
// limit the amount it allows (here the per-sale cap) and what the passenger
// has left.
func TestDeclineWireForm(t *testing.T) {
	e := newEnv(t, ft.Options{Passengers: 1}, nil)
	s, err := e.client(t, "hh-raw").SignIn(ctx, ft.Attendant.ID, ft.Attendant.PIN)
	if err != nil {
		t.Fatal(err)
	}
	req, _ := json.Marshal(sale(e.f.Passengers[0].Code(), ft.Basket("PERFUME", 2)...))
	resp := rawPost(t, e, httpapi.PathSales, s.Token, string(req))
	var got map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"approved": false,
		"remaining": map[string]any{"minor": float64(20000), "currency": "EUR"},
		"decline": map[string]any{
			"reason": float64(14), "name": "over_transaction_cap",
			"message": protocol.ReasonOverTransactionCap.String() + ": the most one sale may be is 100.00 EUR",
			"amount":  map[string]any{"minor": float64(10000), "currency": "EUR"}}}
	if resp.StatusCode != http.StatusOK || !equalJSON(got, want) {
		t.Fatalf("status %d, body %v; want 200 %v", resp.StatusCode, got, want)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

func TestCertificatePinning(t *testing.T) {
	e := newEnv(t, ft.Options{Passengers: 1}, nil)
	wrong := strings.Repeat("ab", 32)
	c, err := client.New(client.Config{URL: e.url, Fingerprint: wrong, Handheld: "hh-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Health(ctx); err == nil || !strings.Contains(err.Error(), "pinned fingerprint") {
		t.Fatalf("health with a wrong pin = %v, want a pinning error", err)
	}
	if _, err := client.New(client.Config{URL: e.url, Fingerprint: "abc", Handheld: "hh-1"}); err == nil {
		t.Fatal("client with a malformed fingerprint: no error")
	}
}

func TestCertificateReused(t *testing.T) {
	dir := t.TempDir()
	crt, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	a, created, err := httpapi.LoadOrCreateCertificate(crt, key, []string{"cabin.local", "10.0.0.1"}, time.Now(), nil)
	if err != nil || !created {
		t.Fatalf("first: created %v, %v", created, err)
	}
	b, created, err := httpapi.LoadOrCreateCertificate(crt, key, nil, time.Now(), nil)
	if err != nil || created {
		t.Fatalf("second: created %v, %v", created, err)
	}
	if httpapi.Fingerprint(a) != httpapi.Fingerprint(b) {
		t.Fatal("the certificate changed between starts: every handheld's pin would break")
	}
}

// TestConcurrentHandhelds has many handhelds sell at once over HTTPS, and
// one code scanned on all of them at the same instant.
func TestConcurrentHandhelds(t *testing.T) {
	e := newEnv(t, ft.Options{Passengers: 8, Limit: protocol.M(1_000_000, "EUR"),
		Caps: protocol.Caps{AircraftExposure: protocol.M(100_000_000, "EUR"), CodeFreshSeconds: 60,
			ClockSkewSeconds: 30, VelocityCount: 1000, VelocityWindowSeconds: 600}},
		func(c *httpapi.Config) { c.SignInAttempts = 100 }) // one crew member on eight handhelds
	handhelds := make([]*client.Client, 8)
	for i := range handhelds {
		handhelds[i] = e.signedIn(t, "hh-"+string(rune('a'+i)), ft.Attendant)
	}
	shared := e.f.Passengers[0].Code()
	var wg sync.WaitGroup
	var mu sync.Mutex
	approvedShared := 0
	for i, c := range handhelds {
		codes := []string{shared}
		for range 10 {
			codes = append(codes, e.f.Passengers[i].Code())
		}
		wg.Go(func() {
			for _, code := range codes {
				d, err := c.Authorize(ctx, sale(code, ft.Basket("COFFEE", 1)...))
				if err != nil {
					t.Errorf("authorize: %v", err)
					return
				}
				if code == shared && d.Approved {
					mu.Lock()
					approvedShared++
					mu.Unlock()
				}
				if code != shared && !d.Approved {
					t.Errorf("declined: %+v", d.Decline)
				}
			}
		})
	}
	wg.Wait()
	if approvedShared != 1 {
		t.Fatalf("shared code approved %d times, want 1", approvedShared)
	}
}
