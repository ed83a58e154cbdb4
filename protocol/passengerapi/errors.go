package passengerapi

import (
	"errors"
	"fmt"
)

// Code is a stable error code in an error answer's body. The set is small on
// purpose; the message says the rest. Codes are never renamed; new ones are
// added only at the end.
type Code string

// Error codes, with the HTTP status ground answers each with.
const (
	// CodeInvalid (400): the request is malformed or a field is out of range.
	CodeInvalid Code = "invalid"
	// CodeUnauthorized (401): a missing, stale, replayed or bad signature.
	CodeUnauthorized Code = "unauthorized"
	// CodeForbidden (403): the caller is known but may not do this.
	CodeForbidden Code = "forbidden"
	// CodeIneligible (403): the passenger may not opt in (score below the
	// threshold, arrears, no funding source, card expiring).
	CodeIneligible Code = "ineligible"
	// CodeNotFound (404): no such passenger, flight or endpoint.
	CodeNotFound Code = "not_found"
	// CodeConflict (409): the request contradicts what is registered (a
	// device key enrolled for someone else, a reference already taken, a
	// top-up ref reused for another amount).
	CodeConflict Code = "conflict"
	// CodeTooLarge (413): the request body is over its cap.
	CodeTooLarge Code = "too_large"
	// CodeUnavailable (503): the service cannot take the request now; retry
	// later.
	CodeUnavailable Code = "unavailable"
	// CodeInternal (500): anything else. The details are logged by ground,
	// never shown.
	CodeInternal Code = "internal"
	// CodeRevoked (403): a revocation blocks the request (SPEC §9.2): the
	// device was reported lost (it may not opt in or enroll another
	// device), the passenger is suspended for suspected fraud, or their
	// credential for the flight was revoked. The message names the
	// revocation; only the back office lifts it.
	CodeRevoked Code = "revoked"
	// CodeRateLimited (429): this device key made too many calls; the
	// Retry-After header says in how many seconds to try again.
	CodeRateLimited Code = "rate_limited"
)

// ErrorBody is the body of every error answer:
// {"error": {"code": "invalid", "message": "…"}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a stable code and a message for a person.
type ErrorDetail struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Error is a refused call as Client returns it: the code and message of the
// error answer and its HTTP status.
type Error struct {
	Status  int
	Code    Code
	Message string
}

// Error returns "<code>: <message>".
func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeInternal when there is none (the server was not reached, or answered
// something that is not an error body).
func ErrorCode(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}
