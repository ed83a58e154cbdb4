package protocol

import (
	"fmt"
	"time"

	"github.com/airtab/airtab/crypto"
)

// FlightClose is the aircraft's signed account of a closed flight
// (DomainFlightClose): what it sold and voided, the last invoice sequence
// number and the head of the hash chain. Ground reconciles what it received
// against it.
type FlightClose struct {
	Version  uint       `cbor:"1,keyasint,omitzero"`
	Flight   FlightID   `cbor:"2,keyasint,omitzero"`
	Aircraft AircraftID `cbor:"3,keyasint,omitzero"`
	ClosedAt time.Time  `cbor:"4,keyasint,omitzero"`
	Sales    uint64     `cbor:"5,keyasint,omitzero"` // number of sale invoices
	Voids    uint64     `cbor:"6,keyasint,omitzero"` // number of void invoices
	// SalesTotal and VoidsTotal are per currency, sorted by currency code,
	// one entry per currency that has a sale.
	SalesTotal []Money `cbor:"7,keyasint,omitempty,omitzero"`
	VoidsTotal []Money `cbor:"8,keyasint,omitempty,omitzero"`
	LastSeq    uint64  `cbor:"9,keyasint,omitzero"`  // Sales + Voids
	Head       Hash    `cbor:"10,keyasint,omitzero"` // hash of invoice LastSeq; zero if none
}

// SignedFlightClose is a flight-close report with the aircraft's signature.
type SignedFlightClose = Signed[FlightClose]

func (FlightClose) kind() kind {
	return kind{name: "flight close", domain: DomainFlightClose, maxSize: MaxFlightCloseSize, signer: crypto.Aircraft}
}

func (f FlightClose) validate() error {
	err := firstErr(
		checkVersion(f.Version),
		f.Flight.Validate(),
		f.Aircraft.Validate(),
		required("close time", !f.ClosedAt.IsZero()),
		validTotals("sales total", f.SalesTotal),
		validTotals("voids total", f.VoidsTotal),
	)
	if err != nil {
		return err
	}
	if f.LastSeq > MaxSeq {
		return fmt.Errorf("last sequence %d is over the limit %d", f.LastSeq, uint64(MaxSeq))
	}
	// Compare without adding: Sales+Voids could wrap around to LastSeq.
	if f.Sales > f.LastSeq || f.LastSeq-f.Sales != f.Voids {
		return fmt.Errorf("last sequence %d is not sales %d + voids %d", f.LastSeq, f.Sales, f.Voids)
	}
	if (f.LastSeq == 0) != f.Head.IsZero() {
		return fmt.Errorf("chain head must be zero exactly when there are no invoices")
	}
	return nil
}

func validTotals(field string, ms []Money) error {
	if err := maxLen(field, len(ms), 8); err != nil {
		return err
	}
	for i, m := range ms {
		if err := nonNegative(field, m); err != nil {
			return err
		}
		if i > 0 && ms[i-1].Currency >= m.Currency {
			return fmt.Errorf("%s: currencies must be sorted and unique", field)
		}
	}
	return nil
}

// ParseFlightClose strictly decodes a signed flight-close report; see Parse.
func ParseFlightClose(b []byte) (*SignedFlightClose, error) { return Parse[FlightClose](b) }

// ClearingStatus is the outcome of clearing one invoice on the ground. Every
// status means the ledger has committed the outcome: the aircraft may forget
// the invoice. Stable numbers: do not reorder; add only at the end.
type ClearingStatus uint

