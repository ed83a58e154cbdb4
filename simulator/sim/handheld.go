package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/harness"
)

// retryFor bounds how long a handheld keeps retrying one request while the
// cabin server is away (a crash and restart takes about a second) or its
// sign-ins are rate limited (attempts per minute).
const retryFor = 60 * time.Second

// handheld is a crew member's handheld as the simulator drives it. It keeps
// its own record of what the cabin server answered: the approvals are what
// the crew told passengers they had paid, and are what "lost" is counted
// against.
type handheld struct {
	id, crew, pin string
	cl            *client.Client
	ids           io.Reader // invoice ids, chosen before the request is sent

	// signMu serialises sign-ins, and sessions counts them: a restarted
	// cabin server forgot every session, and the goroutines sharing this
	// handheld then sign in once between them rather than once each, as
	// the API allows only a few sign-ins a minute per crew member.
	signMu   sync.Mutex
	sessions uint64

	mu        sync.Mutex
	approvals []onboard.Sale // sales approved, as answered
	voids     []onboard.Sale // voids committed, as answered
	declines  map[string]int // by reason name
	calls     int            // requests that reached an answer
}

func newHandheld(ctx context.Context, c *harness.Cabin, id, crew, pin string, ids io.Reader) (*handheld, error) {
	cl, err := c.Handheld(ctx, id, crew, pin)
	if err != nil {
		return nil, err
	}
	return &handheld{id: id, crew: crew, pin: pin, cl: cl, ids: ids, declines: map[string]int{}}, nil
}

// newID returns a fresh invoice id. Called only by the goroutine that owns
// the handheld's passengers, so the ids follow the seed.
func (h *handheld) newID() protocol.ID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return protocol.NewID(h.ids)
}

// retry runs call until it answers, signing in again after a cabin-server
// restart and waiting out the restart itself: a graceful one, or a killed
// process whose connections broke off mid-request and whose port refuses
// connections until the new process listens. A refusal that a retry
// cannot change (invalid, conflict, forbidden) is returned at once.
func (h *handheld) retry(ctx context.Context, what string, call func() error) error {
	deadline := time.Now().Add(retryFor)
	wait := 20 * time.Millisecond
	for {
		session := h.session()
		err := call()
		if err == nil {
			return nil
		}
		var oe *onboard.Error
		switch {
		case errors.As(err, &oe) && oe.Code == onboard.CodeUnauthorized:
			if serr := h.signIn(ctx, session); serr != nil && !transient(serr) && !rateLimited(serr) {
				return fmt.Errorf("%s: sign in again: %w", what, serr)
			}
		case !transient(err):
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no answer within %v: %w", what, retryFor, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 500*time.Millisecond)
	}
}

// session returns the count of sign-ins so far.
func (h *handheld) session() uint64 {
	h.signMu.Lock()
	defer h.signMu.Unlock()
	return h.sessions
}

// signIn signs the crew member in again, unless another goroutine did
// since the refused call started (session is the count it started with).
func (h *handheld) signIn(ctx context.Context, session uint64) error {
	h.signMu.Lock()
	defer h.signMu.Unlock()
	if h.sessions != session {
		return nil
	}
	if _, err := h.cl.SignIn(ctx, h.crew, h.pin); err != nil {
		return err
	}
	h.sessions++
	return nil
}

// rateLimited reports whether err is the API's refusal of one sign-in too
// many: a refused attempt does not count against the limit, so a later
// one succeeds.
func rateLimited(err error) bool {
	oe, ok := errors.AsType[*onboard.Error](err)
	return ok && oe.Code == onboard.CodeRateLimited
}

// transient reports whether err may go away on a retry: the server is
// restarting (unavailable, or a session it forgot), or the connection
// broke. The retry loop's deadline bounds how long that may last.
func transient(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if oe, ok := errors.AsType[*onboard.Error](err); ok {
		return oe.Code == onboard.CodeUnavailable || oe.Code == onboard.CodeUnauthorized
	}
	if he, ok := errors.AsType[*client.HTTPError](err); ok {
		return he.StatusCode >= 500
	}
	return true // a transport error: refused, reset, EOF
}

// sell sends a sale and records the answer. The request, with its invoice
// id, is fixed before the first try: a retry after a lost answer gets the
// original approval back.
func (h *handheld) sell(ctx context.Context, code string, lines []onboard.Line) (onboard.Decision, error) {
	req := onboard.SaleRequest{InvoiceID: h.newID(), Code: code, Lines: lines}
	var d onboard.Decision
	err := h.retry(ctx, "authorize "+req.InvoiceID.String(), func() (err error) {
		d, err = h.cl.Authorize(ctx, req)
		return err
	})
	if err != nil {
		return d, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	switch {
	case d.Approved && d.Sale != nil:
		h.approvals = append(h.approvals, *d.Sale)
	case d.Approved:
		return d, fmt.Errorf("authorize %s: approved without an invoice", req.InvoiceID)
	case d.Decline != nil:
		h.declines[d.Decline.Name]++
	default:
		return d, fmt.Errorf("authorize %s: declined without a reason", req.InvoiceID)
	}
	return d, nil
}

// void reverses a sale and records the void.
func (h *handheld) void(ctx context.Context, sale protocol.ID) error {
	req := onboard.VoidRequest{InvoiceID: h.newID(), SaleID: sale}
	var v *onboard.Sale
	err := h.retry(ctx, "void "+sale.String(), func() (err error) {
		v, err = h.cl.Void(ctx, req)
		return err
	})
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls++
	h.voids = append(h.voids, *v)
	return nil
}

// record returns copies of what the handheld holds.
func (h *handheld) record() (approvals, voids []onboard.Sale, declines map[string]int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	declines = map[string]int{}
	for k, v := range h.declines {
		declines[k] = v
	}
	return append([]onboard.Sale(nil), h.approvals...), append([]onboard.Sale(nil), h.voids...), declines
}
