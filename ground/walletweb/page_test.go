package walletweb_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/browsertest"
	"github.com/chromedp/chromedp"
)

// testGround is a real ground (registry, ledger, clearing, the API and the
// wallet) on a temporary directory, with one flight registered.
type testGround struct {
	url    string
	flight protocol.FlightID
	bo     *api.Client
}

// scores pins credit scores by the reference a passenger types.
var scores = map[string]int{"alice": 720, "bob": 510}

func startGround(t *testing.T) *testGround {
	t.Helper()
	dir := t.TempDir()
	m := &app.Main{Config: app.Config{DataDir: dir, HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Scorer: registry.StaticScorer{ByRef: scores}}}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	token, err := os.ReadFile(filepath.Join(dir, "backoffice.token"))
	if err != nil {
		t.Fatal(err)
	}
	g := &testGround{url: "http://" + m.HTTPAddr()}
	g.bo = &api.Client{BaseURL: g.url, Token: strings.TrimSpace(string(token))}
	ctx := context.Background()
	ak, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.bo.RegisterAircraft(ctx, "D-AIUA", ak.Public(), ""); err != nil {
		t.Fatal(err)
	}
	fv, err := g.bo.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "123", Date: time.Now().UTC().Format(time.DateOnly),
		Aircraft: "D-AIUA", Currency: "EUR", Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR")}}})
	if err != nil {
		t.Fatal(err)
	}
	g.flight = fv.ID
	return g
}

// register fills in the register screen and waits for the funding screen.
func register(b *browsertest.Browser, ref string) {
	b.WaitVisible("#register")
	b.SetValue("#ref", ref)
	b.Click("#register")
	b.WaitText("Wallet created")
}

func TestRegisterTopUpOptInPay(t *testing.T) {
	g := startGround(t)
	b := browsertest.New(t, browsertest.Options{})
	b.SetViewport(360, 740)
	b.Navigate(g.url + "/wallet/")
	b.WaitText("Create your wallet")
	b.Screenshot(filepath.Join(t.TempDir(), "register.png"), 360, 740)
	shot(t, b, "register.png")
	register(b, "alice")

	b.SetValue("#amount", "40.00")
	b.Click("#topup")
	b.WaitText("Topped up 40.00 EUR")
	b.WaitTextIn("#funding", "wallet balance")
	shot(t, b, "funding.png")

	b.Navigate(g.url + "/wallet/#/home")
	b.WaitTextIn("#score", "720")
	b.WaitTextIn("#eligibility", "Eligible")
	b.SetValue("#flight", string(g.flight))
	b.Click("#optin")
	b.WaitText("Opted in to " + string(g.flight))
	shot(t, b, "account.png")
	if dir := os.Getenv("AIRTAB_SCREENSHOTS"); dir != "" {
		b.Screenshot(filepath.Join(dir, "account-desktop.png"), 1280, 800)
		b.SetViewport(360, 740)
	}

	b.Click(`button[data-flight="` + string(g.flight) + `"]`)
	b.WaitTrue(`!!document.querySelector("#code")?.dataset.qr`)
	text := browsertest.Eval[string](b, `document.querySelector("#code").dataset.qr`)
	shot(t, b, "pay.png")
	code, err := protocol.ParsePaymentCodeText(text)
	if err != nil {
		t.Fatalf("code from the page %q: %v", text, err)
	}
	// What the canvas shows scans back to the same text (the vendored
	// jsQR decoder, as a handheld's camera would read it).
	scanned := browsertest.Eval[string](b, `(() => {
		const c = document.querySelector("#code"), g = c.getContext("2d");
		const img = g.getImageData(0, 0, c.width, c.height);
		const r = jsQR(img.data, c.width, c.height);
		return r ? r.data : "";
	})()`)
	if scanned != text {
		t.Errorf("the QR on screen scans as %q, want %q", scanned, text)
	}
	if got := browsertest.Eval[string](b, `document.querySelector("#code").dataset.version`); got > "6" || len(got) != 1 {
		t.Errorf("QR version %s, want at most 6", got)
	}
	acct, err := g.bo.Passenger(context.Background(), mustPassenger(t, b))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := crypto.ParsePublicKey(crypto.Device, acct.Devices[0])
	if err != nil {
		t.Fatal(err)
	}
	cred := acct.Credentials[0]
	if err := code.Verify(dev, cred.ID[:]); err != nil {
		t.Fatalf("payment code made in the browser does not verify in Go: %v", err)
	}
}

// TestIneligible shows a passenger below the threshold why they may not
// pay on board, and that the opt-in is refused with ground's reason.
func TestIneligible(t *testing.T) {
	g := startGround(t)
	b := browsertest.New(t, browsertest.Options{})
	b.SetViewport(360, 740)
	b.Navigate(g.url + "/wallet/")
	register(b, "bob")
	b.Navigate(g.url + "/wallet/#/home")
	b.WaitTextIn("#score", "510")
	b.WaitTextIn("#eligibility", "Not eligible: credit score 510 is below the eligibility threshold of 550")
	b.SetValue("#flight", string(g.flight))
	b.Click("#optin")
	b.WaitTextIn("#notice", "Ground refused: Credit score 510 is below the eligibility threshold of 550.")
	if got := b.Text("#notice"); strings.Contains(got, "(ineligible)") {
		t.Errorf("notice %q shows the API's error code to the passenger", got)
	}
	shot(t, b, "wallet-ineligible-360.png")
	b.Navigate(g.url + "/wallet/#/pay")
	b.WaitText("Opt in to a flight first")
}

