package httpapi_test

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"testing"

	ft "github.com/airtab/airtab/onboard/internal/flighttest"
)

// TestSignInCountsFailuresOnly: a purser signs in on a wide-body's twelve
// handhelds in one minute (successes do not count), while wrong PINs for
// one crew id are still bounded at five a minute.
func TestSignInCountsFailuresOnly(t *testing.T) {
	e := newEnv(t, ft.Options{Passengers: 1}, nil)
	for i := range 12 {
		if _, err := e.client(t, fmt.Sprintf("hh-%02d", i)).SignIn(ctx, ft.Purser.ID, ft.Purser.PIN); err != nil {
			t.Fatalf("sign-in on handheld %d: %v", i, err)
		}
	}
	for i := range 5 {
		_, err := e.client(t, fmt.Sprintf("hh-guess-%d", i)).SignIn(ctx, ft.Purser.ID, "0000")
		if got := httpStatus(t, err); got != http.StatusUnauthorized {
			t.Fatalf("wrong PIN %d: status %d, want 401", i+1, got)
		}
	}
	_, err := e.client(t, "hh-guess-6").SignIn(ctx, ft.Purser.ID, "0000")
	if got := httpStatus(t, err); got != http.StatusTooManyRequests {
		t.Fatalf("6th wrong PIN in the minute: status %d, want 429", got)
	}
}

// TestDottedPath: a path with ".." segments is refused 400, never
// redirected to its cleaned form.
func TestDottedPath(t *testing.T) {
	e := newEnv(t, ft.Options{Passengers: 1}, nil)
	for _, p := range []string{"/v1/sales/../../etc/passwd", "/v1/sales/./x", "/v1//sales"} {
		t.Run(p, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodGet, e.url+p, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = p // send the path exactly as written
			hc := &http.Client{
				Transport:     &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			}
			defer hc.CloseIdleConnections()
			resp, err := hc.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("GET %s: status %d (Location %q), want 400", p, resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}
