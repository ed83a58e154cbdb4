// Package ground holds the domain types and contracts shared by Airtab's
// ground services: passenger registration and credential issuance
// (ground/registry), the double-entry ledger (ground/ledger) and clearing of
// replayed invoices (ground/clearing). The packages meet through the small
// interfaces here, and cmd/ground wires them together over one SQLite
// database (ground/store) and one NATS connection.
package ground

import (
	"context"
	"errors"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// FundingKind says how a passenger pays.
type FundingKind string

// Funding kinds.
const (
	// FundingWallet is a prepaid wallet balance held in the ledger.
	FundingWallet FundingKind = "wallet"
	// FundingCard is an international card, charged through the acquirer.
	FundingCard FundingKind = "card"
)

// CardNetwork is a card scheme Airtab accepts.
type CardNetwork string

// Accepted card networks.
const (
	Visa       CardNetwork = "visa"
	Mastercard CardNetwork = "mastercard"
	Amex       CardNetwork = "amex"
	Discover   CardNetwork = "discover"
	JCB        CardNetwork = "jcb"
)

// FundingSource is what a passenger's charges are taken from. A card is kept
// only as the acquirer's token, its last four digits and its expiry: never a
// full card number.
type FundingSource struct {
	Kind     FundingKind `json:"kind"`
	Network  CardNetwork `json:"network,omitempty"`   // card only
	Token    string      `json:"token,omitempty"`     // card only: the acquirer's token
	Last4    string      `json:"last4,omitempty"`     // card only
	ExpMonth int         `json:"exp_month,omitempty"` // card only, 1-12
	ExpYear  int         `json:"exp_year,omitempty"`  // card only, four digits
}

// FlightInfo is what clearing needs to know about a registered flight.
type FlightInfo struct {
	Flight   protocol.FlightID
	Aircraft protocol.AircraftID
	Currency protocol.Currency
}

// ErrNotFound is returned (wrapped) by Directory lookups for an unknown
// aircraft, flight, credential or passenger.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned (wrapped) when an idempotency key is used again
// with different content: a top-up ref with another amount or passenger,
// say. The first use stands; APIs answer 409 conflict.
var ErrConflict = errors.New("idempotency key reused with different content")

// Directory is the registry as clearing sees it: read-only lookups of what
// was registered and issued before the flight, plus the two consequences of
// a declined charge. ground/registry implements it.
type Directory interface {
	// AircraftKey returns the signing key of a registered aircraft.
	AircraftKey(ctx context.Context, a protocol.AircraftID) (crypto.PublicKey, error)
	// Flight returns a registered flight.
	Flight(ctx context.Context, f protocol.FlightID) (FlightInfo, error)
	// IssuerTrust returns the issuer keys that credentials may be signed with.
	IssuerTrust(ctx context.Context) (*crypto.TrustList, error)
	// Credential returns a credential ground issued, by id.
	Credential(ctx context.Context, id protocol.ID) (*protocol.SignedCredential, error)
	// Funding returns the passenger's funding source.
	Funding(ctx context.Context, passenger protocol.ID) (FundingSource, error)
	// MarkArrears records that the passenger owes the invoice's amount after
	// a declined charge: lowers their score and puts them on the deny list of
	// every manifest built from now on, until ClearArrears. Idempotent per
	// invoice.
	MarkArrears(ctx context.Context, passenger, invoice protocol.ID, at time.Time) error
	// ClearArrears lifts the arrears recorded for the invoice (the debt was
	// paid); the passenger leaves the deny list when no arrears remain.
	// Idempotent.
	ClearArrears(ctx context.Context, passenger, invoice protocol.ID, at time.Time) error
}

// BatchDirectory is implemented by a Directory that answers many lookups in
// one go (ground/registry does: one statement per 64 ids). Clearing asks it
// for the credentials and funding sources of a whole batch before verifying
// the batch: an id absent from an answer is not found, as Credential or
// Funding would say; when a call fails, clearing asks one id at a time.
type BatchDirectory interface {
	// Credentials returns the credentials ground issued among ids, by id;
	// an id ground did not issue is absent.
	Credentials(ctx context.Context, ids []protocol.ID) (map[protocol.ID]*protocol.SignedCredential, error)
	// Fundings returns the funding sources of those of passengers who have
	// one, by passenger; a passenger Funding says is not found is absent.
	Fundings(ctx context.Context, passengers []protocol.ID) (map[protocol.ID]FundingSource, error)
}

// AircraftKeyHistory is implemented by a Directory that keeps the keys an
// aircraft signed with before a key rotation (ground/registry does), so that
// clearing verifies what an aircraft signed before its rotation.
type AircraftKeyHistory interface {
	// RetiredAircraftKeys returns the aircraft's earlier keys, oldest
	// first; none for an aircraft that never rotated.
	RetiredAircraftKeys(ctx context.Context, a protocol.AircraftID) ([]RetiredKey, error)
}

// RetiredKey is a signing key an aircraft used from Since until ReplacedAt.
// It verifies only messages of flights whose credential window opened
// before ReplacedAt, and nothing at all once Compromised.
type RetiredKey struct {
	Key               crypto.PublicKey
	Since, ReplacedAt time.Time
	// Compromised is set when the key was retired because it was thought
	// exposed: clearing then accepts nothing it signed.
	Compromised bool
}

// WalletFunder moves money into and reads a passenger's prepaid wallet in the
// ledger. ground/clearing implements it; the registration API calls it for
// top-ups.
type WalletFunder interface {
	// TopUp credits amount to the passenger's wallet. ref is the caller's
	// idempotency key: the same ref never credits twice.
	TopUp(ctx context.Context, passenger protocol.ID, amount protocol.Money, ref protocol.ID) error
	// WalletBalance returns the passenger's wallet balance in currency c.
	WalletBalance(ctx context.Context, passenger protocol.ID, c protocol.Currency) (protocol.Money, error)
}
