package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/airtab/airtab/crypto"
)

// InvoiceKind says whether an invoice records a sale or reverses one.
type InvoiceKind uint

// Invoice kinds. Stable numbers: do not reorder; add only at the end.
const (
	KindSale InvoiceKind = 1
	KindVoid InvoiceKind = 2 // reverses the sale named in Voids; never a deletion
)

func (k InvoiceKind) String() string {
	switch k {
	case KindSale:
		return "sale"
	case KindVoid:
		return "void"
	}
	return fmt.Sprintf("kind(%d)", uint(k))
}

// Invoice is the cabin server's durable record of one approved sale or one
// void, signed by the aircraft key (DomainInvoice). Invoices of a flight are
// numbered from 1 without gaps, and each carries the SHA-256 of the previous
// invoice's signed bytes, so ground can tell a missing or altered invoice.
//
// A sale carries the passenger's payment code (or order consent) exactly as
// scanned, so ground re-verifies the passenger's signature itself.
type Invoice struct {
	Version    uint        `cbor:"1,keyasint,omitzero"`
	ID         ID          `cbor:"2,keyasint,omitzero"` // the idempotency key, end to end
	Flight     FlightID    `cbor:"3,keyasint,omitzero"`
	Aircraft   AircraftID  `cbor:"4,keyasint,omitzero"`
	Seq        uint64      `cbor:"5,keyasint,omitzero"` // 1, 2, 3, ... per flight
	Prev       Hash        `cbor:"6,keyasint,omitzero"` // hash of invoice Seq-1; zero for Seq 1
	Kind       InvoiceKind `cbor:"7,keyasint,omitzero"`
	Credential ID          `cbor:"8,keyasint,omitzero"`
	Passenger  ID          `cbor:"9,keyasint,omitzero"`
	Lines      []OrderLine `cbor:"10,keyasint,omitempty,omitzero"` // priced from the manifest catalog
	Total      Money       `cbor:"11,keyasint,omitzero"`
	CreatedAt  time.Time   `cbor:"12,keyasint,omitzero"`
	Code       []byte      `cbor:"13,keyasint,omitempty,omitzero"` // sale: SignedPaymentCode Raw
	Consent    []byte      `cbor:"14,keyasint,omitempty,omitzero"` // sale, two-way mode: SignedOrderConsent Raw
	Order      []byte      `cbor:"15,keyasint,omitempty,omitzero"` // sale, two-way mode: the order's canonical CBOR
	Voids      ID          `cbor:"16,keyasint,omitzero"`           // void: the sale it reverses
	Crew       string      `cbor:"17,keyasint,omitzero"`           // crew id who made it
}

// SignedInvoice is an invoice with the aircraft's signature.
type SignedInvoice = Signed[Invoice]

// MaxSeq is the largest invoice sequence number (and flight-close last_seq):
// 2^63−1, so every store keeps it as a signed 64-bit integer. A flight never
// comes near it; an invoice over it is malformed.
const MaxSeq = math.MaxInt64

func (Invoice) kind() kind {
	return kind{name: "invoice", domain: DomainInvoice, maxSize: MaxInvoiceSize, signer: crypto.Aircraft}
}

func (v Invoice) validate() error {
	_, err := v.validateParts()
	return err
}

// validateParts validates v and returns the sale's payment code or order
// consent as it parsed them (nil for a void), for Parse to keep (SaleProof).
func (v Invoice) validateParts() (any, error) {
	err := firstErr(
		checkVersion(v.Version),
		required("id", !v.ID.IsZero()),
		v.Flight.Validate(),
		v.Aircraft.Validate(),
		required("sequence number", v.Seq > 0),
		required("previous hash", v.Seq == 1 || !v.Prev.IsZero()),
		required("credential", !v.Credential.IsZero()),
		required("passenger", !v.Passenger.IsZero()),
		positive("total", v.Total),
		required("created time", !v.CreatedAt.IsZero()),
		textField("crew id", v.Crew, 1, 32),
	)
	if err != nil {
		return nil, err
	}
	if v.Seq > MaxSeq {
		return nil, fmt.Errorf("sequence number %d is over the limit %d", v.Seq, uint64(MaxSeq))
	}
	if v.Seq == 1 && !v.Prev.IsZero() {
		return nil, errors.New("first invoice of a flight must have a zero previous hash")
	}
	switch v.Kind {
	case KindSale:
		return v.validateSale()
	case KindVoid:
		return nil, firstErr(
			required("voided sale", !v.Voids.IsZero()),
			absent("lines", len(v.Lines) == 0),
			absent("payment code", len(v.Code) == 0),
			absent("consent", len(v.Consent) == 0 && len(v.Order) == 0),
		)
	}
	return nil, fmt.Errorf("unknown invoice kind %d", uint(v.Kind))
}

