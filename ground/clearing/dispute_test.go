package clearing

import (
	"errors"
	"strings"
	"testing"

	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/protocol"
)

// TestResolveDispute: the back office ends a dispute by charging the sale
// (the normal sale path) or voiding it, and the decision is in the
// invoice's detail.
func TestResolveDispute(t *testing.T) {
	h := newHarness(t)
	svc := h.start()
	p := h.passenger(card, 100_00)
	phone, clone := cloneWallet(t, h, p), cloneWallet(t, h, p)
	codeOf := func(w *protocol.Wallet) []byte {
		text, err := w.PaymentCode(testFlight, false)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := protocol.FromQRText(protocol.PrefixPaymentCode, text)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	withCode := func(code []byte) clearingtest.Mod {
		return func(inv *protocol.Invoice) { inv.Code, inv.Credential = code, p.Credential.Body.ID }
	}
	// disputed clears a first sale and a second on the same counter, and
	// returns the disputed one.
	disputed := func(t *testing.T) (first, second *protocol.SignedInvoice) {
		t.Helper()
		first = h.sale(p, 3_00, withCode(codeOf(phone)))
		h.send(first)
		wantReceipt(t, h.receipt(first.Body.ID), protocol.StatusSettled, 0)
		second = h.sale(p, 4_00, withCode(codeOf(clone)))
		h.send(second)
		wantReceipt(t, h.receipt(second.Body.ID), protocol.StatusQuarantined, protocol.ReasonCodeReused)
		wantStatus(t, h.record(second.Body.ID), StatusDisputed)
		return first, second
	}

	t.Run("Charge", func(t *testing.T) {
		first, second := disputed(t)
		rec, err := svc.ResolveDispute(h.ctx, second.Body.ID, true, "passenger confirmed both drinks")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, rec, StatusSettled)
		wantStatus(t, h.record(second.Body.ID), StatusSettled)
		if got := h.acq.Captures(second.Body.ID); got != 1 {
			t.Errorf("captures = %d, want 1", got)
		}
		if d := h.record(second.Body.ID).Detail; !strings.Contains(d, "charged: passenger confirmed both drinks") || !strings.Contains(d, "used by invoice") {
			t.Errorf("detail %q: want the dispute's reason and the decision with its note", d)
		}
		// The counter stays with the first sale.
		if owner, _, err := counterOwner(h.ctx, h.db, p.Credential.Body.ID, mustCounter(t, first)); err != nil || owner != first.Body.ID {
			t.Errorf("counter owner = %s (%v), want the first sale %s", owner, err, first.Body.ID)
		}
		h.checkLedger()
	})

	t.Run("NoCharge", func(t *testing.T) {
		_, second := disputed(t)
		rec, err := svc.ResolveDispute(h.ctx, second.Body.ID, false, "duplicate scan")
		if err != nil {
			t.Fatal(err)
		}
		wantStatus(t, rec, StatusVoided)
		if n := len(h.transfers(second.Body.ID)); n != 0 {
			t.Errorf("voided dispute has %d transfers, want none", n)
		}
		if got := h.acq.Captures(second.Body.ID); got != 0 {
			t.Errorf("captures = %d, want 0", got)
		}
		if d := h.record(second.Body.ID).Detail; !strings.Contains(d, "voided, not charged: duplicate scan") {
			t.Errorf("detail %q: want the decision with its note", d)
		}
		t.Run("ErrAgain", func(t *testing.T) {
			if _, err := svc.ResolveDispute(h.ctx, second.Body.ID, true, "again"); !errors.Is(err, ErrNotDisputed) {
				t.Errorf("resolve a resolved dispute: err = %v, want ErrNotDisputed", err)
			}
		})
	})

	t.Run("ErrNoNote", func(t *testing.T) {
		_, second := disputed(t)
		if _, err := svc.ResolveDispute(h.ctx, second.Body.ID, true, "  "); !errors.Is(err, ErrDisputeNote) {
			t.Errorf("err = %v, want ErrDisputeNote", err)
		}
		wantStatus(t, h.record(second.Body.ID), StatusDisputed)
	})

	t.Run("ErrSettledSale", func(t *testing.T) {
		first, _ := disputed(t)
		if _, err := svc.ResolveDispute(h.ctx, first.Body.ID, false, "not a dispute"); !errors.Is(err, ErrNotDisputed) {
			t.Errorf("err = %v, want ErrNotDisputed", err)
		}
		wantStatus(t, h.record(first.Body.ID), StatusSettled)
	})
}

// TestDisputeKeepsHold: a wallet hold stays while a sale of its flight is
// disputed, so charging the dispute takes it from the hold; the rest is
// released once the dispute is resolved.
func TestDisputeKeepsHold(t *testing.T) {
	h := newHarness(t)
	svc := h.start()
	p, holdAcct, walletAcct := h.heldWallet(svc, 10_00, 20_00) // the credential's limit
	over := h.sale(p, 15_00)                                   // over the credential's per-sale cap: disputed
	h.send(over)
	wantReceipt(t, h.receipt(over.Body.ID), protocol.StatusQuarantined, protocol.ReasonOverTransactionCap)
	wantStatus(t, h.record(over.Body.ID), StatusDisputed)
	h.sendClose()
	h.waitClosed()
	if n, err := svc.ReleaseHolds(h.ctx, h.fl.ID); err != nil || n != 0 {
		t.Fatalf("release with a dispute open = %d, %v; want 0", n, err)
	}
	if got, want := h.balance(holdAcct), eur(20_00); got != want {
		t.Fatalf("hold with a dispute open = %v, want %v (kept)", got, want)
	}
	rec, err := svc.ResolveDispute(h.ctx, over.Body.ID, true, "limit raised by phone")
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, rec, StatusSettled)
	if got, want := h.balance(holdAcct), eur(5_00); got != want {
		t.Errorf("hold after charging the dispute = %v, want %v (charged from it)", got, want)
	}
	h.retry()
	if got := h.balance(holdAcct); got.Minor != 0 {
		t.Errorf("hold after the sweep = %v, want 0", got)
	}
	if got, want := h.balance(walletAcct), eur(80_00-15_00); got != want {
		t.Errorf("wallet = %v, want %v", got, want)
	}
	h.checkLedger()
}
