package backoffice_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/backoffice"
	"github.com/airtab/airtab/protocol"
)

const testToken = "back-office-token-for-tests-0123456789"

// clock is a settable clock for session expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startGround runs a real ground service (SQLite, embedded NATS, clearing,
// HTTP) in a temporary directory.
func startGround(t *testing.T, clk *clock) (*app.Main, string) {
	t.Helper()
	m := &app.Main{Config: app.Config{DataDir: filepath.Join(t.TempDir(), "ground"), HTTPAddr: "127.0.0.1:0",
		NATSListen: "127.0.0.1:0", BackOfficeToken: testToken, Clock: clk.now, Logger: slog.New(slog.DiscardHandler)}}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, "http://" + m.HTTPAddr()
}

// browser is an HTTP client that keeps cookies and does not follow
// redirects, so each answer can be checked.
func browser(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values, origin string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

func csrfOf(t *testing.T, html string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", html)
	}
	return m[1]
}

// signIn signs in through the form and returns the session's CSRF token.
func signIn(t *testing.T, c *http.Client, base string) string {
	t.Helper()
	_, page := get(t, c, base+"/backoffice/signin")
	res, _ := post(t, c, base+"/backoffice/signin", url.Values{"csrf": {csrfOf(t, page)}, "token": {testToken}}, base)
	if got, want := res.StatusCode, http.StatusSeeOther; got != want {
		t.Fatalf("sign-in status = %d, want %d", got, want)
	}
	_, flights := get(t, c, base+"/backoffice/flights")
	return csrfOf(t, flights)
}

