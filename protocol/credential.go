package protocol

import (
	"errors"
	"fmt"
	"time"

	"github.com/airtab/airtab/crypto"
)

// Signing domains, one per signed message kind. A signature made under one
// never verifies under another.
const (
	DomainCredential    crypto.Domain = "airtab/credential/v1"
	DomainManifest      crypto.Domain = "airtab/manifest/v1"
	DomainManifestDelta crypto.Domain = "airtab/manifest-delta/v1"
	DomainPaymentCode   crypto.Domain = "airtab/payment-code/v1"
	DomainOrderConsent  crypto.Domain = "airtab/order-consent/v1"
	DomainInvoice       crypto.Domain = "airtab/invoice/v1"
	DomainFlightClose   crypto.Domain = "airtab/flight-close/v1"
	DomainReceipt       crypto.Domain = "airtab/clearing-receipt/v1"
)

// Size caps, in bytes, of each message kind's complete encoding.
const (
	MaxCredentialSize    = 512
	MaxManifestSize      = 900 << 10 // below NATS's default 1 MiB max payload
	MaxManifestDeltaSize = 256 << 10
	MaxPaymentCodeSize   = 640 // the full form carries a credential
	MaxOrderSize         = 2048
	MaxOrderConsentSize  = 640
	MaxInvoiceSize       = 4096
	MaxFlightCloseSize   = 2048
	MaxReceiptSize       = 512
)

// Credential is the issuer's statement that a passenger's device may spend
// up to Limit on one flight, at most TxCap per sale, between NotBefore and
// NotAfter. It is signed by an issuer key (DomainCredential) and carried in
// the flight manifest, or inside a full-form payment code for a passenger
// who registered after the manifest was fetched.
type Credential struct {
	Version   uint      `cbor:"1,keyasint,omitzero"`
	ID        ID        `cbor:"2,keyasint,omitzero"` // credential serial
	Passenger ID        `cbor:"3,keyasint,omitzero"` // pseudonymous passenger id
	Device    DeviceKey `cbor:"4,keyasint,omitzero"`
	Flight    FlightID  `cbor:"5,keyasint,omitzero"`
	Limit     Money     `cbor:"6,keyasint,omitzero"` // per-flight spending limit
	TxCap     Money     `cbor:"7,keyasint,omitzero"` // per-transaction cap
	NotBefore time.Time `cbor:"8,keyasint,omitzero"`
	NotAfter  time.Time `cbor:"9,keyasint,omitzero"`
}

// SignedCredential is a credential with its issuer signature.
type SignedCredential = Signed[Credential]

func (Credential) kind() kind {
	return kind{name: "credential", domain: DomainCredential, maxSize: MaxCredentialSize, signer: crypto.Issuer}
}

func (c Credential) validate() error {
	return firstErr(
		checkVersion(c.Version),
		required("id", !c.ID.IsZero()),
		required("passenger", !c.Passenger.IsZero()),
		required("device key", !c.Device.IsZero()),
		c.Flight.Validate(),
		positive("limit", c.Limit),
		positive("transaction cap", c.TxCap),
		sameCurrency("limit", c.Limit, "transaction cap", c.TxCap),
		capWithinLimit(c.TxCap, c.Limit),
		window(c.NotBefore, c.NotAfter),
	)
}

func capWithinLimit(txCap, limit Money) error {
	if txCap.Minor > limit.Minor {
		return fmt.Errorf("transaction cap %s exceeds the flight limit %s", txCap, limit)
	}
	return nil
}

// ValidAt reports whether t lies in [NotBefore, NotAfter).
func (c Credential) ValidAt(t time.Time) bool {
	return !t.Before(c.NotBefore) && t.Before(c.NotAfter)
}

// ParseCredential strictly decodes a signed credential; see Parse.
func ParseCredential(b []byte) (*SignedCredential, error) { return Parse[Credential](b) }

// validation helpers, shared by every message kind.

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func checkVersion(v uint) error {
	if v != Version {
		return fmt.Errorf("version %d not supported, want %d", v, Version)
	}
	return nil
}

func required(field string, ok bool) error {
	if !ok {
		return fmt.Errorf("missing %s", field)
	}
	return nil
}

func positive(field string, m Money) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if m.Minor <= 0 {
		return fmt.Errorf("%s %s: must be positive", field, m)
	}
	return nil
}

func nonNegative(field string, m Money) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	if m.Minor < 0 {
		return fmt.Errorf("%s %s: must not be negative", field, m)
	}
	return nil
}

func sameCurrency(f1 string, a Money, f2 string, b Money) error {
	if a.Currency != b.Currency {
		return fmt.Errorf("%s in %s but %s in %s: %w", f1, a.Currency, f2, b.Currency, ErrCurrencyMismatch)
	}
	return nil
}

func window(from, to time.Time) error {
	if from.IsZero() || to.IsZero() {
		return errors.New("missing validity window")
	}
	if !to.After(from) {
		return fmt.Errorf("validity window ends (%s) before it starts (%s)", to.UTC().Format(time.RFC3339), from.UTC().Format(time.RFC3339))
	}
	return nil
}

func maxLen(field string, n, limit int) error {
	if n > limit {
		return fmt.Errorf("%s: %d entries exceed the limit of %d", field, n, limit)
	}
	return nil
}

func textField(field, s string, minLen, maxLen int) error {
	if len(s) < minLen || len(s) > maxLen {
		return fmt.Errorf("%s %q: length %d, want %d to %d bytes", field, trunc(s), len(s), minLen, maxLen)
	}
	return nil
}
