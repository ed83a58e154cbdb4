package replay

import (
	"net"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
)

// TestLinkStateSaysWhy checks what the status tells an operator while
// ground is unreachable: since when, how many invoices wait, and the cause
// (the dial error), rather than "none" or "outbound buffer limit exceeded".
func TestLinkStateSaysWhy(t *testing.T) {
	t.Run("DialErrorNamed", func(t *testing.T) {
		e := newEnv(t)
		e.j.add(3, 400)
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "nats://" + l.Addr().String()
		l.Close() // nothing listens there now
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
		// 2 sent without a receipt and 4 pending wait.
		poll(t, "ground unreachable, 6 invoices waiting, in the status", func() bool {
			last = r.Status().LastError
			return strings.HasPrefix(last, "ground unreachable since ") && strings.Contains(last, "; 6 invoices waiting")
		})
		if strings.Contains(last, "outbound buffer limit exceeded") {
			t.Errorf("last_error %q still speaks of NATS buffers", last)
		}
	})
}
