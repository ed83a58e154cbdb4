package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/fxamacker/cbor/v2"
)

// Version is the protocol version this package speaks. Every message with a
// version field must carry exactly this value; the QR text prefixes carry it
// too ("AT1:").
const Version = 1

// encMode is RFC 8949 core deterministic encoding: shortest integers and
// lengths, definite lengths, map keys sorted bytewise. Times are integer Unix
// seconds.
//
// Every message field is tagged omitzero, and every slice field omitempty as
// well, so a zero value and an empty list are both absent on the wire: one
// value, one encoding. (omitzero alone would write an empty but non-nil
// slice as a present empty array, a second encoding of "none" that the
// strict decoder would have to accept.)
var encMode = func() cbor.EncMode {
	opts := cbor.CoreDetEncOptions()
	opts.Time = cbor.TimeUnix
	opts.NilContainers = cbor.NilContainerAsEmpty
	opts.TagsMd = cbor.TagsForbidden
	em, err := opts.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()

// decMode is the strict decoder: duplicate map keys, unknown fields,
// indefinite lengths, tags and invalid UTF-8 are all errors. Canonical form is
// checked separately by re-encoding (see decodeStrict).
var decMode = func() cbor.DecMode {
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
		MaxNestedLevels:   12,
		MaxArrayElements:  maxArrayElements,
		MaxMapPairs:       64,
		TimeTag:           cbor.DecTagIgnored,
		BinaryUnmarshaler: cbor.BinaryUnmarshalerNone,
		TextUnmarshaler:   cbor.TextUnmarshalerNone,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return dm
}()

// maxArrayElements bounds every array in every message: the largest is a
// manifest's credential list (MaxPassengers).
const maxArrayElements = 4096

// ErrDecode is matched by every DecodeError, so callers can test
// errors.Is(err, protocol.ErrDecode) for "the input is malformed".
var ErrDecode = errors.New("malformed message")

// DecodeError says what is wrong with an input message: which kind of
// message, and why it was refused.
type DecodeError struct {
	Kind   string // message kind, for example "credential"
	Reason string // what is wrong, for a person to read
	Err    error  // the underlying error, if any
}

func (e *DecodeError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Reason, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Reason)
}

// Unwrap returns the underlying error.
func (e *DecodeError) Unwrap() error { return e.Err }

// Is makes every DecodeError match ErrDecode.
func (e *DecodeError) Is(target error) bool { return target == ErrDecode }

func decodeErr(kind, format string, args ...any) error {
	return &DecodeError{Kind: kind, Reason: fmt.Sprintf(format, args...)}
}

// marshal encodes v canonically. It fails only on a programming error.
func marshal(v any) ([]byte, error) {
	return encMode.Marshal(v)
}

// decodeStrict decodes b into v and refuses anything but the one canonical
// encoding of the value: b must be at most max bytes, well formed, with no
// unknown or duplicate fields, and byte-for-byte equal to the canonical
// re-encoding (so integers, lengths and key order are minimal and sorted,
// and empty fields are absent rather than present with a zero value).
func decodeStrict(kind string, b []byte, max int, v any) error {
	if len(b) == 0 {
		return decodeErr(kind, "empty input")
	}
	if len(b) > max {
		return decodeErr(kind, "size %d bytes exceeds the cap of %d", len(b), max)
	}
	if err := decMode.Unmarshal(b, v); err != nil {
		return &DecodeError{Kind: kind, Reason: "invalid CBOR", Err: err}
	}
	re, err := marshal(v)
	if err != nil {
		return &DecodeError{Kind: kind, Reason: "re-encode", Err: err}
	}
	if !bytes.Equal(re, b) {
		return decodeErr(kind, "not in canonical form (RFC 8949 core deterministic encoding, empty fields omitted)")
	}
	return nil
}

// wireBody is a message body that can say what the canonical decoder gives
// back for its encoding without decoding it: sign keeps in Body what the
// wire says, and decoding the payload back was most of an invoice's
// signing cost after Ed25519. wire must return exactly what decoding
// marshal(body) gives (the same value, or an error where decoding fails);
// TestWireBody holds each kind's wire to decoding.
type wireBody[T any] interface {
	wire() (T, error)
}

// wireTime is what a time field holds after a trip over the wire: whole
// Unix seconds, in the local zone, as the decoder makes it; the zero time
// stays zero (it is omitted).
func wireTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.Unix(t.Unix(), 0)
}

// wireBytes is what a byte-string field holds after a trip over the wire: a
// copy, or nil for an empty one (it is omitted).
func wireBytes(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return bytes.Clone(b)
}

// wireStrings refuses, as the decoder does, a text string that is not
// UTF-8 (the encoder writes it as it is).
func wireStrings(ss ...string) error {
	for _, s := range ss {
		if !utf8.ValidString(s) {
			return fmt.Errorf("decode back: text string %q: %w", trunc(s), errWireUTF8)
		}
	}
	return nil
}

var errWireUTF8 = errors.New("invalid UTF-8")
