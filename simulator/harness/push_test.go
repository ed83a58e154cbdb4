package harness

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/protocol"
)

// pushWorld is a ground service and one cabin server with the link up that
// polls ground only every few hours: whatever reaches the cabin within the
// tests' bounds came by ground's manifest change notice.
type pushWorld struct {
	t   *testing.T
	ctx context.Context
	dir string
	g   *Ground
	c   *Cabin
	hh  *client.Client
	fl  protocol.FlightID
}

// pushBound is how long a pushed change may take to show in these tests:
// generous, so a slow machine never fails them; the polling fallback would
// take hours.
const pushBound = 20 * time.Second

func newPushWorld(t *testing.T) *pushWorld {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	w := &pushWorld{t: t, ctx: ctx, dir: t.TempDir()}
	var err error
	w.g, err = StartGround(ctx, filepath.Join(w.dir, "ground"), GroundOptions{Scorer: fixedScore(720)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.g.Close() })
	a, err := w.g.RegisterAircraft(ctx, "D-AIUA", filepath.Join(w.dir, "cabin"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fv, err := w.g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "321", Date: time.Now().UTC().Format(time.DateOnly),
		Aircraft: a.ID, Currency: "EUR", Catalog: []protocol.CatalogItem{
			{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	w.fl = fv.ID
	if _, err := w.g.API.SetCrew(ctx, w.fl, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
		t.Fatal(err)
	}
	w.c, err = StartCabin(ctx, w.g, a, w.fl, CabinOptions{SyncInterval: 6 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.c.Close() })
	if w.hh, err = w.c.Handheld(ctx, "hh-1", "p1", "2468"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.hh.Close() })
	return w
}

// passenger registers a card passenger and opts them in to the flight, with
// the cabin server already selling.
func (w *pushWorld) passenger(ref string) *Passenger {
	w.t.Helper()
	card := ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: "tok_push_" + ref, Last4: "4242",
		ExpMonth: 12, ExpYear: time.Now().Year() + 2}
	p, err := w.g.RegisterPassenger(w.ctx, filepath.Join(w.dir, "wallets", ref), ref, card, protocol.Money{}, w.fl, protocol.WalletOptions{})
	if err != nil || !p.Eligible {
		w.t.Fatalf("register %s: eligible %v, %v", ref, p != nil && p.Eligible, err)
	}
	return p
}

// sell tries one coffee on a fresh compact code (the credential is not in
// the code: the cabin must know it from the manifest).
func (w *pushWorld) sell(p *Passenger) onboard.Decision {
	w.t.Helper()
	code, err := p.Wallet.PaymentCode(w.fl, false)
	if err != nil {
		w.t.Fatal(err)
	}
	d, err := w.hh.Authorize(w.ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code,
		Lines: []onboard.Line{{SKU: "coffee", Quantity: 1}}})
	if err != nil {
		w.t.Fatal(err)
	}
	return d
}

func TestManifestPush(t *testing.T) {
	w := newPushWorld(t)

	t.Run("OptInWhileLinkUpPays", func(t *testing.T) {
		p := w.passenger("late-1")
		var last onboard.Decision
		err := Poll(w.ctx, pushBound, "a sale by a passenger who opted in with the link up", func() (bool, error) {
			last = w.sell(p)
			if last.Decline != nil && last.Decline.Reason != protocol.ReasonUnknownCredential {
				t.Fatalf("declined %s, want approved (or unknown_credential until the delta lands)", last.Decline.Name)
			}
			return last.Approved, nil
		})
		if err != nil {
			t.Fatalf("%v (last decline %+v)", err, last.Decline)
		}
	})

	t.Run("RevokedIsRefused", func(t *testing.T) {
		p := w.passenger("late-2")
		if err := Poll(w.ctx, pushBound, "the new credential on board", func() (bool, error) { return w.sell(p).Approved, nil }); err != nil {
			t.Fatal(err)
		}
		cred, _ := p.Wallet.Credential(w.fl)
		if _, err := w.g.API.Revoke(w.ctx, cred.Body.ID); err != nil {
			t.Fatal(err)
		}
		var last onboard.Decision
		err := Poll(w.ctx, pushBound, "a revoked credential refused", func() (bool, error) {
			last = w.sell(p)
			return last.Decline != nil && last.Decline.Reason == protocol.ReasonDenyListed, nil
		})
		if err != nil {
			t.Fatalf("%v (last: approved %v, decline %+v)", err, last.Approved, last.Decline)
		}
	})

	t.Run("RosterChangeSignsIn", func(t *testing.T) {
		before := w.manifestVersion()
		if _, err := w.g.API.SetCrew(w.ctx, w.fl, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"},
			{ID: "a7", Role: "attendant", PIN: "1357"}}); err != nil {
			t.Fatal(err)
		}
		if err := Poll(w.ctx, pushBound, "the new roster on board", func() (bool, error) {
			return w.manifestVersion() != before, nil
		}); err != nil {
			t.Fatal(err)
		}
		hh, err := w.c.Handheld(w.ctx, "hh-2", "a7", "1357")
		if err != nil {
			t.Fatalf("sign-in of a crew member added with the link up: %v", err)
		}
		hh.Close()
	})
}

// manifestVersion is the serial of the manifest the cabin server holds and
// the last delta it applied.
func (w *pushWorld) manifestVersion() [2]uint64 {
	w.t.Helper()
	st, err := w.c.Status(w.ctx)
	if err != nil {
		w.t.Fatal(err)
	}
	if st.Manifest == nil {
		return [2]uint64{}
	}
	return [2]uint64{st.Manifest.Serial, st.Manifest.DeltaSeq}
}
