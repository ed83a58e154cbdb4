package clearing

import (
	"context"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// historyDir is a test Directory that keeps aircraft key history, as the
// registry does.
type historyDir struct {
	*clearingtest.Directory
	retired []ground.RetiredKey
}

func (d *historyDir) RetiredAircraftKeys(context.Context, protocol.AircraftID) ([]ground.RetiredKey, error) {
	return d.retired, nil
}

// TestRotatedAircraftKey: after an aircraft's key is rotated, invoices its
// old key signed before the rotation still clear, next to those of the new
// key; one the old key signed after the rotation is refused.
func TestRotatedAircraftKey(t *testing.T) {
	hd := &historyDir{}
	h := newHarness(t, func(c *Config) {
		hd.Directory = c.Directory.(*clearingtest.Directory)
		c.Directory = hd
	})
	p := h.passenger(card, 100_00)
	old := h.ac.Key
	before := h.sale(p, 3_50) // signed at t0 by the old key

	next, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	rotatedAt := t0.Add(time.Minute)
	h.world.Dir.AddAircraft(h.ac.ID, next.Public())
	hd.retired = []ground.RetiredKey{{Key: old.Public(), Since: t0.Add(-time.Hour), ReplacedAt: rotatedAt}}
	h.world.Now = rotatedAt.Add(time.Minute)
	h.ac.Key = next
	after := h.sale(p, 3_50)
	h.ac.Key = old
	stolen := h.sale(p, 3_50) // the old key, after it was replaced
	h.ac.Key = next

	h.clock.Advance(time.Hour)
	h.start()
	h.send(before, after, stolen)
	wantReceipt(t, h.receipt(before.Body.ID), protocol.StatusSettled, 0)
	wantReceipt(t, h.receipt(after.Body.ID), protocol.StatusSettled, 0)
	wantReceipt(t, h.receipt(stolen.Body.ID), protocol.StatusQuarantined, protocol.ReasonBadAircraftSignature)
}

// TestRetiredAircraftKeyByFlight: a retired key verifies a message of a
// flight whose credential window opened before the key was replaced, and
// nothing of a flight whose window opened after, whatever time the message
// claims; a key retired as compromised verifies nothing.
func TestRetiredAircraftKeyByFlight(t *testing.T) {
	hd := &historyDir{}
	h := newHarness(t, func(c *Config) {
		hd.Directory = c.Directory.(*clearingtest.Directory)
		c.Directory = hd
	})
	svc := h.start()
	p := h.passenger(card, 100_00)
	old := h.ac.Key
	opens, _ := registry.CredentialWindow(h.fl.ID.Date())
	next, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.world.Dir.AddAircraft(h.ac.ID, next.Public())

	for _, tc := range []struct {
		name        string
		replacedAt  time.Time
		signedAt    time.Time
		compromised bool
		want        bool
	}{
		{"FlightBegunBeforeRotation", t0.Add(time.Minute), t0, false, true},
		{"FlightBegunAfterRotationBackdated", opens.Add(-time.Hour), opens.Add(-2 * time.Hour), false, false},
		{"SignedAfterRotation", t0.Add(time.Minute), t0.Add(2 * time.Minute), false, false},
		{"Compromised", t0.Add(time.Minute), t0, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hd.retired = []ground.RetiredKey{{Key: old.Public(), Since: opens.Add(-48 * time.Hour), ReplacedAt: tc.replacedAt, Compromised: tc.compromised}}
			h.world.Now = tc.signedAt
			h.ac.Key = old
			inv := h.sale(p, 3_50)
			got, err := svc.verifyRetired(h.ctx, h.ac.ID, inv.Body.Flight, inv.Body.CreatedAt, func(k crypto.PublicKey) error { return inv.Verify(k, nil) })
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("retired key replaced at %s, message signed at %s, flight window opens %s, compromised %v: accepted %v, want %v",
					tc.replacedAt, tc.signedAt, opens, tc.compromised, got, tc.want)
			}
		})
	}
}

// TestCompromisedAircraftKeyVoidRefused: a sale clears; after a rotation
// marked compromised, a void the old key signs of a settled sale, dated before the
// rotation, is refused and the sale stays settled.
func TestCompromisedAircraftKeyVoidRefused(t *testing.T) {
	hd := &historyDir{}
	h := newHarness(t, func(c *Config) {
		hd.Directory = c.Directory.(*clearingtest.Directory)
		c.Directory = hd
	})
	p := h.passenger(card, 100_00)
	old := h.ac.Key
	sale := h.sale(p, 3_50)
	h.start()
	h.send(sale)
	wantReceipt(t, h.receipt(sale.Body.ID), protocol.StatusSettled, 0)

	next, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.world.Dir.AddAircraft(h.ac.ID, next.Public())
	hd.retired = []ground.RetiredKey{{Key: old.Public(), Since: t0.Add(-time.Hour), ReplacedAt: t0.Add(time.Minute), Compromised: true}}
	h.clock.Advance(time.Hour)

	h.world.Now = t0.Add(30 * time.Second)
	h.ac.Key = old
	v := h.void(sale)
	h.send(v)
	wantReceipt(t, h.receipt(v.Body.ID), protocol.StatusQuarantined, protocol.ReasonBadAircraftSignature)
	if got := h.record(sale.Body.ID).Status; got != StatusSettled {
		t.Fatalf("sale after the refused void: %s, want %s", got, StatusSettled)
	}
}
