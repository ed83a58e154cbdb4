package protocol

import (
	"fmt"
	"strings"
)

// base45Alphabet is the RFC 9285 alphabet. It is exactly the QR code
// alphanumeric character set, which is why payment codes use Base45: a QR
// encoder can pack it at 5.5 bits per character instead of 8.
const base45Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"

// base45Invalid marks a byte outside the alphabet in base45Values.
const base45Invalid = 0xff

// base45Values maps a byte to its Base45 value, or base45Invalid.
var base45Values = func() [256]byte {
	var t [256]byte
	for i := range t {
		t[i] = base45Invalid
	}
	for i := 0; i < len(base45Alphabet); i++ {
		t[base45Alphabet[i]] = byte(i)
	}
	return t
}()

// Base45Error reports why Base45Decode rejected its input and where.
type Base45Error struct {
	// Offset is the byte offset in the input of the offending character, or
	// of the first character of the offending group.
	Offset int
	// Reason says what is wrong, for example "triple value 65536 exceeds 65535".
	Reason string
}

// Error returns the offset and reason as one line.
func (e *Base45Error) Error() string {
	return fmt.Sprintf("base45: offset %d: %s", e.Offset, e.Reason)
}

// Base45Encode encodes b with the RFC 9285 alphabet.
//
// Every two bytes become three characters and a trailing single byte becomes
// two characters, so the output is ceil(len(b)*3/2) characters long.
func Base45Encode(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b)/2*3 + len(b)%2*2)
	for i := 0; i+1 < len(b); i += 2 {
		n := int(b[i])<<8 | int(b[i+1])
		sb.WriteByte(base45Alphabet[n%45])
		sb.WriteByte(base45Alphabet[n/45%45])
		sb.WriteByte(base45Alphabet[n/(45*45)])
	}
	if len(b)%2 == 1 {
		n := int(b[len(b)-1])
		sb.WriteByte(base45Alphabet[n%45])
		sb.WriteByte(base45Alphabet[n/45])
	}
	return sb.String()
}

// Base45Decode decodes s; errors name the offending position and reason: a
// character outside the alphabet, a dangling single character (length mod
// 3 == 1), a triple whose value exceeds 65535, a pair whose value exceeds 255.
//
// The returned error is a *Base45Error. Problems are reported in input order,
// so the error names the first offending position. Lowercase letters are
// outside the alphabet: RFC 9285 defines uppercase only.
//
// Because of the value checks every accepted string is the one Base45Encode
// produces for the decoded bytes: each group is the unique base-45
// representation of a value that fits its byte count.
func Base45Decode(s string) ([]byte, error) {
	out := make([]byte, 0, len(s)/3*2+1)
	i := 0
	for ; i+3 <= len(s); i += 3 {
		n, err := base45Group(s, i, 3)
		if err != nil {
			return nil, err
		}
		if n > 0xffff {
			return nil, &Base45Error{Offset: i, Reason: fmt.Sprintf("triple value %d exceeds 65535", n)}
		}
		out = append(out, byte(n>>8), byte(n))
	}
	switch len(s) - i {
	case 1:
		if _, err := base45Group(s, i, 1); err != nil {
			return nil, err
		}
		return nil, &Base45Error{Offset: i, Reason: "dangling single character (length mod 3 == 1)"}
	case 2:
		n, err := base45Group(s, i, 2)
		if err != nil {
			return nil, err
		}
		if n > 0xff {
			return nil, &Base45Error{Offset: i, Reason: fmt.Sprintf("pair value %d exceeds 255", n)}
		}
		out = append(out, byte(n))
	}
	return out, nil
}

// base45Group returns the value of the count characters of s at offset,
// least significant character first as RFC 9285 orders them.
func base45Group(s string, offset, count int) (int, error) {
	n, weight := 0, 1
	for k := 0; k < count; k++ {
		v := base45Values[s[offset+k]]
		if v == base45Invalid {
			return 0, &Base45Error{
				Offset: offset + k,
				Reason: base45CharName(s[offset+k]) + " is outside the Base45 alphabet",
			}
		}
		n += int(v) * weight
		weight *= 45
	}
	return n, nil
}

// base45CharName names c for an error message: printable ASCII quoted, any
// other byte (a control character, part of a UTF-8 sequence) in hex.
func base45CharName(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return fmt.Sprintf("character %q", c)
	}
	return fmt.Sprintf("byte 0x%02x", c)
}
