// Package onboard is the cabin server: it runs on a small box on the
// aircraft and approves or declines every sale with no link to the ground.
//
// This package holds the domain logic in plain Go, readable without knowing
// SQL or HTTP:
//
//	manifest.go       the verified flight manifest: credentials, deny list, catalog, crew, caps
//	manifestcache.go  loading manifests and deltas into the cabin, and back from the journal
//	authorize.go      the authorization rules, in the order of the sale flow
//	state.go          what the flight has sold so far: spend, exposure, used codes, the chain head
//	groupcommit.go    the single writer that checks, numbers, signs and journals sales in batches
//	cabin.go          Cabin, the cabin server's core that the handheld API calls
//	orders.go         orders issued for two-way mode, until the passenger's consent comes back
//	crew.go           crew sign-in against the manifest's PIN hashes
//	journal.go        the Journal contract that the SQLite journal fulfils
//	error.go          the one error type that clients see, with stable codes
//
// The technology sits in subpackages: onboard/sqlite (the invoice journal),
// onboard/httpapi (the handheld API over TLS), onboard/natslink (manifest
// fetch from ground over NATS), onboard/client (the Go client handhelds use)
// and onboard/cmd/onboard (the program that wires them together).
package onboard

import (
	"fmt"
	"time"

	"github.com/airtab/airtab/protocol"
)

// Clock returns the current time. Every part of the cabin server reads time
// through one, so tests and the simulator can move time by hand.
type Clock func() time.Time

// Line is one line of a basket as a handheld sends it: a catalog SKU and a
// quantity. Prices never come from a handheld; the cabin server takes them
// from the manifest's catalog. Quantity is signed so that a negative
// quantity arrives as such and is refused with ReasonInvalidQuantity rather
// than as a JSON decoding error.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// SaleRequest asks the cabin server to authorize one sale.
type SaleRequest struct {
	// InvoiceID is chosen by the handheld and persisted there before the
	// request is sent, so a retry after a lost answer carries the same id
	// and gets the original approval back instead of "code reused". It is
	// the invoice's idempotency key end to end.
	InvoiceID protocol.ID `json:"invoice_id"`
	// Code is the scanned QR text: a payment code ("AT1:…"), or in two-way
	// mode the passenger's order consent ("ATC1:…").
	Code string `json:"code"`
	// OrderID names the order the consent answers (two-way mode only).
	OrderID protocol.ID `json:"order_id,omitzero"`
	// Lines is the basket (payment-code mode only; in two-way mode the
	// order holds the basket).
	Lines []Line `json:"lines,omitempty"`
	// Crew is the signed-in crew member; the API sets it from the session.
	Crew string `json:"-"`
}

// VoidRequest asks the cabin server to reverse a sale before flight close.
type VoidRequest struct {
	// InvoiceID is the void invoice's own id, chosen by the handheld like a
	// sale's.
	InvoiceID protocol.ID `json:"invoice_id"`
	// SaleID is the invoice id of the sale to reverse.
	SaleID protocol.ID `json:"sale_id"`
	// Crew is the signed-in crew member; the API sets it from the session.
	Crew string `json:"-"`
}

// OrderRequest asks the cabin server to price a basket as an order for
// two-way mode.
type OrderRequest struct {
	Lines []Line `json:"lines"`
}

// OrderQR is a priced order for the handheld to show as a QR code; the
// passenger's wallet signs consent to exactly this order.
type OrderQR struct {
	OrderID   protocol.ID          `json:"order_id"`
	Text      string               `json:"qr_text"` // "ATO1:…"
	Lines     []protocol.OrderLine `json:"lines"`
	Total     protocol.Money       `json:"total"`
	ExpiresAt time.Time            `json:"expires_at"`
}

// Decision is the answer to a SaleRequest: an approval with its invoice, or
// a decline with its reason. A decline is a normal answer, not an error.
type Decision struct {
	Approved bool `json:"approved"`
	// Sale is the approved invoice.
	Sale *Sale `json:"sale,omitempty"`
	// Remaining is what the passenger may still spend on this flight, as of
	// the answer.
	Remaining protocol.Money `json:"remaining,omitzero"`
	// Decline says why the sale was declined.
	Decline *Decline `json:"decline,omitempty"`
}

