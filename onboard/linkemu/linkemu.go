// Package linkemu emulates an aircraft's link to the ground as a TCP proxy:
// one-way latency, a bandwidth cap, outages that refuse connections or
// black-hole them, and connection resets every so many bytes. Tests, the
// simulator and the bench put it between a cabin server and ground NATS.
//
// The model per direction: a chunk read from the sender starts transmitting
// when the line is free, occupies it for size÷bandwidth, and arrives Latency
// later. A black-holed link delivers nothing until it is restored (TCP would
// keep retransmitting), and a down link closes every connection and refuses
// new ones.
package linkemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config shapes the link. The zero value is a perfect link.
type Config struct {
	// Latency is the one-way delay in each direction; the round trip is
	// twice this. Default: 0.
	Latency time.Duration
	// BitsPerSecond caps each direction's throughput. Default: 0, no cap.
	BitsPerSecond int64
	// ResetEveryBytes resets each connection (TCP RST) after it has carried
	// about this many bytes in both directions together. Default: 0, never.
	ResetEveryBytes int64
}

// State is whether the link carries traffic.
type State int

// Link states.
const (
	// Up carries traffic.
	Up State = iota
	// Down closes every connection and refuses new ones, as when the
	// aircraft has no link at all.
	Down
	// Blackhole accepts connections but delivers nothing until the link is
	// Up again, as when a satellite link silently drops every packet.
	Blackhole
)

func (s State) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	case Blackhole:
		return "blackhole"
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// Stats counts what the link has carried since it started.
type Stats struct {
	BytesUp   int64 // client → target
	BytesDown int64 // target → client
	Conns     int64 // connections accepted and forwarded
	Resets    int64 // connections reset by ResetEveryBytes
}

// Limits on the proxy's buffering.
const (
	chunkSize     = 16 << 10 // bytes read per chunk
	queuedChunks  = 64       // chunks in flight per direction before the sender is held back
	dialTimeout   = 5 * time.Second
	maxConcurrent = 256 // connections at once
)

// Link is a running link emulator.
type Link struct {
	ln     net.Listener
	target string
	log    *slog.Logger

	mu      sync.Mutex
	cfg     Config
	state   State
	resume  chan struct{} // closed when a black hole ends
	conns   map[*conn]struct{}
	closed  bool
	wg      sync.WaitGroup
	bytesUp atomic.Int64
	bytesDn atomic.Int64
	nConns  atomic.Int64
	nResets atomic.Int64
}

// Listen starts a link that accepts on listenAddr (use "127.0.0.1:0" for a
// free port) and forwards to target.
func Listen(listenAddr, target string, cfg Config, log *slog.Logger) (*Link, error) {
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("link emulator: listen %s: %w", listenAddr, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l := &Link{ln: ln, target: target, log: log, cfg: cfg, resume: make(chan struct{}), conns: map[*conn]struct{}{}}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

// Addr returns the address clients dial, such as "127.0.0.1:41234".
func (l *Link) Addr() string { return l.ln.Addr().String() }

// URL returns the address as a NATS URL.
func (l *Link) URL() string { return "nats://" + l.Addr() }

// SetConfig changes latency, bandwidth and resets for new and existing
// connections.
func (l *Link) SetConfig(cfg Config) {
	l.mu.Lock()
	l.cfg = cfg
	l.mu.Unlock()
}

// SetState brings the link up, down or into a black hole.
func (l *Link) SetState(s State) {
	l.mu.Lock()
	prev := l.state
	l.state = s
	var drop []*conn
	if s == Down {
		for c := range l.conns {
			drop = append(drop, c)
		}
	}
	if prev == Blackhole && s != Blackhole {
		close(l.resume)
		l.resume = make(chan struct{})
	}
	l.mu.Unlock()
	for _, c := range drop {
		c.close(false)
	}
	if prev != s {
		l.log.Info("link state", "from", prev.String(), "to", s.String())
	}
}

// State returns the link's current state.
func (l *Link) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// Stats returns the traffic counters.
func (l *Link) Stats() Stats {
	return Stats{BytesUp: l.bytesUp.Load(), BytesDown: l.bytesDn.Load(), Conns: l.nConns.Load(), Resets: l.nResets.Load()}
}

// Close stops accepting, closes every connection and waits for the
// forwarding goroutines to end.
func (l *Link) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	var all []*conn
	for c := range l.conns {
		all = append(all, c)
	}
	if l.state == Blackhole {
		close(l.resume)
		l.resume = make(chan struct{})
	}
	l.mu.Unlock()
	err := l.ln.Close()
	for _, c := range all {
		c.close(false)
	}
	l.wg.Wait()
	return err
}

func (l *Link) acceptLoop() {
	defer l.wg.Done()
	for {
		client, err := l.ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.log.Warn("link emulator: accept", "err", err)
			}
			return
		}
		l.mu.Lock()
		refuse := l.state == Down || l.closed || len(l.conns) >= maxConcurrent
		l.mu.Unlock()
		if refuse {
			resetConn(client)
			continue
		}
		l.wg.Add(1)
		go l.serve(client)
	}
}