func (v Invoice) validateSale() (any, error) {
	err := firstErr(
		validateLines(v.Lines, true),
		absent("voided sale", v.Voids.IsZero()),
	)
	if err != nil {
		return nil, err
	}
	sum, err := LinesTotal(v.Lines, v.Total.Currency)
	if err != nil {
		return nil, err
	}
	if sum != v.Total {
		return nil, fmt.Errorf("total %s is not the sum of the lines %s", v.Total, sum)
	}
	hasCode, hasConsent, hasOrder := len(v.Code) > 0, len(v.Consent) > 0, len(v.Order) > 0
	if hasCode == hasConsent {
		return nil, errors.New("a sale carries exactly one of payment code and order consent")
	}
	if hasConsent != hasOrder {
		return nil, errors.New("an order consent travels with its order")
	}
	if hasCode {
		pc, err := ParsePaymentCode(v.Code)
		if err != nil {
			return nil, err
		}
		return pc, nil
	}
	oc, err := ParseOrderConsent(v.Consent)
	if err != nil {
		return nil, err
	}
	if _, err := DecodeOrder(v.Order); err != nil {
		return nil, err
	}
	return oc, nil
}

func absent(field string, ok bool) error {
	if !ok {
		return fmt.Errorf("unexpected %s", field)
	}
	return nil
}

// ParseInvoice strictly decodes a signed invoice; see Parse.
func ParseInvoice(b []byte) (*SignedInvoice, error) { return Parse[Invoice](b) }

// SaleProof returns the passenger's authorization of sale inv: its payment
// code, or its order consent, parsed strictly (form only; verify the
// signature before believing it). Parse keeps what it parsed when it
// checked the invoice, so a reader that parses a sale and then its proof
// parses the proof once; for an invoice not from Parse, or whose Body.Code
// or Body.Consent no longer holds what was parsed, it parses them now. The
// result may be shared with other callers: read it, do not change it.
func SaleProof(inv *SignedInvoice) (*SignedPaymentCode, *SignedOrderConsent, error) {
	b := inv.Body
	if b.Kind != KindSale {
		return nil, nil, fmt.Errorf("invoice %s: a %s carries no payment code or consent", b.ID, b.Kind)
	}
	switch p := inv.parts.(type) {
	case *SignedPaymentCode:
		if len(b.Consent) == 0 && bytes.Equal(p.Raw, b.Code) {
			return p, nil, nil
		}
	case *SignedOrderConsent:
		if len(b.Code) == 0 && bytes.Equal(p.Raw, b.Consent) {
			return nil, p, nil
		}
	}
	if len(b.Code) > 0 {
		pc, err := ParsePaymentCode(b.Code)
		return pc, nil, err
	}
	oc, err := ParseOrderConsent(b.Consent)
	return nil, oc, err
}

// wire returns what decoding v's canonical encoding gives (see wireBody).
func (v Invoice) wire() (Invoice, error) {
	if len(v.Lines) > maxArrayElements {
		return Invoice{}, fmt.Errorf("decode back: %d lines exceed the decoder's %d array elements", len(v.Lines), maxArrayElements)
	}
	err := wireStrings(string(v.Flight), string(v.Aircraft), string(v.Total.Currency), v.Crew)
	if err != nil {
		return Invoice{}, err
	}
	w := v
	w.Lines = nil
	if len(v.Lines) > 0 {
		w.Lines = make([]OrderLine, len(v.Lines))
		for i, l := range v.Lines {
			if err := wireStrings(l.SKU, string(l.UnitPrice.Currency)); err != nil {
				return Invoice{}, err
			}
			w.Lines[i] = l
		}
	}
	w.CreatedAt = wireTime(v.CreatedAt)
	w.Code, w.Consent, w.Order = wireBytes(v.Code), wireBytes(v.Consent), wireBytes(v.Order)
	return w, nil
}
