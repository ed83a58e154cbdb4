package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The client speaks HTTP/1.1 over its own kept-alive TLS connections
// instead of net/http's Transport. A handheld sends one request at a time
// per connection and waits for the answer; the Transport's reader and
// writer goroutines per connection, its request copies and header clones,
// with encoding/json's reflection, were more than half of a handheld's CPU
// per sale in the bench (about 80 µs; 35-40 µs now), where 64 handhelds
// share the cabin server's cores. An answer in the cabin server's plain
// form (HTTP/1.1, one Content-Length) is read here (readAnswer); any other
// by http.ReadResponse, net/http's own parser.

// conn is one HTTP/1.1 connection to the server, kept alive between calls.
type conn struct {
	tc     *tls.Conn
	br     *bufio.Reader
	idleAt time.Time // when it was put back
	reused bool      // it answered a call before this one
}

// pool holds the idle connections and bounds the open ones.
type pool struct {
	dial        func(ctx context.Context, deadline time.Time) (*tls.Conn, error)
	idleTimeout time.Duration
	slots       chan struct{} // one per open connection in use

	mu   sync.Mutex
	idle []*conn // most recently used last
}

func newPool(maxConns int, idleTimeout time.Duration, dial func(ctx context.Context, deadline time.Time) (*tls.Conn, error)) *pool {
	return &pool{dial: dial, idleTimeout: idleTimeout, slots: make(chan struct{}, maxConns)}
}

// get returns an idle connection, or a new one, waiting while maxConns are
// in use, until ctx ends or deadline passes. The caller gives it back with
// put or discard.
func (p *pool) get(ctx context.Context, deadline time.Time, fresh bool) (*conn, error) {
	select {
	case p.slots <- struct{}{}:
	default:
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		select {
		case p.slots <- struct{}{}:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
			return nil, fmt.Errorf("waiting for one of the %d connections: %w", cap(p.slots), os.ErrDeadlineExceeded)
		}
	}
	if !fresh {
		if c := p.takeIdle(time.Now()); c != nil {
			return c, nil
		}
	}
	tc, err := p.dial(ctx, deadline)
	if err != nil {
		<-p.slots
		return nil, err
	}
	return &conn{tc: tc, br: bufio.NewReaderSize(tc, 4<<10)}, nil
}

// takeIdle returns the most recently used idle connection, closing those
// idle for longer than idleTimeout (the server closes its idle
// connections after two minutes: ours go first).
func (p *pool) takeIdle(now time.Time) *conn {
	p.mu.Lock()
	defer p.mu.Unlock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		if now.Sub(c.idleAt) < p.idleTimeout {
			c.reused = true
			return c
		}
		c.tc.Close()
	}
	return nil
}

// put keeps c for the next call.
func (p *pool) put(c *conn) {
	c.idleAt = time.Now()
	p.mu.Lock()
	p.idle = append(p.idle, c)
	p.mu.Unlock()
	<-p.slots
}

// discard closes c, which cannot be used again.
func (p *pool) discard(c *conn) {
	c.tc.Close()
	<-p.slots
}

// closeIdle closes the idle connections.
func (p *pool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.tc.Close()
	}
}

// buffers are the pooled answer buffers.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// scratch is a call's pooled space for its request body and its request.
type scratch struct{ body, req []byte }

var scratches = sync.Pool{New: func() any { return &scratch{body: make([]byte, 0, 1<<10), req: make([]byte, 0, 2<<10)} }}

func getScratch() *scratch { return scratches.Get().(*scratch) }

func putScratch(s *scratch) {
	if cap(s.body)+cap(s.req) > maxPooledBytes {
		return
	}
	scratches.Put(s)
}

// maxPooledBytes bounds the buffers kept for reuse.
const maxPooledBytes = 64 << 10

func getBuffer() *bytes.Buffer { return buffers.Get().(*bytes.Buffer) }

func putBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledBytes {
		return
	}
	b.Reset()
	buffers.Put(b)
}

// errIdleClosed is a reused connection that the server had closed before
// the call: nothing of the answer arrived, so the call is sent again on a
// new connection (as net/http's Transport does). Every call of the API
// may be repeated: a sale or void is answered by its invoice id.
var errIdleClosed = errors.New("client: the server closed the kept-alive connection")

