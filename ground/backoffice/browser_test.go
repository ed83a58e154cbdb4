package backoffice_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/ratelimit"
	"github.com/airtab/airtab/protocol/browsertest"
)

// EnvScreenshots names a directory the browser tests write their
// screenshots to (ground/backoffice/screenshots for the README); by default
// they go to a temporary directory.
const EnvScreenshots = "AIRTAB_SCREENSHOTS"

func screenshotDir(t *testing.T) string {
	if d := os.Getenv(EnvScreenshots); d != "" {
		return d
	}
	return t.TempDir()
}

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

// TestSignInLimitInBrowser: past the limit on wrong tokens the sign-in page
// says so, and for how long, with the form still there; after the wait the
// right token signs in. In headless Chromium, screenshots at 360x740 and at
// desktop width.
func TestSignInLimitInBrowser(t *testing.T) {
	b := browsertest.New(t, browsertest.Options{})
	e := newSignInEnv(t, ratelimit.SignInConfig{PerAddressPerMinute: 1})
	b.Navigate(e.base + "/backoffice/flights")
	b.WaitText("Back-office token")
	b.Type("#token", wrongToken)
	b.Click("#signin")
	b.WaitTextVisibleIn("[role=alert]", "That is not the back-office token.")
	b.Type("#token", wrongToken)
	b.Click("#signin")
	b.WaitTextVisibleIn("[role=alert]", "Too many failed sign-ins from this address. Try again in 60 s.")
	b.WaitVisible("#token")
	shots := screenshotDir(t)
	b.Screenshot(filepath.Join(shots, "signin-limited-360.png"), 360, 740)
	b.Screenshot(filepath.Join(shots, "signin-limited-desktop.png"), 1280, 720)

	e.clk.advance(time.Minute)
	b.Type("#token", testToken)
	b.Click("#signin")
	b.WaitTextIn("h1", "Flights")
}
