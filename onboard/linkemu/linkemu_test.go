package linkemu

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"
)

// echoServer accepts connections and echoes every byte back.
func echoServer(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

func startLink(t testing.TB, cfg Config) *Link {
	t.Helper()
	l, err := Listen("127.0.0.1:0", echoServer(t), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(t testing.TB, l *Link) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip writes data and reads the echo back.
func roundTrip(c net.Conn, data []byte) ([]byte, error) {
	errc := make(chan error, 1)
	go func() { _, err := c.Write(data); errc <- err }()
	got := make([]byte, len(data))
	_, err := io.ReadFull(c, got)
	if werr := <-errc; err == nil {
		err = werr
	}
	return got, err
}

func TestForwardsBytesIntact(t *testing.T) {
	l := startLink(t, Config{})
	c := dial(t, l)
	data := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.UintN(256))
	}
	got, err := roundTrip(c, data)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("echoed bytes differ from those sent")
	}
	// The counters move just after each write, so the client can be a
	// moment ahead of them.
	want := Stats{BytesUp: int64(len(data)), BytesDown: int64(len(data)), Conns: 1}
	deadline := time.Now().Add(5 * time.Second)
	for l.Stats() != want && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if s := l.Stats(); s != want {
		t.Fatalf("stats = %+v, want %+v", s, want)
	}
}

// The emulated line's delays are timings, so they are measured here, in
// benchmarks, rather than asserted in tests: the round trip through a link
// with 50 ms one-way latency, and 50 kB each way at 800 kbit/s, reported
// beside what the configuration says they should take.
func BenchmarkLatency(b *testing.B) {
	const latency = 50 * time.Millisecond
	l := startLink(b, Config{Latency: latency})
	c := dial(b, l)
	start := time.Now()
	for b.Loop() {
		if _, err := roundTrip(c, []byte("ping")); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/roundtrip")
	b.ReportMetric(float64((2 * latency).Milliseconds()), "ms/configured")
}

func BenchmarkBandwidth(b *testing.B) {
	const bps = 800_000
	l := startLink(b, Config{BitsPerSecond: bps})
	c := dial(b, l)
	data := make([]byte, 50_000)
	start := time.Now()
	for b.Loop() {
		if _, err := roundTrip(c, data); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/50kB")
	b.ReportMetric(float64(len(data)*8*1000/bps), "ms/configured")
}

func TestDownClosesAndRefuses(t *testing.T) {
	l := startLink(t, Config{})
	c := dial(t, l)
	if _, err := roundTrip(c, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	l.SetState(Down)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("read on a connection of a downed link succeeded")
	} else if isTimeout(err) {
		t.Fatal("connection was not closed when the link went down")
	}
	c2, err := net.Dial("tcp", l.Addr())
	if err == nil {
		c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = c2.Read(make([]byte, 1))
		c2.Close()
		if isTimeout(err) {
			t.Fatal("new connection to a downed link was not refused")
		}
	}
	l.SetState(Up)
	c3 := dial(t, l)
	if _, err := roundTrip(c3, []byte("again")); err != nil {
		t.Fatalf("after the link came back up: %v", err)
	}
}

func TestBlackholeHoldsTrafficUntilRestored(t *testing.T) {
	l := startLink(t, Config{})
	c := dial(t, l)
	l.SetState(Blackhole)
	if _, err := c.Write([]byte("held")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, err := c.Read(make([]byte, 4)); err == nil || n > 0 {
		t.Fatalf("black-holed link delivered %d bytes", n)
	}
	l.SetState(Up)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("after the black hole ended: %v", err)
	}
	if string(got) != "held" {
		t.Fatalf("got %q, want %q", got, "held")
	}
}

func TestResetEveryBytes(t *testing.T) {
	l := startLink(t, Config{ResetEveryBytes: 4096})
	c := dial(t, l)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	_, err := roundTrip(c, make([]byte, 64<<10))
	if err == nil {
		t.Fatal("64 KiB crossed a link that resets every 4 KiB")
	}
	if isTimeout(err) {
		t.Fatalf("connection hung instead of being reset: %v", err)
	}
	if got := l.Stats().Resets; got != 1 {
		t.Fatalf("resets = %d, want 1", got)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
