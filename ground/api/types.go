package api

import (
	"fmt"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// JSON bodies of the API, shared by the server and Client. Ids are 32
// lower-case hex characters, keys their prefixed text form
// ("airtab-device-pub:…"), money {"minor": 1250, "currency": "EUR"}, times
// RFC 3339 UTC, signed messages ("cose") standard base64 of the COSE_Sign1
// bytes.

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is a stable code (see registry.Code) and a message.
type ErrorDetail struct {
	Code    registry.Code `json:"code"`
	Message string        `json:"message"`
}

// CreatePassengerRequest is the body of POST /v1/passengers.
type CreatePassengerRequest struct {
	DeviceKey   string `json:"device_key"`             // airtab-device-pub:…
	ExternalRef string `json:"external_ref,omitempty"` // optional opaque reference
}

// DeviceRequest is the body of POST /v1/me/devices.
type DeviceRequest struct {
	DeviceKey string `json:"device_key"`
}

// TopUpRequest is the body of POST /v1/me/wallet/topups. Ref is the
// client's idempotency key: the same ref never credits twice.
type TopUpRequest struct {
	Amount protocol.Money `json:"amount"`
	Ref    protocol.ID    `json:"ref"`
}

// Balance is a wallet balance.
type Balance struct {
	Balance protocol.Money `json:"balance"`
}

// OptInRequest is the body of POST /v1/me/credentials.
type OptInRequest struct {
	Flight protocol.FlightID `json:"flight"`
}

// Account is a passenger's account: GET /v1/me, and the back office's
// GET /v1/passengers/{id}.
type Account struct {
	Passenger   protocol.ID `json:"passenger"`
	ExternalRef string      `json:"external_ref,omitempty"`
	Score       int         `json:"score"`
	Threshold   int         `json:"eligibility_threshold"`
	Eligible    bool        `json:"eligible"`
	// Ineligible says why the passenger may not opt in, when they may not.
	Ineligible string `json:"ineligible_reason,omitempty"`
	// Limits are the per-flight limit and per-sale cap of the passenger's
	// score band, one per supported currency; absent below the threshold.
	Limits []Limits `json:"limits,omitempty"`
	// Funding is the funding source without the acquirer token.
	Funding      *ground.FundingSource `json:"funding,omitempty"`
	Devices      []string              `json:"devices"`
	Arrears      []ArrearsEntry        `json:"arrears"`
	Credentials  []CredentialSummary   `json:"credentials"`
	ScoreHistory []ScoreEvent          `json:"score_history"`
	CreatedAt    time.Time             `json:"created_at"`
}

// Limits are the limits of a score band in one currency.
type Limits struct {
	Limit protocol.Money `json:"limit"`
	TxCap protocol.Money `json:"tx_cap"`
}

// ArrearsEntry is an unpaid invoice.
type ArrearsEntry struct {
	Passenger protocol.ID `json:"passenger"`
	Invoice   protocol.ID `json:"invoice"`
	Since     time.Time   `json:"since"`
}

// ArrearsList is the body of GET /v1/arrears.
type ArrearsList struct {
	Arrears   []ArrearsEntry `json:"arrears"`
	Truncated bool           `json:"truncated"` // more than the limit are open
}

// ScoreEvent is one change of a passenger's score.
type ScoreEvent struct {
	Score  int       `json:"score"`
	Change int       `json:"change"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// CredentialSummary lists a credential in an account.
type CredentialSummary struct {
	ID       protocol.ID       `json:"id"`
	Flight   protocol.FlightID `json:"flight"`
	Limit    protocol.Money    `json:"limit"`
	NotAfter time.Time         `json:"not_after"`
	Revoked  bool              `json:"revoked"`
}

// Credential is an issued credential: its fields for a person to read and
// the signed COSE bytes the wallet stores (protocol.Wallet.AddCredential).
type Credential struct {
	ID        protocol.ID       `json:"id"`
	Passenger protocol.ID       `json:"passenger"`
	Device    string            `json:"device"`
	Flight    protocol.FlightID `json:"flight"`
	Limit     protocol.Money    `json:"limit"`
	TxCap     protocol.Money    `json:"tx_cap"`
	NotBefore time.Time         `json:"not_before"`
	NotAfter  time.Time         `json:"not_after"`
	IssuedAt  time.Time         `json:"issued_at"`
	RevokedAt *time.Time        `json:"revoked_at,omitempty"`
	COSE      []byte            `json:"cose"`
}

// Parse decodes the signed credential and checks it says what the JSON
// fields say. Verify it against the issuer's trust list before use.
func (c Credential) Parse() (*protocol.SignedCredential, error) {
	s, err := protocol.ParseCredential(c.COSE)
	if err != nil {
		return nil, err
	}
	if s.Body.ID != c.ID || s.Body.Flight != c.Flight || s.Body.Limit != c.Limit || s.Body.TxCap != c.TxCap {
		return nil, fmt.Errorf("credential %s: the signed bytes do not match the JSON fields", c.ID)
	}
	return s, nil
}

// AircraftRequest is the body of PUT /v1/aircraft/{aircraft}.
type AircraftRequest struct {
	Key  string `json:"key"`            // airtab-aircraft-pub:…
	NKey string `json:"nkey,omitempty"` // NATS user public nkey, U…
}

// AircraftView is a registered aircraft.
type AircraftView struct {
	ID   protocol.AircraftID `json:"aircraft"`
	Key  string              `json:"key"`
	NKey string              `json:"nkey,omitempty"`
}

// Caps are a flight's risk caps. In a request, a zero or absent field takes
// the default.
type Caps struct {
	AircraftExposure      *protocol.Money `json:"aircraft_exposure,omitempty"`
	CodeFreshSeconds      uint32          `json:"code_fresh_seconds,omitempty"`
	ClockSkewSeconds      uint32          `json:"clock_skew_seconds,omitempty"`
	VelocityCount         uint32          `json:"velocity_count,omitempty"`
	VelocityWindowSeconds uint32          `json:"velocity_window_seconds,omitempty"`
}

// FlightRequest is the body of POST /v1/flights.
type FlightRequest struct {
	Carrier  string                 `json:"carrier"` // "XX"
	Number   string                 `json:"number"`  // "123"
	Date     string                 `json:"date"`    // scheduled departure, "2026-11-21" (UTC)
	Aircraft protocol.AircraftID    `json:"aircraft"`
	Currency protocol.Currency      `json:"currency"`
	Catalog  []protocol.CatalogItem `json:"catalog"`
	Caps     *Caps                  `json:"caps,omitempty"`
}

// CrewView is a crew member without the PIN hash.
type CrewView struct {
	ID   string `json:"id"`
	Role string `json:"role"`
}

// FlightView is a registered flight.
type FlightView struct {
	ID          protocol.FlightID      `json:"flight"`
	Aircraft    protocol.AircraftID    `json:"aircraft"`
	Currency    protocol.Currency      `json:"currency"`
	Catalog     []protocol.CatalogItem `json:"catalog"`
	Caps        Caps                   `json:"caps"`
	Crew        []CrewView             `json:"crew"`
	Serial      uint64                 `json:"manifest_serial"` // latest manifest; 0 before the first
	Credentials int                    `json:"credentials"`     // live
	Revoked     int                    `json:"revoked"`
}

// CrewEntry is one crew member in PUT /v1/flights/{flight}/crew: exactly one
// of PIN (hashed with argon2id on arrival, never stored) and PINHash (a PHC
// string from crypto.HashPIN).
type CrewEntry struct {
	ID      string `json:"id"`
	Role    string `json:"role"` // purser or attendant
	PIN     string `json:"pin,omitempty"`
	PINHash string `json:"pin_hash,omitempty"`
}

// CrewRequest is the body of PUT /v1/flights/{flight}/crew.
type CrewRequest struct {
	Crew []CrewEntry `json:"crew"`
}

// ManifestView is a newly issued manifest.
type ManifestView struct {
	Flight      protocol.FlightID `json:"flight"`
	Serial      uint64            `json:"serial"`
	IssuedAt    time.Time         `json:"issued_at"`
	ExpiresAt   time.Time         `json:"expires_at"`
	Credentials int               `json:"credentials"`
	Deny        int               `json:"deny"`
	COSE        []byte            `json:"cose"`
}

// views from registry types.

func accountView(p registry.Passenger, pol registry.LimitPolicy) Account {
	a := Account{
		Passenger: p.ID, ExternalRef: p.ExternalRef, Score: p.Score, Threshold: pol.Threshold(), CreatedAt: p.CreatedAt,
		Devices: []string{}, Arrears: []ArrearsEntry{}, Credentials: []CredentialSummary{}, ScoreHistory: []ScoreEvent{},
	}
	if p.Funding != nil {
		f := *p.Funding
		f.Token = ""
		a.Funding = &f
	}
	for _, d := range p.Devices {
		a.Devices = append(a.Devices, d.String())
	}
	for _, e := range p.Arrears {
		a.Arrears = append(a.Arrears, ArrearsEntry{Passenger: e.Passenger, Invoice: e.Invoice, Since: e.MarkedAt})
	}
	for _, c := range p.Credentials {
		b := c.Signed.Body
		a.Credentials = append(a.Credentials, CredentialSummary{ID: b.ID, Flight: b.Flight, Limit: b.Limit, NotAfter: b.NotAfter, Revoked: !c.RevokedAt.IsZero()})
	}
	for _, e := range p.ScoreHistory {
		a.ScoreHistory = append(a.ScoreHistory, ScoreEvent(e))
	}
	if p.Score >= pol.Threshold() {
		for _, c := range pol.Currencies() {
			l, tx, _ := pol.Limits(p.Score, c)
			a.Limits = append(a.Limits, Limits{Limit: l, TxCap: tx})
		}
	}
	switch {
	case p.Score < pol.Threshold():
		a.Ineligible = fmt.Sprintf("credit score %d is below the eligibility threshold of %d", p.Score, pol.Threshold())
	case len(p.Arrears) > 0:
		a.Ineligible = "unpaid invoices in arrears"
	case p.Funding == nil:
		a.Ineligible = "no funding source linked"
	}
	a.Eligible = a.Ineligible == ""
	return a
}

func credentialView(ic registry.IssuedCredential) Credential {
	b := ic.Signed.Body
	c := Credential{
		ID: b.ID, Passenger: b.Passenger, Device: b.Device.String(), Flight: b.Flight, Limit: b.Limit, TxCap: b.TxCap,
		NotBefore: b.NotBefore.UTC(), NotAfter: b.NotAfter.UTC(), IssuedAt: ic.IssuedAt, COSE: ic.Signed.Raw,
	}
	if !ic.RevokedAt.IsZero() {
		t := ic.RevokedAt
		c.RevokedAt = &t
	}
	return c
}

func capsView(c protocol.Caps) Caps {
	e := c.AircraftExposure
	return Caps{AircraftExposure: &e, CodeFreshSeconds: c.CodeFreshSeconds, ClockSkewSeconds: c.ClockSkewSeconds,
		VelocityCount: c.VelocityCount, VelocityWindowSeconds: c.VelocityWindowSeconds}
}

func flightView(f registry.Flight) FlightView {
	v := FlightView{ID: f.ID, Aircraft: f.Aircraft, Currency: f.Currency, Catalog: f.Catalog, Caps: capsView(f.Caps),
		Crew: []CrewView{}, Serial: f.Serial, Credentials: f.Credentials, Revoked: f.Revoked}
	if v.Catalog == nil {
		v.Catalog = []protocol.CatalogItem{}
	}
	for _, m := range f.Crew {
		v.Crew = append(v.Crew, CrewView{ID: m.ID, Role: m.Role})
	}
	return v
}