// roundTrip sends the request in req (its bytes, head and body) and returns
// the answer's status and body, read into out, all within Config.Timeout
// (or ctx's deadline, when sooner). A broken kept-alive connection is
// retried once on a new one.
func (c *Client) roundTrip(ctx context.Context, req []byte, out *bytes.Buffer) (int, error) {
	deadline := time.Now().Add(c.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	fresh := false
	for {
		cn, err := c.pool.get(ctx, deadline, fresh)
		if err != nil {
			if terr := c.timeoutError(ctx, err); terr != nil {
				return 0, terr
			}
			return 0, err
		}
		status, keep, err := c.exchange(ctx, deadline, cn, req, out)
		switch {
		case err == nil && keep:
			c.pool.put(cn)
		default:
			c.pool.discard(cn)
		}
		if errors.Is(err, errIdleClosed) && !fresh {
			fresh = true
			out.Reset()
			continue
		}
		return status, err
	}
}

// exchange writes req on cn and reads the answer's body into out. keep
// says whether cn may serve another call.
func (c *Client) exchange(ctx context.Context, deadline time.Time, cn *conn, req []byte, out *bytes.Buffer) (status int, keep bool, err error) {
	if err := cn.tc.SetDeadline(deadline); err != nil {
		return 0, false, err
	}
	if ctx.Done() != nil {
		// A cancelled call interrupts the connection's read or write; the
		// connection is then closed.
		stop := context.AfterFunc(ctx, func() { cn.tc.SetDeadline(time.Unix(1, 0)) })
		defer func() {
			if !stop() {
				keep = false // its deadline is in the past now
				if ctxErr := ctx.Err(); err != nil && ctxErr != nil {
					err = ctxErr
				}
			}
		}()
	}
	if _, err := cn.tc.Write(req); err != nil {
		return 0, false, c.connError(ctx, cn, err, true)
	}
	if _, err := cn.br.Peek(1); err != nil {
		return 0, false, c.connError(ctx, cn, err, true)
	}
	status, keep, err = readAnswer(cn.br, out)
	if err != nil {
		return 0, false, c.connError(ctx, cn, err, false)
	}
	return status, keep, nil
}

// errTooLarge is an answer over maxResponseBytes.
var errTooLarge = fmt.Errorf("answer over %d bytes", maxResponseBytes)

// readAnswer reads one answer from br: its status, its body into out, and
// whether the connection may serve another call. An answer whose head is
// buffered already and simple (see simpleHead) is read directly; any other
// by http.ReadResponse.
func readAnswer(br *bufio.Reader, out *bytes.Buffer) (status int, keep bool, err error) {
	if h, ok := simpleHead(peekBuffered(br)); ok {
		br.Discard(h.size)
		if h.length > maxResponseBytes {
			return 0, false, errTooLarge
		}
		out.Grow(h.length)
		if _, err := io.CopyN(out, br, int64(h.length)); err != nil {
			return 0, false, fmt.Errorf("read answer: %w", noEOF(err))
		}
		return h.status, h.keep, nil
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, false, err
	}
	n, err := out.ReadFrom(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return 0, false, fmt.Errorf("read answer: %w", err)
	}
	if n > maxResponseBytes {
		return 0, false, errTooLarge
	}
	resp.Body.Close()
	return resp.StatusCode, !resp.Close, nil
}

// noEOF reports a body cut short as io.ErrUnexpectedEOF, as net/http does.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

func peekBuffered(br *bufio.Reader) []byte {
	b, _ := br.Peek(br.Buffered())
	return b
}

// head is what readAnswer needs of an answer's head.
type head struct {
	size   int // bytes of the status line and headers, the blank line included
	status int
	length int // Content-Length
	keep   bool
}

// simpleHead parses the head at the start of b when it is complete and
// simple: "HTTP/1.1", a status from 200 to 599 other than 204 and 304, one
// Content-Length, no Transfer-Encoding, a Connection of "close" or
// "keep-alive" if any, lines ended by CRLF only and none folded. The cabin server's answers are
// all like that but for an empty 204; anything else is left to
// http.ReadResponse, which then reads the same bytes.
func simpleHead(b []byte) (head, bool) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		return head{}, false
	}
	h := head{size: end + 4, length: -1, keep: true}
	if n := bytes.Count(b[:end], []byte("\r\n")); n != bytes.Count(b[:end], []byte("\n")) || n != bytes.Count(b[:end], []byte("\r")) {
		return head{}, false // a bare CR or LF: net/http reads lines its own way
	}
	for _, c := range b[:end] {
		if (c < ' ' && c != '\t' && c != '\r' && c != '\n') || c == 0x7f {
			return head{}, false // a control character, which net/http refuses
		}
	}
	line, rest, _ := bytes.Cut(b[:end+2], []byte("\r\n"))
	code, ok := bytes.CutPrefix(line, []byte("HTTP/1.1 "))
	if !ok || len(code) < 3 || (len(code) > 3 && code[3] != ' ') {
		return head{}, false
	}
	for _, c := range code[:3] {
		if c < '0' || c > '9' {
			return head{}, false
		}
		h.status = h.status*10 + int(c-'0')
	}
	if h.status < 200 || h.status > 599 || h.status == http.StatusNoContent || h.status == http.StatusNotModified {
		return head{}, false
	}
	for len(rest) > 0 {
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || !token(name) {
			return head{}, false // a folded line, a bad name: net/http decides
		}
		value = bytes.Trim(value, " \t")
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if h.length >= 0 || len(value) == 0 || len(value) > 9 {
				return head{}, false
			}
			n := 0
			for _, c := range value {
				if c < '0' || c > '9' {
					return head{}, false
				}
				n = n*10 + int(c-'0')
			}
			h.length = n
		case asciiEqualFold(name, "Transfer-Encoding"):
			return head{}, false
		case asciiEqualFold(name, "Connection"):
			switch {
			case asciiEqualFold(value, "close"):
				h.keep = false
			case asciiEqualFold(value, "keep-alive"):
			default:
				return head{}, false
			}
		}
	}
	return h, h.length >= 0
}

