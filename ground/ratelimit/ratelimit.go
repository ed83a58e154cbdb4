// Package ratelimit bounds how often one client may do something: the
// generic cell rate algorithm, one timestamp per client, over a bounded
// table of clients. Ground's HTTP API limits passengers, registrations and
// the back-office token's calls with a Limiter; SignInLimit bounds the
// wrong back-office tokens sent to the API and to the back-office sign-in
// together.
package ratelimit

import (
	"net/netip"
	"sync"
	"time"
)

// Limiter is one limit over many clients: the generic cell rate algorithm.
// Each call taken moves the client's theoretical arrival time (tat) on by
// one interval; a call is refused when that would put the tat more than
// burst intervals ahead of now, and the wait it is told is exactly until it
// would not. A Limiter is safe for concurrent use.
//
// The table of clients is bounded: a new client when it is full first
// drops the clients whose allowance is whole again (remembering them
// changes nothing), then the ones nearest to whole (the least restricted),
// a sixteenth of the table at once so that the scan is paid for by the
// clients it makes room for. A new client is always taken and recorded; a
// full table costs the forgotten clients what they had spent, never a
// newcomer its call.
type Limiter struct {
	interval  time.Duration // 1 / rate
	tolerance time.Duration // interval * burst
	max       int

	mu  sync.Mutex
	tat map[string]time.Time
}

// New returns a limiter allowing each client n calls per period per, with
// at most burst calls at once, tracking at most clients clients. n, burst
// and clients must be positive.
func New(per time.Duration, n, burst, clients int) *Limiter {
	iv := per / time.Duration(n)
	return &Limiter{interval: iv, tolerance: iv * time.Duration(burst), max: clients, tat: map[string]time.Time{}}
}

// Allow takes one call for client at now, or returns how long until one
// would be taken.
func (l *Limiter) Allow(client string, now time.Time) (ok bool, retry time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if retry := l.wait(client, now); retry > 0 {
		return false, retry
	}
	l.take(client, now)
	return true, 0
}

// wait is how long until client's next call would be taken at now, 0 when
// it would be now. The caller holds l.mu.
func (l *Limiter) wait(client string, now time.Time) time.Duration {
	t := l.tat[client]
	if t.Before(now) {
		t = now
	}
	return max(t.Add(l.interval).Sub(now)-l.tolerance, 0)
}

// take takes one call for client at now, whether wait allows it or not.
// The caller holds l.mu.
func (l *Limiter) take(client string, now time.Time) {
	t, seen := l.tat[client]
	if !seen && len(l.tat) >= l.max {
		l.makeRoom(now)
	}
	if t.Before(now) {
		t = now
	}
	l.tat[client] = t.Add(l.interval)
}

// makeRoom drops the clients whose allowance is whole again and, if the
// table is still full, the ones nearest to whole: a sixteenth of the
// table, at least one. The caller holds l.mu.
func (l *Limiter) makeRoom(now time.Time) {
	tats := make([]int64, 0, len(l.tat))
	for c, t := range l.tat {
		if !t.After(now) {
			delete(l.tat, c)
		} else {
			tats = append(tats, t.UnixNano())
		}
	}
	if len(l.tat) < l.max {
		return
	}
	drop := max(l.max/16, len(l.tat)-l.max+1)
	limit := nth(tats, drop-1) // selected, not sorted: a full table is large
	atLimit := drop            // how many at the limit go: those below it all go
	for _, t := range tats {
		if t < limit {
			atLimit--
		}
	}
	for c, t := range l.tat {
		switch n := t.UnixNano(); {
		case n < limit:
			delete(l.tat, c)
		case n == limit && atLimit > 0:
			delete(l.tat, c)
			atLimit--
		}
	}
}

// nth is the value that would be at index k were a sorted: Hoare's
// selection, in expected linear time, reordering a. 0 <= k < len(a).
func nth(a []int64, k int) int64 {
	lo, hi := 0, len(a)-1
	for lo < hi {
		p := a[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for a[i] < p {
				i++
			}
			for a[j] > p {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return a[k]
		}
	}
	return a[k]
}

// clients is how many clients the table remembers now.
func (l *Limiter) clients() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tat)
}

// RetrySeconds is retry rounded up to whole seconds, at least 1: the value
// of a Retry-After header.
func RetrySeconds(retry time.Duration) int64 {
	return max(int64((retry+time.Second-1)/time.Second), 1)
}

// ClientAddress names the client a request is counted against: the host of
// the connection's remote address (http.Request.RemoteAddr). Ground serves
// its API and the back office itself, with no proxy it trusts, so
// X-Forwarded-For and the like are ignored: anyone can write them. An IPv6
// address counts as its /64, the block one subscriber or host is usually
// given (an attacker holds the whole block, not one address of it); an
// IPv4-mapped IPv6 address as the IPv4 address.
func ClientAddress(remoteAddr string) string {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		a, err := netip.ParseAddr(remoteAddr)
		if err != nil {
			return remoteAddr[:min(len(remoteAddr), 64)] // not an IP (a test's pipe): itself, bounded
		}
		ap = netip.AddrPortFrom(a, 0)
	}
	a := ap.Addr().Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, _ := a.Prefix(64)
	return p.String()
}
