package clearing

import (
	"fmt"
	"testing"

	"github.com/airtab/airtab/ground/registry"
)

// waitClosed waits until clearing holds the close report of the harness's
// flight.
func (h *harness) waitClosed() {
	h.t.Helper()
	waitFor(h.t, func() error {
		closed, err := FlightClosed(h.ctx, h.db, h.fl.ID)
		if err != nil || closed {
			return err
		}
		return fmt.Errorf("no close report of %s yet", h.fl.ID)
	})
}

// A hold spent to zero has no release transfer, so money held on the
// credential after the flight reconciled (a raise racing the close) was
// never given back. The sweep of RetryCollections releases it.
func TestHoldSweepReleasesAfterReconcile(t *testing.T) {
	h := newHarness(t)
	svc := h.start()
	p, holdAcct, walletAcct := h.heldWallet(svc, 50_00, 20_00)
	s1 := h.sale(p, 20_00)
	h.send(s1)
	h.waitReceipts(s1)
	h.sendClose()
	h.waitClosed()
	if got := h.balance(holdAcct); got.Minor != 0 {
		t.Fatalf("hold after spending it all = %v, want 0", got)
	}
	h.hold(p.ID, p.Credential.Body.ID, eur(30_00)) // what a raise did after a top-up
	h.retry()
	if got := h.balance(holdAcct); got.Minor != 0 {
		t.Errorf("hold after the sweep = %v, want 0: the flight reconciled", got)
	}
	if got, want := h.balance(walletAcct), eur(80_00-20_00); got != want {
		t.Errorf("wallet after the sweep = %v, want %v", got, want)
	}
	if n, err := svc.ReleaseHolds(h.ctx, h.fl.ID); err != nil || n != 0 {
		t.Errorf("release again = %d, %v; want nothing left", n, err)
	}
}

// A flight that never reconciles (no close report) keeps its holds until
// HoldExpiry after its credentials' end; then the sweep gives them back,
// and a sale of the flight cleared later is charged from the wallet.
func TestHoldSweepExpiry(t *testing.T) {
	h := newHarness(t)
	svc := h.start()
	p, holdAcct, walletAcct := h.heldWallet(svc, 50_00, 50_00)
	s1 := h.sale(p, 10_00)
	h.send(s1)
	h.waitReceipts(s1)
	_, end := registry.CredentialWindow(h.fl.ID.Date())

	t.Run("BeforeExpiryKept", func(t *testing.T) {
		h.clock.Advance(end.Add(HoldExpiry - 1).Sub(h.clock.Now()))
		h.retry()
		if got, want := h.balance(holdAcct), eur(40_00); got != want {
			t.Errorf("hold just before expiry = %v, want %v (kept)", got, want)
		}
	})
	t.Run("AtExpiryReleased", func(t *testing.T) {
		h.clock.Advance(end.Add(HoldExpiry).Sub(h.clock.Now()))
		h.retry()
		if got := h.balance(holdAcct); got.Minor != 0 {
			t.Errorf("hold at expiry = %v, want 0", got)
		}
		if got, want := h.balance(walletAcct), eur(80_00-10_00); got != want {
			t.Errorf("wallet at expiry = %v, want %v", got, want)
		}
	})
	t.Run("LateSaleFromWallet", func(t *testing.T) {
		s2 := h.sale(p, 5_00)
		h.send(s2)
		h.waitReceipts(s2)
		if got, want := h.balance(walletAcct), eur(80_00-10_00-5_00); got != want {
			t.Errorf("wallet after a late sale = %v, want %v (charged from it)", got, want)
		}
		if got := h.balance(holdAcct); got.Minor != 0 {
			t.Errorf("hold after a late sale = %v, want 0", got)
		}
	})
}
