package protocol

import (
	"fmt"
	"time"

	"github.com/airtab/airtab/crypto"
)

// Limits on what one manifest may hold.
const (
	MaxPassengers  = 1000 // credentials per manifest: the largest airliners seat about 850
	MaxDenyEntries = 4000
	MaxTrustKeys   = 16
	MaxCrew        = 64
	MaxCatalog     = 512
)

// Manifest is everything a cabin server needs to sell on one flight with no
// link to the ground: the passengers' credentials, the deny list, the issuer
// trust list, the crew's sign-in records, the catalog and the caps. It is
// signed by an issuer key (DomainManifest) that the cabin server already
// trusts, and it expires: a cabin server refuses to sell on an expired one.
type Manifest struct {
	Version     uint          `cbor:"1,keyasint,omitzero"`
	Flight      FlightID      `cbor:"2,keyasint,omitzero"`
	Aircraft    AircraftID    `cbor:"3,keyasint,omitzero"`
	AircraftKey AircraftKey   `cbor:"4,keyasint,omitzero"` // the key the aircraft signs invoices with
	Serial      uint64        `cbor:"5,keyasint,omitzero"` // grows with every manifest issued for the flight
	IssuedAt    time.Time     `cbor:"6,keyasint,omitzero"`
	ExpiresAt   time.Time     `cbor:"7,keyasint,omitzero"`
	Currency    Currency      `cbor:"8,keyasint,omitzero"`           // the flight's selling currency
	Credentials [][]byte      `cbor:"9,keyasint,omitempty,omitzero"` // each a SignedCredential's Raw bytes
	Deny        []DenyEntry   `cbor:"10,keyasint,omitempty,omitzero"`
	Trust       []TrustEntry  `cbor:"11,keyasint,omitempty,omitzero"`
	Crew        []CrewMember  `cbor:"12,keyasint,omitempty,omitzero"`
	Catalog     []CatalogItem `cbor:"13,keyasint,omitempty,omitzero"`
	Caps        Caps          `cbor:"14,keyasint,omitzero"`
	// RevokedIssuers are issuer keys the issuer has revoked (compromised):
	// a cabin server that accepts this manifest refuses anything signed
	// by them from then on, whatever its own trust anchor says.
	RevokedIssuers []IssuerKey `cbor:"15,keyasint,omitempty,omitzero"`
}

// SignedManifest is a manifest with its issuer signature.
type SignedManifest = Signed[Manifest]

// DenyReason says why a passenger or credential is on the deny list. The
// numbers are stable: do not reorder; add only at the end.
type DenyReason uint

// Deny reasons.
const (
	DenyArrears DenyReason = 1 // a deferred charge failed and is unpaid
	// DenyRevoked: the issuer revoked the credential; the passenger may not
	// opt in to that flight again until the back office reinstates it.
	DenyRevoked DenyReason = 2
	// DenyDeviceLost: the passenger reported the device lost; its key is
	// refused on every flight and may not opt in again.
	DenyDeviceLost DenyReason = 3
	// DenyFraudSuspected: the passenger may not pay or opt in on any
	// flight until the back office lifts it.
	DenyFraudSuspected DenyReason = 4
	// DenyPassengerRequest: the credential was withdrawn at the
	// passenger's request (to move it to another device, say); the
	// passenger may opt in again.
	DenyPassengerRequest DenyReason = 5
)

// DenyEntry refuses a passenger (every credential of theirs), a device key
// (every credential bound to it) or a single credential; an entry naming
// several refuses every credential any of them matches. At least one of
// Passenger, Credential and Device is set.
type DenyEntry struct {
	Passenger  ID         `cbor:"1,keyasint,omitzero" json:"passenger,omitzero"`
	Credential ID         `cbor:"2,keyasint,omitzero" json:"credential,omitzero"`
	Reason     DenyReason `cbor:"3,keyasint,omitzero" json:"reason"`
	Device     DeviceKey  `cbor:"4,keyasint,omitzero" json:"device,omitzero"`
}

