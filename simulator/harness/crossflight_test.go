package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

// fleet is one ground service and several real cabin servers, each flying
// its own flight today, each with a signed-in handheld.
type fleet struct {
	t       *testing.T
	ctx     context.Context
	dir     string
	g       *Ground
	acq     *clearing.SimAcquirer
	cabins  []*Cabin
	hh      []*client.Client
	flights []protocol.FlightID
}

func newFleet(t *testing.T, aircraft ...protocol.AircraftID) *fleet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	f := &fleet{t: t, ctx: ctx, dir: t.TempDir(), acq: clearing.NewSimAcquirer(clearing.SimConfig{})}
	var err error
	f.g, err = StartGround(ctx, filepath.Join(f.dir, "ground"), GroundOptions{Scorer: fixedScore(720), Acquirer: f.acq})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.g.Close() })
	for i, id := range aircraft {
		a, err := f.g.RegisterAircraft(ctx, id, filepath.Join(f.dir, "cabin-"+string(id)), nil)
		if err != nil {
			t.Fatal(err)
		}
		fv, err := f.g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: fmt.Sprint(401 + i),
			Date: time.Now().UTC().Format(time.DateOnly), Aircraft: id, Currency: "EUR",
			Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.g.API.SetCrew(ctx, fv.ID, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
			t.Fatal(err)
		}
		c, err := StartCabin(ctx, f.g, a, fv.ID, CabinOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		hh, err := c.Handheld(ctx, fmt.Sprintf("hh-%d", i), "p1", "2468")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(hh.Close)
		f.cabins, f.hh, f.flights = append(f.cabins, c), append(f.hh, hh), append(f.flights, fv.ID)
	}
	return f
}

// card is a card funding source that the simulated acquirer captures.
func card(ref string) ground.FundingSource {
	return ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: "tok_ok_" + ref, Last4: "4242",
		ExpMonth: 12, ExpYear: time.Now().Year() + 2}
}

// passenger registers a card passenger opted in to every flight of the
// fleet, the credentials in their wallet.
func (f *fleet) passenger(ref string) *Passenger {
	f.t.Helper()
	p, err := f.g.RegisterPassenger(f.ctx, filepath.Join(f.dir, "wallets", ref), ref, card(ref), protocol.Money{}, f.flights[0], protocol.WalletOptions{})
	if err != nil || !p.Eligible {
		f.t.Fatalf("register %s: eligible %v, %v", ref, p != nil && p.Eligible, err)
	}
	for _, fl := range f.flights[1:] {
		cred, err := f.g.API.OptIn(f.ctx, p.Wallet, fl)
		if err != nil {
			f.t.Fatal(err)
		}
		if _, err := p.Wallet.AddCredential(cred.COSE, nil); err != nil {
			f.t.Fatal(err)
		}
	}
	return p
}

// cloneWallet copies a wallet directory and opens the copy: a second phone
// (a restored backup) that hands out the same counters.
func cloneWallet(t *testing.T, from, to string) *protocol.Wallet {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	w, err := protocol.OpenWallet(to, protocol.WalletOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// sell sells one coffee on handheld i with code and wants it approved.
func (f *fleet) sell(i int, code string) *onboard.Sale {
	f.t.Helper()
	d, err := f.hh[i].Authorize(f.ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code,
		Lines: []onboard.Line{{SKU: "coffee", Quantity: 1}}})
	if err != nil {
		f.t.Fatal(err)
	}
	if !d.Approved {
		f.t.Fatalf("sale on %s declined: %+v", f.flights[i], d.Decline)
	}
	return d.Sale
}

// cleared waits until ground's report of flight i shows invoice id in a
// final status, and returns it.
func (f *fleet) cleared(i int, id protocol.ID) clearing.ReportLine {
	f.t.Helper()
	var line clearing.ReportLine
	err := Poll(f.ctx, time.Minute, "invoice "+id.String()+" cleared", func() (bool, error) {
		rep, err := f.g.Main.Clearing().Reports().Flight(f.ctx, f.flights[i])
		if err != nil {
			return false, nil // nothing received yet
		}
		for _, l := range rep.Invoices {
			if l.Invoice == id && l.Status != clearing.StatusPosted {
				line = l
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return line
}

func counterOf(t *testing.T, code string) uint64 {
	t.Helper()
	raw, err := protocol.FromQRText(protocol.PrefixPaymentCode, code)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := protocol.ParsePaymentCode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return pc.Body.Counter
}

// TestSameCounterTwoFlights: a passenger on a connection, two aircraft at
// once, whose wallet (here a copy of it) signs the same counter for each
// flight's credential. Each aircraft approves its sale (neither can know
// the other's counters), and ground charges both, once each, whichever
// arrives first: a counter is unique per credential (SPEC §6), and a sale
// both signatures authorize is never left unpaid.
func TestSameCounterTwoFlights(t *testing.T) {
	f := newFleet(t, "D-AIUA", "D-AIUB")
	p := f.passenger("connecting")
	clone := cloneWallet(t, filepath.Join(f.dir, "wallets", "connecting"), filepath.Join(f.dir, "wallets", "clone"))

	for _, tt := range []struct {
		name  string
		first int // the flight whose invoice reaches ground first
	}{{"Flight1First", 0}, {"Flight2First", 1}} {
		t.Run(tt.name, func(t *testing.T) {
			code1, err := p.Wallet.PaymentCode(f.flights[0], true)
			if err != nil {
				t.Fatal(err)
			}
			code2, err := clone.PaymentCode(f.flights[1], true)
			if err != nil {
				t.Fatal(err)
			}
			if c1, c2 := counterOf(t, code1), counterOf(t, code2); c1 != c2 {
				t.Fatalf("counters %d and %d: the copied wallet should repeat", c1, c2)
			}
			second := 1 - tt.first
			f.cabins[second].Link.SetState(linkemu.Down)
			sales := []*onboard.Sale{f.sell(0, code1), f.sell(1, code2)}
			lines := make([]clearing.ReportLine, 2)
			lines[tt.first] = f.cleared(tt.first, sales[tt.first].InvoiceID)
			f.cabins[second].Link.SetState(linkemu.Up)
			lines[second] = f.cleared(second, sales[second].InvoiceID)
			for i, l := range lines {
				if l.Status != clearing.StatusSettled {
					t.Errorf("flight %s sale: %s (%s: %s), want settled", f.flights[i], l.Status, l.Reason, l.Detail)
				}
				if got, want := f.acq.Captures(sales[i].InvoiceID), 1; got != want {
					t.Errorf("flight %s sale captured %d times, want %d", f.flights[i], got, want)
				}
			}
		})
	}
	if err := ledger.Check(f.ctx, f.g.Main.DB()); err != nil {
		t.Fatalf("ledger: %v", err)
	}
}
