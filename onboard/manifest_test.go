package onboard_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

func TestManifestRefused(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	rogue, err := crypto.GenerateKey(crypto.Issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherAircraft, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		raw  func() []byte
		want string
	}{
		{"WrongIssuerKey", func() []byte {
			m := f.Manifest
			m.Serial = 1
			s, err := protocol.Sign(m, rogue, nil)
			if err != nil {
				t.Fatal(err)
			}
			return s.Raw
		}, "issuer signature"},
		{"OtherFlight", func() []byte {
			return f.SignManifest(func(m *protocol.Manifest) {
				m.Flight, _ = protocol.NewFlightID("XX", "999", f.Now())
				m.Credentials = nil
			})
		}, "flight"},
		{"OtherAircraft", func() []byte {
			return f.SignManifest(func(m *protocol.Manifest) { m.Aircraft = "D-ABCD" })
		}, "aircraft"},
		{"OtherAircraftKey", func() []byte {
			return f.SignManifest(func(m *protocol.Manifest) {
				m.AircraftKey = protocol.AircraftKey{PublicKey: otherAircraft.Public()}
			})
		}, "aircraft key"},
		{"Garbage", func() []byte { return []byte("not a manifest") }, "manifest"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := f.OpenCabin(nil, nil)
			err := c.LoadManifest(ctx, tc.raw())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("load = %v, want an error about %q", err, tc.want)
			}
			st, err := c.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if st.SalesOpen || st.Manifest != nil || st.SalesOff.Reason != protocol.ReasonNoManifest {
				t.Fatalf("status = %+v, want sales off with no manifest", st)
			}
		})
	}
}

func TestManifestExpiry(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, _ := f.OpenCabin(f.SignManifest(nil), nil)
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.SalesOpen || st.Manifest.AgeSeconds != 3600 || st.Manifest.Expired {
		t.Fatalf("status = %+v, want sales open on a manifest 1 h old", st)
	}
	f.Clock.Advance(24 * time.Hour)
	st, err = c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.SalesOpen || !st.Manifest.Expired || st.SalesOff.Reason != protocol.ReasonManifestExpired {
		t.Fatalf("status = %+v, want sales off on an expired manifest", st)
	}
	// A delta moves the expiry and sales resume.
	delta := f.SignDelta(1, func(d *protocol.ManifestDelta) { d.ExpiresAt = f.Now().Add(time.Hour) })
	if _, err := c.ApplyDeltas(ctx, [][]byte{delta}); err != nil {
		t.Fatal(err)
	}
	if st, _ = c.Status(ctx); !st.SalesOpen {
		t.Fatalf("status after the delta = %+v, want sales open", st)
	}
}

func TestManifestSerials(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	first := f.SignManifest(nil)
	c, _ := f.OpenCabin(first, nil)
	second := f.SignManifest(nil)
	if err := c.LoadManifest(ctx, second); err != nil {
		t.Fatalf("newer manifest: %v", err)
	}
	if err := c.LoadManifest(ctx, second); err != nil {
		t.Fatalf("same manifest again: %v", err)
	}
	if err := c.LoadManifest(ctx, first); err == nil {
		t.Fatal("older manifest: no error")
	}
	if got, want := c.Manifest().Serial(), uint64(2); got != want {
		t.Fatalf("serial in use = %d, want %d", got, want)
	}
}

// TestManifestRejectsBadCredential signs one credential of the manifest
// with a key outside the manifest's trust list: it is dropped (and logged)
// at load, the rest of the manifest is used.
func TestManifestRejectsBadCredential(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	rogue, _ := crypto.GenerateKey(crypto.Issuer, nil)
	bad := f.NewPassengerWith(ft.PassengerOptions{InManifest: true, Issuer: rogue})
	var logs bytes.Buffer
	c, _ := f.OpenCabin(f.SignManifest(nil), func(cfg *onboard.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if st := c.Manifest().Status(f.Now()); st.Credentials != 1 || st.Rejected != 1 {
		t.Fatalf("manifest status = %+v, want 1 credential and 1 rejected", st)
	}
	if !strings.Contains(logs.String(), "credential refused") {
		t.Errorf("no log of the refused credential:\n%s", logs.String())
	}
	d, err := c.Authorize(ctx, sale(bad.Code(), coffee(1)...))
	if got, want := reasonOf(t, d, err), protocol.ReasonUnknownCredential; got != want {
		t.Fatalf("reason = %d, want %d", got, want)
	}
	mustApprove(t, c, sale(f.Passengers[0].Code(), coffee(1)...))
}

// TestSalesOpenLogged: the first manifest that opens sales is logged as
// such (the start-up log said "sales are off" for want of one); a later
// manifest is not news of that kind.
func TestSalesOpenLogged(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	var logs bytes.Buffer
	c, _ := f.OpenCabin(nil, func(cfg *onboard.Config) {
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	})
	if err := c.LoadManifest(ctx, f.SignManifest(nil)); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "sales are open"); n != 1 {
		t.Fatalf("%d lines say sales are open after the first manifest, want 1:\n%s", n, logs.String())
	}
	if err := c.LoadManifest(ctx, f.SignManifest(func(m *protocol.Manifest) { m.Serial++ })); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "sales are open"); n != 1 {
		t.Errorf("%d lines say sales are open after a second manifest, want still 1:\n%s", n, logs.String())
	}
}

