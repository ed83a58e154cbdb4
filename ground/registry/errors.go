package registry

import (
	"errors"
	"fmt"

	"github.com/airtab/airtab/ground"
)

// Code is a stable error code that clients see: in the HTTP API's error body
// and in the error header of a NATS sync reply. The set is small on purpose;
// the message says the rest. Do not rename a code; add only at the end.
type Code string

// Error codes. ground/api maps each to one HTTP status, in one place.
const (
	// CodeInvalid: the request is malformed or a field is out of range.
	CodeInvalid Code = "invalid"
	// CodeUnauthorized: missing, stale or bad credentials (signature, token).
	CodeUnauthorized Code = "unauthorized"
	// CodeForbidden: the caller is known but may not do this, for example an
	// aircraft asking for another aircraft's manifest.
	CodeForbidden Code = "forbidden"
	// CodeIneligible: the passenger may not opt in (score below the
	// threshold, arrears, no funding source, card expiring).
	CodeIneligible Code = "ineligible"
	// CodeNotFound: no such passenger, flight, aircraft or credential.
	CodeNotFound Code = "not_found"
	// CodeConflict: the request contradicts what is registered (a device key
	// enrolled for someone else, a flight that is full).
	CodeConflict Code = "conflict"
	// CodeTooLarge: the request body is over its cap.
	CodeTooLarge Code = "too_large"
	// CodeUnavailable: the service cannot take the request now (a part is
	// not wired, or a bounded table is full); retry later.
	CodeUnavailable Code = "unavailable"
	// CodeInternal: anything else. The details are logged, never shown.
	CodeInternal Code = "internal"
	// CodeRevoked: a revocation blocks the request (SPEC §9.2): the device
	// was reported lost, the passenger is suspended for suspected fraud,
	// or their credential for the flight was revoked. The message names
	// the revocation; the back office lifts it.
	CodeRevoked Code = "revoked"
	// CodeRateLimited: the client made too many calls; the HTTP answer's
	// Retry-After says in how many seconds to try again.
	CodeRateLimited Code = "rate_limited"
)

// Error is an error a client may see: a stable code and a message for a
// person. Anything that is not an *Error (in its chain) is internal and shown
// only as "internal error".
type Error struct {
	Code    Code
	Message string
}

// Errorf makes an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Error returns "<code>: <message>".
func (e *Error) Error() string { return string(e.Code) + ": " + e.Message }

// Is makes a not-found Error match ground.ErrNotFound, as the
// ground.Directory contract asks.
func (e *Error) Is(target error) bool {
	return e.Code == CodeNotFound && target == ground.ErrNotFound
}

// ErrorCode returns the code of the first *Error in err's chain, or
// CodeInternal.
func ErrorCode(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the message of the first *Error in err's chain, or
// "internal error": internal details never reach a client.
func ErrorMessage(err error) string {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Message
	}
	return "internal error"
}

func notFound(format string, args ...any) *Error { return Errorf(CodeNotFound, format, args...) }
func invalid(format string, args ...any) *Error  { return Errorf(CodeInvalid, format, args...) }
func conflict(format string, args ...any) *Error { return Errorf(CodeConflict, format, args...) }
