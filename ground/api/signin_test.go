package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/ratelimit"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/ground/store/storetest"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// tokenEnv is the API (a real registry on the test's store, the real
// handler behind a real HTTP server) with a sign-in limit the test sets,
// and a clock the test moves.
type tokenEnv struct {
	t     *testing.T
	base  string
	clock *movingClock
}

func newTokenEnv(t *testing.T, limits ratelimit.SignInConfig, rate RateLimits) *tokenEnv {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t)
	clock := &movingClock{t: now}
	issuer, _ := crypto.GenerateKey(crypto.Issuer, nil)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	reg, err := registry.New(ctx, db, registry.Config{Issuer: issuer, Clock: clock.Now, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	signIns, err := ratelimit.NewSignInLimit(limits)
	if err != nil {
		t.Fatal(err)
	}
	reports := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "report") })
	s, err := New(Config{Registry: reg, BackOfficeToken: token, Clock: clock.Now, Logger: quiet, RateLimits: rate, SignIns: signIns, Reports: reports})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &tokenEnv{t: t, base: srv.URL, clock: clock}
}

// call sends GET path from ip (a loopback address: 127.0.0.0/8 is all
// local on Linux, so the server sees distinct remote addresses) with
// Authorization "Bearer tok" (none when tok is ""), and checks its status,
// error code ("" for none) and Retry-After ("" for none). It returns the
// error message.
func (e *tokenEnv) call(ip, path, tok string, status int, code passengerapi.Code, retryAfter string) string {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	var eb ErrorBody
	if res.StatusCode >= 300 {
		if err := json.NewDecoder(res.Body).Decode(&eb); err != nil {
			e.t.Fatalf("GET %s from %s: HTTP %d with a body that is not an ErrorBody: %v", path, ip, res.StatusCode, err)
		}
	}
	if res.StatusCode != status || eb.Error.Code != code {
		e.t.Fatalf("GET %s from %s: HTTP %d %q %q, want %d %q", path, ip, res.StatusCode, eb.Error.Code, eb.Error.Message, status, code)
	}
	if got := res.Header.Get("Retry-After"); got != retryAfter {
		e.t.Fatalf("GET %s from %s: Retry-After %q, want %q", path, ip, got, retryAfter)
	}
	return eb.Error.Message
}

const wrongToken = "not-the-back-office-token-at-all"

// TestBackOfficeTokenLimit: wrong bearer tokens are limited per client
// address and in all, before the token is acted on, so the staff token
// cannot be guessed at network speed through the API; a right token is
// never counted.
func TestBackOfficeTokenLimit(t *testing.T) {
	const unauth, limited = passengerapi.CodeUnauthorized, passengerapi.CodeRateLimited
	t.Run("GuessesThen429", func(t *testing.T) {
		e := newTokenEnv(t, ratelimit.SignInConfig{}, RateLimits{})
		for range 10 {
			e.call("127.0.0.2", "/v1/flights", wrongToken, http.StatusUnauthorized, unauth, "")
		}
		msg := e.call("127.0.0.2", "/v1/flights", wrongToken, http.StatusTooManyRequests, limited, "6") // a minute's tenth
		if want := "too many wrong back-office tokens from this address: retry in 6 s"; msg != want {
			t.Errorf("message %q, want %q", msg, want)
		}
		// The right token from the limited address: refused too, so the
		// limit is no oracle.
		e.call("127.0.0.2", "/v1/flights", token, http.StatusTooManyRequests, limited, "6")
		e.call("127.0.0.2", "/v1/reports/x", wrongToken, http.StatusTooManyRequests, limited, "6")
		e.call("127.0.0.3", "/v1/flights", token, http.StatusOK, "", "")
		e.clock.Add(6 * time.Second)
		e.call("127.0.0.2", "/v1/flights", token, http.StatusOK, "", "")
		e.call("127.0.0.2", "/v1/flights", wrongToken, http.StatusUnauthorized, unauth, "") // one failure's share back
		e.call("127.0.0.2", "/v1/flights", wrongToken, http.StatusTooManyRequests, limited, "6")
	})

	t.Run("ReportsCount", func(t *testing.T) {
		e := newTokenEnv(t, ratelimit.SignInConfig{PerAddressPerMinute: 2}, RateLimits{})
		e.call("127.0.0.2", "/v1/reports/x", wrongToken, http.StatusUnauthorized, unauth, "")
		e.call("127.0.0.2", "/v1/arrears", wrongToken, http.StatusUnauthorized, unauth, "")
		e.call("127.0.0.2", "/v1/reports/x", token, http.StatusTooManyRequests, limited, "30")
	})

	t.Run("GlobalCeiling", func(t *testing.T) {
		e := newTokenEnv(t, ratelimit.SignInConfig{PerAddressPerMinute: 3, GlobalPerMinute: 4}, RateLimits{})
		e.call("127.0.0.9", "/v1/flights", token, http.StatusOK, "", "") // a system that calls the API, before the guessing
		for _, ip := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.4"} {
			e.call(ip, "/v1/flights", wrongToken, http.StatusUnauthorized, unauth, "")
		}
		msg := e.call("127.0.0.5", "/v1/flights", wrongToken, http.StatusTooManyRequests, limited, "15")
		if want := "too many wrong back-office tokens from all addresses together just now: retry in 15 s"; msg != want {
			t.Errorf("message %q, want %q", msg, want)
		}
		e.call("127.0.0.6", "/v1/flights", token, http.StatusTooManyRequests, limited, "15")
		e.call("127.0.0.9", "/v1/flights", token, http.StatusOK, "", "") // signed in lately: its own limit only
	})

	t.Run("RightTokenNeverCounted", func(t *testing.T) {
		// Limits off: the bench's setting; the token's limit holds still.
		e := newTokenEnv(t, ratelimit.SignInConfig{PerAddressPerMinute: 2, GlobalPerMinute: 2}, RateLimits{Off: true})
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 25 {
					e.call("127.0.0.2", "/v1/flights", token, http.StatusOK, "", "")
				}
			})
		}
		wg.Wait()
		e.call("127.0.0.2", "/v1/flights", wrongToken, http.StatusUnauthorized, unauth, "")
		e.call("127.0.0.2", "/v1/flights", wrongToken, http.StatusUnauthorized, unauth, "")
		e.call("127.0.0.2", "/v1/flights", wrongToken, http.StatusTooManyRequests, limited, "30")
	})

	t.Run("NoTokenNotCounted", func(t *testing.T) {
		e := newTokenEnv(t, ratelimit.SignInConfig{PerAddressPerMinute: 1}, RateLimits{})
		for range 5 {
			msg := e.call("127.0.0.2", "/v1/flights", "", http.StatusUnauthorized, unauth, "")
			if !strings.Contains(msg, "back-office token") {
				t.Errorf("message %q does not name the token", msg)
			}
		}
		e.call("127.0.0.2", "/v1/flights", wrongToken, http.StatusUnauthorized, unauth, "")
		e.call("127.0.0.2", "/v1/flights", wrongToken, http.StatusTooManyRequests, limited, "60")
	})
}
