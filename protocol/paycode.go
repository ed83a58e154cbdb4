package protocol

import (
	"fmt"
	"strings"
	"time"

	"github.com/airtab/airtab/crypto"
)

// PaymentCode is what a passenger's phone shows as a QR code: proof, signed
// by the device key (DomainPaymentCode), that the holder of a credential
// wants to pay now. It refreshes every 30 to 60 seconds. Counter never
// repeats for a device, so a cabin server accepts each code at most once.
//
// The COSE key id is the device key's id: in the compact form it names the
// credential in the manifest. The full form also carries the issuer-signed
// credential, for a passenger who registered after the manifest was fetched.
// The external_aad of the signature is the credential id, binding the code to
// one credential and so to one flight.
//
// The compact form fits QR version 6 at error correction M (see SPEC.md).
type PaymentCode struct {
	Counter    uint64    `cbor:"1,keyasint,omitzero"`
	Time       time.Time `cbor:"2,keyasint,omitzero"`           // when the phone made the code
	Credential []byte    `cbor:"3,keyasint,omitempty,omitzero"` // full form only: a SignedCredential's Raw bytes
}

// SignedPaymentCode is a payment code with its device signature.
type SignedPaymentCode = Signed[PaymentCode]

func (PaymentCode) kind() kind {
	return kind{name: "payment code", domain: DomainPaymentCode, maxSize: MaxPaymentCodeSize, signer: crypto.Device}
}

// MaxCounter is the largest payment-code counter. Counters fit 32 bits so a
// compact code stays within QR version 6 at error correction M.
const MaxCounter = 1<<32 - 1

// maxCodeUnix is the latest time a payment code may carry, in Unix seconds
// (2106-02-07T06:28:15Z). Like the counter it fits 32 bits, so a compact
// code stays within QR version 6 at error correction M: a later time takes
// a 9-byte CBOR integer instead of 5 and pushes the code to version 7.
const maxCodeUnix = 1<<32 - 1

func validCodeTime(t time.Time) error {
	if t.Unix() > maxCodeUnix {
		return fmt.Errorf("time %s: after the latest code time %s (Unix seconds must fit 32 bits)",
			t.UTC().Format(time.RFC3339), time.Unix(maxCodeUnix, 0).UTC().Format(time.RFC3339))
	}
	return nil
}

func validCounter(c uint64) error {
	if c == 0 || c > MaxCounter {
		return fmt.Errorf("counter %d: want 1 to %d", c, uint64(MaxCounter))
	}
	return nil
}

func (p PaymentCode) validate() error {
	err := firstErr(
		validCounter(p.Counter),
		required("time", !p.Time.IsZero() && p.Time.Unix() > 0),
		validCodeTime(p.Time),
	)
	if err != nil || len(p.Credential) == 0 {
		return err
	}
	if _, err := ParseCredential(p.Credential); err != nil {
		return fmt.Errorf("embedded credential: %w", err)
	}
	return nil
}

// decodeFast recognizes the compact code's one canonical encoding
// {1: counter, 2: time} (a non-zero counter and a time of at most 2^62
// seconds, each with its shortest head, nothing after) and decodes it as
// the strict decoder does, without it: the cabin server parses a code for
// every sale and ground one for every invoice. For anything else it
// returns false and Parse takes the strict decoder, so what Parse accepts
// is unchanged (FuzzPaymentCodeFast holds the two to the same body).
func (p *PaymentCode) decodeFast(b []byte) bool {
	if len(b) < 5 || b[0] != 0xa2 || b[1] != 0x01 {
		return false
	}
	counter, rest, ok := cborUint(b[2:])
	if !ok || counter == 0 || len(rest) < 2 || rest[0] != 0x02 {
		return false
	}
	t, rest, ok := cborUint(rest[1:])
	if !ok || t > 1<<62 || len(rest) != 0 {
		return false
	}
	*p = PaymentCode{Counter: counter, Time: time.Unix(int64(t), 0)}
	return true
}

// Full reports whether the code carries its credential.
func (p PaymentCode) Full() bool { return len(p.Credential) > 0 }

// EmbeddedCredential decodes the credential of a full-form code (form only).
func (p PaymentCode) EmbeddedCredential() (*SignedCredential, error) {
	if !p.Full() {
		return nil, fmt.Errorf("payment code: compact form carries no credential")
	}
	return ParseCredential(p.Credential)
}

// ParsePaymentCode strictly decodes a signed payment code; see Parse.
func ParsePaymentCode(b []byte) (*SignedPaymentCode, error) { return Parse[PaymentCode](b) }