func mustPassenger(t *testing.T, b *browsertest.Browser) protocol.ID {
	t.Helper()
	s := browsertest.Eval[string](b, `import("/wallet/js/store.js").then((s) => s.get("account")).then((a) => a.passenger)`)
	id, err := protocol.ParseID(s)
	if err != nil {
		t.Fatalf("passenger id %q: %v", s, err)
	}
	return id
}

// shot saves a 360x740 screenshot under the test's temporary directory,
// or under screenshots/ when AIRTAB_SCREENSHOTS is set.
func shot(t *testing.T, b *browsertest.Browser, name string) {
	t.Helper()
	dir := os.Getenv("AIRTAB_SCREENSHOTS")
	if dir == "" {
		dir = t.TempDir()
	}
	browsertest.Eval[bool](b, `(window.scrollTo(0, 0), true)`)
	b.Screenshot(filepath.Join(dir, name), 360, 740)
}

// readyToPay registers a passenger in the page, tops up, opts in to the
// flight and returns the device key ground enrolled and the credential id.
func readyToPay(t *testing.T, g *testGround, b *browsertest.Browser, ref string) (crypto.PublicKey, protocol.ID) {
	t.Helper()
	b.Navigate(g.url + "/wallet/")
	register(b, ref)
	b.SetValue("#amount", "40.00")
	b.Click("#topup")
	b.WaitText("Topped up 40.00 EUR")
	b.Navigate(g.url + "/wallet/#/home")
	b.SetValue("#flight", string(g.flight))
	b.Click("#optin")
	b.WaitText("Opted in to " + string(g.flight))
	acct, err := g.bo.Passenger(context.Background(), mustPassenger(t, b))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := crypto.ParsePublicKey(crypto.Device, acct.Devices[0])
	if err != nil {
		t.Fatal(err)
	}
	return dev, acct.Credentials[0].ID
}

// shownCode waits for a payment code other than prev on the pay screen and
// returns its text, parsed and verified.
func shownCode(t *testing.T, b *browsertest.Browser, prev string, dev crypto.PublicKey, cred protocol.ID) (string, *protocol.SignedPaymentCode) {
	t.Helper()
	b.WaitTrue(fmt.Sprintf(`(() => { const c = document.querySelector("#code"); return !!c && !!c.dataset.qr && c.dataset.qr !== %q; })()`, prev))
	text := browsertest.Eval[string](b, `document.querySelector("#code").dataset.qr`)
	code, err := protocol.ParsePaymentCodeText(text)
	if err != nil {
		t.Fatalf("code %q: %v", text, err)
	}
	if err := code.Verify(dev, cred[:]); err != nil {
		t.Fatalf("code %q: %v", text, err)
	}
	return text, code
}

// TestReloadNeverReusesACounter reloads the pay screen 100 times, a code
// shown each time, and checks no counter is ever shown twice.
func TestReloadNeverReusesACounter(t *testing.T) {
	g := startGround(t)
	b := browsertest.New(t, browsertest.Options{})
	dev, cred := readyToPay(t, g, b, "alice")
	b.Navigate(g.url + "/wallet/#/pay/" + string(g.flight))
	seen := map[uint64]int{}
	prev := ""
	const reloads = 100
	for i := range reloads {
		text, code := shownCode(t, b, prev, dev, cred)
		if j, dup := seen[code.Body.Counter]; dup {
			t.Fatalf("load %d showed counter %d, already shown at load %d", i, code.Body.Counter, j)
		}
		seen[code.Body.Counter] = i
		prev = text
		b.Do("reload", chromedp.Reload())
	}
	if len(seen) != reloads {
		t.Fatalf("saw %d distinct counters, want %d", len(seen), reloads)
	}
}

// TestOfflineCodes opens the wallet with the network cut (DevTools offline
// emulation): the service worker serves the app and the page makes codes
// that verify, while online-only screens say they need the network.
func TestOfflineCodes(t *testing.T) {
	g := startGround(t)
	b := browsertest.New(t, browsertest.Options{})
	dev, cred := readyToPay(t, g, b, "alice")
	b.WaitTrue(`navigator.serviceWorker.ready.then(() => true)`)
	b.Do("reload under the service worker", chromedp.Reload())
	b.WaitTrue(`!!navigator.serviceWorker.controller`)
	b.SetOffline(true)
	b.Navigate(g.url + "/wallet/#/pay/" + string(g.flight))
	b.Do("reload offline", chromedp.Reload())
	b.WaitTextIn("#net", "offline")
	text, _ := shownCode(t, b, "", dev, cred)
	b.Navigate(g.url + "/wallet/#/home")
	b.WaitText("Offline: showing your account as last seen")
	b.Navigate(g.url + "/wallet/#/pay/" + string(g.flight))
	shownCode(t, b, text, dev, cred)
	shot(t, b, "pay-offline.png")
	b.SetOffline(false)
}
