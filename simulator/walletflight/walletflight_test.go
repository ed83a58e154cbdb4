// Package walletflight flies the passenger web wallet end to end: a real
// ground and cabin server (the simulator's harness), passengers who register,
// fund and opt in in headless Chromium, pay with the network cut, the
// flight lands and clears, and the page's receipts are checked against the
// ledger. It lives under simulator/ because ground and the cabin server may
// not import each other.
package walletflight

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/browsertest"
	"github.com/airtab/airtab/simulator/harness"
	"github.com/chromedp/chromedp"
)

// EnvScreenshots names a directory the test writes its screenshots to; by
// default they go to a temporary directory.
const EnvScreenshots = "AIRTAB_SCREENSHOTS"

type fixedScore int

func (f fixedScore) Score(context.Context, registry.Applicant) (int, error) { return int(f), nil }

// phone is one passenger's browser on the wallet.
type phone struct {
	t    *testing.T
	b    *browsertest.Browser
	base string // ground's /wallet/ URL
	prev string // the last code read
}

func (p *phone) open(path string) {
	p.t.Helper()
	p.b.Navigate(p.base + "#/" + path)
}

// code waits for a new payment code on the pay screen and returns it.
func (p *phone) code(flight protocol.FlightID) string {
	p.t.Helper()
	p.open("home")
	p.b.WaitVisible("#view .card")
	p.open("pay/" + string(flight))
	p.b.WaitTrue(fmt.Sprintf(`(() => { const c = document.querySelector("#code"); return !!c && !!c.dataset.qr && c.dataset.qr !== %q; })()`, p.prev))
	p.prev = browsertest.Eval[string](p.b, `document.querySelector("#code").dataset.qr`)
	return p.prev
}

func (p *phone) shot(name string) {
	p.t.Helper()
	dir := os.Getenv(EnvScreenshots)
	if dir == "" {
		dir = p.t.TempDir()
	}
	browsertest.Eval[bool](p.b, `(window.scrollTo(0, 0), true)`)
	p.b.Screenshot(filepath.Join(dir, name), 360, 740)
}

// register registers in the page with ref and waits for the funding screen.
func (p *phone) register(ref string) {
	p.t.Helper()
	p.b.Navigate(p.base)
	p.b.WaitVisible("#register")
	p.b.SetValue("#ref", ref)
	p.b.Click("#register")
	p.b.WaitText("Wallet created")
}

func (p *phone) optIn(f protocol.FlightID) {
	p.t.Helper()
	p.open("home")
	p.b.WaitVisible("#flight")
	p.b.SetValue("#flight", string(f))
	p.b.Click("#optin")
	p.b.WaitText("Opted in to " + string(f))
}

func (p *phone) passenger() protocol.ID {
	p.t.Helper()
	s := browsertest.Eval[string](p.b, `import("./js/store.js").then((s) => s.get("account")).then((a) => a.passenger)`)
	id, err := protocol.ParseID(s)
	if err != nil {
		p.t.Fatalf("passenger id %q: %v", s, err)
	}
	return id
}

