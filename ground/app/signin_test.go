package app_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/clearing/clearingtest"
)

const (
	testToken  = "back-office-token-for-tests-0123456789"
	wrongToken = "not-the-back-office-token-at-all"
)

// startGround runs a real ground service (SQLite, embedded NATS, clearing,
// HTTP) in a temporary directory.
func startGround(t *testing.T, clk *clearingtest.Clock) string {
	t.Helper()
	m := &app.Main{Config: app.Config{DataDir: filepath.Join(t.TempDir(), "ground"), HTTPAddr: "127.0.0.1:0",
		NATSListen: "127.0.0.1:0", BackOfficeToken: testToken, Clock: clk.Now, Logger: slog.New(slog.DiscardHandler)}}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return "http://" + m.HTTPAddr()
}

// from is a cookie-keeping client that does not follow redirects, whose
// connections come from ip, a loopback address (127.0.0.0/8 is all local
// on Linux), so ground sees distinct remote addresses.
func from(t *testing.T, ip string) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Jar: jar, Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func do(t *testing.T, c *http.Client, req *http.Request) (*http.Response, string) {
	t.Helper()
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

// viaAPI sends GET /v1/flights from ip with the bearer token tok.
func viaAPI(t *testing.T, base, ip, tok string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/v1/flights", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	return do(t, from(t, ip), req)
}

// viaForm loads the back office's sign-in form from ip and posts tok with
// it.
func viaForm(t *testing.T, base, ip, tok string) (*http.Response, string) {
	t.Helper()
	c := from(t, ip)
	req, _ := http.NewRequest(http.MethodGet, base+"/backoffice/signin", nil)
	_, page := do(t, c, req)
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the sign-in page:\n%s", page)
	}
	req, _ = http.NewRequest(http.MethodPost, base+"/backoffice/signin", strings.NewReader(url.Values{"csrf": {m[1]}, "token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	return do(t, c, req)
}

type door func(t *testing.T, base, ip, tok string) (*http.Response, string)

// want sends one attempt through d and checks its status and Retry-After
// ("" for none).
func want(t *testing.T, d door, base, ip, tok string, status int, retryAfter string) string {
	t.Helper()
	res, body := d(t, base, ip, tok)
	if res.StatusCode != status || res.Header.Get("Retry-After") != retryAfter {
		t.Fatalf("from %s: HTTP %d Retry-After %q, want %d %q\n%s", ip, res.StatusCode, res.Header.Get("Retry-After"), status, retryAfter, body)
	}
	return body
}

// TestSignInLimitShared: the API's bearer token and the back office's
// sign-in form take the same token, and ground holds both to one limit on
// wrong tokens: guesses through one door count against the other's
// allowance, per address and in all; right tokens through either are never
// counted; every attempt shows on /metrics by door and outcome.
func TestSignInLimitShared(t *testing.T) {
	clk := clearingtest.NewClock(time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC))
	base := startGround(t, clk)
	const ok, unauth, limited = http.StatusOK, http.StatusUnauthorized, http.StatusTooManyRequests
	const signedIn = http.StatusSeeOther

	t.Run("RightTokensNotCounted", func(t *testing.T) {
		for range 15 {
			want(t, viaAPI, base, "127.0.0.2", testToken, ok, "")
			want(t, viaForm, base, "127.0.0.2", testToken, signedIn, "")
		}
	})
	t.Run("APIThenBackOffice", func(t *testing.T) {
		for range 5 {
			want(t, viaAPI, base, "127.0.0.3", wrongToken, unauth, "")
		}
		for range 5 {
			want(t, viaForm, base, "127.0.0.3", wrongToken, unauth, "")
		}
		body := want(t, viaForm, base, "127.0.0.3", wrongToken, limited, "6")
		if !strings.Contains(body, "Too many failed sign-ins from this address. Try again in 6 s.") {
			t.Errorf("the sign-in page does not say why:\n%s", body)
		}
		want(t, viaForm, base, "127.0.0.3", testToken, limited, "6")
		want(t, viaAPI, base, "127.0.0.3", testToken, limited, "6")
	})
	t.Run("BackOfficeThenAPI", func(t *testing.T) {
		for range 10 {
			want(t, viaForm, base, "127.0.0.4", wrongToken, unauth, "")
		}
		body := want(t, viaAPI, base, "127.0.0.4", wrongToken, limited, "6")
		if !strings.Contains(body, `"code":"rate_limited"`) || !strings.Contains(body, "too many wrong back-office tokens from this address: retry in 6 s") {
			t.Errorf("the API's error does not say why: %s", body)
		}
		want(t, viaAPI, base, "127.0.0.4", testToken, limited, "6")
		want(t, viaAPI, base, "127.0.0.2", testToken, ok, "") // another address
	})
	t.Run("GlobalCeilingAcrossDoors", func(t *testing.T) {
		clk.Advance(time.Minute) // every allowance whole again
		// 60 wrong tokens in all, the global ceiling, at most 8 from one
		// address, half through each door.
		for i := range 60 {
			d, ip := door(viaAPI), "127.0.1."+strconv.Itoa(i%8)
			if i%2 == 1 {
				d = viaForm
			}
			want(t, d, base, ip, wrongToken, unauth, "")
		}
		want(t, viaAPI, base, "127.0.2.1", wrongToken, limited, "1")
		want(t, viaForm, base, "127.0.2.1", testToken, limited, "1")
		// 127.0.0.2 signed in lately: held to its own limit only.
		want(t, viaAPI, base, "127.0.0.2", testToken, ok, "")
		want(t, viaForm, base, "127.0.0.2", testToken, signedIn, "")
	})
	t.Run("Metrics", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		_, text := do(t, http.DefaultClient, req)
		for _, line := range []string{
			`airtab_ground_backoffice_signins_total{door="api",outcome="signed_in"} 17`,
			`airtab_ground_backoffice_signins_total{door="backoffice",outcome="signed_in"} 16`,
			`airtab_ground_backoffice_signins_total{door="api",outcome="wrong_token"} 35`,
			`airtab_ground_backoffice_signins_total{door="backoffice",outcome="wrong_token"} 45`,
			`airtab_ground_backoffice_signins_total{door="api",outcome="limited_address"} 3`,
			`airtab_ground_backoffice_signins_total{door="backoffice",outcome="limited_address"} 2`,
			`airtab_ground_backoffice_signins_total{door="api",outcome="limited_global"} 1`,
			`airtab_ground_backoffice_signins_total{door="backoffice",outcome="limited_global"} 1`,
		} {
			if !strings.Contains(text, line+"\n") {
				t.Errorf("/metrics has no line %q", line)
			}
		}
		if t.Failed() {
			for l := range strings.Lines(text) {
				if strings.Contains(l, "signins") {
					t.Log(strings.TrimSpace(l))
				}
			}
		}
	})
}
