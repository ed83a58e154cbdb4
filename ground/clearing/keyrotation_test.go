package clearing

import (
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// TestRetiredIssuerKey: after a rotation retires the issuer key that signed
// a credential, clearing still verifies the credential for a sale whose code
// falls inside the key's window, however late the invoice arrives, and
// quarantines one whose code comes after the window.
func TestRetiredIssuerKey(t *testing.T) {
	h := newHarness(t)
	p := h.passenger(card, 10000)
	old := h.world.Issuer.Public()
	end := t0.Add(10 * time.Minute) // the key was retired: its overlap ends here
	if n := h.world.Trust.Remove(old); n != 1 {
		t.Fatalf("Remove = %d, want 1", n)
	}
	if err := h.world.Trust.Add(crypto.TrustedKey{Key: old, NotBefore: t0.AddDate(-1, 0, 0), NotAfter: end}); err != nil {
		t.Fatal(err)
	}
	inWindow := h.sale(p, 350) // code time t0
	h.world.Now = end.Add(time.Minute)
	late := h.sale(p, 350) // code time after the window
	h.clock.Advance(48 * time.Hour)
	h.start()
	h.send(inWindow, late)
	rs := h.waitReceipts(inWindow, late)
	wantReceipt(t, rs[inWindow.Body.ID][0], protocol.StatusSettled, 0)
	wantReceipt(t, rs[late.Body.ID][0], protocol.StatusQuarantined, protocol.ReasonBadIssuerSignature)
}
