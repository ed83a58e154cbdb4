package harness

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// TestCloseRejectedShown: a flight-close report ground cannot verify (here:
// signed by the aircraft's key after the back office rotated it away) is
// answered with a signed close-rejected receipt, and the cabin server shows
// the reason in its status instead of waiting in silence.
func TestCloseRejectedShown(t *testing.T) {
	f := newFleet(t, "D-AICR")
	p := f.passenger("pax-close")
	code, err := p.Wallet.PaymentCode(f.flights[0], true)
	if err != nil {
		t.Fatal(err)
	}
	sale := f.sell(0, code)
	f.cleared(0, sale.InvoiceID)

	next, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The new box's nkey; the running cabin server keeps its old one,
	// still allowed in its grace, so it can send the close report.
	box, err := NewAircraft("D-AICR", filepath.Join(f.dir, "box-2"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.g.API.RotateAircraftKey(f.ctx, "D-AICR", next.Public(), box.NKeyPub); err != nil {
		t.Fatal(err)
	}
	// Ground keeps the rotation's time rounded up to the second, so that a
	// sale the old key signed earlier in that second still clears: the
	// close must be signed after it to be the old key's forgery.
	replaced := time.Now().Add(time.Second - 1).Truncate(time.Second)
	if err := Poll(f.ctx, 5*time.Second, "the clock past the rotation", func() (bool, error) {
		return time.Now().After(replaced), nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.hh[0].CloseFlight(f.ctx); err != nil {
		t.Fatal(err)
	}
	var why string
	err = Poll(f.ctx, time.Minute, "the close rejection in the cabin server's status", func() (bool, error) {
		st, err := f.hh[0].Status(f.ctx)
		if err != nil || st.Replay == nil {
			return false, err
		}
		why = st.Replay.CloseRejected
		return why != "" && !st.Replay.CloseAccepted, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := protocol.ReasonBadAircraftSignature.String(); why != want {
		t.Errorf("close_rejected = %q, want %q", why, want)
	}
}
