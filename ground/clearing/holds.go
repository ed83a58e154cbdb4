package clearing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
)

// Wallet holds. When a passenger with a prepaid wallet opts in, the registry
// holds the credential's limit in the ledger: a transfer from the wallet to
// the credential's hold account (ground/ledger accounts.go). Clearing
// charges a wallet sale from that hold (the post phase, for what was
// spent), falling back to the wallet itself only for a sale beyond the hold
// (a credential issued before holds existed), and once the flight's sales
// are all in (holdsReleasable) it gives what is left of every hold of the
// flight back to the wallet (the void phase). So the money the aircraft
// counted on is there when ground charges, and a passenger's wallet never
// goes to collections for a sale the cabin server approved within the
// limit.

// holdChargeTransfer is the wallet charge of r taken from its credential's
// hold. It has the same id as walletChargeTransfer(r): a sale is charged
// once, from one or the other.
func holdChargeTransfer(r InvoiceRecord) posting {
	c := r.Total.Currency
	return newPosting(ledger.TransferWalletCharge, r.ID, r.Total,
		ledger.HoldAccount(r.Flight, r.Credential, c), ledger.ReceivableAccount(r.Passenger, c))
}

// postWalletCharge posts with (the sale, or nothing) together with the
// wallet charge of r: from the credential's hold when it has one and it
// covers r, else from the wallet. It returns an error wrapping
// ledger.ErrInsufficientFunds when neither covers r; nothing is posted then.
func (s *Service) postWalletCharge(ctx context.Context, lb *ledger.Batch, created *[]ledger.AccountID, r InvoiceRecord, with ...posting) error {
	charges := []posting{walletChargeTransfer(r)}
	hold := ledger.HoldAccount(r.Flight, r.Credential, r.Total.Currency)
	_, err := lb.Account(ctx, hold.ID)
	switch {
	case err == nil:
		charges = []posting{holdChargeTransfer(r), walletChargeTransfer(r)}
	case !errors.Is(err, ledger.ErrAccountNotFound):
		return err
	}
	for _, c := range charges {
		err = s.post(ctx, lb, created, append(with[:len(with):len(with)], c)...)
		if !errors.Is(err, ledger.ErrInsufficientFunds) {
			return err
		}
	}
	return err
}

// postedWalletCharge returns the wallet charge posted for r, from the hold
// or from the wallet, so that a void reverses exactly that transfer. It
// reads through the ledger batch lb, which holds the transfers posted in
// it until its Flush.
func postedWalletCharge(ctx context.Context, lb *ledger.Batch, r InvoiceRecord) (posting, error) {
	p := walletChargeTransfer(r)
	t, ok, err := lb.Transfer(ctx, p.t.ID)
	if err != nil {
		return posting{}, err
	}
	if ok && t.Debit == ledger.HoldAccount(r.Flight, r.Credential, r.Total.Currency).ID {
		return holdChargeTransfer(r), nil
	}
	return p, nil
}

// holdsReleasable reports whether the holds of a flight can be released:
// the aircraft's close report is in, every invoice up to its last sequence
// number has arrived and chains to its head, no charge or void is still
// under way, and no dispute is open (ResolveDispute may charge it from the
// hold). What was spent is charged by then; anything the aircraft could
// still send would be a forgery or a replay, which clearing quarantines.
func holdsReleasable(rep *FlightReport) bool {
	return rep.Reported != nil && rep.Missing == 0 && rep.HeadMatches &&
		rep.Posted.Count == 0 && rep.VoidsPending.Count == 0 && rep.Disputed.Count == 0
}

// releaseHolds gives what is left of every wallet hold of flight f back to
// the passenger's wallet, once the flight's sales are all in
// (holdsReleasable). It reports how many holds it released. Idempotent:
// a hold with nothing left is skipped, and a release retried over the same
// totals has the same transfer id.
func (s *Service) releaseHolds(ctx context.Context, f protocol.FlightID) (int, error) {
	// A flight that never reconciles still gives its holds back once its
	// credentials are long over (HoldExpiry): whatever its state then.
	if expired := holdsExpired(f, s.clock()); expired {
		return s.releaseFlightHoldsNow(ctx, f, true)
	}
	// Cheap checks first: clearing calls this after every batch, and
	// before the close report has come there is nothing to release.
	if _, closed, err := latestClose(ctx, s.db, f); err != nil || !closed {
		return 0, err
	}
	return s.releaseFlightHoldsNow(ctx, f, false)
}

