package clearing

import (
	"errors"
	"testing"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// TestCloseRejectedReceipt: a flight-close report that fails verification
// gets a signed close-rejected receipt naming the reason, on the aircraft's
// receipt subject, and is not recorded; the genuine close sent after it is
// accepted.
func TestCloseRejectedReceipt(t *testing.T) {
	h := newHarness(t)
	h.start()
	s := h.sale(h.passenger(card, 100_00), 3_50)
	h.send(s)
	h.waitReceipts(s)

	good, err := h.fl.Close()
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	forged, err := protocol.Sign(good.Body, rogue, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.publish(h.fl.CloseSubject(), forged.Raw, "close-forged")
	var rejected *protocol.SignedReceipt
	waitFor(t, func() error {
		rs := h.receipts()[protocol.ID{}]
		if len(rs) == 0 {
			return errors.New("no receipt for the forged close")
		}
		rejected = rs[0]
		return nil
	})
	wantReceipt(t, rejected, protocol.StatusCloseRejected, protocol.ReasonBadAircraftSignature)
	if got, want := rejected.Body.Seq, good.Body.LastSeq; got != want {
		t.Errorf("rejection receipt seq = %d, want the close's last_seq %d", got, want)
	}
	h.publish(h.fl.CloseSubject(), good.Raw, "close-good")
	waitFor(t, func() error {
		for _, r := range h.receipts()[protocol.ID{}] {
			if r.Body.Status == protocol.StatusCloseAccepted {
				return nil
			}
		}
		return errors.New("no close-accepted receipt for the genuine close")
	})
}
