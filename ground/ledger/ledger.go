// Package ledger is Airtab's double-entry ledger, kept in the ground
// service's SQLite database and modelled on TigerBeetle: accounts with
// posted debit and credit totals and balance-limit flags, and immutable
// transfers with unique 128-bit ids chosen by the caller.
//
// The rules are the ones a payments engineer expects:
//
//   - A transfer moves a positive amount in one currency from a debit
//     account to a credit account of that currency. Debits equal credits at
//     every commit.
//   - Transfer ids are chosen by the caller, derived from what the transfer
//     is for (TransferIDFor), so a retry posts the same id. Posting an id
//     that exists with identical fields is success; with different fields it
//     is ErrExistsWithDifferentFields.
//   - A batch is posted atomically inside the caller's *sql.Tx, so clearing
//     can insert its invoice row and post the sale in one commit. Every rule
//     is checked in Go before anything is written: a refused batch writes
//     nothing and leaves the transaction usable.
//   - Balance limits are the ledger's job: a wallet account has
//     DebitsMustNotExceedCredits, and a transfer that would take it below
//     zero is refused with ErrInsufficientFunds.
//   - Transfers are never changed or deleted (SQLite triggers refuse it). A
//     correction is a reversal (Reversal): a transfer that swaps the
//     original's accounts, references it, and may exist only once.
//
// The rules live in rules.go in plain Go; SQL lives in sqlite.go; the account
// naming scheme and transfer codes in accounts.go; the invariant checker in
// check.go.
package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/airtab/airtab/protocol"
)

// AccountID is an account's 128-bit id. Airtab derives it from the account's
// name (see AccountIDFor), so every part of the system names the same
// account the same way.
type AccountID [16]byte