// TrustEntry is one trusted public key with its validity window.
type TrustEntry struct {
	Purpose   crypto.Purpose `cbor:"1,keyasint,omitzero"`
	Key       []byte         `cbor:"2,keyasint,omitempty,omitzero"` // 32 raw Ed25519 bytes
	NotBefore time.Time      `cbor:"3,keyasint,omitzero"`
	NotAfter  time.Time      `cbor:"4,keyasint,omitzero"`
}

// CrewMember is a crew sign-in record: the crew id, role, and the argon2id
// hash of the PIN in PHC string form (see crypto.HashPIN).
type CrewMember struct {
	ID      string `cbor:"1,keyasint,omitzero"`
	Role    string `cbor:"2,keyasint,omitzero"` // "purser" or "attendant"
	PINHash string `cbor:"3,keyasint,omitzero"`
}

// CatalogItem is one thing for sale, at the price in the flight's currency.
// The cabin server takes prices from here only, never from a handheld.
type CatalogItem struct {
	SKU      string `cbor:"1,keyasint,omitzero" json:"sku"`
	Name     string `cbor:"2,keyasint,omitzero" json:"name"`
	Price    Money  `cbor:"3,keyasint,omitzero" json:"price"`
	Category string `cbor:"4,keyasint,omitzero" json:"category"` // "meal", "drink", "duty-free", ...
}

// Caps are the flight's risk limits, enforced by the cabin server.
type Caps struct {
	// AircraftExposure is the most the aircraft may approve on the flight
	// in total, across all passengers.
	AircraftExposure Money `cbor:"1,keyasint,omitzero"`
	// CodeFreshSeconds is how old a payment code may be when scanned.
	CodeFreshSeconds uint32 `cbor:"2,keyasint,omitzero"`
	// ClockSkewSeconds is how far in the future a code's time may be
	// (phones' clocks drift).
	ClockSkewSeconds uint32 `cbor:"3,keyasint,omitzero"`
	// VelocityCount sales per passenger are allowed in any window of
	// VelocityWindowSeconds; the next is declined. Stops split sales.
	VelocityCount         uint32 `cbor:"4,keyasint,omitzero"`
	VelocityWindowSeconds uint32 `cbor:"5,keyasint,omitzero"`
}

func (Manifest) kind() kind {
	return kind{name: "manifest", domain: DomainManifest, maxSize: MaxManifestSize, signer: crypto.Issuer}
}

func (m Manifest) validate() error {
	err := firstErr(
		checkVersion(m.Version),
		m.Flight.Validate(),
		m.Aircraft.Validate(),
		required("aircraft key", !m.AircraftKey.IsZero()),
		required("serial", m.Serial > 0),
		window(m.IssuedAt, m.ExpiresAt),
		m.Currency.Validate(),
		maxLen("credentials", len(m.Credentials), MaxPassengers),
		maxLen("deny list", len(m.Deny), MaxDenyEntries),
		maxLen("trust list", len(m.Trust), MaxTrustKeys),
		maxLen("revoked issuer keys", len(m.RevokedIssuers), MaxTrustKeys),
		maxLen("crew", len(m.Crew), MaxCrew),
		maxLen("catalog", len(m.Catalog), MaxCatalog),
		validateDeny(m.Deny),
		validateTrust(m.Trust),
		validateRevoked(m.Trust, m.RevokedIssuers),
		validateCrew(m.Crew),
		validateCatalog(m.Catalog, m.Currency),
		m.Caps.validate(m.Currency),
	)
	if err != nil {
		return err
	}
	_, err = parseCredentials(m.Credentials, m.Flight)
	return err
}

// ParseCredentials decodes the manifest's credentials (form only; verify each
// against the trust list before use).
func (m Manifest) ParseCredentials() ([]*SignedCredential, error) {
	return parseCredentials(m.Credentials, m.Flight)
}

