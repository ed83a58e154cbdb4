package onboard

import (
	"errors"
	"fmt"

	"github.com/airtab/airtab/protocol"
)

// Code is the kind of an error a client sees. The set is small and stable;
// onboard/httpapi maps each code to one HTTP status, in one place.
type Code string

// Error codes. Stable strings: they cross the wire.
const (
	CodeInvalid      Code = "invalid"      // the request is malformed: bad JSON, bad QR text, unknown SKU, bad quantity
	CodeUnauthorized Code = "unauthorized" // no session, an expired one, or a wrong crew id or PIN
	CodeForbidden    Code = "forbidden"    // signed in, but the crew role may not do this
	CodeNotFound     Code = "not_found"    // no such sale or order
	CodeConflict     Code = "conflict"     // an invoice id reused with different content; a sale voided twice
	CodeTooLarge     Code = "too_large"    // the request body is over its limit
	CodeRateLimited  Code = "rate_limited" // too many sign-in attempts; try again later
	CodeUnavailable  Code = "unavailable"  // the server cannot do this now: no manifest, shutting down, journal failure
	CodeInternal     Code = "internal"     // a bug or an unexpected failure; details are in the server log
)

// Error is the one error type clients see: a code, a protocol reason where
// one fits (ReasonUnknownSKU for an unknown SKU), and a message for a
// person. Any other error reaching a client is shown as "internal error".
type Error struct {
	Code       Code            `json:"code"`
	Reason     protocol.Reason `json:"reason,omitempty"`
	ReasonName string          `json:"reason_name,omitempty"`
	Message    string          `json:"message"`
}

// Error returns the code and the message.
func (e *Error) Error() string {
	if e.Reason != 0 {
		return fmt.Sprintf("airtab: %s (reason %d %s): %s", e.Code, e.Reason, e.ReasonName, e.Message)
	}
	return fmt.Sprintf("airtab: %s: %s", e.Code, e.Message)
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ReasonErrorf returns an *Error with code, a protocol reason and a
// formatted message.
func ReasonErrorf(code Code, r protocol.Reason, format string, args ...any) *Error {
	return &Error{Code: code, Reason: r, ReasonName: ReasonName(r), Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err if it is or wraps an *Error, and
// CodeInternal otherwise.
func ErrorCode(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}

// PublicError returns err as clients may see it: the *Error it is or wraps,
// or for any other error an internal error that hides the details.
func PublicError(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error"}
}

// reasonNames are the stable snake_case names of protocol reasons, for
// clients that switch on a name rather than a number.
var reasonNames = map[protocol.Reason]string{
	protocol.ReasonMalformed:            "malformed",
	protocol.ReasonUnknownCredential:    "unknown_credential",
	protocol.ReasonBadIssuerSignature:   "bad_issuer_signature",
	protocol.ReasonCredentialNotYet:     "credential_not_yet_valid",
	protocol.ReasonCredentialExpired:    "credential_expired",
	protocol.ReasonWrongFlight:          "wrong_flight",
	protocol.ReasonDenyListed:           "deny_listed",
	protocol.ReasonBadDeviceSignature:   "bad_device_signature",
	protocol.ReasonCodeStale:            "code_stale",
	protocol.ReasonCodeFromFuture:       "code_from_future",
	protocol.ReasonCodeReused:           "code_reused",
	protocol.ReasonInvalidAmount:        "invalid_amount",
	protocol.ReasonCurrencyMismatch:     "currency_mismatch",
	protocol.ReasonOverTransactionCap:   "over_transaction_cap",
	protocol.ReasonOverPassengerLimit:   "over_passenger_limit",
	protocol.ReasonOverAircraftCap:      "over_aircraft_cap",
	protocol.ReasonVelocity:             "velocity",
	protocol.ReasonUnknownSKU:           "unknown_sku",
	protocol.ReasonInvalidQuantity:      "invalid_quantity",
	protocol.ReasonNoManifest:           "no_manifest",
	protocol.ReasonManifestExpired:      "manifest_expired",
	protocol.ReasonConsentMismatch:      "consent_mismatch",
	protocol.ReasonFlightClosed:         "flight_closed",
	protocol.ReasonBadAircraftSignature: "bad_aircraft_signature",
	protocol.ReasonWrongAircraft:        "wrong_aircraft",
	protocol.ReasonChainBroken:          "chain_broken",
	protocol.ReasonDuplicateConflict:    "duplicate_conflict",
	protocol.ReasonUnknownFlight:        "unknown_flight",
}

// ReasonName returns the stable snake_case name of r, for example
// "over_passenger_limit", or "reason_<n>" for a reason this build does not
// know.
func ReasonName(r protocol.Reason) string {
	if n, ok := reasonNames[r]; ok {
		return n
	}
	return fmt.Sprintf("reason_%d", uint16(r))
}
