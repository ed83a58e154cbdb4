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
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go"
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

// natsLogin logs in to ground's NATS server with the nkey seed in file, as
// a cabin server does, and reports the refusal, if any.
func natsLogin(g *Ground, seedFile string) error {
	opt, err := nats.NkeyOptionFromSeed(seedFile)
	if err != nil {
		return err
	}
	nc, err := nats.Connect("nats://"+g.NATSAddr(), opt, nats.MaxReconnects(0), nats.Timeout(5*time.Second))
	if err != nil {
		return err
	}
	nc.Close()
	return nil
}

// TestAircraftKeyRotation rotates an aircraft's key under a flying
// aircraft, with a real ground and cabin servers. A plain rotation gives the
// aircraft a new signing key and a new nkey: the old box, still on its old
// nkey, uploads the sale it signed before the rotation while its link was
// down and gets its receipt (the sale settles under the retired key), and
// the new box, with the new key and nkey, sells on the aircraft's next
// flight and clears. Then a rotation marked compromised: the new box's nkey
// is refused at once, while the first box's old nkey, in its grace, still
// logs in.
func TestAircraftKeyRotation(t *testing.T) {
	f := newFleet(t, "D-AIKP")
	const tail = protocol.AircraftID("D-AIKP")
	box1 := f.cabins[0]
	p := f.passenger("pax-rotate")
	code, err := p.Wallet.PaymentCode(f.flights[0], true)
	if err != nil {
		t.Fatal(err)
	}
	before := f.sell(0, code)
	if got := f.cleared(0, before.InvoiceID).Status; got != clearing.StatusSettled {
		t.Fatalf("sale before the rotation: %s, want %s", got, clearing.StatusSettled)
	}

	// Box 1 signs a sale with the link down; then the back office moves the
	// aircraft to box 2's key and nkey.
	box1.Link.SetState(linkemu.Down)
	code, err = p.Wallet.PaymentCode(f.flights[0], true)
	if err != nil {
		t.Fatal(err)
	}
	offline := f.sell(0, code)
	box2, err := NewAircraft(tail, filepath.Join(f.dir, "box-2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.g.API.RotateAircraftKey(f.ctx, tail, box2.Key.Public(), ""); err == nil {
		t.Fatal("rotation without a new nkey: accepted, want refused")
	}
	if _, err := f.g.API.RotateAircraftKey(f.ctx, tail, box2.Key.Public(), box2.NKeyPub); err != nil {
		t.Fatal(err)
	}

	t.Run("OldBoxUploadsWhatItSigned", func(t *testing.T) {
		box1.Link.SetState(linkemu.Up)
		if got := f.cleared(0, offline.InvoiceID); got.Status != clearing.StatusSettled {
			t.Fatalf("sale box 1 signed before the rotation: %s (%s, %s), want %s", got.Status, got.Reason, got.Detail, clearing.StatusSettled)
		}
		err := Poll(f.ctx, time.Minute, "box 1 holding the receipt", func() (bool, error) {
			st, err := f.hh[0].Status(f.ctx)
			return err == nil && st.Invoices.Cleared == 2, err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := natsLogin(f.g, box1.Aircraft.NKeyFile()); err != nil {
			t.Errorf("box 1's old nkey in its grace: %v, want logged in", err)
		}
	})

	t.Run("NewBoxSells", func(t *testing.T) {
		fv, err := f.g.API.RegisterFlight(f.ctx, api.FlightRequest{Carrier: "XX", Number: "902",
			Date: time.Now().UTC().Format(time.DateOnly), Aircraft: tail, Currency: "EUR",
			Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"}}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.g.API.SetCrew(f.ctx, fv.ID, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
			t.Fatal(err)
		}
		cred, err := f.g.API.OptIn(f.ctx, p.Wallet, fv.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Wallet.AddCredential(cred.COSE, nil); err != nil {
			t.Fatal(err)
		}
		c, err := StartCabin(f.ctx, f.g, box2, fv.ID, CabinOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		hh, err := c.Handheld(f.ctx, "hh-box2", "p1", "2468")
		if err != nil {
			t.Fatal(err)
		}
		defer hh.Close()
		code, err := p.Wallet.PaymentCode(fv.ID, true)
		if err != nil {
			t.Fatal(err)
		}
		d, err := hh.Authorize(f.ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: []onboard.Line{{SKU: "coffee", Quantity: 1}}})
		if err != nil || !d.Approved {
			t.Fatalf("sale on box 2: %v, %+v", err, d.Decline)
		}
		if got := settled(t, f.ctx, f.g, fv.ID, d.Sale.InvoiceID); got != clearing.StatusSettled {
			t.Errorf("box 2's sale: %s, want %s", got, clearing.StatusSettled)
		}
	})

	var box3NKey string
	t.Run("CompromisedDropsTheNKeyAtOnce", func(t *testing.T) {
		box3, err := NewAircraft(tail, filepath.Join(f.dir, "box-3"), nil)
		if err != nil {
			t.Fatal(err)
		}
		box3NKey = box3.NKeyFile()
		if err := natsLogin(f.g, box2.NKeyFile()); err != nil {
			t.Fatalf("box 2's nkey before the rotation: %v", err)
		}
		if _, err := f.g.API.RotateCompromisedAircraftKey(f.ctx, tail, box3.Key.Public(), box3.NKeyPub); err != nil {
			t.Fatal(err)
		}
		if err := natsLogin(f.g, box2.NKeyFile()); err == nil {
			t.Error("box 2's nkey after a compromised rotation: logged in, want refused")
		}
		if err := natsLogin(f.g, box3.NKeyFile()); err != nil {
			t.Errorf("box 3's nkey: %v, want logged in", err)
		}
		if err := natsLogin(f.g, box1.Aircraft.NKeyFile()); err != nil {
			t.Errorf("box 1's nkey, in its grace from the first rotation: %v, want logged in", err)
		}
	})

	t.Run("OldNKeyRefusedAfterItsGrace", func(t *testing.T) {
		// Ground again on the same data, its clock past the grace: seven
		// days after the flight's credential window closes.
		if err := f.g.Close(); err != nil {
			t.Fatal(err)
		}
		_, closes := registry.CredentialWindow(f.flights[0].Date())
		later := closes.Add(registry.RetiringNKeyReplay + time.Hour).Sub(time.Now())
		f.g.opts.Clock = func() time.Time { return time.Now().Add(later) }
		if err := f.g.Start(f.ctx); err != nil {
			t.Fatal(err)
		}
		if err := natsLogin(f.g, box1.Aircraft.NKeyFile()); err == nil {
			t.Error("box 1's old nkey after its grace: logged in, want refused")
		}
		if err := natsLogin(f.g, box3NKey); err != nil {
			t.Errorf("box 3's nkey: %v, want logged in", err)
		}
	})
}
