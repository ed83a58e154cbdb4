package client

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// heads are answers, simple and not, as the cabin server or anything else
// might send them.
var heads = []string{
	"HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Type: application/json\r\nDate: Thu, 03 Dec 2026 12:00:00 GMT\r\nContent-Length: 12\r\n\r\n{\"ok\":true}\n",
	"HTTP/1.1 409 Conflict\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
	"HTTP/1.1 200 OK\r\ncontent-length:  3 \r\nCONNECTION: Keep-Alive\r\n\r\nabcEXTRA",
	"HTTP/1.1 204 No Content\r\n\r\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
	"HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n folded\r\n\r\nabc",
	"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: upgrade\r\n\r\nabc",
	"HTTP/1.1 200\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 2000 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\nBad Name: 1\r\nContent-Length: 1\r\n\r\nx",
	"HTTP/1.1 200 OK\r\n\r\nbody to the end",
	"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab",
	"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n",
	"",
}

// TestSimpleHead holds readAnswer's own parsing to http.ReadResponse:
// whenever it reads an answer, net/http reads the same status, body and
// keep-alive from it.
func TestSimpleHead(t *testing.T) {
	simple := 0
	for _, a := range heads {
		if checkAnswer(t, []byte(a)) {
			simple++
		}
	}
	if simple < 4 {
		t.Errorf("%d answers read without net/http, want at least the 4 simple ones", simple)
	}
}

func checkAnswer(t *testing.T, a []byte) (simple bool) {
	t.Helper()
	br := bufio.NewReaderSize(bytes.NewReader(a), 4<<10)
	br.Peek(1) // what exchange does first
	if _, ok := simpleHead(peekBuffered(br)); !ok {
		return false
	}
	var got bytes.Buffer
	status, keep, err := readAnswer(br, &got)
	resp, werr := http.ReadResponse(bufio.NewReader(bytes.NewReader(a)), nil)
	if werr != nil {
		t.Fatalf("read %q without net/http (%d, %v), but net/http refuses it: %v", a, status, err, werr)
	}
	want, werr := io.ReadAll(resp.Body)
	if (err != nil) != (werr != nil) {
		t.Fatalf("answer %q: error %v, net/http's %v", a, err, werr)
	}
	if err == nil && (status != resp.StatusCode || keep == resp.Close || got.String() != string(want)) {
		t.Fatalf("answer %q: %d keep %v body %q; net/http: %d close %v body %q", a, status, keep, got.String(), resp.StatusCode, resp.Close, want)
	}
	return true
}

func FuzzSimpleHead(f *testing.F) {
	for _, a := range heads {
		f.Add([]byte(a))
		f.Add([]byte(strings.ToLower(a)))
	}
	f.Fuzz(func(t *testing.T, a []byte) { checkAnswer(t, a) })
}