// Decline names the reason for a decline: its stable number, its stable
// name and a message for the crew.
type Decline struct {
	Reason  protocol.Reason `json:"reason"`
	Name    string          `json:"name"`
	Message string          `json:"message"`
	// Amount is the limit a decline over one names: the per-transaction
	// cap (over_transaction_cap), what is left of the passenger's limit
	// (over_passenger_limit) or of the aircraft's exposure cap
	// (over_aircraft_cap). Omitted for other reasons.
	Amount protocol.Money `json:"amount,omitzero"`
}

// declineMessage is the crew's message for a decline over a limit, with
// the amount the limit allows.
func declineMessage(r protocol.Reason, amount protocol.Money) string {
	switch r {
	case protocol.ReasonOverTransactionCap:
		return fmt.Sprintf("%s: the most one sale may be is %s", r, amount)
	case protocol.ReasonOverAircraftCap:
		return fmt.Sprintf("%s: %s left on this flight", r, amount)
	}
	return fmt.Sprintf("%s: %s left for this passenger", r, amount)
}

// NewDecline returns the decline for reason r.
func NewDecline(r protocol.Reason) *Decline {
	return &Decline{Reason: r, Name: ReasonName(r), Message: r.String()}
}

// InvoiceStatus is where an invoice is on its way to the ground. The
// replayer moves it along; the cabin server keeps it until cleared.
type InvoiceStatus string

// Invoice statuses.
const (
	// StatusPending: journaled on the aircraft, not yet sent.
	StatusPending InvoiceStatus = "pending"
	// StatusSent: published to ground, no clearing receipt yet.
	StatusSent InvoiceStatus = "sent"
	// StatusCleared: ground's ledger has committed it (a clearing receipt
	// is held).
	StatusCleared InvoiceStatus = "cleared"
)

// Sale is an invoice, a sale or a void, as the handheld sees it.
type Sale struct {
	InvoiceID  protocol.ID          `json:"invoice_id"`
	Seq        uint64               `json:"seq"`
	Kind       string               `json:"kind"` // "sale" or "void"
	Passenger  protocol.ID          `json:"passenger"`
	Credential protocol.ID          `json:"credential"`
	Lines      []protocol.OrderLine `json:"lines,omitempty"`
	Total      protocol.Money       `json:"total"`
	CreatedAt  time.Time            `json:"created_at"`
	Crew       string               `json:"crew"`
	// Voids is the sale a void reverses.
	Voids protocol.ID `json:"voids,omitzero"`
	// VoidedBy is the void that reversed this sale, if any.
	VoidedBy protocol.ID `json:"voided_by,omitzero"`
	// Hash is the SHA-256 of the signed invoice: the next invoice's Prev.
	Hash   protocol.Hash `json:"hash"`
	Status InvoiceStatus `json:"status"`
}

// LimitRequest asks for a passenger's remaining limit from a scanned code.
// The code is checked but not used up.
type LimitRequest struct {
	Code string `json:"code"`
}

// LimitAnswer is the passenger's standing on this flight, or why the code
// was not accepted.
type LimitAnswer struct {
	Valid      bool           `json:"valid"`
	Passenger  protocol.ID    `json:"passenger,omitzero"`
	Credential protocol.ID    `json:"credential,omitzero"`
	Limit      protocol.Money `json:"limit,omitzero"`
	Spent      protocol.Money `json:"spent,omitzero"`
	Remaining  protocol.Money `json:"remaining,omitzero"`
	TxCap      protocol.Money `json:"tx_cap,omitzero"`
	Decline    *Decline       `json:"decline,omitempty"`
}

// CloseReport is the signed flight-close report in a readable form, with
// its signed bytes.
type CloseReport struct {
	Flight     protocol.FlightID   `json:"flight"`
	Aircraft   protocol.AircraftID `json:"aircraft"`
	ClosedAt   time.Time           `json:"closed_at"`
	Sales      uint64              `json:"sales"`
	Voids      uint64              `json:"voids"`
	SalesTotal []protocol.Money    `json:"sales_total"`
	VoidsTotal []protocol.Money    `json:"voids_total"`
	LastSeq    uint64              `json:"last_seq"`
	Head       protocol.Hash       `json:"head"`
	// Raw is the SignedFlightClose as sent to ground (base64 in JSON).
	Raw []byte `json:"raw"`
}