// String returns the id as 32 lower-case hex characters.
func (id AccountID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the id is unset.
func (id AccountID) IsZero() bool { return id == AccountID{} }

// MarshalText returns the hex form, for JSON and logs.
func (id AccountID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// TransferID is a transfer's 128-bit id, chosen by the caller before the
// transfer is first submitted and reused on every retry (see TransferIDFor).
type TransferID [16]byte

// String returns the id as 32 lower-case hex characters.
func (id TransferID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether the id is unset.
func (id TransferID) IsZero() bool { return id == TransferID{} }

// MarshalText returns the hex form, for JSON and logs.
func (id TransferID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// AccountFlags are an account's balance limits.
type AccountFlags uint32

// Account flags. Stable numbers: they are stored.
const (
	// DebitsMustNotExceedCredits refuses any transfer that would take the
	// account's debits above its credits: a wallet never goes negative.
	DebitsMustNotExceedCredits AccountFlags = 1 << 0
	// CreditsMustNotExceedDebits refuses any transfer that would take the
	// account's credits above its debits.
	CreditsMustNotExceedDebits AccountFlags = 1 << 1

	allAccountFlags = DebitsMustNotExceedCredits | CreditsMustNotExceedDebits
)

// Account is a ledger account. Its posted totals change only by posting
// transfers; its other fields never change after creation.
type Account struct {
	ID       AccountID         `json:"id"`
	Name     string            `json:"name"` // see accounts.go for the scheme
	Code     AccountCode       `json:"code"`
	Currency protocol.Currency `json:"currency"`
	Flags    AccountFlags      `json:"flags"`
	// DebitsPosted and CreditsPosted are the sums of the amounts of every
	// transfer that debited and credited the account, in minor units.
	DebitsPosted  int64     `json:"debits_posted"`
	CreditsPosted int64     `json:"credits_posted"`
	CreatedAt     time.Time `json:"created_at"`
}

// CreditBalance returns credits minus debits: the balance of a
// credit-normal account such as a wallet or revenue.
func (a Account) CreditBalance() protocol.Money {
	return protocol.Money{Minor: a.CreditsPosted - a.DebitsPosted, Currency: a.Currency}
}

// DebitBalance returns debits minus credits: the balance of a debit-normal
// account such as a receivable.
func (a Account) DebitBalance() protocol.Money {
	return protocol.Money{Minor: a.DebitsPosted - a.CreditsPosted, Currency: a.Currency}
}

// Transfer moves Amount from the Debit account to the Credit account. Once
// posted it never changes.
type Transfer struct {
	ID     TransferID     `json:"id"`
	Debit  AccountID      `json:"debit_account"`
	Credit AccountID      `json:"credit_account"`
	Amount protocol.Money `json:"amount"` // positive, within protocol.MaxMinor
	Code   TransferCode   `json:"code"`
	// Ref is the caller's reference: the invoice id for clearing transfers,
	// the top-up reference for top-ups.
	Ref protocol.ID `json:"ref"`
	// Reverses is the id of the transfer this one reverses, or zero.
	Reverses TransferID `json:"reverses,omitzero"`
	// Timestamp is set by Post when the transfer is created; the value
	// passed in is ignored and not compared.
	Timestamp time.Time `json:"timestamp"`
}

// IsReversal reports whether t reverses another transfer.
func (t Transfer) IsReversal() bool { return !t.Reverses.IsZero() }

// sameFields reports whether t and o are the same transfer, timestamps
// aside: what "exists with identical fields" means.
func (t Transfer) sameFields(o Transfer) bool {
	return t.ID == o.ID && t.Debit == o.Debit && t.Credit == o.Credit && t.Amount == o.Amount &&
		t.Code == o.Code && t.Ref == o.Ref && t.Reverses == o.Reverses
}

// Reversal returns the transfer that reverses t: the same amount, code and
// reference with debit and credit swapped, and an id derived from t's, so
// asking to reverse t twice names the same reversal.
func Reversal(t Transfer) Transfer {
	return Transfer{
		ID:       reversalID(t.ID),
		Debit:    t.Credit,
		Credit:   t.Debit,
		Amount:   t.Amount,
		Code:     t.Code,
		Ref:      t.Ref,
		Reverses: t.ID,
	}
}

// TransferIDFor derives the id of the transfer with code c for reference
// ref: a sale of invoice X always has the same id, so a retried post of
// that sale is recognised as the same transfer.
func TransferIDFor(c TransferCode, ref protocol.ID) TransferID {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], uint16(c))
	return TransferID(derive("airtab/ledger/transfer/v1", b[:], ref[:]))
}

func reversalID(orig TransferID) TransferID {
	return TransferID(derive("airtab/ledger/reversal/v1", orig[:]))
}

// derive returns the first 16 bytes of SHA-256 over a length-framed domain
// and parts.
func derive(domain string, parts ...[]byte) [16]byte {
	h := sha256.New()
	h.Write([]byte{byte(len(domain))})
	h.Write([]byte(domain))
	for _, p := range parts {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	var out [16]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Errors a caller can branch on with errors.Is. Post and CreateAccounts wrap
// them in a *TransferError or *AccountError that names the offending item.
var (
	// ErrInvalid: the transfer or account is not well formed (zero id,
	// non-positive amount, unknown currency, same debit and credit, ...).
	ErrInvalid = errors.New("invalid")
	// ErrExistsWithDifferentFields: the id is taken by a different transfer
	// or account. The original stands.
	ErrExistsWithDifferentFields = errors.New("exists with different fields")
	// ErrAccountNotFound: a transfer names an account that was not created.
	ErrAccountNotFound = errors.New("account not found")
	// ErrCurrencyMismatch: the transfer's currency is not its accounts'.
	ErrCurrencyMismatch = errors.New("currency does not match the account")
	// ErrInsufficientFunds: the transfer would take an account with
	// DebitsMustNotExceedCredits below zero (a wallet without the balance).
	ErrInsufficientFunds = errors.New("debits would exceed credits")
	// ErrExceedsDebits: the transfer would take an account with
	// CreditsMustNotExceedDebits above zero.
	ErrExceedsDebits = errors.New("credits would exceed debits")
	// ErrOverflow: a posted total would overflow int64.
	ErrOverflow = errors.New("posted total would overflow")
	// ErrReversalNotFound: a reversal names a transfer that does not exist.
	ErrReversalNotFound = errors.New("reversed transfer not found")
	// ErrReversalMismatch: a reversal does not mirror its original (swapped
	// accounts, same amount, code and reference), or reverses a reversal.
	ErrReversalMismatch = errors.New("reversal does not mirror the original")
	// ErrAlreadyReversed: the original was reversed by another transfer.
	ErrAlreadyReversed = errors.New("transfer already reversed")
	// ErrBatchTooLarge: more than MaxBatch transfers or accounts in one call.
	ErrBatchTooLarge = errors.New("batch too large")
	// ErrChangedUnderTransaction: Batch.Flush found an account's stored
	// totals changed since the batch read them, which only a second writer
	// inside the transaction can do (every writer holds the database's
	// write lock: SQLite's, or the writer advisory lock on PostgreSQL). A broken
	// invariant.
	ErrChangedUnderTransaction = errors.New("account changed under the transaction: invariant broken")
)

// MaxBatch is the most transfers Post, or accounts CreateAccounts, takes in
// one call.
const MaxBatch = 128

// TransferError says which transfer of a batch was refused and why. The
// whole batch was refused with it: nothing was written.
type TransferError struct {
	Index int        // position in the batch
	ID    TransferID // the refused transfer
	Err   error      // one of the Err* values above, possibly wrapped
}

// Error says which transfer was refused and why.
func (e *TransferError) Error() string {
	return fmt.Sprintf("ledger: transfer %d (%s): %v", e.Index, e.ID, e.Err)
}

// Unwrap returns the reason.
func (e *TransferError) Unwrap() error { return e.Err }

// AccountError says which account of a CreateAccounts call was refused.
type AccountError struct {
	Name string
	Err  error
}

// Error says which account was refused and why.
func (e *AccountError) Error() string { return fmt.Sprintf("ledger: account %q: %v", e.Name, e.Err) }

// Unwrap returns the reason.
func (e *AccountError) Unwrap() error { return e.Err }

// Result says what a successful Post did.
type Result struct {
	Created int // transfers written by this call
	Existed int // transfers that were already posted with identical fields
}