// TrustList builds the crypto trust list from the manifest's trust entries.
func (m Manifest) TrustList() (*crypto.TrustList, error) { return trustList(m.Trust) }

// ParseManifest strictly decodes a signed manifest; see Parse.
func ParseManifest(b []byte) (*SignedManifest, error) { return Parse[Manifest](b) }

func (c Caps) validate(cur Currency) error {
	return firstErr(
		positive("aircraft exposure cap", c.AircraftExposure),
		sameCurrency("aircraft exposure cap", c.AircraftExposure, "flight", Money{Currency: cur}),
		required("code freshness", c.CodeFreshSeconds > 0),
		required("velocity count", c.VelocityCount > 0),
		required("velocity window", c.VelocityWindowSeconds > 0),
	)
}

func parseCredentials(raw [][]byte, flight FlightID) ([]*SignedCredential, error) {
	out := make([]*SignedCredential, 0, len(raw))
	seen := make(map[ID]bool, len(raw))
	for i, b := range raw {
		c, err := ParseCredential(b)
		if err != nil {
			return nil, fmt.Errorf("credential %d: %w", i, err)
		}
		if c.Body.Flight != flight {
			return nil, fmt.Errorf("credential %d (%s) is for flight %s, not %s", i, c.Body.ID, c.Body.Flight, flight)
		}
		if seen[c.Body.ID] {
			return nil, fmt.Errorf("credential %s listed twice", c.Body.ID)
		}
		seen[c.Body.ID] = true
		out = append(out, c)
	}
	return out, nil
}

func validateDeny(d []DenyEntry) error {
	for i, e := range d {
		if e.Passenger.IsZero() && e.Credential.IsZero() && e.Device.IsZero() {
			return fmt.Errorf("deny entry %d: names no passenger, credential or device", i)
		}
		if e.Reason < DenyArrears || e.Reason > DenyPassengerRequest {
			return fmt.Errorf("deny entry %d: unknown reason %d", i, e.Reason)
		}
	}
	return nil
}

func validateTrust(t []TrustEntry) error {
	_, err := trustList(t)
	return err
}

// validateRevoked refuses a revoked key listed twice or also trusted.
func validateRevoked(t []TrustEntry, revoked []IssuerKey) error {
	for i, k := range revoked {
		for _, o := range revoked[:i] {
			if o.Equal(k.PublicKey) {
				return fmt.Errorf("revoked issuer key %s listed twice", k.ID())
			}
		}
		for _, e := range t {
			if e.Purpose == crypto.Issuer && string(e.Key) == string(k.Bytes()) {
				return fmt.Errorf("issuer key %s is both trusted and revoked", k.ID())
			}
		}
	}
	return nil
}

func trustList(t []TrustEntry) (*crypto.TrustList, error) {
	keys := make([]crypto.TrustedKey, 0, len(t))
	for i, e := range t {
		pub, err := crypto.PublicKeyFromBytes(e.Purpose, e.Key)
		if err != nil {
			return nil, fmt.Errorf("trust entry %d: %w", i, err)
		}
		if err := window(e.NotBefore, e.NotAfter); err != nil {
			return nil, fmt.Errorf("trust entry %d: %w", i, err)
		}
		keys = append(keys, crypto.TrustedKey{Key: pub, NotBefore: e.NotBefore, NotAfter: e.NotAfter})
	}
	return crypto.NewTrustList(keys...)
}

// TrustEntryFor makes a trust entry from a trusted key.
func TrustEntryFor(k crypto.TrustedKey) TrustEntry {
	return TrustEntry{Purpose: k.Key.Purpose(), Key: k.Key.Bytes(), NotBefore: k.NotBefore, NotAfter: k.NotAfter}
}

func validateCrew(c []CrewMember) error {
	seen := map[string]bool{}
	for i, m := range c {
		if err := firstErr(
			textField("crew id", m.ID, 1, 32),
			textField("crew role", m.Role, 1, 32),
			textField("crew PIN hash", m.PINHash, 16, 200),
		); err != nil {
			return fmt.Errorf("crew %d: %w", i, err)
		}
		if seen[m.ID] {
			return fmt.Errorf("crew %q listed twice", m.ID)
		}
		seen[m.ID] = true
	}
	return nil
}

