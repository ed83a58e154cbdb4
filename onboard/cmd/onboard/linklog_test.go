package main

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/airtab/airtab/onboard/app"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
)

// logBuf keeps what the cabin server logs, to check what an operator
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

// waitLog waits until the log holds want n times, and returns the log.
func waitLog(t *testing.T, logs *logBuf, want string, n int) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := logs.String()
		if strings.Count(got, want) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log does not say %q %d times:\n%s", want, n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startNATSServer starts a plain nats-server (not ground's: onboard never
// imports ground) with opts until the test ends.
func startNATSServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// startWithNATS runs a cabin server in process with --nats-url url,
// logging at debug into the returned buffer.
func startWithNATS(t *testing.T, url string) (*app.Main, *logBuf) {
	t.Helper()
	f := ft.New(t, ft.Options{Passengers: 1, RealTime: true})
	logs := &logBuf{}
	m := app.NewMain()
	m.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	args := append(setup(t, f, filepath.Join(t.TempDir(), "data")), "--nats-url", url, "--reconnect-wait", "50ms")
	if err := m.ParseFlags(args, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m, logs
}

// TestLinkDownSaysWhy: with nothing listening at ground's NATS address, the
// cabin server says once that the link is down and why (the dial error),
// and the manifest sync's wait does not claim there is no error.
func TestLinkDownSaysWhy(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + l.Addr().String()
	l.Close() // nothing listens there now
	m, logs := startWithNATS(t, url)
	waitLog(t, logs, `msg="manifest sync waits for the link to ground: link down"`, 1)
	waitLog(t, logs, `msg="link down: cannot connect to ground's NATS; retrying"`, 1)
	// Retries after the first: at debug only.
	got := waitLog(t, logs, `msg="NATS connect failed; will retry"`, 3)
	if n := strings.Count(got, "link down: cannot connect"); n != 1 {
		t.Errorf("the dial error logged %d times at info in one outage, want once:\n%s", n, got)
	}
	for _, line := range strings.Split(got, "\n") {
		if strings.Contains(line, "link down: cannot connect") && !strings.Contains(line, "connection refused") {
			t.Errorf("the link-down line does not give the dial error: %s", line)
		}
	}
	if strings.Contains(got, "last_error=none") {
		t.Errorf("the log says last_error=none while the dial is refused:\n%s", got)
	}
	st, err := m.Cabin().Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if st.Replay == nil || !strings.Contains(st.Replay.LastError, "connection refused") {
		t.Errorf("status replay %+v, want last_error to give the dial error", st.Replay)
	}
}

// TestNkeyNotAskedSaysRegister: a NATS server that asks for no nkey is,
// with ground's embedded NATS, one that knows no aircraft yet; the warning
// says to register this one on ground before it speaks of auth callouts.
func TestNkeyNotAskedSaysRegister(t *testing.T) {
	s := startNATSServer(t, &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	m, logs := startWithNATS(t, s.ClientURL())
	got := waitLog(t, logs, "nkeys not supported by the server", 1)
	var line string
	for _, l := range strings.Split(got, "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, "nkeys not supported by the server") {
			line = l
		}
	}
	for _, want := range []string{"ground does not know this aircraft yet", "PUT /v1/aircraft/" + string(m.Config.Aircraft), "auth callout"} {
		if !strings.Contains(line, want) {
			t.Errorf("warning %q does not say %q", line, want)
		}
	}
	if strings.Index(line, "PUT /v1/aircraft/") > strings.Index(line, "auth callout") {
		t.Errorf("warning %q speaks of the auth callout before registering the aircraft", line)
	}
}

// TestLoginRefusedSaysRegisterOnce: a NATS server that refuses this
// aircraft's nkey is warned of once while the cabin server keeps trying,
// with how to register the aircraft and the harmless refusal just after a
// registration.
func TestLoginRefusedSaysRegisterOnce(t *testing.T) {
	other, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := other.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	// The server knows one nkey, not this aircraft's.
	s := startNATSServer(t, &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	m, logs := startWithNATS(t, s.ClientURL())
	const warn = "NATS refused this aircraft's login"
	waitLog(t, logs, warn, 1)
	// The cabin server goes on trying: three more logins refused.
	conns := func() uint64 {
		v, err := s.Varz(nil)
		if err != nil {
			t.Fatal(err)
		}
		return v.TotalConnections
	}
	n0 := conns()
	deadline := time.Now().Add(30 * time.Second)
	for conns() < n0+3 {
		if time.Now().After(deadline) {
			t.Fatalf("the cabin server stopped trying to log in after %d connections", conns())
		}
		time.Sleep(20 * time.Millisecond)
	}
	got := logs.String()
	var lines []string
	for _, l := range strings.Split(got, "\n") {
		if strings.Contains(l, "level=WARN") && strings.Contains(l, warn) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 1 {
		t.Fatalf("%d warnings of the refused login in one outage, want 1:\n%s", len(lines), got)
	}
	for _, want := range []string{"PUT /v1/aircraft/" + string(m.Config.Aircraft), "just reloaded its NATS authorization", "uthorization"} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("warning %q does not say %q", lines[0], want)
		}
	}
}

// TestHelpTLSCert: the API's certificate is issued by the aircraft CA, not
// self-signed, and the help says so.
func TestHelpTLSCert(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("onboard --help: exit code %d; stderr %q", code, stderr.String())
	}
	_, help, _ := strings.Cut(stdout.String(), "\n  -tls-cert ")
	help, _, _ = strings.Cut(help, "\n  -")
	if strings.Contains(help, "self-signed") || !strings.Contains(help, "aircraft CA") {
		t.Errorf("--tls-cert help %q, want it to say the aircraft CA issues the certificate", help)
	}
}
