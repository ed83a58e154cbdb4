package clearing

import (
	"fmt"
	"testing"

	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/protocol"
)

// heldWallet registers a wallet passenger whose credential's limit is
// limit (in EUR minor units), tops the wallet up with 80.00 and moves held
// of it into the credential's hold, as at opt-in; it returns the passenger
// with its hold and wallet accounts.
func (h *harness) heldWallet(svc *Service, limit, held int64) (p *clearingtest.Passenger, holdAcct, walletAcct ledger.Account) {
	h.t.Helper()
	p = h.passenger(wallet, limit)
	if err := svc.TopUp(h.ctx, p.ID, eur(80_00), protocol.NewID(nil)); err != nil {
		h.t.Fatal(err)
	}
	cred := p.Credential.Body.ID
	h.hold(p.ID, cred, eur(held))
	return p, ledger.HoldAccount(h.fl.ID, cred, "EUR"), ledger.WalletAccount(p.ID, "EUR")
}

// hold moves amount from the passenger's wallet into the credential's hold,
// as the registry does at opt-in.
func (h *harness) hold(p protocol.ID, cred protocol.ID, amount protocol.Money) {
	h.t.Helper()
	tx, err := h.db.BeginTx(h.ctx, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	defer tx.Rollback()
	b := ledger.NewBatch(tx, h.clock.Now())
	w, hold := ledger.WalletAccount(p, amount.Currency), ledger.HoldAccount(h.fl.ID, cred, amount.Currency)
	if err := b.CreateAccounts(h.ctx, w, hold); err != nil {
		h.t.Fatal(err)
	}
	if _, err := b.Post(h.ctx, ledger.Transfer{ID: ledger.HoldTransferID(cred, amount.Minor), Debit: w.ID, Credit: hold.ID,
		Amount: amount, Code: ledger.TransferHold, Ref: cred}); err != nil {
		h.t.Fatal(err)
	}
	if err := b.Flush(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		h.t.Fatal(err)
	}
}

// TestWalletHoldLifecycle: sales are charged from the credential's hold, a
// void gives the charge back to the hold, and once the flight's close and
// every invoice are in, what is left goes back to the wallet, once.
func TestWalletHoldLifecycle(t *testing.T) {
	h := newHarness(t)
	svc := h.start()
	p, holdAcct, walletAcct := h.heldWallet(svc, 50_00, 50_00)

	s1, s2 := h.sale(p, 20_00), h.sale(p, 15_00)
	v := h.void(s2)
	h.send(s1, s2, v)
	h.waitReceipts(s1, s2, v)
	if got, want := h.balance(holdAcct), eur(50_00-20_00); got != want {
		t.Errorf("hold after a sale and a voided one = %v, want %v", got, want)
	}
	if got, want := h.balance(walletAcct), eur(30_00); got != want {
		t.Errorf("wallet outside the hold = %v, want %v (untouched by the sales)", got, want)
	}
	if got := h.transfers(s1.Body.ID)["wallet charge"]; got != 1 {
		t.Errorf("sale 1: %d wallet charges, want 1", got)
	}

	h.sendClose()
	waitFor(t, func() error {
		if left := h.balance(holdAcct); left.Minor != 0 {
			return fmt.Errorf("hold not released after the close: %v left", left)
		}
		return nil
	})
	if got, want := h.balance(walletAcct), eur(80_00-20_00); got != want {
		t.Errorf("wallet after the release = %v, want %v", got, want)
	}
	if n, err := svc.ReleaseHolds(h.ctx, h.fl.ID); err != nil || n != 0 {
		t.Errorf("release again = %d, %v; want nothing left to release", n, err)
	}
	if r := h.record(s1.Body.ID); r.Status != StatusSettled {
		t.Errorf("sale 1 is %s, want settled", r.Status)
	}
	h.checkLedger()
}
