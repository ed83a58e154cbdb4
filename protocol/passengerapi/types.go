package passengerapi

import (
	"fmt"
	"time"

	"github.com/airtab/airtab/protocol"
)

// JSON bodies of the passenger API. Ids are 32 lower-case hex characters,
// device keys their text form "airtab-device-pub:<64 hex>", money
// {"minor": 1250, "currency": "EUR"} (integer minor units, never a float),
// times RFC 3339 UTC, signed messages ("cose") standard padded base64 of the
// complete COSE_Sign1 bytes. Request bodies are one JSON object with no
// unknown fields and at most MaxBody bytes.

// Body and value bounds.
const (
	// MaxBody is the largest request body ground accepts, in bytes.
	MaxBody = 16 << 10
	// MaxTopUpMajor bounds one wallet top-up, in major units of its
	// currency (10000.00 EUR, 10000 JPY, 10000.000 KWD).
	MaxTopUpMajor = 10_000
	// MaxExternalRef is the longest external_ref, in bytes.
	MaxExternalRef = 64
	// MaxCharges is the most charges GET /v1/me/charges lists.
	MaxCharges = 500
)

// CreatePassengerRequest is the body of POST /v1/passengers.
type CreatePassengerRequest struct {
	// DeviceKey is the first device's public key, "airtab-device-pub:<64
	// lower-case hex>"; the request must be signed by this key.
	DeviceKey string `json:"device_key"`
	// ExternalRef is the airline's optional reference for the passenger
	// (up to 64 letters, digits and _.:@-), unique among passengers.
	ExternalRef string `json:"external_ref,omitempty"`
}

// DeviceRequest is the body of POST /v1/me/devices.
type DeviceRequest struct {
	DeviceKey string `json:"device_key"` // the new device's airtab-device-pub:…
}

// FundingKind says how a passenger pays.
type FundingKind string

// Funding kinds.
const (
	// FundingWallet is the prepaid wallet balance held in ground's ledger.
	FundingWallet FundingKind = "wallet"
	// FundingCard is an international card, charged through the acquirer
	// by its token.
	FundingCard FundingKind = "card"
)

// Card networks accepted in Funding.Network.
const (
	Visa       = "visa"
	Mastercard = "mastercard"
	Amex       = "amex"
	Discover   = "discover"
	JCB        = "jcb"
)

// Networks lists the accepted card networks.
var Networks = []string{Visa, Mastercard, Amex, Discover, JCB}

// Funding is the body of PUT /v1/me/funding and the funding source in an
// Account. A wallet is {"kind": "wallet"} and carries no other field. A card
// is its acquirer token, never its number: {"kind": "card", "network":
// "visa", "token": "tok_…", "last4": "4242", "exp_month": 9, "exp_year":
// 2029}. An Account never shows the token.
type Funding struct {
	Kind     FundingKind `json:"kind"`
	Network  string      `json:"network,omitempty"`   // card: one of Networks
	Token    string      `json:"token,omitempty"`     // card, request only: the acquirer's token, 4 to 128 of A-Z a-z 0-9 _ - . :
	Last4    string      `json:"last4,omitempty"`     // card: exactly four digits
	ExpMonth int         `json:"exp_month,omitempty"` // card: 1 to 12
	ExpYear  int         `json:"exp_year,omitempty"`  // card: four digits; valid through the end of that month, UTC
}

// TopUpRequest is the body of POST /v1/me/wallet/topups. Ref is the
// client's idempotency key: the same ref with the same amount never credits
// twice (it answers the balance again); the same ref with another amount is
// a conflict.
type TopUpRequest struct {
	// Amount is more than zero and at most MaxTopUpMajor major units, in a
	// currency of ground's limit policy.
	Amount protocol.Money `json:"amount"`
	// Ref is 32 lower-case hex characters, chosen by the client and kept
	// until ground has answered.
	Ref protocol.ID `json:"ref"`
}

// Balance is a wallet balance: the answer of a top-up and of
// GET /v1/me/wallet/{currency}.
type Balance struct {
	Balance protocol.Money `json:"balance"`
}

// OptInRequest is the body of POST /v1/me/credentials.
type OptInRequest struct {
	Flight protocol.FlightID `json:"flight"` // "XX123-2026-11-21"
}

// Account is a passenger's account: the answer of POST /v1/passengers,
// GET /v1/me, PUT /v1/me/funding and POST /v1/me/devices. Lists are present
// and empty ([]) when there is nothing in them.
type Account struct {
	Passenger   protocol.ID `json:"passenger"`
	ExternalRef string      `json:"external_ref,omitempty"`
	// Score is the credit score; Threshold the least score that is
	// eligible (550).
	Score     int  `json:"score"`
	Threshold int  `json:"eligibility_threshold"`
	Eligible  bool `json:"eligible"`
	// Ineligible says why the passenger may not opt in, when they may not.
	Ineligible string `json:"ineligible_reason,omitempty"`
	// Limits are the per-flight limit and per-sale cap of the passenger's
	// score band, one per supported currency; absent below the threshold.
	Limits []Limits `json:"limits,omitempty"`
	// Funding is the funding source without the acquirer token; absent
	// until one is linked.
	Funding      *Funding            `json:"funding,omitempty"`
	Devices      []string            `json:"devices"` // airtab-device-pub:… of every enrolled device
	Arrears      []ArrearsEntry      `json:"arrears"` // unpaid invoices
	Credentials  []CredentialSummary `json:"credentials"`
	ScoreHistory []ScoreEvent        `json:"score_history"`
	CreatedAt    time.Time           `json:"created_at"`
}

