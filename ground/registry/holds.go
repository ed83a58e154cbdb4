package registry

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/airtab/airtab/ground"
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

// RaiseWalletLimits raises the limits of the passenger's live credentials in
// currency c after a top-up: each credential whose limit is under its score
// band's, on a flight whose credentials are still valid, that has not
// closed (SetFlightClosed) and whose hold was not released, gets what the
// wallet now holds outside other holds, up to the band's limit, held like
// the first hold. The raised credential keeps
// its id and is signed anew; the registry carries it in the flight's next
// delta (a cabin server replaces a credential it holds by the same one with
// a higher limit, protocol/SPEC.md §10.4) and tells the aircraft at once.
// It reports how many credentials it raised. Idempotent: with nothing more
// to hold, it changes nothing.
func (r *Registry) RaiseWalletLimits(ctx context.Context, passenger protocol.ID, c protocol.Currency) (int, error) {
	var raised []flightRef
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		p, err := getPassenger(ctx, tx, passenger)
		if err != nil || p.funding == nil || p.funding.Kind != ground.FundingWallet {
			return err
		}
		creds, err := listCredentials(ctx, tx, "passenger = ? AND revoked_at IS NULL", idBytes(passenger), false, maxPassengerFlights)
		if err != nil {
			return err
		}
		for _, ic := range creds {
			ref, ok, err := r.raiseLimit(ctx, tx, p, ic.Signed, c)
			if err != nil {
				return err
			}
			if ok {
				raised = append(raised, ref)
			}
		}
		return nil
	})
	if err != nil {
		return 0, wrap(err, "registry: raise wallet limits of %s", passenger)
	}
	r.notify(raised...)
	return len(raised), nil
}

// raiseLimit raises one credential's limit as RaiseWalletLimits says, and
// reports whether it did.
func (r *Registry) raiseLimit(ctx context.Context, tx *sql.Tx, p passengerRow, sc *protocol.SignedCredential, c protocol.Currency) (flightRef, bool, error) {
	old := sc.Body
	now := r.now()
	if old.Limit.Currency != c || !now.Before(old.NotAfter) {
		return flightRef{}, false, nil
	}
	released, err := holdReleased(ctx, tx, old.ID)
	if err != nil || released {
		return flightRef{}, false, err
	}
	// A hold spent to zero is never released (there is nothing to move
	// back), so a closed flight is skipped by its close report: no aircraft
	// spends a raise after it.
	if closed, err := r.isFlightClosed(ctx, tx, old.Flight); err != nil || closed {
		return flightRef{}, false, err
	}
	band, bandCap, err := r.policy.Limits(p.score, c)
	if err != nil {
		return flightRef{}, false, nil // the score fell out of every band: no raise
	}
	avail, err := walletAvailable(ctx, tx, p.id, c)
	if err != nil {
		return flightRef{}, false, err
	}
	add := min(band.Minor-old.Limit.Minor, avail.Minor)
	if add <= 0 {
		return flightRef{}, false, nil
	}
	raised := old
	raised.Limit.Minor += add
	raised.TxCap.Minor = max(old.TxCap.Minor, min(bandCap.Minor, raised.Limit.Minor))
	signed, err := protocol.Sign(raised, r.issuer, nil)
	if err != nil {
		return flightRef{}, false, err
	}
	fl, err := getFlight(ctx, tx, old.Flight)
	if err != nil {
		return flightRef{}, false, err
	}
	if err := replaceCredential(ctx, tx, signed); err != nil {
		return flightRef{}, false, err
	}
	if err := holdWallet(ctx, tx, now, old.Flight, old.ID, p.id, protocol.M(add, c), raised.Limit.Minor); err != nil {
		return flightRef{}, false, err
	}
	r.log.Info("credential limit raised after a top-up", "credential", old.ID, "flight", old.Flight,
		"limit", raised.Limit.String(), "was", old.Limit.String(), "tx_cap", raised.TxCap.String())
	return flightRef{aircraft: fl.aircraft, flight: old.Flight}, true, nil
}

// holdReleased reports whether the hold of credential cred was released:
// its flight reconciled, and a raise would hold money no flight can spend.
func holdReleased(ctx context.Context, q ledger.Querier, cred protocol.ID) (bool, error) {
	ts, err := ledger.TransfersByRef(ctx, q, cred)
	if err != nil {
		return false, err
	}
	for _, t := range ts {
		if t.Code == ledger.TransferHoldRelease {
			return true, nil
		}
	}
	return false, nil
}
