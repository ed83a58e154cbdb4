package ledger

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/airtab/airtab/protocol"
)

// The account scheme. Every account is named by a path; its id is derived
// from the name (AccountIDFor), so the name alone identifies it. One account
// per currency: a passenger paying in EUR and in USD has two wallets.
//
//	name                                   code                        normal  flags
//	passenger/<passenger>/receivable/<CUR>  AccountPassengerReceivable  debit   -
//	passenger/<passenger>/wallet/<CUR>      AccountPassengerWallet      credit  DebitsMustNotExceedCredits
//	flight/<flight>/revenue/<CUR>           AccountFlightRevenue        credit  -
//	acquirer/settlement/<CUR>               AccountAcquirerSettlement   debit   -
//	funding/topup/<CUR>                     AccountTopUpFunding         debit   -
//	hold/<flight>/<credential>/<CUR>        AccountWalletHold           credit  DebitsMustNotExceedCredits
//
// A passenger's receivable is what they owe for sales not yet paid: a sale
// debits it, a wallet charge or card capture credits it. Its balance is zero
// once every sale is paid; an invoice in collections is exactly the
// receivable left open, so the sum of receivables is the money in collections
// (plus, for a moment, sales whose charge is under way). There is no separate
// collections account: moving the debt would add transfers without adding
// information.
//
// Transfer codes and their direction (debit → credit):
//
//	TransferSale          passenger receivable → flight revenue        ref: invoice id
//	TransferWalletCharge  passenger wallet → passenger receivable      ref: invoice id
//	TransferCardCapture   acquirer settlement → passenger receivable   ref: invoice id
//	TransferTopUp         top-up funding → passenger wallet            ref: top-up reference
//	TransferHold          passenger wallet → wallet hold               ref: credential id
//	TransferHoldRelease   wallet hold → passenger wallet               ref: credential id
//
// Holds are the ledger's form of TigerBeetle's two-phase (pending)
// transfers, kept as plain immutable transfers: opting in to a flight with a
// prepaid wallet moves the credential's limit out of the wallet into a hold
// account of its own (the pending phase), so the money counted on board can
// be counted by no other flight and the wallet's own balance limit refuses a
// hold the wallet cannot cover. A sale on that credential is charged from its
// hold (TransferWalletCharge, hold → receivable: the post phase, for what
// was spent), and once the flight reconciles the rest goes back to the
// wallet (TransferHoldRelease: the void phase, for what was not). A raise
// after a top-up is one more TransferHold with its own id (HoldTransferID).

// A void reverses the sale (revenue → receivable); a refund reverses the
// charge (receivable → wallet, or receivable → acquirer settlement). A voided
// and refunded sale leaves every balance where it was.

// AccountCode says what kind of account it is. Stable numbers: do not
// reorder; add only at the end.
type AccountCode uint16

// Account codes.
const (
	AccountPassengerReceivable AccountCode = 1
	AccountPassengerWallet     AccountCode = 2
	AccountFlightRevenue       AccountCode = 3
	AccountAcquirerSettlement  AccountCode = 4
	AccountTopUpFunding        AccountCode = 5
	AccountWalletHold          AccountCode = 6
)

var accountCodeNames = map[AccountCode]string{
	AccountPassengerReceivable: "passenger receivable",
	AccountPassengerWallet:     "passenger wallet",
	AccountFlightRevenue:       "flight revenue",
	AccountAcquirerSettlement:  "acquirer settlement",
	AccountTopUpFunding:        "top-up funding",
	AccountWalletHold:          "wallet hold",
}

// String names the account kind.
func (c AccountCode) String() string {
	if s, ok := accountCodeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("account code %d", uint16(c))
}

// TransferCode says what a transfer is for. Stable numbers: do not reorder;
// add only at the end. A reversal keeps its original's code.
type TransferCode uint16

// Transfer codes.
const (
	TransferSale         TransferCode = 1
	TransferWalletCharge TransferCode = 2
	TransferCardCapture  TransferCode = 3
	TransferTopUp        TransferCode = 4
	TransferHold         TransferCode = 5
	TransferHoldRelease  TransferCode = 6
)

var transferCodeNames = map[TransferCode]string{
	TransferSale:         "sale",
	TransferWalletCharge: "wallet charge",
	TransferCardCapture:  "card capture",
	TransferTopUp:        "top-up",
	TransferHold:         "wallet hold",
	TransferHoldRelease:  "hold release",
}

// String names what the transfer is for.
func (c TransferCode) String() string {
	if s, ok := transferCodeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("transfer code %d", uint16(c))
}

// MaxAccountName bounds an account name, in bytes.
const MaxAccountName = 128

// AccountIDFor derives an account's id from its name.
func AccountIDFor(name string) AccountID {
	return AccountID(derive("airtab/ledger/account/v1", []byte(name)))
}