// OrderLine is one line of a basket: a catalog SKU and a quantity.
type OrderLine struct {
	SKU      string `cbor:"1,keyasint,omitzero" json:"sku"`
	Quantity uint32 `cbor:"2,keyasint,omitzero" json:"quantity"`
	// UnitPrice is the catalog price; in a request from a handheld it is
	// absent, as the cabin server takes prices from the manifest only.
	UnitPrice Money `cbor:"3,keyasint,omitzero" json:"unit_price,omitzero"`
}

// Limits on a basket.
const (
	MaxLines    = 32
	MaxQuantity = 99
)

func validateLines(lines []OrderLine, priced bool) error {
	if len(lines) == 0 {
		return fmt.Errorf("no lines")
	}
	if err := maxLen("lines", len(lines), MaxLines); err != nil {
		return err
	}
	for i, l := range lines {
		if err := textField("SKU", l.SKU, 1, 32); err != nil {
			return fmt.Errorf("line %d: %w", i, err)
		}
		if l.Quantity == 0 || l.Quantity > MaxQuantity {
			return fmt.Errorf("line %d: quantity %d, want 1 to %d", i, l.Quantity, MaxQuantity)
		}
		if priced {
			if err := nonNegative("unit price", l.UnitPrice); err != nil {
				return fmt.Errorf("line %d: %w", i, err)
			}
		}
	}
	return nil
}

// Order is what a handheld shows as a QR in two-way mode: the basket and
// its total, for the passenger's wallet to show and sign consent to. It is
// not signed itself; the consent carries its hash.
type Order struct {
	Version   uint        `cbor:"1,keyasint,omitzero"`
	ID        ID          `cbor:"2,keyasint,omitzero"`
	Flight    FlightID    `cbor:"3,keyasint,omitzero"`
	Lines     []OrderLine `cbor:"4,keyasint,omitempty,omitzero"`
	Total     Money       `cbor:"5,keyasint,omitzero"`
	CreatedAt time.Time   `cbor:"6,keyasint,omitzero"`
}

// Validate checks the order's form and that the total is the sum of its
// priced lines.
func (o Order) Validate() error {
	err := firstErr(
		checkVersion(o.Version),
		required("id", !o.ID.IsZero()),
		o.Flight.Validate(),
		validateLines(o.Lines, true),
		nonNegative("total", o.Total),
		required("created time", !o.CreatedAt.IsZero()),
	)
	if err != nil {
		return err
	}
	sum, err := LinesTotal(o.Lines, o.Total.Currency)
	if err != nil {
		return err
	}
	if sum != o.Total {
		return fmt.Errorf("total %s is not the sum of the lines %s", o.Total, sum)
	}
	return nil
}

// LinesTotal sums quantity × unit price over priced lines in currency c.
func LinesTotal(lines []OrderLine, c Currency) (Money, error) {
	sum := Money{Currency: c}
	for i, l := range lines {
		v, err := l.UnitPrice.Mul(int64(l.Quantity))
		if err != nil {
			return Money{}, fmt.Errorf("line %d: %w", i, err)
		}
		if sum, err = sum.Add(v); err != nil {
			return Money{}, fmt.Errorf("line %d: %w", i, err)
		}
	}
	return sum, nil
}

// Encode returns the canonical CBOR of the order.
func (o Order) Encode() ([]byte, error) {
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("encode order: %w", err)
	}
	return marshal(o)
}

// Hash returns the SHA-256 of the order's canonical encoding, the value an
// order consent signs.
func (o Order) Hash() (Hash, error) {
	b, err := o.Encode()
	if err != nil {
		return Hash{}, err
	}
	return Sum(b), nil
}

// DecodeOrder strictly decodes an order.
func DecodeOrder(b []byte) (Order, error) {
	var o Order
	if err := decodeStrict("order", b, MaxOrderSize, &o); err != nil {
		return Order{}, err
	}
	if err := o.Validate(); err != nil {
		return Order{}, &DecodeError{Kind: "order", Reason: "invalid", Err: err}
	}
	return o, nil
}

