package backoffice_test

import (
	"testing"
	"time"

	"github.com/airtab/airtab/protocol/browsertest"
)

// TestSignInInBrowser signs in, is refused a form post without its token,
// and signs out, in headless Chromium.
func TestSignInInBrowser(t *testing.T) {
	b := browsertest.New(t, browsertest.Options{})
	_, base := startGround(t, &clock{t: time.Now()})
	b.Navigate(base + "/backoffice/setup")
	b.WaitText("Back-office token")
	b.Type("#token", testToken)
	b.Click("#signin")
	b.WaitTextIn("h1", "Set-up")
	status := browsertest.Eval[int](b, `fetch("/backoffice/setup/revoke", {method: "POST",
		headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "credential=00"}).then(r => r.status)`)
	if status != 403 {
		t.Fatalf("POST without the CSRF token: status %d, want 403", status)
	}
	b.Click(".signout button")
	b.WaitText("Back-office token")
}
