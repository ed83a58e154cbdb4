package natsvc

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRefusedLoginsAtWarnOnce: a cabin server whose aircraft is not
// registered yet retries its login; ground logs the refusal at Warn once
// per interval, naming the nkey, and never at Error.
func TestRefusedLoginsAtWarnOnce(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	auth, err := NewAuth()
	if err != nil {
		t.Fatal(err)
	}
	// Another aircraft is registered, so the server takes nkeys at all.
	auth.Aircraft = []AircraftIdentity{{ID: "D-AIUB", NKey: newAircraftKeys(t, "D-AIUB").pub}}
	// A clock that stands still: the five refusals fall in one interval
	// however long they take.
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	s, err := StartServer(ServerConfig{Port: -1, StoreDir: t.TempDir(), Auth: auth, Logger: log, Clock: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	a := newAircraftKeys(t, "D-AIUA")
	for range 5 {
		if nc, err := dial(s.ClientURL(), nats.Name("airtab-onboard D-AIUA"), nats.Nkey(a.pub, a.kp.Sign), nats.NoReconnect()); err == nil {
			nc.Close()
			t.Fatal("an unregistered nkey connected")
		}
	}
	out := buf.String()
	var warns, errs int
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(l, "level=ERROR"):
			errs++
		case strings.Contains(l, "level=WARN") && strings.Contains(l, "NATS login refused"):
			warns++
			if !strings.Contains(l, "nkey="+a.pub) || !strings.Contains(l, "aircraft=unregistered") || !strings.Contains(l, "remote=127.0.0.1:") ||
				!strings.Contains(l, `client_name="airtab-onboard D-AIUA"`) {
				t.Errorf("refusal line %q does not name the nkey as unregistered, the client's address and its name", l)
			}
		}
	}
	if errs != 0 || warns != 1 {
		t.Fatalf("5 refused logins: %d warn lines, %d error lines; want 1 and 0:\n%s", warns, errs, out)
	}
}

