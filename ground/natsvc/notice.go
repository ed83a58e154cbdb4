package natsvc

import (
	"log/slog"
	"sync"
	"time"

	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go"
)

// DefaultNoticeInterval is the least time between two notices for one
// flight.
const DefaultNoticeInterval = 250 * time.Millisecond

// Notifier publishes manifest change notices (protocol.NoticeSubject) to
// aircraft: the registry calls Notify after every committed change to what
// a flight's manifest carries (registry.Registry.SetNotifier), and the
// cabin server, subscribed to its own notice subject, pulls the delta at
// once. A notice is an empty core NATS message: an aircraft offline misses
// it and catches up at its next sync, as it always did.
//
// Notices for one flight are spaced at least Interval apart: the first goes
// at once, and the changes made within the interval after it share one
// more notice at its end. So a gate where hundreds of passengers opt in
// gives the aircraft a few deltas a second carrying many credentials each,
// rather than one delta per passenger, and each change still reaches it
// within about Interval plus a round trip.
type Notifier struct {
	Conn *nats.Conn
	// Interval is the least time between two notices for one flight.
	// Default: DefaultNoticeInterval.
	Interval time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	flights map[noticeKey]*noticeState
	closed  bool
}

type noticeKey struct {
	a protocol.AircraftID
	f protocol.FlightID
}

// noticeState is one flight's throttle: when its last notice went, and
// whether a trailing one is scheduled.
type noticeState struct {
	last    time.Time
	pending *time.Timer
}

// maxNoticeFlights bounds the flights a Notifier remembers; beyond it the
// oldest entries are forgotten (they only space notices).
const maxNoticeFlights = 4096

// Notify says that flight f on aircraft a changed. It never blocks: the
// notice goes now, or once the flight's interval has passed.
func (n *Notifier) Notify(a protocol.AircraftID, f protocol.FlightID) {
	interval := n.Interval
	if interval <= 0 {
		interval = DefaultNoticeInterval
	}
	k := noticeKey{a, f}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	if n.flights == nil {
		n.flights = map[noticeKey]*noticeState{}
	}
	st := n.flights[k]
	switch {
	case st == nil:
		if len(n.flights) >= maxNoticeFlights {
			n.forgetIdleLocked(now, interval)
		}
		st = &noticeState{}
		n.flights[k] = st
	case st.pending != nil:
		return // the trailing notice will carry this change too
	}
	if wait := st.last.Add(interval).Sub(now); wait > 0 {
		st.pending = time.AfterFunc(wait, func() { n.trailing(k) })
		return
	}
	st.last = now
	n.publish(k)
}

// trailing sends the notice scheduled at the end of an interval.
func (n *Notifier) trailing(k noticeKey) {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.flights[k]
	if n.closed || st == nil {
		return
	}
	st.pending, st.last = nil, time.Now()
	n.publish(k)
}

// forgetIdleLocked drops the flights with nothing scheduled whose last
// notice is older than interval.
func (n *Notifier) forgetIdleLocked(now time.Time, interval time.Duration) {
	for k, st := range n.flights {
		if st.pending == nil && now.Sub(st.last) >= interval {
			delete(n.flights, k)
		}
	}
}

// publish sends one notice. It does not wait for the server: a failed
// publish is logged at debug level and costs only the time until the
// aircraft's next poll.
func (n *Notifier) publish(k noticeKey) {
	if err := n.Conn.Publish(protocol.NoticeSubject(k.a, k.f), nil); err != nil {
		log := n.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Debug("manifest change notice not published; the aircraft will poll", "aircraft", k.a, "flight", k.f, "err", err)
	}
}

// Stop cancels the notices still scheduled and makes Notify a no-op.
func (n *Notifier) Stop() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.closed = true
	for _, st := range n.flights {
		if st.pending != nil {
			st.pending.Stop()
		}
	}
}
