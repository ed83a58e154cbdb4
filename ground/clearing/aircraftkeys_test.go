package clearing

import (
	"context"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/clearing/clearingtest"
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
