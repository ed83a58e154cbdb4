package registry

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/protocol"
)

// Prepaid wallets. A card passenger's limit on board is the score policy's
// (the deferred-charge model: ground charges the card after the flight). A
// wallet passenger's limit is at most what the wallet holds when they opt
// in, and that amount is held in the ledger (see ground/ledger accounts.go:
// a transfer from the wallet to the credential's own hold account), so two
// flights opted in at once can never count the same money, and ground can
// always charge what the aircraft approved. Clearing charges sales on the
// credential from the hold and releases the rest once the flight
// reconciles (ground/clearing holds.go).

// walletAvailable returns what the passenger's wallet in currency c holds
// now, outside any hold: zero for a wallet never funded.
func walletAvailable(ctx context.Context, q ledger.Querier, passenger protocol.ID, c protocol.Currency) (protocol.Money, error) {
	a, err := ledger.LookupAccount(ctx, q, ledger.WalletAccount(passenger, c).ID)
	if errors.Is(err, ledger.ErrAccountNotFound) {
		return protocol.M(0, c), nil
	}
	if err != nil {
		return protocol.Money{}, err
	}
	return a.CreditBalance(), nil
}

// walletLimits caps the policy's limit and transaction cap at what the
// passenger's wallet holds. A wallet holding nothing in the flight's
// currency makes the passenger ineligible, with the balance named.
func walletLimits(ctx context.Context, q ledger.Querier, passenger protocol.ID, limit, txCap protocol.Money) (protocol.Money, protocol.Money, error) {
	avail, err := walletAvailable(ctx, q, passenger, limit.Currency)
	if err != nil {
		return limit, txCap, err
	}
	if avail.Minor <= 0 {
		return limit, txCap, Errorf(CodeIneligible, "prepaid wallet holds %s outside other flights' holds: top up before opting in", avail)
	}
	limit.Minor = min(limit.Minor, avail.Minor)
	txCap.Minor = min(txCap.Minor, limit.Minor)
	return limit, txCap, nil
}

// holdWallet moves amount from the passenger's wallet into the hold of
// credential cred on flight f, bringing the hold's total to heldMinor. The
// wallet's balance limit refuses a hold it cannot cover (the error names
// the balance); nothing is written then.
func holdWallet(ctx context.Context, tx *sql.Tx, now time.Time, f protocol.FlightID, cred, passenger protocol.ID, amount protocol.Money, heldMinor int64) error {
	wallet, hold := ledger.WalletAccount(passenger, amount.Currency), ledger.HoldAccount(f, cred, amount.Currency)
	b := ledger.NewBatch(tx, now)
	if err := b.CreateAccounts(ctx, wallet, hold); err != nil {
		return err
	}
	t := ledger.Transfer{ID: ledger.HoldTransferID(cred, heldMinor), Debit: wallet.ID, Credit: hold.ID,
		Amount: amount, Code: ledger.TransferHold, Ref: cred}
	if _, err := b.Post(ctx, t); err != nil {
		if errors.Is(err, ledger.ErrInsufficientFunds) {
			return Errorf(CodeIneligible, "prepaid wallet cannot cover a hold of %s: %v", amount, err)
		}
		return err
	}
	return b.Flush(ctx)
}
