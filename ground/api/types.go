package api

import (
	"fmt"
	"time"

	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// JSON bodies of the API. The passenger side is the contract in
// protocol/passengerapi, named here too so callers of this package need not
// import both; the back-office bodies below are ground's own. Ids are 32
// lower-case hex characters, keys their prefixed text form
// ("airtab-device-pub:…"), money {"minor": 1250, "currency": "EUR"}, times
// RFC 3339 UTC, signed messages ("cose") standard base64 of the COSE_Sign1
// bytes.
type (
	// ErrorBody is the body of every error response.
	ErrorBody = passengerapi.ErrorBody
	// ErrorDetail is a stable code and a message.
	ErrorDetail = passengerapi.ErrorDetail
	// CreatePassengerRequest is the body of POST /v1/passengers.
	CreatePassengerRequest = passengerapi.CreatePassengerRequest
	// DeviceRequest is the body of POST /v1/me/devices.
	DeviceRequest = passengerapi.DeviceRequest
	// TopUpRequest is the body of POST /v1/me/wallet/topups.
	TopUpRequest = passengerapi.TopUpRequest
	// Balance is a wallet balance.
	Balance = passengerapi.Balance
	// OptInRequest is the body of POST /v1/me/credentials.
	OptInRequest = passengerapi.OptInRequest
	// Account is a passenger's account: GET /v1/me, and the back office's
	// GET /v1/passengers/{id}.
	Account = passengerapi.Account
	// Limits are the limits of a score band in one currency.
	Limits = passengerapi.Limits
	// ArrearsEntry is an unpaid invoice.
	ArrearsEntry = passengerapi.ArrearsEntry
	// ScoreEvent is one change of a passenger's score.
	ScoreEvent = passengerapi.ScoreEvent
	// CredentialSummary lists a credential in an account.
	CredentialSummary = passengerapi.CredentialSummary
	// Credential is an issued credential.
	Credential = passengerapi.Credential
)

// ArrearsList is the body of GET /v1/arrears.
type ArrearsList struct {
	Arrears   []ArrearsEntry `json:"arrears"`
	Truncated bool           `json:"truncated"` // more than the limit are open
}

// AircraftRequest is the body of PUT /v1/aircraft/{aircraft}.
type AircraftRequest struct {
	Key  string `json:"key"`            // airtab-aircraft-pub:…
	NKey string `json:"nkey,omitempty"` // NATS user public nkey, U…
	// Compromised, on a key rotation (POST /v1/aircraft/{id}/key), retires
	// the old key as exposed: clearing then accepts nothing it signed.
	Compromised bool `json:"compromised,omitempty"`
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
	State       FlightState            `json:"state"`
}

// FlightState is where a flight is: planned (no manifest yet), open (a
// manifest issued, no flight-close report), closed (the aircraft's close
// report received), reconciled (closed, and its report reconciles to the
// cent).
type FlightState string

// Flight states.
const (
	FlightPlanned    FlightState = "planned"
	FlightOpen       FlightState = "open"
	FlightClosed     FlightState = "closed"
	FlightReconciled FlightState = "reconciled"
)

// FlightSummary is one flight in GET /v1/flights.
type FlightSummary struct {
	ID          protocol.FlightID   `json:"flight"`
	Date        string              `json:"date"` // "2026-11-21"
	Aircraft    protocol.AircraftID `json:"aircraft"`
	Currency    protocol.Currency   `json:"currency"`
	State       FlightState         `json:"state"`
	Serial      uint64              `json:"manifest_serial"`
	Credentials int                 `json:"credentials"` // live
}

// FlightList is the body of GET /v1/flights.
type FlightList struct {
	Flights   []FlightSummary `json:"flights"`
	Truncated bool            `json:"truncated"` // more than the limit matched
}

// AircraftList is the body of GET /v1/aircraft.
type AircraftList struct {
	Aircraft  []AircraftView `json:"aircraft"`
	Truncated bool           `json:"truncated"`
}

// RevokeRequest is the optional body of POST
// /v1/credentials/{credential}/revoke. Reason is one of "revoked" (the
// default), "device_lost", "fraud_suspected", "passenger_request" (SPEC
// §9.2); Note, at most 200 bytes, is kept for the audit.
type RevokeRequest struct {
	Reason string `json:"reason,omitempty"`
	Note   string `json:"note,omitempty"`
}

// ReinstateRequest is the body of POST
// /v1/credentials/{credential}/reinstate: who asked and why, kept for the
// audit (1 to 200 bytes).
type ReinstateRequest struct {
	Note string `json:"note"`
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
	if f := p.Funding; f != nil {
		a.Funding = &passengerapi.Funding{Kind: passengerapi.FundingKind(f.Kind), Network: string(f.Network),
			Last4: f.Last4, ExpMonth: f.ExpMonth, ExpYear: f.ExpYear} // never the token
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