func TestRefusalsInterval(t *testing.T) {
	var buf syncBuffer
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	r := newRefusals(slog.New(slog.NewTextHandler(&buf, nil)), time.Minute, func() time.Time { return now })
	r.setKnown([]AircraftIdentity{{ID: "D-AIUA", NKey: "UKNOWN"}})
	line := `127.0.0.1:5 - cid:7 - authentication error - Nkey "UKNOWN"`
	for range 3 {
		if !r.note(line) {
			t.Fatal("a refused login was not recognised")
		}
	}
	now = now.Add(time.Minute)
	r.note(line)
	if r.note("some other error") {
		t.Error("another error line was taken for a refused login")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("log lines = %d, want 2 (first refusal, then one after the interval):\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "aircraft=D-AIUA") || !strings.Contains(lines[1], "refusals=3") {
		t.Errorf("lines %q: want the aircraft named, and 3 refusals in the second", lines)
	}
}

// refusalLines returns the "NATS login refused" lines in out.
func refusalLines(out string) []string {
	var lines []string
	for l := range strings.Lines(out) {
		if strings.Contains(l, `msg="NATS login refused"`) {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return lines
}

// TestRefusedLoginNamesWhatItCan: every refused-login line names the
// client's address and what it presented, and says why when it presented
// nothing; a connection that had not logged in when an aircraft was
// registered (the reload closes it) is logged at Info as such, not as a
// refusal of nobody.
func TestRefusedLoginNamesWhatItCan(t *testing.T) {
	start := func(t *testing.T, aircraft ...AircraftIdentity) (*syncBuffer, *Auth, *server.Server) {
		t.Helper()
		buf := &syncBuffer{}
		log := slog.New(slog.NewTextHandler(buf, nil))
		auth, err := NewAuth()
		if err != nil {
			t.Fatal(err)
		}
		auth.Aircraft = aircraft
		s, err := StartServer(ServerConfig{Port: -1, StoreDir: t.TempDir(), Auth: auth, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		return buf, auth, s
	}
	// rawConn opens a TCP connection that says nothing, and waits until
	// the server has taken it as a client.
	rawConn := func(t *testing.T, s *server.Server) net.Conn {
		t.Helper()
		before := s.NumClients()
		c, err := net.Dial("tcp", s.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		waitFor(t, "the server to take the connection", func() bool { return s.NumClients() > before })
		return c
	}
	// closedWith reads c to its end: what the server said before closing.
	closedWith := func(t *testing.T, c net.Conn) string {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(hangGuard))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("reading until the server closes: %v", err)
		}
		return string(b)
	}

	t.Run("ReloadClosesConnectionNotLoggedIn", func(t *testing.T) {
		buf, auth, s := start(t)
		c := rawConn(t, s)
		a := newAircraftKeys(t, "D-AIUA")
		if err := SetAircraft(s, auth, []AircraftIdentity{{ID: a.id, NKey: a.pub}}); err != nil {
			t.Fatal(err)
		}
		if got := closedWith(t, c); !strings.Contains(got, "Authorization Violation") {
			t.Fatalf("the reload left the connection that had not logged in open, or closed it saying %q", got)
		}
		lines := refusalLines(buf.String())
		if len(lines) != 1 {
			t.Fatalf("refusal lines = %d, want 1:\n%s", len(lines), buf.String())
		}
		l := lines[0]
		for _, want := range []string{"level=INFO", "remote=" + c.LocalAddr().String(), "credential=none", "aircraft list was reloaded"} {
			if !strings.Contains(l, want) {
				t.Errorf("line %q: want %q in it", l, want)
			}
		}
		if strings.Contains(l, `who=""`) {
			t.Errorf("line %q names nobody", l)
		}
	})
	t.Run("NoConnectFirst", func(t *testing.T) {
		a := newAircraftKeys(t, "D-AIUA")
		buf, _, s := start(t, AircraftIdentity{ID: a.id, NKey: a.pub})
		c := rawConn(t, s)
		if _, err := c.Write([]byte("PING\r\n")); err != nil {
			t.Fatal(err)
		}
		closedWith(t, c)
		waitFor(t, "the refusal logged", func() bool { return len(refusalLines(buf.String())) > 0 })
		l := refusalLines(buf.String())[0]
		for _, want := range []string{"level=WARN", "remote=" + c.LocalAddr().String(), "credential=none", "not a NATS client"} {
			if !strings.Contains(l, want) {
				t.Errorf("line %q: want %q in it", l, want)
			}
		}
	})
	t.Run("WrongUser", func(t *testing.T) {
		buf, _, s := start(t)
		if nc, err := dial(s.ClientURL(), nats.Name("a tool"), nats.UserInfo("someone", "guess"), nats.NoReconnect()); err == nil {
			nc.Close()
			t.Fatal("a wrong password connected")
		}
		waitFor(t, "the refusal logged", func() bool { return len(refusalLines(buf.String())) > 0 })
		l := refusalLines(buf.String())[0]
		for _, want := range []string{"level=WARN", "remote=127.0.0.1:", "user=someone", `client_name="a tool"`} {
			if !strings.Contains(l, want) {
				t.Errorf("line %q: want %q in it", l, want)
			}
		}
		if strings.Contains(l, "guess") {
			t.Errorf("line %q has the password", l)
		}
	})
	t.Run("RegisteredAircraftsOldNKey", func(t *testing.T) {
		a := newAircraftKeys(t, "D-AIUA")
		buf, _, s := start(t, AircraftIdentity{ID: a.id, NKey: a.pub})
		// An nkey the server knows, with a signature over another nonce.
		other := newAircraftKeys(t, "D-AIUA")
		sign := func(nonce []byte) ([]byte, error) { return other.kp.Sign(nonce) }
		if nc, err := dial(s.ClientURL(), nats.Nkey(a.pub, sign), nats.NoReconnect()); err == nil {
			nc.Close()
			t.Fatal("a wrong signature connected")
		}
		waitFor(t, "the refusal logged", func() bool { return len(refusalLines(buf.String())) > 0 })
		l := refusalLines(buf.String())[0]
		for _, want := range []string{"level=WARN", "remote=127.0.0.1:", "aircraft=D-AIUA", "nkey=" + a.pub} {
			if !strings.Contains(l, want) {
				t.Errorf("line %q: want %q in it", l, want)
			}
		}
	})
}

func TestParseRefusal(t *testing.T) {
	for _, tc := range []struct {
		name, line string
		want       refusedLogin
		key        string
	}{
		{"Nkey", `127.0.0.1:5 - cid:7 - authentication error - Nkey "UABC"`,
			refusedLogin{remote: "127.0.0.1:5", cid: "7", cred: `Nkey "UABC"`, nkey: "UABC"}, "nkey UABC"},
		{"User", `[::1]:4 - cid:9 - authentication error - User "bob"`,
			refusedLogin{remote: "[::1]:4", cid: "9", cred: `User "bob"`, user: "bob"}, `User "bob"`},
		{"Nothing", `10.0.0.2:4711 - cid:3 - authentication error`,
			refusedLogin{remote: "10.0.0.2:4711", cid: "3"}, "host 10.0.0.2"},
		{"NoPrefix", `authentication error`, refusedLogin{}, "addr "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := parseRefusal(tc.line)
			if !ok || got != tc.want {
				t.Fatalf("parseRefusal(%q) = %+v, %v; want %+v", tc.line, got, ok, tc.want)
			}
			if k := got.key(); k != tc.key {
				t.Errorf("key = %q, want %q", k, tc.key)
			}
		})
	}
	if _, ok := parseRefusal("some other error"); ok {
		t.Error("another error line was taken for a refused login")
	}
}
