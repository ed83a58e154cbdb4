package harness

import (
	"context"
	"fmt"
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

// TestFlightEndToEnd flies one small flight with every real part: sales
// approved offline with the link down, then the link comes up, the cabin
// server replays, ground clears each invoice once, receipts come back and
// the flight reconciles to the cent.
func TestFlightEndToEnd(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	g, err := StartGround(ctx, filepath.Join(dir, "ground"), GroundOptions{
		Scorer: registry.StaticScorer{ByRef: map[string]int{"pax-low": 500}, Next: fixedScore(720)}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	a, err := g.RegisterAircraft(ctx, "D-AIUA", filepath.Join(dir, "cabin"), nil)
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC()
	fv, err := g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "123", Date: today.Format(time.DateOnly),
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
	var pax []*Passenger
	for i := range 6 {
		ref := fmt.Sprintf("pax-%d", i)
		funding := ground.FundingSource{Kind: ground.FundingWallet}
		top := protocol.M(5000, "EUR")
		if i%2 == 1 {
			funding = ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: fmt.Sprintf("tok_sim_%d", i),
				Last4: "4242", ExpMonth: 12, ExpYear: today.Year() + 2}
			top = protocol.Money{}
		}
		p, err := g.RegisterPassenger(ctx, filepath.Join(dir, "wallets", ref), ref, funding, top, fv.ID, protocol.WalletOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Eligible {
			t.Fatalf("passenger %s ineligible", ref)
		}
		pax = append(pax, p)
	}
	low, err := g.RegisterPassenger(ctx, filepath.Join(dir, "wallets", "low"), "pax-low", ground.FundingSource{Kind: ground.FundingWallet},
		protocol.Money{}, fv.ID, protocol.WalletOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if low.Eligible {
		t.Fatal("a passenger scoring 500 was given a credential")
	}

	c, err := StartCabin(ctx, g, a, fv.ID, CabinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hh, err := c.Handheld(ctx, "hh-1", "p1", "2468")
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()

	// In the air: no link at all.
	c.Link.SetState(linkemu.Down)
	var approved []protocol.ID
	var approvedMinor int64
	for round := range 2 {
		for _, p := range pax {
			code, err := p.Wallet.PaymentCode(fv.ID, false)
			if err != nil {
				t.Fatal(err)
			}
			d, err := hh.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code,
				Lines: []onboard.Line{{SKU: "coffee", Quantity: 1}, {SKU: "sandwich", Quantity: int64(round + 1)}}})
			if err != nil {
				t.Fatal(err)
			}
			if !d.Approved {
				t.Fatalf("sale declined: %+v", d.Decline)
			}
			approved = append(approved, d.Sale.InvoiceID)
			approvedMinor += d.Sale.Total.Minor
		}
	}
	if _, err := hh.CloseFlight(ctx); err != nil {
		t.Fatal(err)
	}

	// Landing: the link comes back; everything clears.
	c.Link.SetState(linkemu.Up)
	if err := Poll(ctx, time.Minute, "every invoice cleared", func() (bool, error) {
		st, err := c.Main.Cabin().Status(ctx)
		return err == nil && st.Invoices.Cleared == int64(len(approved)) && st.Replay != nil && st.Replay.CloseAccepted, err
	}); err != nil {
		t.Fatal(err)
	}
	if err := ledger.Check(ctx, g.Main.DB()); err != nil {
		t.Fatalf("ledger: %v", err)
	}
	rep, err := g.Main.Clearing().Reports().Flight(ctx, fv.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reconciled {
		t.Fatalf("flight not reconciled: %v", rep.Problems)
	}
	if got, want := rep.Settled.Count, len(approved); got != want {
		t.Fatalf("settled = %d, want %d", got, want)
	}
}

type fixedScore int

func (s fixedScore) Score(context.Context, registry.Applicant) (int, error) { return int(s), nil }

// TestCabinStartedBeforeItsAircraftIsRegistered: a cabin server that starts
// before ground knows its nkey is refused by a NATS server that already
// checks other aircraft's nkeys, again and again; once the aircraft is
// registered it connects, fetches its manifest and opens sales. (nats.go on
// its own stops reconnecting after two authorization errors in a row.)
func TestCabinStartedBeforeItsAircraftIsRegistered(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	g, err := StartGround(ctx, filepath.Join(dir, "ground"), GroundOptions{Scorer: fixedScore(720)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	// Another aircraft first: from now on the server checks nkeys.
	if _, err := g.RegisterAircraft(ctx, "D-AIUB", filepath.Join(dir, "other"), nil); err != nil {
		t.Fatal(err)
	}
	a, err := NewAircraft("D-AIUA", filepath.Join(dir, "cabin"), nil)
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC()
	f := protocol.FlightID("XX123-" + today.Format(time.DateOnly))
	link, err := linkemu.Listen("127.0.0.1:0", g.NATSAddr(), linkemu.Config{}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	c := &Cabin{Link: link, Links: LinkGroup{link}, Aircraft: a, Flight: f, ground: g, opts: CabinOptions{ReconnectWait: 20 * time.Millisecond, Logger: testLogger()}}
	if err := c.start(ctx); err != nil {
		link.Close()
		t.Fatal(err)
	}
	defer c.Close()
	// Refused many times over while unregistered (each attempt opens a
	// connection through the link).
	if err := Poll(ctx, time.Minute, "ten refused connection attempts", func() (bool, error) {
		return link.Stats().Conns >= 10, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := g.Register(ctx, a); err != nil {
		t.Fatal(err)
	}
	fv, err := g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "123", Date: today.Format(time.DateOnly),
		Aircraft: a.ID, Currency: "EUR", Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"}}})
	if err != nil || fv.ID != f {
		t.Fatalf("register flight: %v, %v (want %s)", fv.ID, err, f)
	}
	if _, err := g.API.SetCrew(ctx, f, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitSalesOpen(ctx); err != nil {
		st, _ := c.Status(ctx)
		t.Fatalf("%v (status %+v, link %+v)", err, st, link.Stats())
	}
}
