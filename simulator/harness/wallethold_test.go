package harness

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

// TestPrepaidWalletHeldOnBoard flies a passenger with a 50.00 EUR prepaid
// wallet: the cabin server approves two 20.00 EUR meals and declines the
// third over the passenger limit (naming what is left), a second flight
// cannot count the same money, and once the flight reconciles the wallet
// holds 10.00 EUR with no hold left and nothing in collections.
func TestPrepaidWalletHeldOnBoard(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	g, err := StartGround(ctx, filepath.Join(dir, "ground"), GroundOptions{Scorer: fixedScore(720)}) // band: 250.00 limit, 100.00 cap
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	eur := func(minor int64) protocol.Money { return protocol.M(minor, "EUR") }
	today := time.Now().UTC().Format(time.DateOnly)
	var flights []protocol.FlightID
	var aircraft []*Aircraft
	for i, id := range []protocol.AircraftID{"D-AIUA", "D-AIUB"} {
		a, err := g.RegisterAircraft(ctx, id, filepath.Join(dir, string(id)), nil)
		if err != nil {
			t.Fatal(err)
		}
		fv, err := g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: []string{"401", "402"}[i], Date: today,
			Aircraft: id, Currency: "EUR", Catalog: []protocol.CatalogItem{{SKU: "meal", Name: "Hot meal", Price: eur(20_00), Category: "meal"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.API.SetCrew(ctx, fv.ID, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
			t.Fatal(err)
		}
		flights, aircraft = append(flights, fv.ID), append(aircraft, a)
	}
	p, err := g.RegisterPassenger(ctx, filepath.Join(dir, "wallet"), "prepaid", ground.FundingSource{Kind: ground.FundingWallet},
		eur(50_00), flights[0], protocol.WalletOptions{})
	if err != nil || !p.Eligible {
		t.Fatalf("opt-in with 50.00 EUR: eligible %v, %v", p != nil && p.Eligible, err)
	}
	cred, _ := p.Wallet.Credential(flights[0])
	if got, want := cred.Body.Limit, eur(50_00); got != want {
		t.Fatalf("credential limit = %v, want %v (the balance, under the band's 250.00)", got, want)
	}

	t.Run("SecondFlightCannotCountTheSameMoney", func(t *testing.T) {
		_, err := g.API.OptIn(ctx, p.Wallet, flights[1])
		var e *registry.Error
		if !errors.As(err, &e) || e.Code != registry.CodeIneligible {
			t.Fatalf("opt-in to a second flight on held money: %v, want ineligible", err)
		}
		if bal, err := g.API.WalletBalance(ctx, p.Wallet, "EUR"); err != nil || bal != eur(0) {
			t.Fatalf("balance outside the hold = %v, %v; want 0.00 EUR", bal, err)
		}
	})

	c, err := StartCabin(ctx, g, aircraft[0], flights[0], CabinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hh, err := c.Handheld(ctx, "hh-1", "p1", "2468")
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	c.Link.SetState(linkemu.Down) // in the air
	sell := func() onboard.Decision {
		code, err := p.Wallet.PaymentCode(flights[0], false)
		if err != nil {
			t.Fatal(err)
		}
		d, err := hh.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: []onboard.Line{{SKU: "meal", Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for i := range 2 {
		if d := sell(); !d.Approved {
			t.Fatalf("meal %d declined: %+v", i+1, d.Decline)
		}
	}
	d := sell()
	if d.Approved || d.Decline == nil || d.Decline.Reason != protocol.ReasonOverPassengerLimit {
		t.Fatalf("third meal: approved %v, decline %+v; want over_passenger_limit", d.Approved, d.Decline)
	}
	if got, want := d.Remaining, eur(10_00); got != want {
		t.Fatalf("decline's remaining = %v, want %v", got, want)
	}
	if got, want := d.Decline.Amount, eur(10_00); got != want {
		t.Fatalf("decline's amount = %v, want %v (what is left of the limit)", got, want)
	}
	if _, err := hh.CloseFlight(ctx); err != nil {
		t.Fatal(err)
	}

	c.Link.SetState(linkemu.Up) // landed
	holds := func() (left int64) {
		hs, err := ledger.AccountsByPrefix(ctx, g.Main.DB(), ledger.HoldPrefix(flights[0]))
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			left += h.CreditBalance().Minor
		}
		return left
	}
	if err := Poll(ctx, time.Minute, "the hold released after reconciliation", func() (bool, error) {
		bal, err := g.API.WalletBalance(ctx, p.Wallet, "EUR")
		return err == nil && bal == eur(10_00) && holds() == 0, err
	}); err != nil {
		bal, _ := g.API.WalletBalance(ctx, p.Wallet, "EUR")
		t.Fatalf("%v: balance %v, held %d", err, bal, holds())
	}
	rep, err := g.Main.Clearing().Reports().Flight(ctx, flights[0])
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reconciled || rep.Settled.Count != 2 || rep.Collections.Count != 0 {
		t.Fatalf("report: reconciled %v, settled %d, collections %d (%v)", rep.Reconciled, rep.Settled.Count, rep.Collections.Count, rep.Problems)
	}
	if err := ledger.Check(ctx, g.Main.DB()); err != nil {
		t.Fatal(err)
	}
}

// TestTopUpRaisesTheLimitOnBoard: a prepaid passenger opted in with 30.00
// EUR tops up 30.00 more while the aircraft is at the gate; ground holds it
// and raises the credential's limit, and the cabin server, told at once,
// approves what it declined before. A code embedding the credential as
// first issued pays within the raise too, and ground charges both from the
// hold.
func TestTopUpRaisesTheLimitOnBoard(t *testing.T) {
	w := newPushWorld(t)
	eur := func(minor int64) protocol.Money { return protocol.M(minor, "EUR") }
	p, err := w.g.RegisterPassenger(w.ctx, filepath.Join(w.dir, "wallets", "topup"), "topup", ground.FundingSource{Kind: ground.FundingWallet},
		eur(30_00), w.fl, protocol.WalletOptions{})
	if err != nil || !p.Eligible {
		t.Fatalf("opt-in with 30.00 EUR: %v", err)
	}
	sell := func(full bool, n int64) onboard.Decision {
		code, err := p.Wallet.PaymentCode(w.fl, full)
		if err != nil {
			t.Fatal(err)
		}
		d, err := w.hh.Authorize(w.ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: []onboard.Line{{SKU: "coffee", Quantity: n}}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if err := Poll(w.ctx, pushBound, "the credential on board", func() (bool, error) { return sell(false, 5).Approved, nil }); err != nil {
		t.Fatal(err) // 17.50 of 30.00
	}
	if d := sell(false, 5); d.Approved || d.Decline.Reason != protocol.ReasonOverPassengerLimit || d.Decline.Amount != eur(12_50) {
		t.Fatalf("17.50 more on 12.50 left: approved %v, decline %+v", d.Approved, d.Decline)
	}
	if _, err := w.g.API.TopUp(w.ctx, p.Wallet, eur(30_00), protocol.NewID(nil)); err != nil {
		t.Fatal(err)
	}
	var last onboard.Decision
	if err := Poll(w.ctx, pushBound, "the raised limit on board", func() (bool, error) {
		last = sell(false, 5)
		return last.Approved, nil
	}); err != nil {
		t.Fatalf("%v (last decline %+v)", err, last.Decline)
	}
	if got, want := last.Remaining, eur(60_00-35_00); got != want {
		t.Fatalf("remaining after the raise = %v, want %v", got, want)
	}
	if d := sell(true, 2); !d.Approved { // embeds the credential as first issued
		t.Fatalf("full-form code after the raise declined: %+v", d.Decline)
	}
	if bal, err := w.g.API.WalletBalance(w.ctx, p.Wallet, "EUR"); err != nil || bal != eur(0) {
		t.Fatalf("balance outside the hold = %v, %v; want 0.00 EUR (all 60.00 held)", bal, err)
	}
	if _, err := w.hh.CloseFlight(w.ctx); err != nil {
		t.Fatal(err)
	}
	if err := Poll(w.ctx, time.Minute, "the hold released after reconciliation", func() (bool, error) {
		bal, err := w.g.API.WalletBalance(w.ctx, p.Wallet, "EUR")
		return err == nil && bal == eur(60_00-17_50-17_50-7_00), err
	}); err != nil {
		bal, _ := w.g.API.WalletBalance(w.ctx, p.Wallet, "EUR")
		t.Fatalf("%v: balance %v", err, bal)
	}
	rep, err := w.g.Main.Clearing().Reports().Flight(w.ctx, w.fl)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reconciled || rep.Settled.Count != 3 || rep.Collections.Count != 0 {
		t.Fatalf("report: reconciled %v, settled %d, collections %d (%v)", rep.Reconciled, rep.Settled.Count, rep.Collections.Count, rep.Problems)
	}
	if err := ledger.Check(w.ctx, w.g.Main.DB()); err != nil {
		t.Fatal(err)
	}
}
