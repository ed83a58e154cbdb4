// Package httpapi is the cabin server's handheld API: JSON over HTTPS on the
// cabin Wi-Fi. The server's certificate is issued by a per-aircraft CA
// (LoadOrCreateCA) that the airline installs on its handhelds, so the crew
// app in their browsers trusts it; Go clients pin the certificate by its
// SHA-256 fingerprint instead (see LoadOrCreateCertificate, Fingerprint).
// Config.App serves the crew app itself on the same listener.
//
// Every call but sign-in and /healthz needs a session: the token from
// sign-in in "Authorization: Bearer <token>", and the handheld's id in the
// Airtab-Handheld header, which must be the one the session was made on.
//
//	POST   /v1/sessions        sign in: SignInRequest → 201 Session
//	DELETE /v1/sessions        sign out → 204
//	GET    /v1/catalog         → 200 Catalog
//	POST   /v1/sales           authorize: onboard.SaleRequest → 200 onboard.Decision
//	GET    /v1/sales/{id}      look up an invoice → 200 onboard.Sale
//	POST   /v1/orders          two-way mode: onboard.OrderRequest → 201 onboard.OrderQR
//	POST   /v1/voids           onboard.VoidRequest → 200 onboard.Sale (the void)
//	POST   /v1/limit           remaining limit from a code: onboard.LimitRequest → 200 onboard.LimitAnswer
//	POST   /v1/flight/close    purser only → 200 onboard.CloseReport
//	GET    /v1/status          → 200 onboard.Status
//	GET    /healthz            → 200 {"ok":true}, no session needed
//
// A declined sale is a normal answer: 200 with "approved": false and the
// decline's reason number, name and message. Errors are 4xx or 5xx with an
// ErrorBody; the status follows the error code (see statusOf):
//
//	400 invalid        malformed JSON or QR text, unknown SKU, bad quantity (with the protocol reason)
//	401 unauthorized   no session, expired session, other handheld, wrong crew id or PIN
//	403 forbidden      the crew role may not do this (closing the flight takes a purser)
//	404 not_found      no such invoice or order
//	409 conflict       an invoice id reused for another request; a sale voided twice; a void or order after flight close
//	413 too_large      a request body over MaxBodyBytes
//	429 rate_limited   too many sign-in attempts (Retry-After says when to try again)
//	500 internal       a bug; details in the server log only
//	503 unavailable    no manifest yet, journal failure, shutting down, busy: retry with the same invoice id
package httpapi

import (
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
)

// API paths.
const (
	PathSessions    = "/v1/sessions"
	PathCatalog     = "/v1/catalog"
	PathSales       = "/v1/sales"
	PathOrders      = "/v1/orders"
	PathVoids       = "/v1/voids"
	PathLimit       = "/v1/limit"
	PathFlightClose = "/v1/flight/close"
	PathStatus      = "/v1/status"
	PathHealth      = "/healthz"
)

// HandheldHeader carries the handheld's id on every request: sign-in binds
// the session to it, and a session is refused from any other handheld.
const HandheldHeader = "Airtab-Handheld"

// MaxHandheldIDLen bounds a handheld id, in bytes.
const MaxHandheldIDLen = 64

// SignInRequest is a crew member's sign-in.
type SignInRequest struct {
	CrewID string `json:"crew_id"`
	PIN    string `json:"pin"`
}

// Session is a signed-in crew member's session on one handheld.
type Session struct {
	Token     string    `json:"token"`
	CrewID    string    `json:"crew_id"`
	Role      string    `json:"role"`
	Handheld  string    `json:"handheld"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Catalog is what is for sale, at the manifest's prices.
type Catalog struct {
	Currency protocol.Currency      `json:"currency"`
	Items    []protocol.CatalogItem `json:"items"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error *onboard.Error `json:"error"`
}