func TestSecurity(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	g, base := startGround(t, clk)

	t.Run("UnauthenticatedPageRedirectsToSignIn", func(t *testing.T) {
		res, _ := get(t, browser(t), base+"/backoffice/flights/XX123-2026-11-21")
		if got, want := res.StatusCode, http.StatusSeeOther; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/backoffice/signin?next=") {
			t.Fatalf("Location = %q, want the sign-in page", loc)
		}
	})
	t.Run("UnauthenticatedDataRefused", func(t *testing.T) {
		for _, p := range []string{"/backoffice/flights/rows"} {
			res, _ := get(t, browser(t), base+p)
			if got, want := res.StatusCode, http.StatusUnauthorized; got != want {
				t.Fatalf("GET %s status = %d, want %d", p, got, want)
			}
		}
		res, _ := post(t, browser(t), base+"/backoffice/setup/aircraft", url.Values{"aircraft": {"D-EVIL"}}, "")
		if got, want := res.StatusCode, http.StatusUnauthorized; got != want {
			t.Fatalf("POST status = %d, want %d", got, want)
		}
	})
	t.Run("SecurityHeaders", func(t *testing.T) {
		res, _ := get(t, browser(t), base+"/backoffice/signin")
		for h, want := range map[string]string{
			"Content-Security-Policy": backoffice.ContentSecurityPolicy, "X-Content-Type-Options": "nosniff",
			"X-Frame-Options": "DENY", "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
		} {
			if got := res.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if csp := res.Header.Get("Content-Security-Policy"); strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP allows inline code: %s", csp)
		}
	})
	t.Run("WrongTokenRefused", func(t *testing.T) {
		c := browser(t)
		_, page := get(t, c, base+"/backoffice/signin")
		res, body := post(t, c, base+"/backoffice/signin", url.Values{"csrf": {csrfOf(t, page)}, "token": {"not-the-token-at-all"}}, base)
		if got, want := res.StatusCode, http.StatusUnauthorized; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		if !strings.Contains(body, "not the back-office token") {
			t.Fatalf("page does not say why:\n%s", body)
		}
	})
	t.Run("SignInWithoutFormTokenRefused", func(t *testing.T) {
		res, _ := post(t, browser(t), base+"/backoffice/signin", url.Values{"token": {testToken}}, "")
		if got, want := res.StatusCode, http.StatusForbidden; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
	})
	t.Run("SessionCookie", func(t *testing.T) {
		c := browser(t)
		_, page := get(t, c, base+"/backoffice/signin")
		res, _ := post(t, c, base+"/backoffice/signin", url.Values{"csrf": {csrfOf(t, page)}, "token": {testToken}}, base)
		var sc *http.Cookie
		for _, ck := range res.Cookies() {
			if ck.Name == backoffice.SessionCookie {
				sc = ck
			}
		}
		if sc == nil {
			t.Fatal("no session cookie")
		}
		if !sc.HttpOnly || sc.SameSite != http.SameSiteStrictMode || sc.Path != backoffice.Prefix || sc.MaxAge <= 0 {
			t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, Path %s, an expiry", sc, backoffice.Prefix)
		}
		if sc.Secure {
			t.Fatal("session cookie is Secure over plain HTTP: the browser would never send it back")
		}
		if strings.Contains(sc.Value, testToken) {
			t.Fatal("the cookie carries the token itself")
		}
	})

	c := browser(t)
	csrf := signIn(t, c, base)
	key, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"aircraft": {"D-AIUA"}, "key": {key.Public().String()}}

	t.Run("PostWithoutCSRFRefused", func(t *testing.T) {
		res, body := post(t, c, base+"/backoffice/setup/aircraft", form, "")
		if got, want := res.StatusCode, http.StatusForbidden; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		if !strings.Contains(body, "security token") {
			t.Fatalf("page does not say why:\n%s", body)
		}
		if _, err := g.Registry().AircraftKey(context.Background(), "D-AIUA"); err == nil {
			t.Fatal("the refused form registered the aircraft")
		}
	})
	t.Run("PostWithWrongCSRFRefused", func(t *testing.T) {
		f := url.Values{"csrf": {strings.Repeat("0", 64)}}
		for k, v := range form {
			f[k] = v
		}
		if res, _ := post(t, c, base+"/backoffice/setup/aircraft", f, ""); res.StatusCode != http.StatusForbidden {
			t.Fatalf("status = %d, want 403", res.StatusCode)
		}
	})
	t.Run("PostFromAnotherOriginRefused", func(t *testing.T) {
		f := url.Values{"csrf": {csrf}}
		for k, v := range form {
			f[k] = v
		}
		if res, _ := post(t, c, base+"/backoffice/setup/aircraft", f, "http://evil.example"); res.StatusCode != http.StatusForbidden {
			t.Fatalf("status = %d, want 403", res.StatusCode)
		}
	})
	t.Run("PostWithCSRFAccepted", func(t *testing.T) {
		f := url.Values{"csrf": {csrf}}
		for k, v := range form {
			f[k] = v
		}
		res, _ := post(t, c, base+"/backoffice/setup/aircraft", f, base)
		if got, want := res.StatusCode, http.StatusSeeOther; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		_, page := get(t, c, base+res.Header.Get("Location"))
		if !strings.Contains(page, "Aircraft D-AIUA registered.") {
			t.Fatalf("the page does not confirm:\n%s", page)
		}
		flight := url.Values{"csrf": {csrf}, "carrier": {"XX"}, "number": {"123"}, "date": {"2026-11-21"}, "aircraft": {"D-AIUA"},
			"currency": {"EUR"}, "catalog": {"COF | Coffee | 3.50 | drink\nSAN | Sandwich | 7.90 | meal"}}
		res, _ = post(t, c, base+"/backoffice/setup/flight", flight, base)
		if got, want := res.StatusCode, http.StatusSeeOther; got != want {
			t.Fatalf("flight status = %d, want %d", got, want)
		}
		fl, err := g.Registry().FlightDetails(context.Background(), "XX123-2026-11-21")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fl.Catalog[0].Price, protocol.M(350, "EUR"); len(fl.Catalog) != 2 || got != want {
			t.Fatalf("catalog = %+v, want 2 items, coffee at %v", fl.Catalog, want)
		}
	})
	t.Run("FlightUpdated", func(t *testing.T) {
		flight := url.Values{"csrf": {csrf}, "carrier": {"XX"}, "number": {"123"}, "date": {"2026-11-21"}, "aircraft": {"D-AIUA"},
			"currency": {"EUR"}, "catalog": {"COF | Coffee | 3.80 | drink"}}
		res, _ := post(t, c, base+"/backoffice/setup/flight", flight, base)
		if got, want := res.StatusCode, http.StatusSeeOther; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		if _, page := get(t, c, base+res.Header.Get("Location")); !strings.Contains(page, "Flight XX123-2026-11-21 updated") {
			t.Fatalf("the page does not confirm the update:\n%s", page)
		}
		fl, err := g.Registry().FlightDetails(context.Background(), "XX123-2026-11-21")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := fl.Catalog, []protocol.CatalogItem{{SKU: "COF", Name: "Coffee", Price: protocol.M(380, "EUR"), Category: "drink"}}; len(got) != 1 || got[0] != want[0] {
			t.Fatalf("catalog = %+v, want %+v", got, want)
		}
	})
	t.Run("BadFormNamesTheProblem", func(t *testing.T) {
		res, body := post(t, c, base+"/backoffice/setup/flight", url.Values{"csrf": {csrf}, "carrier": {"XX"}, "number": {"124"},
			"date": {"2026-11-21"}, "aircraft": {"D-NONE"}, "currency": {"EUR"}}, base)
		if res.StatusCode < 400 || res.StatusCode >= 500 {
			t.Fatalf("status = %d, want a 4xx", res.StatusCode)
		}
		if !strings.Contains(body, "D-NONE") {
			t.Fatalf("the page does not name the unknown aircraft:\n%s", body)
		}
	})
	t.Run("SessionExpires", func(t *testing.T) {
		c2 := browser(t)
		signIn(t, c2, base)
		clk.advance(8*time.Hour + time.Second)
		res, _ := get(t, c2, base+"/backoffice/flights")
		if got, want := res.StatusCode, http.StatusSeeOther; got != want {
			t.Fatalf("status after expiry = %d, want %d (to sign-in)", got, want)
		}
	})
	t.Run("SignOut", func(t *testing.T) {
		c3 := browser(t)
		csrf3 := signIn(t, c3, base)
		res, _ := post(t, c3, base+"/backoffice/signout", url.Values{"csrf": {csrf3}}, base)
		if got, want := res.StatusCode, http.StatusSeeOther; got != want {
			t.Fatalf("sign-out status = %d, want %d", got, want)
		}
		res, _ = get(t, c3, base+"/backoffice/flights/rows")
		if got, want := res.StatusCode, http.StatusUnauthorized; got != want {
			t.Fatalf("after sign-out status = %d, want %d", got, want)
		}
	})
}

