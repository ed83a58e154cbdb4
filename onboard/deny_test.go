package onboard_test

import (
	"testing"

	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// TestDenyDevice deny-lists a device key (reported lost): every credential
// bound to it is refused, the one in the manifest (compact code) and a new
// one the cabin server has never seen (full code), and lifting the entry
// lets the passenger pay again.
func TestDenyDevice(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 2})
	lost, other := f.Passengers[0], f.Passengers[1]
	entry := protocol.DenyEntry{Reason: protocol.DenyDeviceLost, Device: protocol.DeviceKey{PublicKey: lost.Wallet.DeviceKey()}}
	c, _ := f.OpenCabin(f.SignManifest(func(m *protocol.Manifest) { m.Deny = []protocol.DenyEntry{entry} }), nil)

	t.Run("CompactCode", func(t *testing.T) {
		d, err := c.Authorize(ctx, sale(lost.Code(), coffee(1)...))
		if got, want := reasonOf(t, d, err), protocol.ReasonDenyListed; got != want {
			t.Fatalf("reason = %d, want %d", got, want)
		}
	})
	t.Run("FullCodeNewCredential", func(t *testing.T) {
		// A credential issued after the manifest, for the lost device.
		fresh := f.SignCredential(lost.Wallet.DeviceKey(), lost.ID, nil)
		if _, err := lost.Wallet.AddCredential(fresh.Raw, nil); err != nil {
			t.Fatal(err)
		}
		d, err := c.Authorize(ctx, sale(lost.FullCode(), coffee(1)...))
		if got, want := reasonOf(t, d, err), protocol.ReasonDenyListed; got != want {
			t.Fatalf("reason = %d, want %d", got, want)
		}
	})
	t.Run("OtherDevicePays", func(t *testing.T) {
		mustApprove(t, c, sale(other.Code(), coffee(1)...))
	})
	t.Run("Undeny", func(t *testing.T) {
		d := f.SignDelta(1, func(d *protocol.ManifestDelta) { d.Undeny = []protocol.DenyEntry{entry} })
		if _, err := c.ApplyDeltas(ctx, [][]byte{d}); err != nil {
			t.Fatal(err)
		}
		mustApprove(t, c, sale(lost.FullCode(), coffee(1)...))
	})
}