func validateCatalog(items []CatalogItem, cur Currency) error {
	seen := map[string]bool{}
	for i, it := range items {
		if err := firstErr(
			textField("SKU", it.SKU, 1, 32),
			textField("item name", it.Name, 1, 80),
			nonNegative("price", it.Price),
			sameCurrency("price", it.Price, "flight", Money{Currency: cur}),
		); err != nil {
			return fmt.Errorf("catalog item %d: %w", i, err)
		}
		if seen[it.SKU] {
			return fmt.Errorf("catalog SKU %q listed twice", it.SKU)
		}
		seen[it.SKU] = true
	}
	return nil
}

// ManifestDelta adds to a manifest while the link lasts: late registrants'
// credentials (and raised ones, see Credential.RaisedFrom), new deny-list
// entries and lifted ones, and the crew roster when it changed. Deltas for a
// manifest are numbered from 1 without gaps and must be applied in order.
type ManifestDelta struct {
	Version     uint        `cbor:"1,keyasint,omitzero"`
	Flight      FlightID    `cbor:"2,keyasint,omitzero"`
	Aircraft    AircraftID  `cbor:"3,keyasint,omitzero"`
	BaseSerial  uint64      `cbor:"4,keyasint,omitzero"` // the manifest serial it applies to
	Seq         uint64      `cbor:"5,keyasint,omitzero"` // 1, 2, 3, ... per base manifest
	IssuedAt    time.Time   `cbor:"6,keyasint,omitzero"`
	ExpiresAt   time.Time   `cbor:"7,keyasint,omitzero"` // new expiry of the manifest
	Credentials [][]byte    `cbor:"8,keyasint,omitempty,omitzero"`
	Deny        []DenyEntry `cbor:"9,keyasint,omitempty,omitzero"`
	Undeny      []DenyEntry `cbor:"10,keyasint,omitempty,omitzero"` // entries lifted (debt paid)
	// Crew, when present, is the whole crew roster, replacing the one on
	// board: it changed since the manifest and its earlier deltas.
	Crew []CrewMember `cbor:"11,keyasint,omitempty,omitzero"`
}

// SignedManifestDelta is a manifest delta with its issuer signature.
type SignedManifestDelta = Signed[ManifestDelta]

func (ManifestDelta) kind() kind {
	return kind{name: "manifest delta", domain: DomainManifestDelta, maxSize: MaxManifestDeltaSize, signer: crypto.Issuer}
}

func (d ManifestDelta) validate() error {
	err := firstErr(
		checkVersion(d.Version),
		d.Flight.Validate(),
		d.Aircraft.Validate(),
		required("base serial", d.BaseSerial > 0),
		required("sequence number", d.Seq > 0),
		window(d.IssuedAt, d.ExpiresAt),
		maxLen("credentials", len(d.Credentials), MaxPassengers),
		maxLen("deny list", len(d.Deny), MaxDenyEntries),
		maxLen("lifted deny entries", len(d.Undeny), MaxDenyEntries),
		validateDeny(d.Deny),
		validateDeny(d.Undeny),
		maxLen("crew", len(d.Crew), MaxCrew),
		validateCrew(d.Crew),
	)
	if err != nil {
		return err
	}
	_, err = parseCredentials(d.Credentials, d.Flight)
	return err
}

// ParseCredentials decodes the delta's credentials (form only).
func (d ManifestDelta) ParseCredentials() ([]*SignedCredential, error) {
	return parseCredentials(d.Credentials, d.Flight)
}

// ParseManifestDelta strictly decodes a signed manifest delta; see Parse.
func ParseManifestDelta(b []byte) (*SignedManifestDelta, error) { return Parse[ManifestDelta](b) }
