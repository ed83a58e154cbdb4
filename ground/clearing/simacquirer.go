package clearing

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/protocol"
)

// SimAcquirer is the bundled simulated card acquirer, for demos, tests and
// the simulator. Its answers are deterministic per card token:
//
//	token prefix        outcome of every capture
//	tok_insufficient_   declined, insufficient funds
//	tok_expired_        declined, card expired
//	tok_fraud_          declined, fraud suspected
//	tok_flaky_          the first call of each (key, attempt) captures but
//	                    times out before answering (the response is lost);
//	                    the retry returns the recorded approval
//	anything else       approved, unless SimConfig.DeclinePercent selects
//	                    the token (by a hash of seed and token) for a decline
//
// A card whose expiry month has passed (by SimConfig.Clock) is declined as
// expired. FailNext overrides the next calls, whatever the token.
//
// It honours idempotency keys: a (key, attempt) that has an answer returns
// that answer and never captures again. It counts captures per invoice key,
// so tests can assert that nothing was captured twice.
type SimAcquirer struct {
	cfg SimConfig

	mu       sync.Mutex
	answers  map[string]CaptureResult // by idempotency key
	captured map[protocol.ID]*simCapture
	voided   map[protocol.ID]bool
	calls    map[protocol.ID]int
	failNext []SimFailure
	seq      int
}

type simCapture struct {
	amount   protocol.Money
	count    int // successful captures for the key: must never exceed 1
	refunded bool
}

// SimConfig configures a SimAcquirer. The zero value approves every card
// instantly.
type SimConfig struct {
	// Seed selects which tokens DeclinePercent declines. Default 0.
	Seed uint64
	// DeclinePercent is the share of card tokens, 0 to 100, declined (with
	// a reason picked by the same hash). Default 0.
	DeclinePercent int
	// Latency is how long each call takes, bounded by the caller's context.
	// Default 0.
	Latency time.Duration
	// TimeoutAfter is how long a simulated timeout waits before it returns
	// ErrTimeout, bounded by the caller's context. Default 0: at once.
	TimeoutAfter time.Duration
	// Clock decides whether a card has expired. Default time.Now.
	Clock func() time.Time
}

// SimFailure is a forced outcome for the next call (see FailNext).
type SimFailure int

// Forced outcomes.
const (
	// SimTimeout: the call times out before reaching the card network;
	// nothing is captured and no answer is recorded.
	SimTimeout SimFailure = iota + 1
	// SimTimeoutAfterCapture: the capture happens and is recorded, but the
	// answer is lost and the caller gets ErrTimeout.
	SimTimeoutAfterCapture
	// SimDeclineInsufficient: declined, insufficient funds (recorded).
	SimDeclineInsufficient
	// SimDeclineFraud: declined, fraud suspected (recorded).
	SimDeclineFraud
)

// maxSimFailures bounds FailNext's queue.
const maxSimFailures = 1 << 16

// NewSimAcquirer returns a simulated acquirer.
func NewSimAcquirer(cfg SimConfig) *SimAcquirer {
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	cfg.DeclinePercent = min(max(cfg.DeclinePercent, 0), 100)
	return &SimAcquirer{
		cfg:      cfg,
		answers:  map[string]CaptureResult{},
		captured: map[protocol.ID]*simCapture{},
		voided:   map[protocol.ID]bool{},
		calls:    map[protocol.ID]int{},
	}
}

// FailNext makes the next n Capture calls that have no recorded answer end
// with f, whatever the card.
func (a *SimAcquirer) FailNext(n int, f SimFailure) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range min(n, maxSimFailures-len(a.failNext)) {
		a.failNext = append(a.failNext, f)
	}
}

// Captures returns how many times money was captured for the invoice key.
// Anything above 1 is a double charge.
func (a *SimAcquirer) Captures(key protocol.ID) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.captured[key]; c != nil {
		return c.count
	}
	return 0
}

// Refunded reports whether the capture for the invoice key was refunded.
func (a *SimAcquirer) Refunded(key protocol.ID) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.captured[key]
	return c != nil && c.refunded
}

// Calls returns how many Capture calls were made for the invoice key.
func (a *SimAcquirer) Calls(key protocol.ID) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls[key]
}

// MaxCaptures returns the highest capture count of any key: 1 or 0 when
// nothing was ever captured twice.
func (a *SimAcquirer) MaxCaptures() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, c := range a.captured {
		n = max(n, c.count)
	}
	return n
}

