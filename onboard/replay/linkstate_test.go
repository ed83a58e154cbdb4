package replay

import (
	"errors"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

// TestLinkStateSaysWhy checks what the status tells an operator while
// ground is unreachable: since when, how many invoices wait, and the cause
// (the dial error), rather than "none" or "outbound buffer limit exceeded".
func TestLinkStateSaysWhy(t *testing.T) {
	t.Run("DialErrorNamed", func(t *testing.T) {
		e := newEnv(t)
		e.j.add(3, 400)
		url := refusedURL(t)
		ce := &ConnectErrors{}
		nc := e.dial(url, nats.RetryOnFailedConnect(true),
			nats.ReconnectErrHandler(func(_ *nats.Conn, err error) { ce.Note(err, e.clock.Now()) }))
		r := e.run(nc, func(c *Config) { c.ConnectErrors = ce })
		var last string
		poll(t, "the dial error in the status", func() bool {
			last = r.Status().LastError
			return strings.Contains(last, "connection refused")
		})
		for _, want := range []string{"ground unreachable since ", "; 3 invoices waiting", "connecting to ground's NATS"} {
			if !strings.Contains(last, want) {
				t.Errorf("last_error %q does not say %q", last, want)
			}
		}
		if r.Status().LinkUp {
			t.Error("link up with nothing to connect to")
		}
	})

	t.Run("GroundGoneMidReplay", func(t *testing.T) {
		e := newEnv(t)
		e.j.add(2, 400)
		nc := e.dial(e.srv.ClientURL())
		r := e.run(nc, nil)
		e.linkUp(r)
		poll(t, "the first invoices sent", func() bool { return r.Status().Counts.Pending == 0 })
		e.j.add(4, 400)
		e.srv.Shutdown()
		r.Kick()
		var last string
		// 4 pending wait, and 2 sent without a receipt.
		poll(t, "ground unreachable, 4 invoices waiting, in the status", func() bool {
			last = r.Status().LastError
			return strings.HasPrefix(last, "ground unreachable since ") &&
				strings.Contains(last, "; 4 invoices waiting, 2 sent awaiting a receipt")
		})
		if strings.Contains(last, "outbound buffer limit exceeded") {
			t.Errorf("last_error %q still speaks of NATS buffers", last)
		}
	})
}

// logBuf keeps what a test's logger writes, to check what an operator
// reads.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestSentThisLink: sent_this_link counts the invoices published since the
// link last came up, across the drains of one link, and starts again at 0
// when the link comes up again.
func TestSentThisLink(t *testing.T) {
	e := newEnv(t)
	const timeout = 15 * time.Second
	links := &linkCalls{}
	onLink := links.seen
	e.j.add(4, 400)
	nc := e.dial(e.srv.ClientURL())
	r := e.run(nc, func(c *Config) {
		c.HeartbeatTimeout = timeout
		c.OnLink = links.record
	})
	e.linkUp(r)
	poll(t, "4 invoices sent", func() bool { return e.j.counts().Sent == 4 })

	t.Run("LaterDrainsOfTheSameLink", func(t *testing.T) {
		// Two more journal reads: at least one is a later drain's, which
		// finds nothing to send.
		n := e.j.nBatches()
		r.Kick()
		poll(t, "a later drain", func() bool { return e.j.nBatches() >= n+2 })
		if got := r.Status().SentThisLink; got != 4 {
			t.Errorf("sent_this_link %d after a later drain on the same link, want 4", got)
		}
	})

	t.Run("LinkDown", func(t *testing.T) {
		e.clock.Add(timeout)
		poll(t, "OnLink(false)", func() bool { return slices.Equal(onLink(), []bool{true, false}) })
		st := r.Status()
		if st.SentThisLink != 4 {
			t.Errorf("sent_this_link %d with the link down, want 4 (sent on the link that was up)", st.SentThisLink)
		}
		if st.RatePerSecond != 0 || st.ETASeconds != 0 {
			t.Errorf("rate %v/s, eta %v s with the link down, want 0 and 0: no drain runs", st.RatePerSecond, st.ETASeconds)
		}
	})

	t.Run("LinkUpAgain", func(t *testing.T) {
		e.j.add(2, 400)
		e.linkUp(r)
		poll(t, "OnLink(true) again", func() bool { return slices.Equal(onLink(), []bool{true, false, true}) })
		poll(t, "the 2 new invoices sent", func() bool { return e.j.counts().Sent == 6 })
		poll(t, "sent_this_link 2", func() bool { return r.Status().SentThisLink == 2 })
	})
}

// TestSentThisLinkAfterQuickReconnect: a connection that drops and comes
// back before ground's heartbeat goes stale (the replayer may never see
// the link down) is a new link all the same, and sent_this_link counts
// from the reconnect.
func TestSentThisLinkAfterQuickReconnect(t *testing.T) {
	e := newEnv(t)
	l := e.link(linkemu.Config{})
	e.j.add(4, 400)
	nc := e.dial(l.URL())
	r := e.run(nc, func(c *Config) { c.HeartbeatTimeout = time.Hour }) // the fake clock stands still
	e.linkUp(r)
	poll(t, "4 invoices sent", func() bool { return e.j.counts().Sent == 4 })
	poll(t, "sent_this_link 4", func() bool { return r.Status().SentThisLink == 4 })

	before := nc.Stats().Reconnects
	l.SetState(linkemu.Down) // drops the connection
	l.SetState(linkemu.Up)
	poll(t, "reconnected", func() bool { return nc.Stats().Reconnects > before && nc.IsConnected() })
	e.j.add(2, 400)
	r.Kick()
	poll(t, "the 2 new invoices sent", func() bool { return e.j.counts().Sent == 6 })
	poll(t, "sent_this_link 2 on the new connection", func() bool { return r.Status().SentThisLink == 2 })
}

// TestConnectErrorsLastSince: the errors of an outage are those noted
// after the link was last up, whatever the clock said when.
func TestConnectErrorsLastSince(t *testing.T) {
	var c ConnectErrors
	if err := c.LastSince(c.Noted()); err != nil {
		t.Fatalf("LastSince with nothing noted = %v, want nil", err)
	}
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	c.Note(errors.New("dial tcp: connection refused"), at)
	up := c.Noted() // the link comes up at the same clock reading
	if err := c.LastSince(up); err != nil {
		t.Fatalf("LastSince(link up) = %v, want nil: the error came before", err)
	}
	c.Note(errors.New("dial tcp: i/o timeout"), at.Add(-time.Hour)) // the clock stepped back
	if err := c.LastSince(up); err == nil || err.Error() != "dial tcp: i/o timeout" {
		t.Fatalf("LastSince(link up) = %v, want the error noted after it", err)
	}
}

// TestStatusCountsWhenRead: with the link down, the invoices waiting in
// last_error are those pending when the status is read, not when the
// replayer last looked.
func TestStatusCountsWhenRead(t *testing.T) {
	e := newEnv(t)
	e.j.add(3, 400)
	url := refusedURL(t)
	nc := e.dial(url, nats.RetryOnFailedConnect(true))
	r := e.run(nc, nil)
	poll(t, "3 invoices waiting", func() bool { return strings.Contains(r.Status().LastError, "; 3 invoices waiting") })
	for _, tc := range []struct {
		add  int
		want string
	}{{1, "; 4 invoices waiting"}, {3, "; 7 invoices waiting"}} {
		t.Run(strings.TrimPrefix(tc.want, "; "), func(t *testing.T) {
			e.j.add(tc.add, 400)
			st := r.Status()
			if !strings.Contains(st.LastError, tc.want) {
				t.Errorf("last_error %q right after the sale, want it to say %q", st.LastError, tc.want)
			}
			if c := e.j.counts(); st.Counts != c {
				t.Errorf("status counts %+v, journal %+v", st.Counts, c)
			}
		})
	}
}

// TestDrainLogLevels: the first drain on a link (the backlog at landing)
// is logged at info; the sales sent one at a time after it, with the link
// up, at debug.
func TestDrainLogLevels(t *testing.T) {
	e := newEnv(t)
	e.j.add(3, 400)
	logs := &logBuf{}
	nc := e.dial(e.srv.ClientURL())
	r := e.run(nc, func(c *Config) {
		c.Log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	t.Cleanup(func() { t.Log(logs.String()) }) // with -v, or when it fails
	e.linkUp(r)
	poll(t, "the backlog sent", func() bool { return e.j.counts().Sent == 3 })
	e.j.add(1, 400)
	r.Kick()
	poll(t, "the next sale sent", func() bool { return e.j.counts().Sent == 4 })
	poll(t, "the next drain done", func() bool { return strings.Count(logs.String(), `msg="replay done"`) == 2 })
	var levels []string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="replay starting"`) || strings.Contains(l, `msg="replay done"`) {
			_, lv, _ := strings.Cut(l, "level=")
			lv, _, _ = strings.Cut(lv, " ")
			levels = append(levels, lv)
		}
	}
	if want := []string{"INFO", "INFO", "DEBUG", "DEBUG"}; !slices.Equal(levels, want) {
		t.Errorf("replay starting/done levels %v, want %v", levels, want)
	}
}

// TestReceiptsSayLinkDown: when ground goes away, the receipt consumer
// says the link is down, not nats.go's "outbound buffer limit exceeded"
// that a pull gets while the connection is away.
func TestReceiptsSayLinkDown(t *testing.T) {
	e := newEnv(t)
	e.j.add(2, 400)
	logs := &logBuf{}
	nc := e.dial(e.srv.ClientURL())
	r := e.run(nc, func(c *Config) { c.Log = slog.New(slog.NewTextHandler(logs, nil)) })
	e.linkUp(r)
	poll(t, "the invoices sent", func() bool { return e.j.counts().Sent == 2 })
	poll(t, "the receipt consumer created", func() bool {
		_, err := e.js.Consumer(e.ctx, protocol.StreamReceipts, protocol.ReceiptConsumer(testAircraft))
		return err == nil
	})
	e.srv.Shutdown()
	t.Cleanup(func() { t.Log(logs.String()) }) // with -v, or when it fails
	// The heartbeat is still fresh by the test's clock: only the
	// connection says the link is down.
	for _, want := range []string{
		`msg="receipts wait for the link to ground: link down, ground unreachable"`,
		`msg="link down: ground unreachable"`,
	} {
		poll(t, want, func() bool { return strings.Contains(logs.String(), want) })
	}
	if got := logs.String(); strings.Contains(got, "outbound buffer limit exceeded") {
		t.Errorf("the log speaks of NATS buffers:\n%s", got)
	}
}

// refusedURL is a NATS URL at which nothing listens: a dial is refused.
func refusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "nats://" + l.Addr().String()
}
