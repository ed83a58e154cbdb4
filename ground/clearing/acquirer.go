package clearing

import (
	"context"
	"errors"
	"fmt"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/protocol"
)

// Acquirer is a card acquirer's API as clearing uses it. Implementations must
// be safe for concurrent use and return when ctx is done.
//
// Idempotency: a capture is identified by its invoice id and an attempt
// number (CaptureRequest.IdempotencyKey). Clearing retries a capture whose
// outcome it does not know (an error, a timeout) with the same key and
// attempt, so the acquirer either captures once or returns the outcome it
// already has; only after a definite decline does clearing move to the next
// attempt. Acquirers such as Stripe replay a key's first response, declines
// included, so a retry after a decline needs a fresh key: the attempt number
// is that freshness, derived, never random.
type Acquirer interface {
	// Capture charges the card. A decline is a result (Approved false and a
	// DeclineCode), not an error. An error means the outcome is unknown.
	Capture(ctx context.Context, req CaptureRequest) (CaptureResult, error)
	// Refund returns the money captured for the invoice key (under any
	// attempt). It is idempotent: a second call refunds nothing more and
	// succeeds. ErrNotCaptured if nothing was captured.
	Refund(ctx context.Context, key protocol.ID, amount protocol.Money) error
	// Void cancels the invoice key: no capture under it succeeds afterwards,
	// and one that already succeeded is refunded. It reports whether money
	// was refunded. It is idempotent.
	Void(ctx context.Context, key protocol.ID) (refunded bool, err error)
}

// CaptureRequest asks an acquirer to charge a card.
type CaptureRequest struct {
	Key     protocol.ID          // the invoice id
	Attempt uint32               // 1, 2, ...: a new attempt only after a definite decline
	Card    ground.FundingSource // the card: token, network, expiry
	Amount  protocol.Money
}

// IdempotencyKey is the acquirer-side key of the request: the invoice id and
// the attempt, for example "5f0c…e1-2".
func (r CaptureRequest) IdempotencyKey() string { return fmt.Sprintf("%s-%d", r.Key, r.Attempt) }

// CaptureResult is an acquirer's definite answer to a capture.
type CaptureResult struct {
	Approved  bool        `json:"approved"`
	Decline   DeclineCode `json:"decline,omitempty"`   // when not approved
	Reference string      `json:"reference,omitempty"` // the acquirer's id for the capture
}

// DeclineCode says why a card charge was declined.
type DeclineCode string

// Decline codes. The first three are the card-network answers the simulated
// acquirer gives; the others are clearing's own.
const (
	DeclineInsufficientFunds DeclineCode = "insufficient_funds"
	DeclineCardExpired       DeclineCode = "card_expired"
	DeclineFraudSuspected    DeclineCode = "fraud_suspected"
	// DeclineVoided: the key was voided before the capture.
	DeclineVoided DeclineCode = "voided"
	// DeclineNoFundingSource: the passenger has no funding source on file
	// for the invoice's funding kind (clearing's own code).
	DeclineNoFundingSource DeclineCode = "no_funding_source"
	// DeclineWalletShort: the wallet balance does not cover the invoice
	// (clearing's own code, from ledger.ErrInsufficientFunds).
	DeclineWalletShort DeclineCode = "wallet_insufficient_balance"
)

// Acquirer errors.
var (
	// ErrTimeout: the acquirer did not answer in time; the outcome is
	// unknown. Retry with the same key and attempt.
	ErrTimeout = errors.New("acquirer: timeout, outcome unknown")
	// ErrNotCaptured: Refund found no capture for the key.
	ErrNotCaptured = errors.New("acquirer: nothing captured for this key")
)
