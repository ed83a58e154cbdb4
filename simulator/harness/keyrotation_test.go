package harness

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/keys"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
)

// keyChange stops ground, changes its issuer key set as "ground keys"
// does, and starts it again on the same directory and NATS port.
func keyChange(t *testing.T, ctx context.Context, g *Ground, change func(s *keys.Set, now time.Time) error) {
	t.Helper()
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s, _, err := keys.Open(g.Dir, "", now, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := change(s, now); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(now); err != nil {
		t.Fatal(err)
	}
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestIssuerKeyRotation rotates ground's issuer key under a flying
// aircraft, with a real ground and cabin server: the standby key goes to the
// cabin server's trust file first; after the rotation the aircraft moves to
// a manifest the new key signs, and credentials signed by the old key and by
// the new one both pay and clear (the old key is in its overlap, at the
// codes' time). Then the old key is revoked: the next manifest names it,
// and the cabin server refuses its credentials while the new key's still pay.
func TestIssuerKeyRotation(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	g, err := StartGround(ctx, filepath.Join(dir, "ground"), GroundOptions{Scorer: fixedScore(720), Acquirer: clearing.NewSimAcquirer(clearing.SimConfig{})})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	oldKey := g.IssuerPub
	var standby string
	keyChange(t, ctx, g, func(s *keys.Set, now time.Time) error {
		e, err := s.Add(now, 0, nil)
		if e != nil {
			standby = e.ID
		}
		return err
	})

	a, err := g.RegisterAircraft(ctx, "D-AIKR", filepath.Join(dir, "cabin"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fv, err := g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "771",
		Date: time.Now().UTC().Format(time.DateOnly), Aircraft: a.ID, Currency: "EUR",
		Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.API.SetCrew(ctx, fv.ID, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
		t.Fatal(err)
	}
	register := func(ref string) *Passenger {
		p, err := g.RegisterPassenger(ctx, filepath.Join(dir, "wallets", ref), ref, card(ref), protocol.Money{}, fv.ID, protocol.WalletOptions{})
		if err != nil || !p.Eligible {
			t.Fatalf("register %s: %v", ref, err)
		}
		return p
	}
	byOld := register("pax-old")
	cabin, err := StartCabin(ctx, g, a, fv.ID, CabinOptions{IssuerKeyFile: g.IssuerTrustFile()})
	if err != nil {
		t.Fatal(err)
	}
	defer cabin.Close()
	hh, err := cabin.Handheld(ctx, "hh-1", "p1", "2468")
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	st, err := cabin.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	serial := st.Manifest.Serial

	keyChange(t, ctx, g, func(s *keys.Set, now time.Time) error {
		_, _, err := s.Rotate(now, time.Hour, 0, nil)
		return err
	})
	pub, err := crypto.ReadPublicKeyFile(g.IssuerPubFile(), crypto.Issuer)
	if err != nil || pub.ID().String() != standby {
		t.Fatalf("after the rotation ground signs with %v (%v), want the standby key %s", pub.ID(), err, standby)
	}
	err = Poll(ctx, time.Minute, "the cabin server on a manifest the new key signs", func() (bool, error) {
		st, err := cabin.Status(ctx)
		return err == nil && st.Manifest != nil && st.Manifest.Serial > serial && st.SalesOpen, err
	})
	if err != nil {
		t.Fatal(err)
	}
	byNew := register("pax-new")
	if k, _ := byOld.Wallet.Credential(fv.ID); k.KeyID != oldKey.ID() {
		t.Fatalf("first credential signed by %s, want the old key %s", k.KeyID, oldKey.ID())
	}
	if k, _ := byNew.Wallet.Credential(fv.ID); k.KeyID.String() != standby {
		t.Fatalf("second credential signed by %s, want the new key %s", k.KeyID, standby)
	}

	pay := func(p *Passenger) onboard.Decision {
		t.Helper()
		code, err := p.Wallet.PaymentCode(fv.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		d, err := hh.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code,
			Lines: []onboard.Line{{SKU: "coffee", Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	t.Run("Overlap", func(t *testing.T) {
		for _, p := range []*Passenger{byOld, byNew} {
			d := pay(p)
			if !d.Approved {
				t.Fatalf("%s in the overlap: declined %+v", p.Ref, d.Decline)
			}
			if got := settled(t, ctx, g, fv.ID, d.Sale.InvoiceID); got != clearing.StatusSettled {
				t.Errorf("%s's invoice: status %s, want %s", p.Ref, got, clearing.StatusSettled)
			}
		}
	})

	t.Run("Revoked", func(t *testing.T) {
		st, err := cabin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		serial := st.Manifest.Serial
		keyChange(t, ctx, g, func(s *keys.Set, now time.Time) error {
			_, err := s.Revoke(oldKey.ID().String(), now)
			return err
		})
		err = Poll(ctx, time.Minute, "the manifest naming the old key revoked on board", func() (bool, error) {
			st, err := cabin.Status(ctx)
			return err == nil && st.Manifest != nil && st.Manifest.Serial > serial, err
		})
		if err != nil {
			t.Fatal(err)
		}
		if d := pay(byOld); d.Approved || d.Decline.Reason != protocol.ReasonBadIssuerSignature {
			t.Errorf("credential by the revoked key: %+v, want declined %s", d.Decline, protocol.ReasonBadIssuerSignature)
		}
		if d := pay(byNew); !d.Approved {
			t.Errorf("credential by the new key: declined %+v", d.Decline)
		}
	})
}

// settled waits until ground's report of flight f shows invoice id past
// posted, and returns its status.
func settled(t *testing.T, ctx context.Context, g *Ground, f protocol.FlightID, id protocol.ID) clearing.Status {
	t.Helper()
	var got clearing.Status
	err := Poll(ctx, time.Minute, fmt.Sprintf("invoice %s cleared", id), func() (bool, error) {
		rep, err := g.Main.Clearing().Reports().Flight(ctx, f)
		if err != nil {
			return false, nil
		}
		for _, l := range rep.Invoices {
			if l.Invoice == id && l.Status != clearing.StatusPosted {
				got = l.Status
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}
