package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

var now = time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)

func TestAllowRateAndBurst(t *testing.T) {
	l := New(time.Minute, 60, 3, 10) // one a second, three at once
	for i := range 3 {
		if ok, _ := l.Allow("a", now); !ok {
			t.Fatalf("call %d of the burst refused", i+1)
		}
	}
	ok, retry := l.Allow("a", now)
	if ok {
		t.Fatal("a fourth call at once taken with a burst of 3")
	}
	if retry != time.Second {
		t.Errorf("retry = %v, want 1s", retry)
	}
	if ok, _ := l.Allow("b", now); !ok {
		t.Error("another client refused: each client has its own allowance")
	}
	if ok, _ := l.Allow("a", now.Add(time.Second)); !ok {
		t.Error("refused one interval later")
	}
}

// TestAllowRetryIsExact: a call made when the retry says is taken, one a
// moment earlier is not, also when the calls do not fall on the interval.
func TestAllowRetryIsExact(t *testing.T) {
	for _, offset := range []time.Duration{0, 300 * time.Millisecond, 999 * time.Millisecond} {
		t.Run(fmt.Sprint(offset), func(t *testing.T) {
			l := New(time.Minute, 60, 2, 10)
			at := now
			l.Allow("a", at)
			at = at.Add(offset)
			l.Allow("a", at) // a burst of 2: the allowance spent
			ok, retry := l.Allow("a", at)
			if ok {
				t.Fatal("a third call taken with a burst of 2 and less than an interval passed")
			}
			if want := time.Second - offset; retry != want {
				t.Errorf("retry = %v, want %v", retry, want)
			}
			if ok, _ := l.Allow("a", at.Add(retry-time.Nanosecond)); ok {
				t.Error("taken a nanosecond before the retry")
			}
			if ok, _ := l.Allow("a", at.Add(retry)); !ok {
				t.Error("refused at the retry")
			}
		})
	}
}

// TestLimiterBoundsClients: a new client when the table is full of busy
// clients is taken and recorded, and the client forgotten for it is the
// least restricted one.
func TestLimiterBoundsClients(t *testing.T) {
	l := New(time.Minute, 60, 2, 2)
	l.Allow("busy", now)
	l.Allow("busy", now)
	l.Allow("idle", now)
	if ok, _ := l.Allow("new", now); !ok {
		t.Fatal("a new client refused with the table full")
	}
	if n := l.clients(); n != 2 {
		t.Errorf("%d clients remembered, want the bound, 2", n)
	}
	if ok, _ := l.Allow("busy", now); ok {
		t.Error("the most restricted client was forgotten to make room")
	}
	l.Allow("new", now)
	if ok, _ := l.Allow("new", now); ok {
		t.Error("the new client was not recorded: a third call at once taken")
	}
	big := New(time.Minute, 1, 1, 1000)
	for i := range 100_000 {
		big.Allow(fmt.Sprint(i), now.Add(time.Duration(i)*time.Millisecond))
		if n := big.clients(); n > 1000 {
			t.Fatalf("after %d clients the table holds %d, want at most 1000", i+1, n)
		}
	}
	if ok, _ := big.Allow("99999", now.Add(100*time.Second)); ok {
		t.Error("the newest client was forgotten")
	}
}

func TestRetrySeconds(t *testing.T) {
	for _, c := range []struct {
		in   time.Duration
		want int64
	}{{0, 1}, {time.Millisecond, 1}, {time.Second, 1}, {1001 * time.Millisecond, 2}, {time.Minute, 60}} {
		if got := RetrySeconds(c.in); got != c.want {
			t.Errorf("RetrySeconds(%v) = %d, want %d", c.in, got, c.want)
		}
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
		if got := ClientAddress(in); got != want {
			t.Errorf("ClientAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
