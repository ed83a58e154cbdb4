package crypto

import "fmt"

// Domain is a signing context label, for example "airtab/credential/v1".
// Every kind of signed message has its own domain, so a signature over one
// kind can never verify as another.
//
// The bytes Ed25519 signs are the domain framed in front of the message:
//
//	len(domain) as one byte || domain (ASCII) || message
//
// The length prefix makes the framing unambiguous: no (domain, message)
// pair frames to the same bytes as another.
type Domain string

// MaxDomainLen is the longest allowed domain label, in bytes.
const MaxDomainLen = 64

func (d Domain) check() error {
	if len(d) == 0 || len(d) > MaxDomainLen {
		return fmt.Errorf("signing domain %q: length %d, want 1 to %d", string(d), len(d), MaxDomainLen)
	}
	for i := 0; i < len(d); i++ {
		if c := d[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("signing domain %q: byte %d is not printable ASCII", string(d), i)
		}
	}
	return nil
}

// Frame returns len(d) || d || msg, the domain framed in front of msg. It is
// what Sign and Verify sign and check; a format that carries its own
// domain separation inside the signed bytes (COSE_Sign1's external_aad)
// puts Frame(kind-specific bytes) there and signs with SignRaw.
// It panics on an invalid domain, a programming error.
func (d Domain) Frame(msg []byte) []byte {
	if err := d.check(); err != nil {
		panic("crypto: " + err.Error())
	}
	return d.frame(msg)
}

func (d Domain) frame(msg []byte) []byte {
	b := make([]byte, 0, 1+len(d)+len(msg))
	b = append(b, byte(len(d)))
	b = append(b, d...)
	return append(b, msg...)
}
