package natsvc

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/airtab/airtab/protocol"
)

// noticeWatch is a nats-server with a subscriber counting the notices per
// subject.
type noticeWatch struct {
	nc   *nats.Conn
	got  chan string
	seen map[string]int
}

func startNoticeWatch(t *testing.T, buffer int) *noticeWatch {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(hangGuard) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(s.Shutdown)
	nc, err := dial(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	w := &noticeWatch{nc: nc, got: make(chan string, buffer), seen: map[string]int{}}
	sub, err := nc.Subscribe(protocol.AllNotices, func(m *nats.Msg) { w.got <- m.Subject })
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return w
}

// wait receives notices until subj has had count of them.
func (w *noticeWatch) wait(t *testing.T, subj string, count int) {
	t.Helper()
	if err := w.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(hangGuard)
	for w.seen[subj] < count {
		select {
		case s := <-w.got:
			w.seen[s]++
		case <-deadline:
			t.Fatalf("%d notices on %s, want %d", w.seen[subj], subj, count)
		}
	}
}

func (w *noticeWatch) total() int {
	n := 0
	for _, c := range w.seen {
		n += c
	}
	return n
}

// finish waits for the notices published so far and returns the count
// per subject: it publishes an end marker on the same connection after
// them, and messages from one connection arrive in order.
func (w *noticeWatch) finish(t *testing.T) map[string]int {
	t.Helper()
	end := protocol.NoticeSubject("END", "END")
	if err := w.nc.Publish(end, nil); err != nil {
		t.Fatal(err)
	}
	w.wait(t, end, 1)
	delete(w.seen, end)
	return w.seen
}

// fakeTimers replaces a Notifier's timers: nothing fires until the test
// says so.
type fakeTimers struct {
	mu     sync.Mutex
	timers []*fakeTimer
}

type fakeTimer struct {
	f       func()
	fired   bool // its call has started: Stop is too late
	stopped bool
}

func (ft *fakeTimers) afterFunc(_ time.Duration, f func()) stopper {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	tm := &fakeTimer{f: f}
	ft.timers = append(ft.timers, tm)
	return tm
}

func (tm *fakeTimer) Stop() bool {
	if tm.fired {
		return false
	}
	tm.stopped = true
	return true
}

// fire runs the calls of the timers not stopped, as their interval's end
// would.
func (ft *fakeTimers) fire() {
	ft.mu.Lock()
	timers := ft.timers
	ft.timers = nil
	ft.mu.Unlock()
	for _, tm := range timers {
		if !tm.stopped {
			tm.fired = true
			tm.f()
		}
	}
}

// markFired makes every timer scheduled so far one whose call has started
// but not yet got the Notifier's lock: Stop fails on it.
func (ft *fakeTimers) markFired() {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	for _, tm := range ft.timers {
		tm.fired = true
	}
}

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestNotifierSpacesNotices: a burst of changes to one flight gives one
// notice at once and one more at the end of the interval, not one each;
// another flight's notice is not held back by it.
func TestNotifierSpacesNotices(t *testing.T) {
	w := startNoticeWatch(t, 100)
	a, f1, f2 := protocol.AircraftID("D-AIUA"), protocol.FlightID("XX1-2026-11-21"), protocol.FlightID("XX2-2026-11-21")
	clock := &testClock{now: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	timers := &fakeTimers{}
	n := &Notifier{Conn: w.nc, Interval: time.Minute, Clock: clock.Now, afterFunc: timers.afterFunc}
	defer n.Stop()
	for range 20 {
		n.Notify(a, f1)
		clock.advance(time.Second)
	}
	n.Notify(a, f2)
	w.wait(t, protocol.NoticeSubject(a, f1), 1)
	w.wait(t, protocol.NoticeSubject(a, f2), 1)
	if got := len(timers.timers); got != 1 {
		t.Fatalf("trailing notices scheduled for the 19 changes after the first = %d, want 1", got)
	}
	clock.advance(time.Minute)
	timers.fire() // the interval's end
	w.wait(t, protocol.NoticeSubject(a, f1), 2)
	// A change an interval after the trailing notice goes at once.
	clock.advance(time.Minute)
	n.Notify(a, f1)
	w.wait(t, protocol.NoticeSubject(a, f1), 3)
	seen := w.finish(t)
	if seen[protocol.NoticeSubject(a, f1)] != 3 || seen[protocol.NoticeSubject(a, f2)] != 1 {
		t.Errorf("notices = %v, want 3 for the burst's flight and 1 for the other", seen)
	}
}

// TestNotifierBoundsFlights: three times as many flights as a Notifier
// remembers each change twice within one interval, so every flight
// remembered has a trailing notice pending and none is idle. The flights
// remembered stay within the bound, and every flight gets exactly its two
// notices: one at once, one for the second change (sent early for a
// forgotten flight, at the interval's end for the others). Also when the
// timer of a forgotten flight has already fired and waits for the lock.
func TestNotifierBoundsFlights(t *testing.T) {
	const flights = 3 * maxNoticeFlights
	a := protocol.AircraftID("D-AIUA")
	flight := func(i int) protocol.FlightID { return protocol.FlightID(fmt.Sprintf("XX%d-2026-11-21", i)) }
	for _, tc := range []struct {
		name  string
		fired bool // timers have fired before their flight is forgotten
	}{
		{"TimersPending", false},
		{"TimersFiredDuringEviction", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := startNoticeWatch(t, 2*flights)
			clock := &testClock{now: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
			timers := &fakeTimers{}
			n := &Notifier{Conn: w.nc, Interval: time.Hour, Clock: clock.Now, afterFunc: timers.afterFunc}
			defer n.Stop()
			most := 0
			for i := range flights {
				n.Notify(a, flight(i)) // sent at once
				n.Notify(a, flight(i)) // a trailing notice pending
				if tc.fired {
					timers.markFired()
				}
				n.mu.Lock()
				most = max(most, len(n.flights))
				n.mu.Unlock()
				clock.advance(time.Millisecond) // all within one interval
			}
			if most > maxNoticeFlights {
				t.Errorf("flights remembered reached %d, want at most %d", most, maxNoticeFlights)
			}
			clock.advance(time.Hour)
			timers.fire()
			seen := w.finish(t)
			for i := range flights {
				if got := seen[protocol.NoticeSubject(a, flight(i))]; got != 2 {
					t.Fatalf("flight %d: %d notices, want 2 (one per change, the second after it)", i, got)
				}
			}
			if got := w.total(); got != 2*flights {
				t.Errorf("notices in all = %d, want %d", got, 2*flights)
			}
		})
	}
}

// TestNotifierStop: a trailing notice scheduled before Stop is not sent,
// and Notify after Stop sends nothing.
func TestNotifierStop(t *testing.T) {
	w := startNoticeWatch(t, 10)
	a, f := protocol.AircraftID("D-AIUA"), protocol.FlightID("XX1-2026-11-21")
	timers := &fakeTimers{}
	n := &Notifier{Conn: w.nc, Interval: time.Hour, afterFunc: timers.afterFunc}
	n.Notify(a, f)
	n.Notify(a, f)
	timers.markFired() // its call has started as Stop runs
	n.Stop()
	timers.fire()
	n.Notify(a, protocol.FlightID("XX2-2026-11-21"))
	if seen := w.finish(t); w.total() != 1 || seen[protocol.NoticeSubject(a, f)] != 1 {
		t.Fatalf("notices = %v, want only the first, sent before Stop", seen)
	}
}
