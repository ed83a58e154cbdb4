package natsvc

import (
	"log/slog"
	"slices"
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
//
// The flights it spaces are bounded (maxNoticeFlights), whatever the load:
// when that many are remembered, those with nothing due are forgotten, and
// if most of them had a notice within the last interval, the ones whose
// last notice is oldest are forgotten too, to make room, and a
// forgotten flight's trailing notice, if one is due, goes at once instead
// of at its interval's end. So every change is still followed by a notice
// within Interval; only the spacing gives way, for flights that change
// again just after being forgotten.
type Notifier struct {
	// Conn is where notices are published. Required.
	Conn *nats.Conn
	// Interval is the least time between two notices for one flight.
	// Default: DefaultNoticeInterval.
	Interval time.Duration
	// Clock is the time notices are spaced by. Default time.Now.
	Clock func() time.Time
	// Logger. Default slog.Default().
	Logger *slog.Logger

	// afterFunc schedules a trailing notice; tests replace it. Default
	// time.AfterFunc.
	afterFunc func(d time.Duration, f func()) stopper

	mu      sync.Mutex
	flights map[noticeKey]*noticeState
	closed  bool
}

// stopper is a scheduled call that can be cancelled (*time.Timer).
type stopper interface {
	// Stop cancels the call; false when it has already started.
	Stop() bool
}

type noticeKey struct {
	a protocol.AircraftID
	f protocol.FlightID
}

// noticeState is one flight's throttle: when its last notice went, and
// whether a trailing one is scheduled.
type noticeState struct {
	last    time.Time
	pending stopper // nil: no trailing notice due
}

// maxNoticeFlights bounds the flights a Notifier remembers.
const maxNoticeFlights = 4096

// noticeEvictBatch is how many entries a full Notifier frees at once when
// forgetting the idle ones is not enough, so the scan that picks them is
// paid once per that many new flights rather than on every one.
const noticeEvictBatch = maxNoticeFlights / 8

// Notify says that flight f on aircraft a changed. It never blocks: the
// notice goes now, or once the flight's interval has passed.
func (n *Notifier) Notify(a protocol.AircraftID, f protocol.FlightID) {
	interval := n.interval()
	k := noticeKey{a, f}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	now := n.now()
	if n.flights == nil {
		n.flights = map[noticeKey]*noticeState{}
	}
	st := n.flights[k]
	switch {
	case st == nil:
		if len(n.flights) >= maxNoticeFlights {
			n.makeRoomLocked(now, interval)
		}
		st = &noticeState{}
		n.flights[k] = st
	case st.pending != nil:
		return // the trailing notice will carry this change too
	}
	if wait := st.last.Add(interval).Sub(now); wait > 0 {
		after := n.afterFunc
		if after == nil {
			after = func(d time.Duration, f func()) stopper { return time.AfterFunc(d, f) }
		}
		st.pending = after(wait, func() { n.trailing(k, st) })
		return
	}
	st.last = now
	n.publish(k)
}

func (n *Notifier) interval() time.Duration {
	if n.Interval <= 0 {
		return DefaultNoticeInterval
	}
	return n.Interval
}

func (n *Notifier) now() time.Time {
	if n.Clock == nil {
		return time.Now()
	}
	return n.Clock()
}

// trailing sends the notice scheduled at the end of st's interval, unless
// it was sent early (makeRoomLocked) or the Notifier stopped.
func (n *Notifier) trailing(k noticeKey, st *noticeState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || st.pending == nil {
		return
	}
	st.pending, st.last = nil, n.now()
	n.publish(k)
}

// makeRoomLocked brings the flights remembered below maxNoticeFlights. It
// forgets the idle ones first (nothing scheduled, last notice an interval
// old: forgetting them changes nothing). If more than
// maxNoticeFlights-noticeEvictBatch remain, it forgets down to that many,
// oldest last notice first (a trailing notice due soonest is sent least
// early), sending the trailing notice of each that has one due now, so no
// change is left without a notice.
func (n *Notifier) makeRoomLocked(now time.Time, interval time.Duration) {
	for k, st := range n.flights {
		if st.pending == nil && now.Sub(st.last) >= interval {
			delete(n.flights, k)
		}
	}
	excess := len(n.flights) - (maxNoticeFlights - noticeEvictBatch)
	if excess <= 0 {
		return
	}
	keys := make([]noticeKey, 0, len(n.flights))
	for k := range n.flights {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(x, y noticeKey) int { return n.flights[x].last.Compare(n.flights[y].last) })
	for _, k := range keys[:excess] {
		st := n.flights[k]
		delete(n.flights, k)
		if st.pending != nil {
			// A timer that has fired already finds pending nil and
			// sends nothing: this is the one notice.
			st.pending.Stop()
			st.pending = nil
			n.publish(k)
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
