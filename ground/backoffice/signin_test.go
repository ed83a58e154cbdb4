package backoffice_test

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/backoffice"
	"github.com/airtab/airtab/ground/ratelimit"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/ground/store"
)

// signInEnv is the back office alone (a real SQLite registry, the real
// handler) behind a real HTTP server, with the sign-in limits a test sets.
type signInEnv struct {
	t       *testing.T
	base    string
	clk     *clock
	metrics *prometheus.Registry
}

func newSignInEnv(t *testing.T, limits ratelimit.SignInConfig) *signInEnv {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "ground.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	issuer, err := crypto.GenerateKey(crypto.Issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	reg, err := registry.New(ctx, db, registry.Config{Issuer: issuer, Clock: clk.now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	metrics := prometheus.NewRegistry()
	limits.Metrics = metrics
	signIns, err := ratelimit.NewSignInLimit(limits)
	if err != nil {
		t.Fatal(err)
	}
	bo, err := backoffice.New(backoffice.Config{Token: testToken, Registry: reg, DB: db, Clock: clk.now, Logger: quiet, SignIns: signIns})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(bo)
	t.Cleanup(srv.Close)
	return &signInEnv{t: t, base: srv.URL, clk: clk, metrics: metrics}
}

// from is a cookie-keeping client whose connections come from ip, a
// loopback address (127.0.0.0/8 is all local on Linux), so the server sees
// distinct remote addresses.
func from(t *testing.T, ip string) *http.Client {
	t.Helper()
	c := browser(t)
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c.Transport = &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	return c
}

// try loads the sign-in form from ip and posts token with it.
func (e *signInEnv) try(ip, token string) (*http.Response, string) {
	e.t.Helper()
	c := from(e.t, ip)
	_, page := get(e.t, c, e.base+"/backoffice/signin")
	return post(e.t, c, e.base+"/backoffice/signin", url.Values{"csrf": {csrfOf(e.t, page)}, "token": {token}}, e.base)
}

// want checks one attempt's status (and Retry-After, "" for none).
func (e *signInEnv) want(ip, token string, status int, retryAfter string) string {
	e.t.Helper()
	res, body := e.try(ip, token)
	if got := res.StatusCode; got != status {
		e.t.Fatalf("from %s: status %d, want %d\n%s", ip, got, status, body)
	}
	if got := res.Header.Get("Retry-After"); got != retryAfter {
		e.t.Fatalf("from %s: Retry-After %q, want %q", ip, got, retryAfter)
	}
	return body
}

// counted is the sign-in counter's value for outcome.
func (e *signInEnv) counted(outcome string) float64 {
	e.t.Helper()
	fams, err := e.metrics.Gather()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "airtab_ground_backoffice_signins_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["door"] == "backoffice" && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	e.t.Fatalf("no airtab_ground_backoffice_signins_total{door=\"backoffice\",outcome=%q}", outcome)
	return 0
}

const wrongToken = "not-the-back-office-token-at-all"