func TestManifestDeltas(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 2})
	c, j := f.OpenCabin(f.SignManifest(nil), nil)
	late := f.NewPassenger(false)
	regular := f.Passengers[0]

	// A late registrant pays with a full code before the delta ...
	mustApprove(t, c, sale(late.FullCode(), coffee(1)...))
	d, err := c.Authorize(ctx, sale(late.Code(), coffee(1)...))
	if got, want := reasonOf(t, d, err), protocol.ReasonUnknownCredential; got != want {
		t.Fatalf("compact code before the delta: reason %d, want %d", got, want)
	}
	// ... and with a compact code after it.
	d1 := f.SignDelta(1, func(d *protocol.ManifestDelta) { d.Credentials = [][]byte{late.Credential.Raw} })
	d2 := f.SignDelta(2, func(d *protocol.ManifestDelta) {
		d.Deny = []protocol.DenyEntry{{Passenger: regular.ID, Reason: protocol.DenyArrears}}
	})
	if n, err := c.ApplyDeltas(ctx, [][]byte{d1, d2}); err != nil || n != 2 {
		t.Fatalf("apply deltas = %d, %v", n, err)
	}
	mustApprove(t, c, sale(late.Code(), coffee(1)...))
	// The deny-list delta took effect.
	d, err = c.Authorize(ctx, sale(regular.Code(), coffee(1)...))
	if got, want := reasonOf(t, d, err), protocol.ReasonDenyListed; got != want {
		t.Fatalf("deny-listed after delta: reason %d, want %d", got, want)
	}

	t.Run("OutOfOrder", func(t *testing.T) {
		d4 := f.SignDelta(4, nil)
		if _, err := c.ApplyDeltas(ctx, [][]byte{d4}); err == nil {
			t.Fatal("delta 4 after 2: no error")
		}
		if _, err := c.ApplyDeltas(ctx, [][]byte{d2}); err == nil {
			t.Fatal("delta 2 again: no error")
		}
	})
	t.Run("WrongIssuer", func(t *testing.T) {
		rogue, _ := crypto.GenerateKey(crypto.Issuer, nil)
		dd := protocol.ManifestDelta{Version: protocol.Version, Flight: f.ID, Aircraft: f.Aircraft,
			BaseSerial: f.Serial(), Seq: 3, IssuedAt: f.Now(), ExpiresAt: f.Now().Add(time.Hour),
			Undeny: []protocol.DenyEntry{{Passenger: regular.ID, Reason: protocol.DenyArrears}}}
		s, err := protocol.Sign(dd, rogue, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ApplyDeltas(ctx, [][]byte{s.Raw}); err == nil {
			t.Fatal("delta signed by an unknown issuer: no error")
		}
	})

	// A restart puts the manifest and both deltas back in use.
	c.Close()
	c2, err := onboard.Open(ctx, f.Config(j))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got, want := c2.Manifest().DeltaSeq(), uint64(2); got != want {
		t.Fatalf("delta seq after restart = %d, want %d", got, want)
	}
	mustApprove(t, c2, sale(late.Code(), coffee(1)...))

	// Lifting the deny entry lets the passenger pay again.
	d3 := f.SignDelta(3, func(d *protocol.ManifestDelta) {
		d.Undeny = []protocol.DenyEntry{{Passenger: regular.ID, Reason: protocol.DenyArrears}}
	})
	if _, err := c2.ApplyDeltas(ctx, [][]byte{d3}); err != nil {
		t.Fatal(err)
	}
	mustApprove(t, c2, sale(regular.Code(), coffee(1)...))
}

// TestDenyCredentialOnly deny-lists one credential of a passenger (a lost
// device): the passenger's new credential still pays.
func TestDenyCredentialOnly(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	lost := f.Passengers[0]
	replacement := f.NewPassengerWith(ft.PassengerOptions{InManifest: true,
		Mutate: func(c *protocol.Credential) { c.Passenger = lost.ID }}) // same passenger, new phone
	c, _ := f.OpenCabin(f.SignManifest(func(m *protocol.Manifest) {
		m.Deny = []protocol.DenyEntry{{Credential: lost.Credential.Body.ID, Reason: protocol.DenyDeviceLost}}
	}), nil)
	d, err := c.Authorize(ctx, sale(lost.Code(), coffee(1)...))
	if got, want := reasonOf(t, d, err), protocol.ReasonDenyListed; got != want {
		t.Fatalf("denied credential: reason %d, want %d", got, want)
	}
	mustApprove(t, c, sale(replacement.Code(), coffee(1)...))
}

// TestFullManifest loads a manifest the size of an 850-seat flight.
func TestFullManifest(t *testing.T) {
	if testing.Short() {
		t.Skip("signs 850 credentials")
	}
	f := ft.New(t, ft.Options{Passengers: 2, Seats: 848})
	raw := f.SignManifest(nil)
	c, _ := f.OpenCabin(raw, nil)
	if got, want := c.Manifest().Status(f.Now()).Credentials, 850; got != want {
		t.Fatalf("credentials = %d, want %d", got, want)
	}
	t.Logf("850-seat manifest: %d bytes", len(raw))
	mustApprove(t, c, sale(f.Passengers[1].Code(), coffee(1)...))
}
