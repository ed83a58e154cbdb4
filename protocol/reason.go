package protocol

import "fmt"

// Reason says why a sale was declined by a cabin server or an invoice was
// quarantined on the ground. The numbers cross the wire and are stable:
// do not reorder or renumber; add only at the end.
type Reason uint16

// Decline and quarantine reasons, in roughly the order the cabin server
// checks them.
const (
	ReasonMalformed            Reason = 1  // the code or request is not well formed
	ReasonUnknownCredential    Reason = 2  // no credential for this device in the manifest
	ReasonBadIssuerSignature   Reason = 3  // the credential's issuer signature does not verify
	ReasonCredentialNotYet     Reason = 4  // the credential is not yet valid
	ReasonCredentialExpired    Reason = 5  // the credential has expired
	ReasonWrongFlight          Reason = 6  // the credential is for another flight
	ReasonDenyListed           Reason = 7  // passenger or credential on the deny list
	ReasonBadDeviceSignature   Reason = 8  // the device signature does not verify
	ReasonCodeStale            Reason = 9  // the code is older than the freshness window
	ReasonCodeFromFuture       Reason = 10 // the code's time is ahead of the server's clock
	ReasonCodeReused           Reason = 11 // this code (counter) was already used
	ReasonInvalidAmount        Reason = 12 // zero, negative or out-of-range amount
	ReasonCurrencyMismatch     Reason = 13 // not the flight's currency
	ReasonOverTransactionCap   Reason = 14 // above the per-transaction cap
	ReasonOverPassengerLimit   Reason = 15 // would take the passenger's flight spend over the limit
	ReasonOverAircraftCap      Reason = 16 // would take the aircraft's exposure over its cap
	ReasonVelocity             Reason = 17 // too many sales for this passenger in the window
	ReasonUnknownSKU           Reason = 18 // the SKU is not in the catalog
	ReasonInvalidQuantity      Reason = 19 // zero, negative or too large a quantity
	ReasonNoManifest           Reason = 20 // no verified manifest: the server cannot sell
	ReasonManifestExpired      Reason = 21 // the manifest has expired: the server cannot sell
	ReasonConsentMismatch      Reason = 22 // the consent does not match the order
	ReasonFlightClosed         Reason = 23 // the flight is closed to sales
	ReasonBadAircraftSignature Reason = 24 // ground: the aircraft signature does not verify
	ReasonWrongAircraft        Reason = 25 // ground: the invoice is not from the aircraft that sent it
	ReasonChainBroken          Reason = 26 // ground: the hash chain does not link
	ReasonDuplicateConflict    Reason = 27 // ground: an invoice id seen before with different content
	ReasonUnknownFlight        Reason = 28 // ground: no such flight
)

var reasonText = map[Reason]string{
	ReasonMalformed:            "malformed code or request",
	ReasonUnknownCredential:    "passenger not registered for this flight",
	ReasonBadIssuerSignature:   "credential signature invalid",
	ReasonCredentialNotYet:     "credential not yet valid",
	ReasonCredentialExpired:    "credential expired",
	ReasonWrongFlight:          "credential is for another flight",
	ReasonDenyListed:           "passenger is on the deny list",
	ReasonBadDeviceSignature:   "payment code signature invalid",
	ReasonCodeStale:            "payment code expired: ask the passenger to refresh it",
	ReasonCodeFromFuture:       "payment code time is in the future: passenger's clock is wrong",
	ReasonCodeReused:           "payment code already used",
	ReasonInvalidAmount:        "invalid amount",
	ReasonCurrencyMismatch:     "wrong currency",
	ReasonOverTransactionCap:   "over the per-sale limit",
	ReasonOverPassengerLimit:   "over the passenger's limit for this flight",
	ReasonOverAircraftCap:      "aircraft sales cap reached",
	ReasonVelocity:             "too many sales for this passenger: wait a few minutes",
	ReasonUnknownSKU:           "item not in the catalog",
	ReasonInvalidQuantity:      "invalid quantity",
	ReasonNoManifest:           "no flight manifest: sales are off",
	ReasonManifestExpired:      "flight manifest expired: sales are off",
	ReasonConsentMismatch:      "passenger's consent does not match the order",
	ReasonFlightClosed:         "flight is closed",
	ReasonBadAircraftSignature: "aircraft signature invalid",
	ReasonWrongAircraft:        "invoice from the wrong aircraft",
	ReasonChainBroken:          "invoice hash chain broken",
	ReasonDuplicateConflict:    "invoice id reused with different content",
	ReasonUnknownFlight:        "unknown flight",
}

// String returns a short message for a person: crew on a handheld, or the
// back office.
func (r Reason) String() string {
	if s, ok := reasonText[r]; ok {
		return s
	}
	return fmt.Sprintf("reason %d", uint16(r))
}

// Known reports whether r is a defined reason.
func (r Reason) Known() bool {
	_, ok := reasonText[r]
	return ok
}