func TestSignInLimit(t *testing.T) {
	t.Run("FailuresThen429", func(t *testing.T) {
		e := newSignInEnv(t, ratelimit.SignInConfig{})
		for range 10 {
			e.want("127.0.0.2", wrongToken, http.StatusUnauthorized, "")
		}
		body := e.want("127.0.0.2", wrongToken, http.StatusTooManyRequests, "6") // a minute's tenth
		if want := "Too many failed sign-ins from this address. Try again in 6 s."; !strings.Contains(body, want) {
			t.Errorf("the page does not say %q:\n%s", want, body)
		}
		if !strings.Contains(body, `id="token"`) {
			t.Error("the 429 page is not the sign-in page with its form")
		}
		if strings.Contains(body, "not the back-office token") {
			t.Error("the 429 page says something about the token, which was not looked at")
		}
		body = e.want("127.0.0.2", testToken, http.StatusTooManyRequests, "6")
		if strings.Contains(body, "not the back-office token") {
			t.Error("the right token while limited: the page says something about the token")
		}
		if got, want := e.counted("wrong_token"), 10.0; got != want {
			t.Errorf("wrong_token = %v, want %v", got, want)
		}
		if got, want := e.counted("limited_address"), 2.0; got != want {
			t.Errorf("limited_address = %v, want %v", got, want)
		}
	})

	t.Run("AllowedAgainAfterTheWait", func(t *testing.T) {
		e := newSignInEnv(t, ratelimit.SignInConfig{})
		for range 10 {
			e.want("127.0.0.2", wrongToken, http.StatusUnauthorized, "")
		}
		e.want("127.0.0.2", wrongToken, http.StatusTooManyRequests, "6")
		e.clk.advance(5 * time.Second)
		e.want("127.0.0.2", testToken, http.StatusTooManyRequests, "1")
		e.clk.advance(time.Second)
		e.want("127.0.0.2", wrongToken, http.StatusUnauthorized, "") // one failure's share back
		e.want("127.0.0.2", wrongToken, http.StatusTooManyRequests, "6")
		e.clk.advance(time.Minute)
		e.want("127.0.0.2", testToken, http.StatusSeeOther, "")
	})

	t.Run("OtherAddressSignsIn", func(t *testing.T) {
		e := newSignInEnv(t, ratelimit.SignInConfig{})
		for range 10 {
			e.want("127.0.0.2", wrongToken, http.StatusUnauthorized, "")
		}
		e.want("127.0.0.2", testToken, http.StatusTooManyRequests, "6")
		e.want("127.0.0.3", testToken, http.StatusSeeOther, "")
		e.want("127.0.0.3", wrongToken, http.StatusUnauthorized, "")
	})

	t.Run("SuccessNotCounted", func(t *testing.T) {
		e := newSignInEnv(t, ratelimit.SignInConfig{GlobalPerMinute: 10})
		for range 30 {
			e.want("127.0.0.2", testToken, http.StatusSeeOther, "")
		}
		for range 10 { // the whole allowance in all still there
			e.want("127.0.0.3", wrongToken, http.StatusUnauthorized, "")
		}
		for range 10 { // and the address's own
			e.want("127.0.0.2", wrongToken, http.StatusUnauthorized, "")
		}
		e.want("127.0.0.2", wrongToken, http.StatusTooManyRequests, "6")
		if got, want := e.counted("signed_in"), 30.0; got != want {
			t.Errorf("signed_in = %v, want %v", got, want)
		}
	})

	t.Run("GlobalCeiling", func(t *testing.T) {
		e := newSignInEnv(t, ratelimit.SignInConfig{PerAddressPerMinute: 3, GlobalPerMinute: 5})
		e.want("127.0.0.7", testToken, http.StatusSeeOther, "") // a clerk's desk, before the guessing
		for _, ip := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"} {
			e.want(ip, wrongToken, http.StatusUnauthorized, "")
		}
		body := e.want("127.0.0.4", wrongToken, http.StatusTooManyRequests, "12") // a minute's fifth
		if want := "Too many failed sign-ins to the back office just now, from all addresses together. Try again in 12 s."; !strings.Contains(body, want) {
			t.Errorf("the page does not say %q:\n%s", want, body)
		}
		e.want("127.0.0.5", testToken, http.StatusTooManyRequests, "12") // not looked at: the ceiling is no oracle
		// An address that signed in lately is held to its own limit only, so
		// the guessing does not lock the staff out.
		e.want("127.0.0.7", testToken, http.StatusSeeOther, "")
		e.want("127.0.0.7", wrongToken, http.StatusUnauthorized, "")
		if got, want := e.counted("limited_global"), 2.0; got != want {
			t.Errorf("limited_global = %v, want %v", got, want)
		}
		e.clk.advance(12 * time.Second)
		e.want("127.0.0.5", testToken, http.StatusSeeOther, "")
		e.want("127.0.0.4", wrongToken, http.StatusUnauthorized, "")
		e.want("127.0.0.6", wrongToken, http.StatusTooManyRequests, "12")
	})

	t.Run("TrackedAddressesBounded", func(t *testing.T) {
		e := newSignInEnv(t, ratelimit.SignInConfig{PerAddressPerMinute: 2, GlobalPerMinute: 1000, MaxAddresses: 2})
		e.want("127.0.0.2", wrongToken, http.StatusUnauthorized, "")
		e.want("127.0.0.2", wrongToken, http.StatusUnauthorized, "")
		e.want("127.0.0.2", wrongToken, http.StatusTooManyRequests, "30")
		e.clk.advance(time.Second)
		e.want("127.0.0.3", wrongToken, http.StatusUnauthorized, "")
		// A third address, the table full: 127.0.0.3, nearest to its whole
		// allowance, is forgotten; 127.0.0.2 stays limited.
		e.want("127.0.0.4", wrongToken, http.StatusUnauthorized, "")
		e.want("127.0.0.2", wrongToken, http.StatusTooManyRequests, "29")
		e.want("127.0.0.3", wrongToken, http.StatusUnauthorized, "") // a whole allowance again
		e.want("127.0.0.3", wrongToken, http.StatusUnauthorized, "")
		e.want("127.0.0.3", wrongToken, http.StatusTooManyRequests, "30")
	})

	t.Run("ForwardedForIgnored", func(t *testing.T) {
		e := newSignInEnv(t, ratelimit.SignInConfig{PerAddressPerMinute: 1})
		c := from(t, "127.0.0.2")
		for i, fwd := range []string{"192.0.2.1", "192.0.2.2"} {
			_, page := get(t, c, e.base+"/backoffice/signin")
			req, _ := http.NewRequest(http.MethodPost, e.base+"/backoffice/signin",
				strings.NewReader(url.Values{"csrf": {csrfOf(t, page)}, "token": {wrongToken}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", e.base)
			req.Header.Set("X-Forwarded-For", fwd)
			res, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if want := []int{http.StatusUnauthorized, http.StatusTooManyRequests}[i]; res.StatusCode != want {
				t.Fatalf("attempt %d with X-Forwarded-For %s: status %d, want %d (the connection's address counts)", i+1, fwd, res.StatusCode, want)
			}
		}
	})
}
