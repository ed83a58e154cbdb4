package ratelimit

import (
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

func TestLimiterBoundsClients(t *testing.T) {
	l := New(time.Second, 1, 1, 2)
	for _, c := range []string{"a", "b"} {
		if ok, _ := l.Allow(c, now); !ok {
			t.Fatalf("client %s refused", c)
		}
	}
	if ok, _ := l.Allow("c", now); ok {
		t.Fatal("a third client taken with the table full of busy clients")
	}
	if ok, _ := l.Allow("c", now.Add(time.Second)); !ok {
		t.Fatal("a third client refused once the others' allowance was whole again")
	}
}

func TestBlockedTakesNothing(t *testing.T) {
	l := New(time.Minute, 6, 2, 10) // one per 10 s, two at once
	for range 10 {
		if blocked, _ := l.Blocked("a", now); blocked {
			t.Fatal("blocked before any call was taken")
		}
	}
	l.Allow("a", now)
	l.Allow("a", now)
	blocked, retry := l.Blocked("a", now)
	if !blocked || retry != 10*time.Second {
		t.Fatalf("after the burst: blocked %v retry %v, want true 10s", blocked, retry)
	}
	if blocked, _ := l.Blocked("a", now.Add(10*time.Second)); blocked {
		t.Error("still blocked one interval later")
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

func TestRemoteIP(t *testing.T) {
	for in, want := range map[string]string{"192.0.2.1:443": "192.0.2.1", "[2001:db8::1]:80": "2001:db8::1", "pipe": "pipe"} {
		if got := RemoteIP(in); got != want {
			t.Errorf("RemoteIP(%q) = %q, want %q", in, got, want)
		}
	}
}
