package client_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/onboard/httpapi"
)

// server is a real net/http TLS server that counts the connections it
// accepted.
type server struct {
	*httptest.Server
	conns atomic.Int64
}

func newServer(t *testing.T, h http.HandlerFunc) *server {
	t.Helper()
	s := &server{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func (s *server) client(t *testing.T, mut func(*client.Config)) *client.Client {
	t.Helper()
	sum := sha256.Sum256(s.Certificate().Raw)
	cfg := client.Config{URL: s.URL, Fingerprint: hex.EncodeToString(sum[:]), Handheld: "hh-1"}
	if mut != nil {
		mut(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func health(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"ok":true}` + "\n"))
}

func TestRequest(t *testing.T) {
	type seen struct{ method, path, handheld, auth, ctype, body string }
	got := make(chan seen, 1)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		got <- seen{r.Method, r.URL.Path, r.Header.Get(httpapi.HandheldHeader), r.Header.Get("Authorization"),
			r.Header.Get("Content-Type"), string(b)}
		w.Write([]byte(`{"valid":true,"tx_cap":{"minor":500,"currency":"EUR"}}`))
	})
	c := s.client(t, nil)
	c.SetToken("tok-1")
	a, err := c.Limit(context.Background(), "AT1:XYZ")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Valid || a.TxCap.Minor != 500 {
		t.Errorf("answer = %+v, want valid with a 500 cap", a)
	}
	want := seen{"POST", httpapi.PathLimit, "hh-1", "Bearer tok-1", "application/json", `{"code":"AT1:XYZ"}`}
	if g := <-got; g != want {
		t.Errorf("request = %+v, want %+v", g, want)
	}
}

func TestKeepAlive(t *testing.T) {
	s := newServer(t, health)
	c := s.client(t, nil)
	for range 5 {
		if err := c.Health(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.conns.Load(); got != 1 {
		t.Errorf("connections = %d, want 1 for 5 calls one after another", got)
	}
}

func TestServerClosedIdle(t *testing.T) {
	s := newServer(t, health)
	c := s.client(t, nil)
	if err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.CloseClientConnections() // what the server's idle timeout does
	if err := c.Health(context.Background()); err != nil {
		t.Fatalf("call after the server closed the idle connection: %v", err)
	}
	if got := s.conns.Load(); got != 2 {
		t.Errorf("connections = %d, want 2", got)
	}
}

func TestConnectionClose(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		health(w, r)
	})
	c := s.client(t, nil)
	for range 3 {
		if err := c.Health(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.conns.Load(); got != 3 {
		t.Errorf("connections = %d, want 3: the server closes each", got)
	}
}

func TestChunkedAnswer(t *testing.T) {
	crew := strings.Repeat("x", 10_000)
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"flight":"AT100","journal_error":"` + crew[:5000]))
		w.(http.Flusher).Flush() // no Content-Length: chunked
		w.Write([]byte(crew[5000:] + `"}`))
	})
	c := s.client(t, nil)
	for range 2 {
		st, err := c.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if st.JournalError != crew {
			t.Errorf("journal_error has %d bytes, want %d", len(st.JournalError), len(crew))
		}
	}
	if got := s.conns.Load(); got != 1 {
		t.Errorf("connections = %d, want 1", got)
	}
}

func TestErrorAnswer(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusConflict)
		w.Write([]byte(`{"error":{"code":"conflict","message":"sale voided twice"}}`))
	})
	c := s.client(t, nil)
	_, err := c.Status(context.Background())
	he, ok := errors.AsType[*client.HTTPError](err)
	if !ok {
		t.Fatalf("err = %v, want an *HTTPError", err)
	}
	if he.StatusCode != http.StatusConflict || he.Err.Code != onboard.CodeConflict || he.Err.Message != "sale voided twice" {
		t.Errorf("err = %d %+v, want 409 conflict", he.StatusCode, he.Err)
	}
}

func TestAnswerTooLarge(t *testing.T) {
	s := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`"` + strings.Repeat("x", 1<<20) + `"`))
	})
	c := s.client(t, nil)
	if err := c.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "answer over") {
		t.Errorf("err = %v, want an answer over the limit", err)
	}
}

// blocking answers only when its test ends, and says when a request
// arrived.
func blocking(t *testing.T) (http.HandlerFunc, <-chan struct{}) {
	arrived := make(chan struct{}, 8)
	done := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(done) }) })
	return func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		select {
		case <-done:
		case <-r.Context().Done():
		}
	}, arrived
}

func TestCancel(t *testing.T) {
	h, arrived := blocking(t)
	s := newServer(t, h)
	c := s.client(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-arrived
		cancel()
	}()
	if err := c.Health(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}

func TestTimeout(t *testing.T) {
	h, _ := blocking(t)
	s := newServer(t, h)
	c := s.client(t, func(c *client.Config) { c.Timeout = 50 * time.Millisecond })
	err := c.Health(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Errorf("err = %v, want no answer within the timeout", err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v is the caller's deadline; want the client's own timeout", err)
	}
}

func TestMaxConns(t *testing.T) {
	h, arrived := blocking(t)
	s := newServer(t, h)
	c := s.client(t, func(c *client.Config) { c.MaxConns = 2 })
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { c.Health(ctx) })
	}
	<-arrived
	<-arrived
	// The third call waits for a connection: only two ever reach the server.
	cancel()
	wg.Wait()
	if got := s.conns.Load(); got != 2 {
		t.Errorf("connections = %d, want 2 (MaxConns)", got)
	}
}

func TestNewRefuses(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	for _, tc := range []struct{ name, url, handheld string }{
		{"PlainHTTP", "http://127.0.0.1:8443", "hh-1"},
		{"NoHost", "https:///v1", "hh-1"},
		{"Query", "https://127.0.0.1:8443/?x=1", "hh-1"},
		{"HandheldControlCharacter", "https://127.0.0.1:8443", "hh-1\r\nX-Evil: 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := client.New(client.Config{URL: tc.url, Fingerprint: fp, Handheld: tc.handheld}); err == nil {
				t.Errorf("New(%q, %q) = nil error", tc.url, tc.handheld)
			}
		})
	}
}

func TestTokenControlCharacter(t *testing.T) {
	s := newServer(t, health)
	c := s.client(t, nil)
	c.SetToken("tok\r\nX-Evil: 1")
	if err := c.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "control characters") {
		t.Errorf("err = %v, want the token refused", err)
	}
	if got := s.conns.Load(); got != 0 {
		t.Errorf("connections = %d, want 0: nothing sent", got)
	}
}

func TestTimeoutWaitingForConnection(t *testing.T) {
	h, arrived := blocking(t)
	s := newServer(t, h)
	c := s.client(t, func(c *client.Config) { c.MaxConns = 1; c.Timeout = 50 * time.Millisecond })
	go c.Health(context.Background()) // holds the one connection until its own timeout
	<-arrived
	err := c.Health(context.Background())
	if err == nil || !strings.Contains(err.Error(), "no answer within 50ms") {
		t.Errorf("err = %v, want no answer within the timeout", err)
	}
}

func TestRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	c, err := client.New(client.Config{URL: "https://" + addr, Fingerprint: strings.Repeat("ab", 32), Handheld: "hh-1"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("err = %v, want connection refused", err)
	}
}
