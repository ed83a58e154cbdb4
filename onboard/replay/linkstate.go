package replay

import (
	"cmp"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// What the status says about the link, for an operator. nats.go clears its
// own last error when it retries a connection and reports dial errors only
// to its ReconnectErrHandler, so the cabin server hands those to a
// ConnectErrors; and while ground is away a publish fails with "outbound
// buffer limit exceeded" (there is no reconnect buffer, see CheckConn),
// which says nothing to a person. Status says instead since when ground has
// been unreachable, how many invoices wait, and why, when that is known.

// ConnectErrors remembers the latest error connecting to ground's NATS. Its
// Note method suits nats.ReconnectErrHandler and nats.DisconnectErrHandler.
// The zero value is ready; it is safe for concurrent use.
type ConnectErrors struct {
	mu  sync.Mutex
	err error
	at  time.Time
	n   uint64 // errors noted so far
}

// Note records err (nil errors are ignored). now is when it happened.
func (c *ConnectErrors) Note(err error, now time.Time) {
	if c == nil || err == nil {
		return
	}
	c.mu.Lock()
	c.err, c.at = err, now
	c.n++
	c.mu.Unlock()
}

// Noted returns how many errors have been noted so far, so a caller can
// tell errors noted after some event from those before it without
// comparing clock readings.
func (c *ConnectErrors) Noted() uint64 {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// LastSince returns the latest error if any was noted after Noted
// returned n, or nil.
func (c *ConnectErrors) LastSince(n uint64) error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n <= n {
		return nil
	}
	return c.err
}

// Last returns the latest error and when it was noted.
func (c *ConnectErrors) Last() (error, time.Time) {
	if c == nil {
		return nil, time.Time{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err, c.at
}

// explainLocked sets s.LastError to what an operator needs: with the link
// down, "ground unreachable since T; N invoices waiting", N the pending
// invoices of s.Counts (read when the status is), then those sent that
// await their receipt, if any, and the cause when one is known; with the
// link up, the last replay error, unless it was only the symptom of an
// earlier outage.
func (r *Replayer) explainLocked(s *Status) {
	since := s.LastHeartbeat
	if since.IsZero() {
		since = r.started
	}
	unreachable := fmt.Sprintf("ground unreachable since %s; %s waiting", since.UTC().Format(time.RFC3339), invoices(s.Counts.Pending))
	if s.Counts.Sent > 0 {
		unreachable += fmt.Sprintf(", %d sent awaiting a receipt", s.Counts.Sent)
	}
	if !s.LinkUp {
		s.LastError = unreachable
		if cause := r.causeLocked(since); cause != "" {
			s.LastError += ": " + cause
		}
		return
	}
	if r.lastErr != nil && isOutage(r.lastErr) {
		s.LastError = "" // the outage is over; its symptom is not news
	}
}

// causeLocked is why ground is unreachable, as far as the connection
// knows: its current error, or the latest connect error noted after since.
func (r *Replayer) causeLocked(since time.Time) string {
	if r.nc != nil {
		if err := r.nc.LastError(); err != nil {
			return err.Error()
		}
	}
	if err, at := r.cfg.ConnectErrors.Last(); err != nil && !at.Before(since) {
		return "connecting to ground's NATS: " + err.Error()
	}
	if r.nc != nil && r.nc.IsConnected() {
		return "connected to NATS, but no heartbeat from ground"
	}
	if r.nc != nil {
		return "NATS connection " + strings.ToLower(r.nc.Status().String())
	}
	return ""
}

// invoices is "1 invoice" or "n invoices".
func invoices(n int) string {
	if n == 1 {
		return "1 invoice"
	}
	return fmt.Sprintf("%d invoices", n)
}

// cause is why ground is unreachable, for a log line: causeLocked since
// the last heartbeat, or "unknown" yet.
func (r *Replayer) cause() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	since := r.status.LastHeartbeat
	if since.IsZero() {
		since = r.started
	}
	return cmp.Or(r.causeLocked(since), "unknown")
}

// connected reports whether the connection Run uses is up now.
func (r *Replayer) connected() bool {
	r.mu.Lock()
	nc := r.nc
	r.mu.Unlock()
	return nc != nil && nc.IsConnected()
}

// linkCameUp starts the count of invoices sent on this link.
func (r *Replayer) linkCameUp() {
	r.mu.Lock()
	r.status.SentThisLink = 0
	r.mu.Unlock()
}

// logLinkDown says why the link went down: ground's heartbeats stopped
// on a live connection, or the connection itself is gone.
func (r *Replayer) logLinkDown(nc *nats.Conn) {
	if nc.IsConnected() {
		r.cfg.Log.Info("link down: no ground heartbeat", "timeout", r.cfg.HeartbeatTimeout)
		return
	}
	r.cfg.Log.Info("link down: ground unreachable", "cause", r.cause())
}

// isOutage reports whether a replay error only says the connection was
// gone.
func isOutage(err error) bool {
	return errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, jetstream.ErrServerShutdown) ||
		strings.Contains(err.Error(), nats.ErrReconnectBufExceeded.Error())
}
