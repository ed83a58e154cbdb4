package ledger

import (
	"fmt"
	"math"
	"time"

	"github.com/airtab/airtab/protocol"
)

// The ledger's rules, in plain Go. Post reads what a batch touches from the
// database into a state, runs plan over it, and writes only what plan
// returns; plan never touches the database.

// state is what a batch is checked against: the accounts it touches, the
// transfers it names (by id, or as the original of a reversal) and which of
// those originals are already reversed. plan updates it as it goes, so a
// later transfer of the batch sees the effect of an earlier one.
type state struct {
	accounts  map[AccountID]*Account
	transfers map[TransferID]Transfer
	reversed  map[TransferID]TransferID // original → its reversal
}

func newState() *state {
	return &state{
		accounts:  map[AccountID]*Account{},
		transfers: map[TransferID]Transfer{},
		reversed:  map[TransferID]TransferID{},
	}
}

// undo is what snapshot saved: the totals of the accounts a call touches
// and which transfer ids it may add, so a refused call can be taken back.
type undo struct {
	totals map[AccountID]totals
	ids    []TransferID
}

// snapshot saves what plan may change for batch.
func (st *state) snapshot(batch []Transfer) undo {
	u := undo{totals: map[AccountID]totals{}}
	for _, t := range batch {
		for _, id := range []AccountID{t.Debit, t.Credit} {
			if a, ok := st.accounts[id]; ok {
				u.totals[id] = totals{a.DebitsPosted, a.CreditsPosted}
			}
		}
		if _, ok := st.transfers[t.ID]; !ok {
			u.ids = append(u.ids, t.ID)
		}
	}
	return u
}

// restore takes back what plan changed after snapshot.
func (st *state) restore(u undo) {
	for id, t := range u.totals {
		st.accounts[id].DebitsPosted, st.accounts[id].CreditsPosted = t.debits, t.credits
	}
	for _, id := range u.ids {
		if t, ok := st.transfers[id]; ok {
			delete(st.transfers, id)
			if t.IsReversal() && st.reversed[t.Reverses] == id {
				delete(st.reversed, t.Reverses)
			}
		}
	}
}

// plan checks every transfer of batch in order against st and returns the
// ones to create, with their timestamp set to now. Transfers that exist with
// identical fields are skipped (counted in existed). The first refused
// transfer refuses the whole batch.
func plan(st *state, batch []Transfer, now time.Time) (created []Transfer, existed int, err error) {
	if len(batch) > MaxBatch {
		return nil, 0, &TransferError{Index: MaxBatch, Err: fmt.Errorf("%d transfers exceed the limit of %d (MaxBatch): %w", len(batch), MaxBatch, ErrBatchTooLarge)}
	}
	seen := make(map[TransferID]bool, len(batch))
	for i, t := range batch {
		fail := func(err error) error { return &TransferError{Index: i, ID: t.ID, Err: err} }
		if err := validateTransfer(t); err != nil {
			return nil, 0, fail(err)
		}
		if seen[t.ID] {
			return nil, 0, fail(fmt.Errorf("id listed twice in the batch: %w", ErrInvalid))
		}
		seen[t.ID] = true
		if old, ok := st.transfers[t.ID]; ok {
			if !old.sameFields(t) {
				return nil, 0, fail(ErrExistsWithDifferentFields)
			}
			existed++
			continue
		}
		if err := st.apply(t); err != nil {
			return nil, 0, fail(err)
		}
		t.Timestamp = now
		st.transfers[t.ID] = t
		if t.IsReversal() {
			st.reversed[t.Reverses] = t.ID
		}
		created = append(created, t)
	}
	return created, existed, nil
}

// validateTransfer checks the form of one transfer.
func validateTransfer(t Transfer) error {
	switch {
	case t.ID.IsZero():
		return fmt.Errorf("zero id: %w", ErrInvalid)
	case t.Debit.IsZero() || t.Credit.IsZero():
		return fmt.Errorf("zero account id: %w", ErrInvalid)
	case t.Debit == t.Credit:
		return fmt.Errorf("debit and credit are the same account %s: %w", t.Debit, ErrInvalid)
	case t.Code == 0:
		return fmt.Errorf("missing code: %w", ErrInvalid)
	case t.Amount.Minor <= 0 || t.Amount.Minor > protocol.MaxMinor:
		return fmt.Errorf("amount %d minor units, want 1 to %d: %w", t.Amount.Minor, protocol.MaxMinor, ErrInvalid)
	}
	if err := t.Amount.Currency.Validate(); err != nil {
		return fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	return nil
}

// apply checks t against the accounts and, for a reversal, its original,
// and adds its amount to the accounts' posted totals.
func (st *state) apply(t Transfer) error {
	d, c := st.accounts[t.Debit], st.accounts[t.Credit]
	switch {
	case d == nil:
		return fmt.Errorf("debit account %s: %w", t.Debit, ErrAccountNotFound)
	case c == nil:
		return fmt.Errorf("credit account %s: %w", t.Credit, ErrAccountNotFound)
	case d.Currency != t.Amount.Currency:
		return fmt.Errorf("%s transfer on %s account %q: %w", t.Amount.Currency, d.Currency, d.Name, ErrCurrencyMismatch)
	case c.Currency != t.Amount.Currency:
		return fmt.Errorf("%s transfer on %s account %q: %w", t.Amount.Currency, c.Currency, c.Name, ErrCurrencyMismatch)
	}
	if t.IsReversal() {
		if err := st.checkReversal(t); err != nil {
			return err
		}
	}
	amt := t.Amount.Minor
	if d.DebitsPosted > math.MaxInt64-amt || c.CreditsPosted > math.MaxInt64-amt {
		return ErrOverflow
	}
	if d.Flags&DebitsMustNotExceedCredits != 0 && d.DebitsPosted+amt > d.CreditsPosted {
		return fmt.Errorf("account %q holds %s, transfer needs %s: %w", d.Name, d.CreditBalance(), t.Amount, ErrInsufficientFunds)
	}
	if c.Flags&CreditsMustNotExceedDebits != 0 && c.CreditsPosted+amt > c.DebitsPosted {
		return fmt.Errorf("account %q: %w", c.Name, ErrExceedsDebits)
	}
	d.DebitsPosted += amt
	c.CreditsPosted += amt
	return nil
}

// checkReversal checks that t mirrors the transfer it reverses, which exists,
// is not itself a reversal and was not reversed before.
func (st *state) checkReversal(t Transfer) error {
	o, ok := st.transfers[t.Reverses]
	if !ok {
		return fmt.Errorf("reverses %s: %w", t.Reverses, ErrReversalNotFound)
	}
	if o.IsReversal() {
		return fmt.Errorf("%s is itself a reversal; post the original again instead: %w", o.ID, ErrReversalMismatch)
	}
	if by, ok := st.reversed[o.ID]; ok {
		return fmt.Errorf("%s was reversed by %s: %w", o.ID, by, ErrAlreadyReversed)
	}
	if t.Debit != o.Credit || t.Credit != o.Debit || t.Amount != o.Amount || t.Code != o.Code || t.Ref != o.Ref {
		return fmt.Errorf("reversal of %s: %w", o.ID, ErrReversalMismatch)
	}
	return nil
}