// token reports whether b is a header name: letters, digits and
// !#$%&'*+-.^_`|~.
func token(b []byte) bool {
	for _, c := range b {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// connError names what broke: the call's context, its timeout, or the
// connection. first says nothing of the answer had arrived; on a reused
// connection that is errIdleClosed when the server closed it.
func (c *Client) connError(ctx context.Context, cn *conn, err error, first bool) error {
	if err := c.timeoutError(ctx, err); err != nil {
		return err
	}
	if first && cn.reused && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) {
		return fmt.Errorf("%w: %w", errIdleClosed, err)
	}
	return err
}

// timeoutError names a call that ended with its context or ran out of
// time; it returns nil for other errors.
func (c *Client) timeoutError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("no answer within %v: %w", c.cfg.Timeout, err)
	}
	return nil
}

// dialer makes the client's TLS connections.
type dialer struct {
	addr             string
	tls              *tls.Config
	handshakeTimeout time.Duration
	net              net.Dialer
}

// dial connects and shakes hands by deadline, the handshake within
// handshakeTimeout.
func (d *dialer) dial(ctx context.Context, deadline time.Time) (*tls.Conn, error) {
	nd := d.net
	nd.Deadline = deadline
	raw, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, err
	}
	hsDeadline := time.Now().Add(d.handshakeTimeout)
	if deadline.Before(hsDeadline) {
		hsDeadline = deadline
	}
	hctx, cancel := context.WithDeadline(ctx, hsDeadline)
	defer cancel()
	tc := tls.Client(raw, d.tls)
	if err := tc.HandshakeContext(hctx); err != nil {
		raw.Close()
		if ctx.Err() == nil && hctx.Err() != nil {
			// Our own time ran out, not the caller's context.
			return nil, fmt.Errorf("TLS handshake: %w", os.ErrDeadlineExceeded)
		}
		return nil, err
	}
	return tc, nil
}

// appendRequest appends an HTTP/1.1 request to b: the request line, the
// headers and the body (a JSON body when body is not nil).
func appendRequest(b []byte, method, host, path, handheld, auth string, body []byte) []byte {
	b = append(b, method...)
	b = append(b, ' ')
	b = append(b, path...)
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, host...)
	b = append(b, "\r\nUser-Agent: airtab-handheld\r\n"...)
	b = append(b, handheldHeaderPrefix...)
	b = append(b, handheld...)
	b = append(b, "\r\n"...)
	if auth != "" {
		b = append(b, "Authorization: "...)
		b = append(b, auth...)
		b = append(b, "\r\n"...)
	}
	if body != nil {
		b = append(b, "Content-Type: application/json\r\nContent-Length: "...)
		b = strconv.AppendInt(b, int64(len(body)), 10)
		b = append(b, "\r\n"...)
	} else if method != http.MethodGet {
		b = append(b, "Content-Length: 0\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, body...)
}

// validHeaderValue reports whether v may be sent as a header value as it
// is: printable ASCII and tabs, nothing that could end the header.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
