// Package ratelimit bounds how often one client may do something: the
// generic cell rate algorithm, one timestamp per client, over a bounded
// table of clients. Ground's HTTP API limits passengers, registrations and
// the back-office token with it; the back office limits failed sign-ins.
package ratelimit

import (
	"net"
	"sync"
	"time"
)

// Limiter is one limit over many clients. Each call moves the client's
// theoretical arrival time (tat) on by one interval; a call is refused while
// the tat is more than burst intervals ahead of now. A Limiter is safe for
// concurrent use.
type Limiter struct {
	interval  time.Duration // 1 / rate
	tolerance time.Duration // interval * burst
	max       int

	mu  sync.Mutex
	tat map[string]time.Time
}

// New returns a limiter allowing each client n calls per period per with
// burst calls at once on top, tracking at most clients clients (a new one
// is refused while the table is full of clients whose allowance is not yet
// whole again). n, burst and clients must be positive.
func New(per time.Duration, n, burst, clients int) *Limiter {
	iv := per / time.Duration(n)
	return &Limiter{interval: iv, tolerance: iv * time.Duration(burst), max: clients, tat: map[string]time.Time{}}
}

// Allow takes one call for client at now, or returns how long until one
// would be allowed.
func (l *Limiter) Allow(client string, now time.Time) (ok bool, retry time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, seen := l.tat[client]
	if !seen || t.Before(now) {
		t = now
	}
	if ahead := t.Sub(now); ahead >= l.tolerance {
		return false, ahead - l.tolerance + l.interval
	}
	if !seen && len(l.tat) >= l.max {
		l.sweep(now)
		if len(l.tat) >= l.max {
			return false, l.interval
		}
	}
	l.tat[client] = t.Add(l.interval)
	return true, 0
}

// Blocked reports whether client's next call at now would be refused, and
// for how long, without taking anything: for limits counted only on failure
// (a sign-in), checked before the attempt and taken after it fails.
func (l *Limiter) Blocked(client string, now time.Time) (blocked bool, retry time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, seen := l.tat[client]
	if !seen || t.Before(now) {
		return false, 0
	}
	if ahead := t.Sub(now); ahead >= l.tolerance {
		return true, ahead - l.tolerance + l.interval
	}
	return false, 0
}

// sweep forgets the clients whose allowance is whole again: remembering
// them changes nothing.
func (l *Limiter) sweep(now time.Time) {
	for c, t := range l.tat {
		if !t.After(now) {
			delete(l.tat, c)
		}
	}
}

// RetrySeconds is retry rounded up to whole seconds, at least 1: the value
// of a Retry-After header.
func RetrySeconds(retry time.Duration) int64 {
	return max(int64((retry+time.Second-1)/time.Second), 1)
}

// RemoteIP is the host part of a request's RemoteAddr (the address the
// connection came from; forwarding headers are not trusted).
func RemoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr[:min(len(addr), 64)]
}
