package backoffice

import (
	"net/netip"
	"sync"
	"time"
)

// signInLimit bounds the wrong tokens the sign-in form takes: per client
// address, and across all addresses together so that a guess spread over
// many addresses is slowed too. Both are the generic cell rate algorithm
// (each attempt moves a theoretical arrival time, tat, on by one interval;
// an attempt is refused when that would put the tat more than a burst of
// intervals ahead of now, and the wait it is told is exactly until it
// would not), one timestamp per address plus one for all.
//
// An attempt is taken before the token is compared and given back when the
// token was right, so concurrent guesses from one address cannot all pass
// a check made before any of them failed, and a clerk who signs in is
// never counted.
//
// The table of addresses is bounded: a new address when it is full first
// drops the addresses whose allowance is whole again (remembering them
// changes nothing), then the one nearest to whole (the least restricted,
// usually the one that failed longest ago). What that forgets, the global
// limit still counts; and since every address in the table got there by a
// failure the global limit let through, the table stays small unless the
// global limit is raised far above the per-address one.
type signInLimit struct {
	addrInterval, addrTolerance time.Duration
	allInterval, allTolerance   time.Duration
	maxAddrs                    int

	mu    sync.Mutex
	tat   map[string]time.Time
	all   time.Time
	known map[string]time.Time // address -> its last good sign-in
}

// The global limit is a lever against the staff too: wrong tokens from a
// handful of addresses keep every new sign-in out. An address that signed
// in with the right token in the last knownFor is exempt from it (its own
// limit still holds), so the clerks' usual desks and offices keep signing
// in while strangers are refused. At most maxKnown addresses are
// remembered, the one whose last sign-in is oldest forgotten first.
const (
	knownFor = 7 * 24 * time.Hour
	maxKnown = 256
)

// limitKind says which limit refused an attempt.
type limitKind int

const (
	limitNone    limitKind = iota
	limitAddress           // this client address's
	limitGlobal            // all addresses' together
)

// attempt is what take counted, for refund to give back.
type attempt struct {
	addr   string
	global bool // counted against the global limit too
}

// newSignInLimit allows each address perAddr failures a minute after a
// burst of as many, all addresses together perAll a minute after a burst of
// as many, and remembers at most maxAddrs addresses. All must be positive.
func newSignInLimit(perAddr, perAll, maxAddrs int) *signInLimit {
	ai := time.Minute / time.Duration(perAddr)
	gi := time.Minute / time.Duration(perAll)
	return &signInLimit{addrInterval: ai, addrTolerance: ai * time.Duration(perAddr),
		allInterval: gi, allTolerance: gi * time.Duration(perAll),
		maxAddrs: maxAddrs, tat: make(map[string]time.Time), known: make(map[string]time.Time)}
}

// take counts one attempt from addr at now against its limits, or returns
// which limit refuses it and how long until one would be taken. A refused
// attempt counts against neither. An address that signed in lately is not
// held to the global limit, nor counted against it.
func (l *signInLimit) take(addr string, now time.Time) (a attempt, refused limitKind, retry time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a = attempt{addr: addr}
	t, seen := l.tat[addr]
	if !seen || t.Before(now) {
		t = now
	}
	if ahead := t.Sub(now); ahead > l.addrTolerance-l.addrInterval {
		return a, limitAddress, ahead - l.addrTolerance + l.addrInterval
	}
	last, known := l.known[addr]
	a.global = !known || now.Sub(last) >= knownFor
	g := l.all
	if g.Before(now) {
		g = now
	}
	if ahead := g.Sub(now); a.global && ahead > l.allTolerance-l.allInterval {
		return a, limitGlobal, ahead - l.allTolerance + l.allInterval
	}
	if !seen && len(l.tat) >= l.maxAddrs {
		l.makeRoom(now)
	}
	l.tat[addr] = t.Add(l.addrInterval)
	if a.global {
		l.all = g.Add(l.allInterval)
	}
	return a, limitNone, 0
}

// refund gives back an attempt take counted, for a sign-in whose token was
// right, and remembers its address as one staff sign in from. An address
// forgotten in between has nothing to give back.
func (l *signInLimit) refund(a attempt, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if t, ok := l.tat[a.addr]; ok {
		l.tat[a.addr] = t.Add(-l.addrInterval)
	}
	if a.global {
		l.all = l.all.Add(-l.allInterval)
	}
	if _, ok := l.known[a.addr]; !ok && len(l.known) >= maxKnown {
		var oldest string
		for k, t := range l.known {
			if oldest == "" || t.Before(l.known[oldest]) {
				oldest = k
			}
		}
		delete(l.known, oldest)
	}
	l.known[a.addr] = now
}

// makeRoom drops the addresses whose allowance is whole again and, if the
// table is still full, the one nearest to whole. A linear scan: it runs only
// for a failure the global limit let through, a few a second at most.
func (l *signInLimit) makeRoom(now time.Time) {
	var nearest string
	var nearestTAT time.Time
	for a, t := range l.tat {
		if !t.After(now) {
			delete(l.tat, a)
			continue
		}
		if nearest == "" || t.Before(nearestTAT) {
			nearest, nearestTAT = a, t
		}
	}
	if len(l.tat) >= l.maxAddrs {
		delete(l.tat, nearest)
	}
}

// addresses is how many addresses the table remembers now.
func (l *signInLimit) addresses() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.tat)
}

// clientAddress names the client a request's failures are counted against:
// the host of the connection's remote address (RemoteAddr). Ground serves
// the back office itself, with no proxy it trusts, so X-Forwarded-For and
// the like are ignored: anyone can write them. An IPv6 address counts as
// its /64, the block one subscriber or host is usually given (an attacker
// holds the whole block, not one address of it); an IPv4-mapped IPv6
// address as the IPv4 address.
func clientAddress(remoteAddr string) string {
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
