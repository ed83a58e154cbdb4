package backoffice

import (
	"fmt"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

// TestSignInLimitBoundsAddresses: however many addresses fail, the table
// holds at most its bound, and the one forgotten is the least restricted.
func TestSignInLimitBoundsAddresses(t *testing.T) {
	l := newSignInLimit(2, 1_000_000, 100)
	for i := range 10_000 {
		now := t0.Add(time.Duration(i) * time.Millisecond)
		if _, limit, _ := l.take(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now); limit != limitNone {
			t.Fatalf("address %d refused its first failure (limit %d)", i, limit)
		}
		if n := l.addresses(); n > 100 {
			t.Fatalf("after %d addresses the table holds %d, want at most 100", i+1, n)
		}
	}
	busy := t0.Add(10 * time.Second)
	l.take("192.0.2.1", busy)
	l.take("192.0.2.1", busy) // limited now, and the furthest from whole
	for i := range 200 {
		l.take(fmt.Sprintf("198.51.100.%d", i), busy)
	}
	if _, limit, _ := l.take("192.0.2.1", busy); limit != limitAddress {
		t.Errorf("the most restricted address was forgotten: limit %d, want %d", limit, limitAddress)
	}
}

// TestSignInLimitRetryIsExact: an attempt made when Retry-After says is
// taken; one made a moment earlier is not.
func TestSignInLimitRetryIsExact(t *testing.T) {
	l := newSignInLimit(10, 1000, 10)
	for range 10 {
		l.take("a", t0)
	}
	_, limit, retry := l.take("a", t0)
	if limit != limitAddress || retry != 6*time.Second {
		t.Fatalf("after the burst: limit %d retry %v, want %d 6s", limit, retry, limitAddress)
	}
	if _, limit, _ := l.take("a", t0.Add(retry-time.Nanosecond)); limit != limitAddress {
		t.Error("taken before the retry time")
	}
	if _, limit, _ := l.take("a", t0.Add(retry)); limit != limitNone {
		t.Error("refused at the retry time")
	}
}

// TestSignInLimitRefund: a sign-in that succeeds gives its attempt back to
// both limits, and its address is held to its own limit only.
func TestSignInLimitRefund(t *testing.T) {
	l := newSignInLimit(2, 3, 10)
	for range 50 {
		a, _, _ := l.take("a", t0)
		l.refund(a, t0)
	}
	l.take("b", t0)
	l.take("b", t0)
	l.take("c", t0)
	if _, limit, _ := l.take("d", t0); limit != limitGlobal {
		t.Errorf("fourth failure in all: limit %d, want %d", limit, limitGlobal)
	}
	if _, limit, _ := l.take("b", t0); limit != limitAddress {
		t.Errorf("third failure from b: limit %d, want %d", limit, limitAddress)
	}
	for i := range 3 {
		want := []limitKind{limitNone, limitNone, limitAddress}[i]
		if _, limit, _ := l.take("a", t0); limit != want {
			t.Errorf("failure %d from a, which signed in: limit %d, want %d", i+1, limit, want)
		}
	}
	later := t0.Add(knownFor)
	for _, c := range []string{"e", "f", "g"} {
		l.take(c, later)
	}
	if _, limit, _ := l.take("a", later); limit != limitGlobal {
		t.Errorf("a, its sign-in %v old: limit %d, want %d", knownFor, limit, limitGlobal)
	}
}

// TestSignInLimitBoundsKnown: the addresses that signed in are bounded too,
// the one that signed in longest ago forgotten first.
func TestSignInLimitBoundsKnown(t *testing.T) {
	l := newSignInLimit(1000, 1000, 10)
	for i := range 1000 {
		now := t0.Add(time.Duration(i) * time.Second)
		a, _, _ := l.take(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now)
		l.refund(a, now)
		if n := len(l.known); n > maxKnown {
			t.Fatalf("after %d sign-ins %d addresses known, want at most %d", i+1, n, maxKnown)
		}
	}
	if _, ok := l.known["10.0.0.0"]; ok {
		t.Error("the first address is still known")
	}
	if _, ok := l.known["10.0.3.231"]; !ok {
		t.Error("the last address is not known")
	}
}

func TestClientAddress(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1:443":             "192.0.2.1",
		"[::ffff:192.0.2.1]:443":    "192.0.2.1",
		"[2001:db8:1:2:3:4:5:6]:80": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:80": "2001:db8:1:2::/64",
		"[fe80::1%eth0]:80":         "fe80::/64",
		"2001:db8::1":               "2001:db8::/64",
		"pipe":                      "pipe",
	} {
		if got := clientAddress(in); got != want {
			t.Errorf("clientAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
