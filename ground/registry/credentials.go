package registry

import (
	"context"
	"database/sql"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/protocol"
)

// OptIn issues the passenger's credential for flight f, bound to device (one
// of the passenger's enrolled keys), or returns the one already issued:
// opting in again for the same flight gives the same credential and created
// false. A passenger holds one live credential per flight; to move it to
// another device, revoke it first.
//
// The credential carries the limit and per-transaction cap of the
// passenger's score band in the flight's currency, and is valid over
// CredentialWindow of the flight date; a flight that is over, or whose
// close report clearing holds (SetFlightClosed), is refused. For a
// prepaid wallet the limit is at most the wallet's balance outside other
// holds, and that amount is held in
// the ledger in the same transaction (see holds.go); a wallet holding
// nothing is ineligible. A passenger is refused (ineligible)
// when their score is below the threshold (the error names both), when they
// have arrears, when they have no funding source, or when their card expires
// before the credential does; and refused (revoked) while a revocation
// blocks it: see revocations.go.
func (r *Registry) OptIn(ctx context.Context, passenger protocol.ID, device crypto.PublicKey, f protocol.FlightID) (IssuedCredential, bool, error) {
	now := r.now()
	var (
		out     IssuedCredential
		created bool
		ref     flightRef
	)
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		fl, err := getFlight(ctx, tx, f)
		if err != nil {
			return err
		}
		ref = flightRef{aircraft: fl.aircraft, flight: f}
		p, err := getPassenger(ctx, tx, passenger)
		if err != nil {
			return err
		}
		if owner, ok, err := deviceOwner(ctx, tx, device); err != nil || !ok || owner != passenger {
			return orErr(err, Errorf(CodeForbidden, "device key %s is not enrolled for passenger %s", device.ID(), passenger))
		}
		if err := checkOptIn(ctx, tx, passenger, device, f); err != nil {
			return err
		}
		live, ok, err := liveCredential(ctx, tx, passenger, f)
		switch {
		case err != nil:
			return err
		case ok && !live.Signed.Body.Device.Equal(device):
			return conflict("passenger already holds credential %s for %s on device %s: revoke it first",
				live.Signed.Body.ID, f, live.Signed.Body.Device.ID())
		case ok:
			out = live
			return nil
		}
		notBefore, notAfter := CredentialWindow(f.Date())
		if !now.Before(notAfter) {
			return invalid("flight %s is over: its credentials expired at %s", f, notAfter.Format(time.RFC3339))
		}
		if closed, err := r.isFlightClosed(ctx, tx, f); err != nil || closed {
			return orErr(err, invalid("flight %s is closed: its aircraft sent its close report, no more sales are taken", f))
		}
		limit, txCap, err := r.eligibleLimits(ctx, tx, p, fl.currency, notAfter)
		if err != nil {
			return err
		}
		wallet := p.funding.Kind == ground.FundingWallet
		if wallet {
			if limit, txCap, err = walletLimits(ctx, tx, passenger, limit, txCap); err != nil {
				return err
			}
		}
		if err := checkRoom(ctx, tx, f); err != nil {
			return err
		}
		cred := protocol.Credential{
			Version: protocol.Version, ID: r.newID(), Passenger: passenger, Device: protocol.DeviceKey{PublicKey: device},
			Flight: f, Limit: limit, TxCap: txCap, NotBefore: notBefore, NotAfter: notAfter,
		}
		signed, err := protocol.Sign(cred, r.issuer, nil)
		if err != nil {
			return err
		}
		out, created = IssuedCredential{Signed: signed, IssuedAt: now}, true
		if err := insertCredential(ctx, tx, signed, now); err != nil {
			return err
		}
		if wallet {
			return holdWallet(ctx, tx, now, f, cred.ID, passenger, limit, limit.Minor)
		}
		return nil
	})
	if err != nil {
		return IssuedCredential{}, false, wrap(err, "registry: opt in %s to %s", passenger, f)
	}
	if created {
		b := out.Signed.Body
		r.log.Info("credential issued", "credential", b.ID, "passenger", passenger, "flight", f, "limit", b.Limit.String(), "tx_cap", b.TxCap.String())
		r.notify(ref)
	}
	return out, created, nil
}

// orErr returns err if it is set, else alt.
func orErr(err error, alt *Error) error {
	if err != nil {
		return err
	}
	return alt
}

// eligibleLimits applies the opt-in rules in order (score, arrears, funding,
// card expiry) and returns the limits of the passenger's band.
func (r *Registry) eligibleLimits(ctx context.Context, q querier, p passengerRow, c protocol.Currency, until time.Time) (limit, txCap protocol.Money, err error) {
	if limit, txCap, err = r.policy.Limits(p.score, c); err != nil {
		return limit, txCap, err
	}
	arrears, err := openArrears(ctx, q, p.id, 1)
	switch {
	case err != nil:
		return limit, txCap, err
	case len(arrears) > 0:
		return limit, txCap, Errorf(CodeIneligible, "passenger has unpaid invoices in arrears (first: %s)", arrears[0].Invoice)
	case p.funding == nil:
		return limit, txCap, Errorf(CodeIneligible, "passenger has no funding source linked")
	case p.funding.Kind == ground.FundingCard && !CardValidAt(*p.funding, until.Add(-time.Second)):
		return limit, txCap, Errorf(CodeIneligible, "card expires (%04d-%02d) before the flight's charges are taken", p.funding.ExpYear, p.funding.ExpMonth)
	}
	return limit, txCap, nil
}

// checkRoom refuses a new credential when the flight holds
// protocol.MaxPassengers live ones or MaxCredentialsPerFlight in all.
func checkRoom(ctx context.Context, q querier, f protocol.FlightID) error {
	total, live, err := countCredentials(ctx, q, f)
	switch {
	case err != nil:
		return err
	case live >= protocol.MaxPassengers:
		return conflict("flight %s is full: %d credentials issued, the limit", f, live)
	case total >= MaxCredentialsPerFlight:
		return conflict("flight %s: %d credentials issued or revoked, the limit", f, total)
	}
	return nil
}

// IssuedCredentialByID returns a credential ground issued, with its status.
func (r *Registry) IssuedCredentialByID(ctx context.Context, id protocol.ID) (IssuedCredential, error) {
	ic, err := getCredential(ctx, r.db, id)
	return ic, wrap(err, "registry: credential %s", id)
}