// HoldExpiry is how long after its credentials' end (registry.CredentialWindow)
// the holds of a flight are released whatever the flight's state: a flight
// that never reconciles (no close report, an invoice missing) must not keep
// wallet money for ever. A sale of the flight cleared later is charged from
// the wallet (postWalletCharge falls back to it).
const HoldExpiry = 7 * 24 * time.Hour

// holdsExpired reports whether the holds of flight f are past HoldExpiry
// at now.
func holdsExpired(f protocol.FlightID, now time.Time) bool {
	_, end := registry.CredentialWindow(f.Date())
	return !now.Before(end.Add(HoldExpiry))
}

// releaseFlightHoldsNow releases what is left of the holds of flight f:
// when its sales are all in (holdsReleasable), or at once when expired.
func (s *Service) releaseFlightHoldsNow(ctx context.Context, f protocol.FlightID, expired bool) (int, error) {
	holds, err := ledger.AccountsByPrefix(ctx, s.db, ledger.HoldPrefix(f))
	if err != nil {
		return 0, err
	}
	left := 0
	for _, h := range holds {
		if h.CreditBalance().Minor > 0 {
			left++
		}
	}
	if left == 0 {
		return 0, nil
	}
	if !expired {
		rep, err := s.Reports().Flight(ctx, f)
		if errors.Is(err, ErrNoData) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		if !holdsReleasable(rep) {
			return 0, nil
		}
	}
	tx, err := store.BeginWrite(ctx, s.db)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	now := s.clock().UTC()
	lb := ledger.NewBatch(tx, now)
	n := 0
	for _, h := range holds {
		t, ok, err := releaseTransfer(ctx, tx, lb, h)
		if err != nil {
			return 0, fmt.Errorf("release hold %s: %w", h.Name, err)
		}
		if !ok {
			continue
		}
		if _, err := lb.Post(ctx, t); err != nil {
			return 0, fmt.Errorf("release hold %s: %w", h.Name, err)
		}
		n++
		s.log.Info("wallet hold released", "flight", f, "credential", t.Ref, "released", t.Amount.String(), "expired", expired)
	}
	if err := lb.Flush(ctx); err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	return n, nil
}

// releaseTransfer returns the transfer that empties hold h back into its
// passenger's wallet, and false when nothing is left in it. The credential
// and passenger are read from the hold transfers that filled it.
func releaseTransfer(ctx context.Context, q ledger.Querier, lb *ledger.Batch, h ledger.Account) (ledger.Transfer, bool, error) {
	a, err := lb.Account(ctx, h.ID)
	if err != nil {
		return ledger.Transfer{}, false, err
	}
	left := a.CreditBalance()
	if left.Minor <= 0 {
		return ledger.Transfer{}, false, nil
	}
	wallet, cred, err := holdOwner(ctx, q, h)
	if err != nil {
		return ledger.Transfer{}, false, err
	}
	return ledger.Transfer{
		ID: ledger.ReleaseTransferID(cred, a.CreditsPosted, a.DebitsPosted), Debit: h.ID, Credit: wallet,
		Amount: left, Code: ledger.TransferHoldRelease, Ref: cred,
	}, true, nil
}

// holdOwner returns the wallet a hold was filled from and its credential:
// the credential id is in the hold's name, and the hold transfers name the
// wallet.
func holdOwner(ctx context.Context, q ledger.Querier, h ledger.Account) (ledger.AccountID, protocol.ID, error) {
	parts := strings.Split(h.Name, "/")
	if len(parts) != 4 || parts[0] != "hold" {
		return ledger.AccountID{}, protocol.ID{}, fmt.Errorf("hold account name %q: %w", h.Name, errInvariant)
	}
	cred, err := protocol.ParseID(parts[2])
	if err != nil {
		return ledger.AccountID{}, protocol.ID{}, fmt.Errorf("hold account name %q: %v: %w", h.Name, err, errInvariant)
	}
	ts, err := ledger.TransfersByRef(ctx, q, cred)
	if err != nil {
		return ledger.AccountID{}, protocol.ID{}, err
	}
	for _, t := range ts {
		if t.Code == ledger.TransferHold && t.Credit == h.ID {
			return t.Debit, cred, nil
		}
	}
	return ledger.AccountID{}, protocol.ID{}, fmt.Errorf("hold %q has no hold transfer: %w", h.Name, errInvariant)
}

