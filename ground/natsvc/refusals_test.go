package natsvc

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

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
		if nc, err := dial(s.ClientURL(), nats.Nkey(a.pub, a.kp.Sign), nats.NoReconnect()); err == nil {
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
			if !strings.Contains(l, a.pub) || !strings.Contains(l, "aircraft=unregistered") {
				t.Errorf("refusal line %q does not name the nkey as unregistered", l)
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