// NewAccount returns the account with the given name, code, currency and
// flags, and the id derived from the name. It is not created until
// CreateAccounts.
func NewAccount(name string, code AccountCode, c protocol.Currency, flags AccountFlags) Account {
	return Account{ID: AccountIDFor(name), Name: name, Code: code, Currency: c, Flags: flags}
}

// ReceivableAccount is what passenger p owes for unpaid sales in currency c.
func ReceivableAccount(p protocol.ID, c protocol.Currency) Account {
	return NewAccount(fmt.Sprintf("passenger/%s/receivable/%s", p, c), AccountPassengerReceivable, c, 0)
}

// WalletAccount is passenger p's prepaid balance in currency c. It never
// goes negative.
func WalletAccount(p protocol.ID, c protocol.Currency) Account {
	return NewAccount(fmt.Sprintf("passenger/%s/wallet/%s", p, c), AccountPassengerWallet, c, DebitsMustNotExceedCredits)
}

// RevenueAccount is the sales revenue of flight f in currency c.
func RevenueAccount(f protocol.FlightID, c protocol.Currency) Account {
	return NewAccount(fmt.Sprintf("flight/%s/revenue/%s", f, c), AccountFlightRevenue, c, 0)
}

// AcquirerAccount is what the card acquirer owes Airtab for captures in
// currency c, net of refunds.
func AcquirerAccount(c protocol.Currency) Account {
	return NewAccount(fmt.Sprintf("acquirer/settlement/%s", c), AccountAcquirerSettlement, c, 0)
}

// TopUpAccount is the money received for wallet top-ups in currency c.
func TopUpAccount(c protocol.Currency) Account {
	return NewAccount(fmt.Sprintf("funding/topup/%s", c), AccountTopUpFunding, c, 0)
}

// HoldPrefix is the name prefix of every wallet hold account of flight f,
// for AccountsByPrefix.
func HoldPrefix(f protocol.FlightID) string { return fmt.Sprintf("hold/%s/", f) }

// HoldAccount holds the part of a passenger's wallet reserved for
// credential cred on flight f, in currency c: the credential's limit on
// board, not yet spent. It never goes negative.
func HoldAccount(f protocol.FlightID, cred protocol.ID, c protocol.Currency) Account {
	return NewAccount(fmt.Sprintf("%s%s/%s", HoldPrefix(f), cred, c), AccountWalletHold, c, DebitsMustNotExceedCredits)
}

// HoldTransferID is the id of the hold that brings credential cred's held
// total to heldMinor: the first hold at opt-in and each raise after a top-up
// have their own, and a retried raise to the same total names the same one.
func HoldTransferID(cred protocol.ID, heldMinor int64) TransferID {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(heldMinor))
	return TransferID(derive("airtab/ledger/hold/v1", cred[:], b[:]))
}

// ReleaseTransferID is the id of the release of credential cred's hold
// after heldMinor was held and spentMinor charged from it in all: a release
// retried over the same totals names the same transfer, and a second
// release after a later change (a void returning money to the hold) a new
// one.
func ReleaseTransferID(cred protocol.ID, heldMinor, spentMinor int64) TransferID {
	var a, b [8]byte
	binary.BigEndian.PutUint64(a[:], uint64(heldMinor))
	binary.BigEndian.PutUint64(b[:], uint64(spentMinor))
	return TransferID(derive("airtab/ledger/release/v1", cred[:], a[:], b[:]))
}

// validate checks an account passed to CreateAccounts.
func (a Account) validate() error {
	switch {
	case a.Name == "" || len(a.Name) > MaxAccountName:
		return fmt.Errorf("name length %d, want 1 to %d bytes (MaxAccountName): %w", len(a.Name), MaxAccountName, ErrInvalid)
	case a.ID != AccountIDFor(a.Name):
		return fmt.Errorf("id %s is not derived from the name: %w", a.ID, ErrInvalid)
	case a.Code == 0:
		return fmt.Errorf("missing code: %w", ErrInvalid)
	case a.Flags&^allAccountFlags != 0:
		return fmt.Errorf("unknown flags %#x: %w", uint32(a.Flags), ErrInvalid)
	case a.Flags&DebitsMustNotExceedCredits != 0 && a.Flags&CreditsMustNotExceedDebits != 0:
		return fmt.Errorf("both balance limits set: the account could never move: %w", ErrInvalid)
	case a.DebitsPosted != 0 || a.CreditsPosted != 0:
		return fmt.Errorf("a new account starts with zero posted totals: %w", ErrInvalid)
	}
	if err := a.Currency.Validate(); err != nil {
		return fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	return nil
}

// sameFields reports whether a and o are the same account, totals and
// creation time aside.
func (a Account) sameFields(o Account) bool {
	return a.ID == o.ID && a.Name == o.Name && a.Code == o.Code && a.Currency == o.Currency && a.Flags == o.Flags
}

// at returns t truncated to what the database stores (nanoseconds, UTC).
func at(t time.Time) time.Time { return time.Unix(0, t.UnixNano()).UTC() }