// TestSignInFailuresLimited: wrong tokens from one address are answered 429
// with Retry-After once past the allowance, the right token too until the
// wait is over, and a clerk's good sign-ins never count.
func TestSignInFailuresLimited(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	_, base := startGround(t, clk)
	try := func(token string) (*http.Response, string) {
		c := browser(t)
		_, page := get(t, c, base+"/backoffice/signin")
		return post(t, c, base+"/backoffice/signin", url.Values{"csrf": {csrfOf(t, page)}, "token": {token}}, base)
	}
	for range 12 {
		if res, _ := try(testToken); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("good sign-in: status %d, want %d", res.StatusCode, http.StatusSeeOther)
		}
	}
	for i := range 10 {
		if res, _ := try("not-the-token-at-all"); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: status %d, want %d", i+1, res.StatusCode, http.StatusUnauthorized)
		}
	}
	res, body := try("not-the-token-at-all")
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("11th wrong token: status %d, want %d", res.StatusCode, http.StatusTooManyRequests)
	}
	if got := res.Header.Get("Retry-After"); got != "6" {
		t.Errorf("Retry-After = %q, want 6 (one failure's share of a minute)", got)
	}
	if !strings.Contains(body, "Too many failed sign-ins from this address. Try again in 6 s.") {
		t.Errorf("page does not say why or for how long:\n%s", body)
	}
	if res, _ := try(testToken); res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("right token while blocked: status %d, want %d (not even looked at)", res.StatusCode, http.StatusTooManyRequests)
	}
	clk.advance(6 * time.Second)
	if res, _ := try(testToken); res.StatusCode != http.StatusSeeOther {
		t.Fatalf("right token after the wait: status %d, want %d", res.StatusCode, http.StatusSeeOther)
	}
}