// Clearing statuses.
const (
	// StatusSettled: posted to the ledger and the funding source charged.
	StatusSettled ClearingStatus = 1
	// StatusCollections: posted, but the charge was declined; the debt is
	// being collected and the passenger is deny-listed until it is paid.
	StatusCollections ClearingStatus = 2
	// StatusVoided: a void invoice, posted as a reversal of its sale.
	StatusVoided ClearingStatus = 3
	// StatusQuarantined: the invoice failed verification on the ground; it
	// is kept with its reason, never charged.
	StatusQuarantined ClearingStatus = 4
	// StatusCloseAccepted: the flight-close report was recorded.
	StatusCloseAccepted ClearingStatus = 5
	// StatusCloseRejected: the flight-close report failed verification on
	// the ground (the reason says why) and was not recorded. The cabin
	// server shows it rather than waiting in silence; the invoices are not
	// affected.
	StatusCloseRejected ClearingStatus = 6
)

// String returns the status's stable name, as SPEC.md §9.4 writes it.
func (s ClearingStatus) String() string {
	switch s {
	case StatusSettled:
		return "settled"
	case StatusCollections:
		return "collections"
	case StatusVoided:
		return "voided"
	case StatusQuarantined:
		return "quarantined"
	case StatusCloseAccepted:
		return "close-accepted"
	case StatusCloseRejected:
		return "close-rejected"
	}
	return fmt.Sprintf("status(%d)", uint(s))
}

// ClearingReceipt is ground's signed word (DomainReceipt, an issuer key) that
// its ledger has committed an invoice, or recorded a flight close. The cabin
// server keeps every invoice until it holds a receipt for it.
type ClearingReceipt struct {
	Version  uint           `cbor:"1,keyasint,omitzero"`
	Invoice  ID             `cbor:"2,keyasint,omitzero"` // zero for a flight close
	Flight   FlightID       `cbor:"3,keyasint,omitzero"`
	Aircraft AircraftID     `cbor:"4,keyasint,omitzero"`
	Seq      uint64         `cbor:"5,keyasint,omitzero"` // the invoice's sequence number, or the close's last sequence
	Status   ClearingStatus `cbor:"6,keyasint,omitzero"`
	Reason   Reason         `cbor:"7,keyasint,omitzero"` // quarantine or close-rejection reason
	Amount   Money          `cbor:"8,keyasint,omitzero"`
	At       time.Time      `cbor:"9,keyasint,omitzero"`
}

// SignedReceipt is a clearing receipt with ground's signature.
type SignedReceipt = Signed[ClearingReceipt]

func (ClearingReceipt) kind() kind {
	return kind{name: "clearing receipt", domain: DomainReceipt, maxSize: MaxReceiptSize, signer: crypto.Issuer}
}

func (r ClearingReceipt) validate() error {
	err := firstErr(
		checkVersion(r.Version),
		r.Flight.Validate(),
		r.Aircraft.Validate(),
		required("time", !r.At.IsZero()),
	)
	if err != nil {
		return err
	}
	switch r.Status {
	case StatusSettled, StatusCollections, StatusVoided:
		return firstErr(required("invoice", !r.Invoice.IsZero()), required("sequence number", r.Seq > 0), positive("amount", r.Amount))
	case StatusQuarantined:
		return firstErr(required("invoice", !r.Invoice.IsZero()), required("quarantine reason", r.Reason != 0))
	case StatusCloseAccepted:
		return absent("invoice", r.Invoice.IsZero())
	case StatusCloseRejected:
		return firstErr(absent("invoice", r.Invoice.IsZero()), required("rejection reason", r.Reason != 0))
	}
	return fmt.Errorf("unknown clearing status %d", uint(r.Status))
}

// ParseReceipt strictly decodes a signed clearing receipt; see Parse.
func ParseReceipt(b []byte) (*SignedReceipt, error) { return Parse[ClearingReceipt](b) }

// wire returns what decoding r's canonical encoding gives (see wireBody).
func (r ClearingReceipt) wire() (ClearingReceipt, error) {
	if err := wireStrings(string(r.Flight), string(r.Aircraft), string(r.Amount.Currency)); err != nil {
		return ClearingReceipt{}, err
	}
	w := r
	w.At = wireTime(r.At)
	return w, nil
}
