// Package wirejson is the fast path of the JSON on the handheld API's hot
// calls: a sale request and its decision. encoding/json's reflection was
// the larger part of the JSON cost per sale on both sides of the API; this
// package reads and writes the plain form json.Marshal makes, and nothing
// else.
//
// A Scanner accepts a strict subset of JSON: strings without escapes and
// with printable ASCII only, integers without fraction or exponent, no
// null. Whatever is outside it makes the scan fail, and the caller then
// decodes the same bytes with encoding/json, which gives the result or the
// error it always gave: the fast path never decides alone that input is
// bad, and gives exactly encoding/json's result when it succeeds (the
// callers' tests and fuzz targets hold both to that).
package wirejson

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Scanner reads JSON values from b in order. Once a method fails, every
// later one fails too.
type Scanner struct {
	b   []byte
	i   int
	bad bool
}

// NewScanner returns a scanner over b.
func NewScanner(b []byte) *Scanner { return &Scanner{b: b} }

// Reset makes s scan b from its start.
func (s *Scanner) Reset(b []byte) { *s = Scanner{b: b} }

// OK reports whether every read so far succeeded.
func (s *Scanner) OK() bool { return !s.bad }

// Fail marks the scan failed: the caller met something it does not handle.
func (s *Scanner) Fail() { s.bad = true }

func (s *Scanner) skipSpace() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// peek returns the next byte after white space, or 0 at the end.
func (s *Scanner) peek() byte {
	s.skipSpace()
	if s.bad || s.i >= len(s.b) {
		return 0
	}
	return s.b[s.i]
}

func (s *Scanner) expect(c byte) bool {
	if s.peek() != c {
		s.bad = true
		return false
	}
	s.i++
	return true
}

// End reports whether only white space is left and every read succeeded.
func (s *Scanner) End() bool {
	s.skipSpace()
	return !s.bad && s.i == len(s.b)
}

// Object reads an object, calling field for each key with the scanner at
// its value; field reads the value, or returns false for a key it does not
// know (encoding/json also matches keys without regard to case), which
// fails the scan. A key seen twice fails it too: the callers decode into
// fresh values field by field, and leave merging to encoding/json. key is
// a slice of the input: switch on string(key) to compare it without a
// copy.
func (s *Scanner) Object(field func(key []byte) bool) bool {
	if !s.expect('{') {
		return false
	}
	if s.peek() == '}' {
		s.i++
		return true
	}
	var seen [16][]byte
	n := 0
	for {
		key, ok := s.StringBytes()
		if !ok || !s.expect(':') {
			s.bad = true
			return false
		}
		for _, k := range seen[:n] {
			if bytes.Equal(k, key) {
				s.bad = true
				return false
			}
		}
		if n == len(seen) {
			s.bad = true
			return false
		}
		seen[n] = key
		n++
		if !field(key) || s.bad {
			s.bad = true
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return true
		default:
			s.bad = true
			return false
		}
	}
}

// Array reads an array, calling elem for each element with the scanner at
// it; elem returns false to fail the scan.
func (s *Scanner) Array(elem func() bool) bool {
	if !s.expect('[') {
		return false
	}
	if s.peek() == ']' {
		s.i++
		return true
	}
	for {
		if !elem() || s.bad {
			s.bad = true
			return false
		}
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return true
		default:
			s.bad = true
			return false
		}
	}
}

// StringBytes reads a string with no escapes and only printable ASCII and
// returns its bytes (a slice of the input, without the quotes).
func (s *Scanner) StringBytes() ([]byte, bool) {
	if !s.expect('"') {
		return nil, false
	}
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			return s.b[start : s.i-1], true
		case c < 0x20 || c >= 0x7f || c == '\\':
			s.bad = true
			return nil, false
		}
		s.i++
	}
	s.bad = true
	return nil, false
}

// String reads a string as StringBytes does, as a string.
func (s *Scanner) String() (string, bool) {
	b, ok := s.StringBytes()
	if !ok {
		return "", false
	}
	return string(b), true
}

// Quoted reads a string as StringBytes does and returns it with its
// quotes, for a json.Unmarshaler such as time.Time.
func (s *Scanner) Quoted() ([]byte, bool) {
	s.skipSpace()
	start := s.i
	if _, ok := s.StringBytes(); !ok {
		return nil, false
	}
	return s.b[start:s.i], true
}

// Bool reads true or false.
func (s *Scanner) Bool() (bool, bool) {
	switch s.peek() {
	case 't':
		if s.literal("true") {
			return true, true
		}
	case 'f':
		if s.literal("false") {
			return false, true
		}
	}
	s.bad = true
	return false, false
}

func (s *Scanner) literal(lit string) bool {
	if len(s.b)-s.i < len(lit) || string(s.b[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// number returns the bytes of an integer: an optional minus sign and
// digits without a leading zero, not followed by a fraction or exponent.
func (s *Scanner) number() ([]byte, bool) {
	s.skipSpace()
	start := s.i
	if s.i < len(s.b) && s.b[s.i] == '-' {
		s.i++
	}
	digits := s.i
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
	}
	n := s.i - digits
	if s.bad || n == 0 || (n > 1 && s.b[digits] == '0') || n > 19 {
		s.bad = true
		return nil, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			s.bad = true
			return nil, false
		}
	}
	return s.b[start:s.i], true
}

// Int reads an integer that fits in bits bits, signed.
func (s *Scanner) Int(bits int) (int64, bool) {
	b, ok := s.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseInt(string(b), 10, bits)
	if err != nil {
		s.bad = true
		return 0, false
	}
	return v, true
}

// Uint reads a non-negative integer that fits in bits bits.
func (s *Scanner) Uint(bits int) (uint64, bool) {
	b, ok := s.number()
	if !ok || b[0] == '-' {
		s.bad = true
		return 0, false
	}
	v, err := strconv.ParseUint(string(b), 10, bits)
	if err != nil {
		s.bad = true
		return 0, false
	}
	return v, true
}

// plain reports whether json.Marshal writes s as it is between quotes:
// printable ASCII without '"', '\\' or the HTML characters it escapes.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}

// AppendString appends s as json.Marshal writes it.
func AppendString(b []byte, s string) []byte {
	if plain(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	q, err := json.Marshal(s)
	if err != nil { // a string always encodes
		panic("wirejson: encode string: " + err.Error())
	}
	return append(b, q...)
}

// AppendKey appends a comma unless first, then the key (plain ASCII, as
// the callers' field names are) and a colon.
func AppendKey(b []byte, key string, first bool) []byte {
	if !first {
		b = append(b, ',')
	}
	b = append(b, '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

// AppendHexString appends v as a JSON string of lower-case hex digits, as
// the MarshalText of the protocol's ids and hashes writes them.
func AppendHexString(b []byte, v []byte) []byte {
	const digits = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range v {
		b = append(b, digits[c>>4], digits[c&0xf])
	}
	return append(b, '"')
}

// AppendBool appends true or false.
func AppendBool(b []byte, v bool) []byte { return strconv.AppendBool(b, v) }

// AppendInt appends v in decimal.
func AppendInt(b []byte, v int64) []byte { return strconv.AppendInt(b, v, 10) }

// AppendUint appends v in decimal.
func AppendUint(b []byte, v uint64) []byte { return strconv.AppendUint(b, v, 10) }
