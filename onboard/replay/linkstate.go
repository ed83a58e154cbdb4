package replay

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
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
}

// Note records err (nil errors are ignored). now is when it happened.
func (c *ConnectErrors) Note(err error, now time.Time) {
	if c == nil || err == nil {
		return
	}
	c.mu.Lock()
	c.err, c.at = err, now
	c.mu.Unlock()
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
// down, "ground unreachable since T; N invoices waiting", and the cause
// when one is known; with the link up, the last replay error, unless it was
// only the symptom of an earlier outage.
func (r *Replayer) explainLocked(s *Status) {
	waiting := s.Counts.Pending + s.Counts.Sent
	since := s.LastHeartbeat
	if since.IsZero() {
		since = r.started
	}
	unreachable := fmt.Sprintf("ground unreachable since %s; %d invoices waiting", since.UTC().Format(time.RFC3339), waiting)
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

// isOutage reports whether a replay error only says the connection was
// gone.
func isOutage(err error) bool {
	return errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrConnectionClosed) ||
		errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrDisconnected) ||
		strings.Contains(err.Error(), nats.ErrReconnectBufExceeded.Error())
}