func (l *Link) serve(client net.Conn) {
	defer l.wg.Done()
	server, err := net.DialTimeout("tcp", l.target, dialTimeout)
	if err != nil {
		l.log.Warn("link emulator: dial target", "target", l.target, "err", err)
		resetConn(client)
		return
	}
	c := &conn{link: l, client: client, server: server, done: make(chan struct{})}
	l.mu.Lock()
	if l.closed || l.state == Down {
		l.mu.Unlock()
		c.close(false)
		return
	}
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	l.nConns.Add(1)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.pipe(client, server, &l.bytesUp) }()
	go func() { defer wg.Done(); c.pipe(server, client, &l.bytesDn) }()
	wg.Wait()
	c.close(false)
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// snapshot returns the config and, if the link is black-holed, a channel
// that closes when it is not.
func (l *Link) snapshot() (Config, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == Blackhole {
		return l.cfg, l.resume
	}
	return l.cfg, nil
}

type conn struct {
	link           *Link
	client, server net.Conn
	carried        atomic.Int64
	once           sync.Once
	done           chan struct{}
}

func (c *conn) close(reset bool) {
	c.once.Do(func() {
		close(c.done)
		if reset {
			resetConn(c.client)
			resetConn(c.server)
			return
		}
		c.client.Close()
		c.server.Close()
	})
}

type chunk struct {
	data []byte
	at   time.Time // when it arrives at the far end
}

// pipe forwards src to dst through the emulated line.
func (c *conn) pipe(src, dst net.Conn, counter *atomic.Int64) {
	q := make(chan chunk, queuedChunks)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-c.done
		cancel()
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.deliver(ctx, q, dst, counter)
	}()
	c.read(ctx, src, q)
	close(q)
	wg.Wait()
}

func (c *conn) read(ctx context.Context, src net.Conn, q chan<- chunk) {
	var lineFree time.Time
	for {
		buf := make([]byte, chunkSize)
		n, err := src.Read(buf)
		if n > 0 {
			cfg, _ := c.link.snapshot()
			now := time.Now()
			start := now
			if lineFree.After(start) {
				start = lineFree
			}
			if cfg.BitsPerSecond > 0 {
				lineFree = start.Add(time.Duration(int64(n) * 8 * int64(time.Second) / cfg.BitsPerSecond))
			} else {
				lineFree = start
			}
			select {
			case q <- chunk{data: buf[:n], at: lineFree.Add(cfg.Latency)}:
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				c.close(false)
			}
			return
		}
	}
}

func (c *conn) deliver(ctx context.Context, q <-chan chunk, dst net.Conn, counter *atomic.Int64) {
	for ch := range q {
		if d := time.Until(ch.at); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
		if !c.waitOpen(ctx) {
			return
		}
		data, reset := ch.data, false
		if cfg, _ := c.link.snapshot(); cfg.ResetEveryBytes > 0 {
			// Cut the chunk where the connection's allowance ends.
			if left := cfg.ResetEveryBytes - c.carried.Load(); int64(len(data)) >= left {
				data, reset = data[:max(left, 0)], true
			}
		}
		if _, err := dst.Write(data); err != nil {
			c.close(false)
			return
		}
		counter.Add(int64(len(data)))
		c.carried.Add(int64(len(data)))
		if reset {
			c.link.nResets.Add(1)
			c.close(true)
			return
		}
	}
	// The sender closed its side: pass the half-close on.
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// waitOpen blocks while the link is black-holed. It reports false if the
// connection ended meanwhile.
func (c *conn) waitOpen(ctx context.Context) bool {
	for {
		_, resume := c.link.snapshot()
		if resume == nil {
			return ctx.Err() == nil
		}
		select {
		case <-resume:
		case <-ctx.Done():
			return false
		}
	}
}

// resetConn closes a TCP connection with RST rather than FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}