// OrderConsent is the passenger's signed consent to one exact order (two-way
// mode): the device key (DomainOrderConsent) signs the order's hash and
// total, so the passenger's signature covers the amount. It takes the place
// of a payment code for that sale and follows the same rules: key id of the
// device, the credential id as external_aad, a counter that never repeats,
// and an optional embedded credential for a late registrant.
type OrderConsent struct {
	Order      ID        `cbor:"1,keyasint,omitzero"`
	OrderHash  Hash      `cbor:"2,keyasint,omitzero"`
	Total      Money     `cbor:"3,keyasint,omitzero"`
	Counter    uint64    `cbor:"4,keyasint,omitzero"`
	Time       time.Time `cbor:"5,keyasint,omitzero"`
	Credential []byte    `cbor:"6,keyasint,omitempty,omitzero"`
}

// SignedOrderConsent is an order consent with its device signature.
type SignedOrderConsent = Signed[OrderConsent]

func (OrderConsent) kind() kind {
	return kind{name: "order consent", domain: DomainOrderConsent, maxSize: MaxOrderConsentSize, signer: crypto.Device}
}

func (c OrderConsent) validate() error {
	err := firstErr(
		required("order id", !c.Order.IsZero()),
		required("order hash", !c.OrderHash.IsZero()),
		nonNegative("total", c.Total),
		validCounter(c.Counter),
		required("time", !c.Time.IsZero() && c.Time.Unix() > 0),
		validCodeTime(c.Time),
	)
	if err != nil || len(c.Credential) == 0 {
		return err
	}
	if _, err := ParseCredential(c.Credential); err != nil {
		return fmt.Errorf("embedded credential: %w", err)
	}
	return nil
}

// ParseOrderConsent strictly decodes a signed order consent; see Parse.
func ParseOrderConsent(b []byte) (*SignedOrderConsent, error) { return Parse[OrderConsent](b) }

// QR text forms: a short prefix that names the kind and protocol version,
// then Base45 (RFC 9285). Every character is in the QR alphanumeric set.
const (
	PrefixPaymentCode  = "AT1:"
	PrefixOrder        = "ATO1:"
	PrefixOrderConsent = "ATC1:"
)

// MaxQRTextSize caps the QR text of any kind, in characters.
const MaxQRTextSize = 1200

// QRText returns the QR text form of raw message bytes with prefix.
func QRText(prefix string, raw []byte) string { return prefix + Base45Encode(raw) }

// FromQRText checks the prefix and size of QR text and returns the decoded
// bytes. A prefix of a known kind at another version is reported as such.
func FromQRText(prefix, text string) ([]byte, error) {
	kind := qrKinds[prefix]
	if len(text) > MaxQRTextSize {
		return nil, decodeErr(kind+" QR", "length %d exceeds the cap of %d characters", len(text), MaxQRTextSize)
	}
	rest, ok := strings.CutPrefix(text, prefix)
	if !ok {
		family := strings.TrimRight(strings.TrimSuffix(prefix, ":"), "0123456789")
		head, _, found := strings.Cut(text, ":")
		if found && len(head) > len(family) && len(head) <= 8 && strings.HasPrefix(head, family) &&
			strings.Trim(head[len(family):], "0123456789") == "" {
			return nil, decodeErr(kind+" QR", "unsupported version %q, want %q", head+":", prefix)
		}
		return nil, decodeErr(kind+" QR", "want prefix %q", prefix)
	}
	b, err := Base45Decode(rest)
	if err != nil {
		return nil, &DecodeError{Kind: kind + " QR", Reason: "bad Base45", Err: err}
	}
	return b, nil
}

var qrKinds = map[string]string{
	PrefixPaymentCode:  "payment code",
	PrefixOrder:        "order",
	PrefixOrderConsent: "order consent",
}

// ParsePaymentCodeText decodes the QR text of a payment code ("AT1:...").
func ParsePaymentCodeText(text string) (*SignedPaymentCode, error) {
	b, err := FromQRText(PrefixPaymentCode, text)
	if err != nil {
		return nil, err
	}
	return ParsePaymentCode(b)
}

// ParseOrderConsentText decodes the QR text of an order consent ("ATC1:...").
func ParseOrderConsentText(text string) (*SignedOrderConsent, error) {
	b, err := FromQRText(PrefixOrderConsent, text)
	if err != nil {
		return nil, err
	}
	return ParseOrderConsent(b)
}

// ParseOrderText decodes the QR text of an order ("ATO1:...").
func ParseOrderText(text string) (Order, error) {
	b, err := FromQRText(PrefixOrder, text)
	if err != nil {
		return Order{}, err
	}
	return DecodeOrder(b)
}

// OrderText returns the QR text of an order.
func OrderText(o Order) (string, error) {
	b, err := o.Encode()
	if err != nil {
		return "", err
	}
	return QRText(PrefixOrder, b), nil
}