// ReplayProgress is what the replayer reports for Status: the last ground
// heartbeat, how fast invoices are leaving and how long the rest will take,
// and the receipts that came back.
type ReplayProgress struct {
	LastHeartbeat    time.Time `json:"last_heartbeat,omitzero"`
	SentThisLink     int       `json:"sent_this_link"`
	RatePerSecond    float64   `json:"rate_per_second"`
	ETASeconds       float64   `json:"eta_seconds"`
	ReceiptsApplied  int       `json:"receipts_applied"`
	ReceiptsRejected int       `json:"receipts_rejected"`
	CloseAccepted    bool      `json:"close_accepted"`
	// CloseRejected is set when ground's signed receipt says the
	// flight-close report failed verification: why (a reason for a
	// person), and when ground said so.
	CloseRejected   string    `json:"close_rejected,omitempty"`
	CloseRejectedAt time.Time `json:"close_rejected_at,omitzero"`
	LastError       string    `json:"last_error,omitempty"`
}

// LinkState is the state of the link to the ground, as the replayer sees it.
type LinkState string

// Link states.
const (
	LinkUnknown LinkState = "unknown" // no replayer has reported yet
	LinkUp      LinkState = "up"
	LinkDown    LinkState = "down"
)

// Status is what the cabin server reports about itself.
type Status struct {
	Flight   protocol.FlightID   `json:"flight"`
	Aircraft protocol.AircraftID `json:"aircraft"`
	// SalesOpen says whether a sale could be approved now; when not,
	// SalesOff says why (no manifest, expired manifest, flight closed).
	SalesOpen bool            `json:"sales_open"`
	SalesOff  *Decline        `json:"sales_off,omitempty"`
	Manifest  *ManifestStatus `json:"manifest,omitempty"`
	Closed    bool            `json:"closed"`
	ClosedAt  time.Time       `json:"closed_at,omitzero"`
	Invoices  InvoiceCounts   `json:"invoices"`
	LastSeq   uint64          `json:"last_seq"`
	Head      protocol.Hash   `json:"head"`
	Link      LinkState       `json:"link"`
	// Replay is the replayer's progress, when one runs.
	Replay *ReplayProgress `json:"replay,omitempty"`
	Stats  Stats           `json:"stats"`
	// JournalError is set when a journal failure has stopped sales until
	// a restart.
	JournalError string `json:"journal_error,omitempty"`
}

// ManifestStatus describes the manifest in use.
type ManifestStatus struct {
	Serial     uint64    `json:"serial"`
	DeltaSeq   uint64    `json:"delta_seq"`
	IssuedAt   time.Time `json:"issued_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	AgeSeconds int64     `json:"age_seconds"`
	Expired    bool      `json:"expired"`
	// Credentials is how many credentials verified; Rejected how many did
	// not and are not used.
	Credentials int `json:"credentials"`
	Rejected    int `json:"rejected"`
	DenyEntries int `json:"deny_entries"`
}

// InvoiceCounts counts the journal's invoices by status.
type InvoiceCounts struct {
	Pending int64 `json:"pending"`
	Sent    int64 `json:"sent"`
	Cleared int64 `json:"cleared"`
}

// Stats count what the writer has done since start.
type Stats struct {
	// Commits is the number of group commits that journaled invoices or the
	// flight close (one that only counts declines is not one of them).
	Commits uint64 `json:"commits"`
	// Approved is the number of sales and voids committed.
	Approved uint64 `json:"approved"`
	// Declined is the number of sales declined, each once, whichever rule
	// declined it; the journal counts them with each group commit, so the
	// count survives a restart.
	Declined uint64 `json:"declined"`
	// MaxBatch is the largest number of invoices one commit carried.
	MaxBatch int `json:"max_batch"`
	// FailedCommits is the number of journal transactions that failed and
	// were rolled back.
	FailedCommits uint64 `json:"failed_commits"`
}