// releaseFlightHolds releases the holds of the flights of items whose
// sales are all in. A failure is logged: the holds stay, and the sweep of
// the next RetryCollections round (sweepHolds) tries again; no charge
// depends on it.
func (s *Service) releaseFlightHolds(ctx context.Context, items []*item) {
	seen := map[protocol.FlightID]bool{}
	for _, it := range items {
		var f protocol.FlightID
		switch {
		case it.close != nil:
			f = it.close.Body.Flight
		case it.inv != nil:
			f = it.inv.Body.Flight
		default:
			continue
		}
		if seen[f] {
			continue
		}
		seen[f] = true
		if _, err := s.releaseHolds(ctx, f); err != nil {
			s.log.Error("wallet holds not released; will try again", "flight", f, "err", err)
		}
	}
}

// ReleaseHolds releases what is left of the wallet holds of flight f when
// its sales are all in, and reports how many it released. Clearing calls it
// after every batch of the flight; it is exported for the back office and
// tests.
func (s *Service) ReleaseHolds(ctx context.Context, f protocol.FlightID) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.releaseHolds(ctx, f)
}

// sweepHolds releases the holds that a batch did not: every flight with
// money left in a wallet hold is tried again (releaseHolds), so a release
// that failed after the flight's last batch, money held after the flight's
// sales were all in, or a flight past HoldExpiry is not left holding a
// wallet. RetryCollections runs it each round; it reports how many holds
// it released and the first error, after trying every flight.
func (s *Service) sweepHolds(ctx context.Context) (int, error) {
	flights, err := heldFlights(ctx, s.db)
	if err != nil {
		return 0, fmt.Errorf("clearing: sweep holds: %w", err)
	}
	n := 0
	var first error
	for _, f := range flights {
		k, err := s.releaseHolds(ctx, f)
		n += k
		if err != nil {
			s.log.Error("wallet holds not released; will try again", "flight", f, "err", err)
			if first == nil {
				first = fmt.Errorf("clearing: sweep holds of %s: %w", f, err)
			}
		}
	}
	return n, first
}

// maxSweptFlights bounds the flights one sweepHolds round tries.
const maxSweptFlights = 1024

// heldFlights lists the flights with money left in a wallet hold, oldest
// flight date first, at most maxSweptFlights.
func heldFlights(ctx context.Context, q ledger.Querier) ([]protocol.FlightID, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM ledger_accounts
		WHERE name >= 'hold/' AND name < 'hold0' AND credits_posted > debits_posted ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("list held flights: %w", err)
	}
	defer rows.Close()
	seen := map[protocol.FlightID]bool{}
	var out []protocol.FlightID
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list held flights: %w", err)
		}
		parts := strings.Split(name, "/")
		if len(parts) != 4 {
			return nil, fmt.Errorf("hold account name %q: %w", name, errInvariant)
		}
		f, err := protocol.ParseFlightID(parts[1])
		if err != nil {
			return nil, fmt.Errorf("hold account name %q: %v: %w", name, err, errInvariant)
		}
		if !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list held flights: %w", err)
	}
	slices.SortStableFunc(out, func(a, b protocol.FlightID) int { return a.Date().Compare(b.Date()) })
	if len(out) > maxSweptFlights {
		out = out[:maxSweptFlights]
	}
	return out, nil
}

// FlightClosed reports whether the close report of flight f is in, reading
// through q. The registry asks it (registry.SetFlightClosed) so that a
// closed flight takes no new opt-in and no wallet raise: a hold spent to
// zero is never released, and money held after the close would stay held.
func FlightClosed(ctx context.Context, q ledger.Querier, f protocol.FlightID) (bool, error) {
	_, closed, err := latestClose(ctx, q, f)
	return closed, err
}