func sell(ctx context.Context, t *testing.T, hh *client.Client, code string, lines ...onboard.Line) onboard.Decision {
	t.Helper()
	d, err := hh.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestWalletFlight: Alice tops up her wallet and Bob links a card the
// acquirer will decline, both in the page; in the air, with the phones
// offline, Alice pays twice by code (a code shown twice is declined) and
// once in two-way mode, Bob once; after landing Alice's page shows exactly
// what the ledger charged, Bob's a collection notice, and once Bob links a
// new card the charge is retried and his page shows it paid.
func TestWalletFlight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := t.TempDir()
	g, err := harness.StartGround(ctx, filepath.Join(dir, "ground"), harness.GroundOptions{Scorer: fixedScore(720)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	a, err := g.RegisterAircraft(ctx, "D-AIUA", filepath.Join(dir, "cabin"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fv, err := g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "123", Date: time.Now().UTC().Format(time.DateOnly),
		Aircraft: a.ID, Currency: "EUR", Catalog: []protocol.CatalogItem{
			{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"},
			{SKU: "sandwich", Name: "Sandwich", Price: protocol.M(790, "EUR"), Category: "meal"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.API.SetCrew(ctx, fv.ID, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
		t.Fatal(err)
	}
	base := "http://" + g.Main.HTTPAddr() + "/wallet/"

	// Before boarding, online.
	alice := &phone{t: t, b: browsertest.New(t, browsertest.Options{}), base: base}
	alice.b.SetViewport(360, 740)
	alice.register("alice")
	alice.b.SetValue("#amount", "50.00")
	alice.b.Click("#topup")
	alice.b.WaitText("Topped up 50.00 EUR")
	alice.optIn(fv.ID)
	alice.shot("account.png")

	bob := &phone{t: t, b: browsertest.New(t, browsertest.Options{}), base: base}
	bob.b.SetViewport(360, 740)
	bob.register("bob")
	bob.b.SetValue("#card-number", "4000 0000 0000 9995") // the simulated acquirer declines it
	bob.b.SetValue("#card-exp", "12/"+time.Now().UTC().AddDate(3, 0, 0).Format("06"))
	bob.b.Click("#link-card")
	bob.b.WaitText("Linked Visa ending 9995")
	if got := bob.b.Text("#card-number"); got != "" {
		t.Errorf("card number field still holds %q after linking", got)
	}
	stored := browsertest.Eval[string](bob.b, `import("./js/store.js").then((s) => s.get("account")).then((a) => JSON.stringify(a))`)
	if strings.Contains(stored, "4000000000009995") || strings.Contains(stored, "tok_") {
		t.Errorf("the wallet stored a card number or token: %s", stored)
	}
	bob.optIn(fv.ID)
	for _, p := range []*phone{alice, bob} {
		p.b.WaitTrue(`navigator.serviceWorker.ready.then(() => true)`)
		p.b.Do("reload under the service worker", chromedp.Reload())
		p.b.WaitTrue(`!!navigator.serviceWorker.controller`)
	}

	// The aircraft fetches its manifest at the gate, then takes off.
	c, err := harness.StartCabin(ctx, g, a, fv.ID, harness.CabinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	hh, err := c.Handheld(ctx, "hh-1", "p1", "2468")
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	c.Link.SetState(linkemu.Down)
	alice.b.SetOffline(true)
	bob.b.SetOffline(true)

	// In the air.
	var aliceSpent, bobSpent int64
	code := alice.code(fv.ID)
	alice.shot("pay.png")
	d := sell(ctx, t, hh, code, onboard.Line{SKU: "coffee", Quantity: 1}, onboard.Line{SKU: "sandwich", Quantity: 1})
	if !d.Approved {
		t.Fatalf("Alice's first code declined: %+v", d.Decline)
	}
	aliceSpent += d.Sale.Total.Minor
	if d := sell(ctx, t, hh, code, onboard.Line{SKU: "coffee", Quantity: 1}); d.Approved || d.Decline.Reason != protocol.ReasonCodeReused {
		t.Fatalf("the same code again: %+v, want declined as reused", d)
	}
	d = sell(ctx, t, hh, alice.code(fv.ID), onboard.Line{SKU: "coffee", Quantity: 2})
	if !d.Approved {
		t.Fatalf("Alice's second code declined: %+v", d.Decline)
	}
	aliceSpent += d.Sale.Total.Minor

	// Two-way: the handheld's order, read by the page, consented to.
	order, err := hh.CreateOrder(ctx, []onboard.Line{{SKU: "sandwich", Quantity: 2}})
	if err != nil {
		t.Fatal(err)
	}
	alice.open("order/" + string(fv.ID))
	alice.b.WaitVisible("#order-text")
	alice.b.SetValue("#order-text", "HELLO WORLD")
	alice.b.Click("#read-order")
	alice.b.WaitText("not an Airtab order")
	alice.b.SetValue("#order-text", order.Text)
	alice.b.Click("#read-order")
	alice.b.WaitTextIn("#order-total", "15.80 EUR")
	alice.shot("order.png")
	alice.b.Click("#confirm")
	alice.b.WaitTrue(`!!document.querySelector("#consent")?.dataset.qr`)
	consent := browsertest.Eval[string](alice.b, `document.querySelector("#consent").dataset.qr`)
	d, err = hh.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: consent, OrderID: order.OrderID})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Approved {
		t.Fatalf("Alice's consent declined: %+v", d.Decline)
	}
	aliceSpent += d.Sale.Total.Minor

	d = sell(ctx, t, hh, bob.code(fv.ID), onboard.Line{SKU: "sandwich", Quantity: 1})
	if !d.Approved {
		t.Fatalf("Bob's code declined: %+v", d.Decline)
	}
	bobSpent += d.Sale.Total.Minor

	// Landing: the link comes up, the flight is closed and clears.
	if _, err := hh.CloseFlight(ctx); err != nil {
		t.Fatal(err)
	}
	c.Link.SetState(linkemu.Up)
	if err := harness.Poll(ctx, 2*time.Minute, "every invoice cleared", func() (bool, error) {
		st, err := c.Main.Cabin().Status(ctx)
		return err == nil && st.Invoices.Cleared == 4 && st.Replay != nil && st.Replay.CloseAccepted, err
	}); err != nil {
		t.Fatal(err)
	}
	alice.b.SetOffline(false)
	bob.b.SetOffline(false)

	// Alice's receipts equal the ledger: 50.00 topped up, the balance is
	// what is left.
	bal, err := ledger.LookupAccount(ctx, g.Main.DB(), ledger.WalletAccount(alice.passenger(), "EUR").ID)
	if err != nil {
		t.Fatal(err)
	}
	charged := 5000 - bal.CreditBalance().Minor
	if charged != aliceSpent {
		t.Fatalf("ledger charged Alice %d, the cabin approved %d", charged, aliceSpent)
	}
	alice.open("receipts")
	alice.b.WaitTextIn("#charged-total", protocol.M(charged, "EUR").String())
	if n := browsertest.Eval[int](alice.b, `document.querySelectorAll('.receipt[data-status="settled"]').length`); n != 3 {
		t.Errorf("Alice's page shows %d settled receipts, want 3", n)
	}
	alice.shot("receipts.png")

	// Bob's card was declined: a collection notice, then a new card pays it.
	bob.open("receipts")
	bob.b.WaitVisible("#collection")
	bob.b.WaitTextIn("#collection", protocol.M(bobSpent, "EUR").String()+" is owed")
	bob.b.WaitTextIn("#collection", "insufficient funds")
	bob.shot("collection.png")
	bob.b.Click("#collection button")
	bob.b.WaitVisible("#card-number")
	bob.b.SetValue("#card-number", "4242 4242 4242 4242")
	bob.b.SetValue("#card-exp", "11/"+time.Now().UTC().AddDate(2, 0, 0).Format("2006"))
	bob.b.Click("#link-card")
	bob.b.WaitText("Linked Visa ending 4242")
	if _, err := g.Main.Clearing().RetryCollections(ctx); err != nil {
		t.Fatal(err)
	}
	bob.open("receipts")
	bob.b.WaitTextIn("#charged-total", protocol.M(bobSpent, "EUR").String())
	bob.b.WaitTrue(`!document.querySelector("#collection")`)
}