// Limits are the limits of a score band in one currency.
type Limits struct {
	Limit protocol.Money `json:"limit"`  // per flight
	TxCap protocol.Money `json:"tx_cap"` // per sale
}

// ArrearsEntry is an unpaid invoice.
type ArrearsEntry struct {
	Passenger protocol.ID `json:"passenger"`
	Invoice   protocol.ID `json:"invoice"`
	Since     time.Time   `json:"since"`
}

// ScoreEvent is one change of a passenger's score.
type ScoreEvent struct {
	Score  int       `json:"score"`  // after the change
	Change int       `json:"change"` // signed
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// CredentialSummary lists a credential in an account.
type CredentialSummary struct {
	ID       protocol.ID       `json:"id"`
	Flight   protocol.FlightID `json:"flight"`
	Limit    protocol.Money    `json:"limit"`
	NotAfter time.Time         `json:"not_after"`
	Revoked  bool              `json:"revoked"`
}

// Credential is an issued credential, the answer of POST /v1/me/credentials:
// its fields for a person to read and the signed COSE bytes (§4.1) the
// wallet stores and puts in full payment codes.
type Credential struct {
	ID        protocol.ID       `json:"id"`
	Passenger protocol.ID       `json:"passenger"`
	Device    string            `json:"device"` // airtab-device-pub:…, the key that signed the opt-in
	Flight    protocol.FlightID `json:"flight"`
	Limit     protocol.Money    `json:"limit"`
	TxCap     protocol.Money    `json:"tx_cap"`
	NotBefore time.Time         `json:"not_before"`
	NotAfter  time.Time         `json:"not_after"`
	IssuedAt  time.Time         `json:"issued_at"`
	RevokedAt *time.Time        `json:"revoked_at,omitempty"`
	// CodeFreshSeconds is the flight's code freshness cap (SPEC §6): a
	// payment code older than this when scanned is declined, so a wallet
	// shows a new one well within it.
	CodeFreshSeconds uint32 `json:"code_fresh_seconds,omitempty"`
	COSE             []byte `json:"cose"` // standard base64 in JSON
}

// Parse decodes the signed credential and checks it says what the JSON
// fields say. Verify it against the issuer's trust list before use.
func (c Credential) Parse() (*protocol.SignedCredential, error) {
	s, err := protocol.ParseCredential(c.COSE)
	if err != nil {
		return nil, err
	}
	if s.Body.ID != c.ID || s.Body.Flight != c.Flight || s.Body.Limit != c.Limit || s.Body.TxCap != c.TxCap {
		return nil, fmt.Errorf("credential %s: the signed bytes do not match the JSON fields", c.ID)
	}
	return s, nil
}

// ChargeStatus is where one of the passenger's invoices is in clearing.
type ChargeStatus string

// Charge statuses.
const (
	// ChargePending: received, the charge is under way (or its outcome is
	// not known yet).
	ChargePending ChargeStatus = "pending"
	// ChargeSettled: paid, from the wallet or by the card.
	ChargeSettled ChargeStatus = "settled"
	// ChargeCollections: the charge was declined (or the wallet was
	// short); the amount is owed. A top-up or a new card retries it.
	ChargeCollections ChargeStatus = "collections"
	// ChargeVoided: the sale was reversed by crew (or this is the void).
	ChargeVoided ChargeStatus = "voided"
	// ChargeRefused: the invoice failed ground's checks; never charged.
	ChargeRefused ChargeStatus = "refused"
)

// Charge is what ground did with one sale or void of the passenger's: the
// receipt a wallet shows after landing.
type Charge struct {
	Invoice protocol.ID          `json:"invoice"`
	Flight  protocol.FlightID    `json:"flight"`
	Kind    string               `json:"kind"` // "sale" or "void"
	Amount  protocol.Money       `json:"amount"`
	Lines   []protocol.OrderLine `json:"lines,omitempty"` // sale: what was sold, {"sku", "quantity", "unit_price"}
	Voids   *protocol.ID         `json:"voids,omitempty"` // void: the sale it reverses
	Status  ChargeStatus         `json:"status"`
	Funding FundingKind          `json:"funding,omitempty"` // what was (or is to be) charged
	// Decline is the last declined charge's reason, in collections.
	Decline   string     `json:"decline,omitempty"`
	SoldAt    time.Time  `json:"sold_at"`     // the aircraft's clock
	ClearedAt time.Time  `json:"received_at"` // when ground received it
	SettledAt *time.Time `json:"settled_at,omitempty"`
}

// ChargeList is the answer of GET /v1/me/charges: the passenger's charges,
// newest sale first, and per currency what was charged (settled sales) and
// what is owed (in collections).
type ChargeList struct {
	Charges   []Charge         `json:"charges"`
	Charged   []protocol.Money `json:"charged"`
	Owed      []protocol.Money `json:"owed"`
	Truncated bool             `json:"truncated"` // more than MaxCharges exist
}