// Capture implements Acquirer.
func (a *SimAcquirer) Capture(ctx context.Context, req CaptureRequest) (CaptureResult, error) {
	if err := a.wait(ctx, a.cfg.Latency); err != nil {
		return CaptureResult{}, err
	}
	a.mu.Lock()
	a.calls[req.Key]++
	key := req.IdempotencyKey()
	if r, ok := a.answers[key]; ok {
		a.mu.Unlock()
		return r, nil
	}
	outcome, lost := a.decide(req)
	if outcome == nil { // timed out before the network saw it
		a.mu.Unlock()
		return CaptureResult{}, a.timeout(ctx)
	}
	r := *outcome
	if r.Approved {
		c := a.captured[req.Key]
		if c == nil {
			c = &simCapture{amount: req.Amount}
			a.captured[req.Key] = c
		}
		c.count++
		a.seq++
		r.Reference = fmt.Sprintf("sim_%06d", a.seq)
	}
	a.answers[key] = r
	a.mu.Unlock()
	if lost {
		return CaptureResult{}, a.timeout(ctx)
	}
	return r, nil
}

// decide returns the outcome of a new capture (nil: timed out, nothing
// done) and whether the answer is lost on the way back. Called with a.mu.
func (a *SimAcquirer) decide(req CaptureRequest) (outcome *CaptureResult, lost bool) {
	approve := &CaptureResult{Approved: true}
	decline := func(c DeclineCode) *CaptureResult { return &CaptureResult{Decline: c} }
	if a.voided[req.Key] {
		return decline(DeclineVoided), false
	}
	if len(a.failNext) > 0 {
		f := a.failNext[0]
		a.failNext = a.failNext[1:]
		switch f {
		case SimTimeout:
			return nil, false
		case SimTimeoutAfterCapture:
			return approve, true
		case SimDeclineInsufficient:
			return decline(DeclineInsufficientFunds), false
		case SimDeclineFraud:
			return decline(DeclineFraudSuspected), false
		}
	}
	tok := req.Card.Token
	switch {
	case strings.HasPrefix(tok, "tok_insufficient_"):
		return decline(DeclineInsufficientFunds), false
	case strings.HasPrefix(tok, "tok_expired_"):
		return decline(DeclineCardExpired), false
	case strings.HasPrefix(tok, "tok_fraud_"):
		return decline(DeclineFraudSuspected), false
	case a.expired(req):
		return decline(DeclineCardExpired), false
	case strings.HasPrefix(tok, "tok_flaky_"):
		return approve, true // this call captures; its answer is lost
	}
	if h := a.hash(tok); int(h%100) < a.cfg.DeclinePercent {
		return decline([]DeclineCode{DeclineInsufficientFunds, DeclineCardExpired, DeclineFraudSuspected}[(h/100)%3]), false
	}
	return approve, false
}

func (a *SimAcquirer) expired(req CaptureRequest) bool {
	if req.Card.ExpYear == 0 {
		return false
	}
	now := a.cfg.Clock().UTC()
	return req.Card.ExpYear < now.Year() || (req.Card.ExpYear == now.Year() && req.Card.ExpMonth < int(now.Month()))
}

func (a *SimAcquirer) hash(token string) uint64 {
	var seed [8]byte
	binary.BigEndian.PutUint64(seed[:], a.cfg.Seed)
	sum := sha256.Sum256(append(seed[:], token...))
	return binary.BigEndian.Uint64(sum[:8])
}

// Refund implements Acquirer.
func (a *SimAcquirer) Refund(ctx context.Context, key protocol.ID, amount protocol.Money) error {
	if err := a.wait(ctx, a.cfg.Latency); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.captured[key]
	if c == nil || c.count == 0 {
		return fmt.Errorf("refund %s: %w", key, ErrNotCaptured)
	}
	if amount != c.amount {
		return fmt.Errorf("refund %s: amount %s, captured %s", key, amount, c.amount)
	}
	c.refunded = true
	return nil
}

// Void implements Acquirer.
func (a *SimAcquirer) Void(ctx context.Context, key protocol.ID) (bool, error) {
	if err := a.wait(ctx, a.cfg.Latency); err != nil {
		return false, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.voided[key] = true
	c := a.captured[key]
	if c == nil || c.count == 0 || c.refunded {
		return false, nil
	}
	c.refunded = true
	return true, nil
}

// wait sleeps d or until ctx is done.
func (a *SimAcquirer) wait(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrTimeout, ctx.Err())
	}
}

func (a *SimAcquirer) timeout(ctx context.Context) error {
	if err := a.wait(ctx, a.cfg.TimeoutAfter); err != nil {
		return err
	}
	return ErrTimeout
}
