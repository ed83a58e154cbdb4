package ratelimit

import (
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// SignInLimit bounds the wrong back-office tokens ground takes, through
// every door that takes the token (the API's bearer token, the back
// office's sign-in form) together: per client address (ClientAddress), and
// across all addresses so that a guess spread over many addresses is
// slowed too. Both are the generic cell rate algorithm of Limiter.
//
// Each attempt is decided and counted in one step, under one lock, with
// the token already compared: concurrent guesses from one address cannot
// all pass a check made before any of them failed, and a right token is
// never counted, however many requests carrying it are in flight. A
// limited address is refused whatever its token, so a refusal says nothing
// about the token and the limit is no oracle.
//
// The global limit is a lever against the staff too: wrong tokens from a
// handful of addresses would keep every new sign-in out. An address that
// presented the right token in the last knownFor is exempt from it (its
// own limit still holds), so the clerks' desks and the systems calling the
// API keep working while strangers are refused. At most maxKnown addresses
// are remembered, the one whose last sign-in is oldest forgotten first.
//
// What the bounded table of addresses forgets (Limiter), the global limit
// still counts; and since every address in the table got there by a
// failure the global limit let through, the table stays small unless the
// global limit is raised far above the per-address one.
//
// A refused attempt costs the sender nothing, so refusals can come at
// network speed: WarnRefusal bounds the warnings the doors log about them
// (every refusal is still counted). A SignInLimit is safe for concurrent
// use.
type SignInLimit struct {
	mu       sync.Mutex
	addrs    *Limiter // by client address; guarded by mu, not its own lock
	all      *Limiter // one client, ""; guarded by mu
	warns    *Limiter // warnings about refusals, one client ""; guarded by mu
	unlogged int64    // refusals not warned of since the last warning; guarded by mu
	known    map[string]time.Time
	count    *prometheus.CounterVec
}

// SignInConfig configures a SignInLimit. A zero field takes its default.
type SignInConfig struct {
	// PerAddressPerMinute bounds the wrong tokens one client address may
	// send, per minute, after a burst of as many. Default 10.
	PerAddressPerMinute int
	// GlobalPerMinute bounds the wrong tokens from all addresses together,
	// per minute, after a burst of as many, except from an address that
	// presented the right token in the last 7 days. Default 60.
	GlobalPerMinute int
	// MaxAddresses bounds the client addresses whose failures are
	// remembered, in addresses; beyond it the ones nearest to their whole
	// allowance are forgotten (the global limit still counts them).
	// Default 4096.
	MaxAddresses int
	// Metrics is where the counter of attempts,
	// airtab_ground_backoffice_signins_total{door,outcome}, is registered.
	// When nil it is kept but not exposed.
	Metrics prometheus.Registerer
}

// The addresses exempt from the global limit: signed in within knownFor,
// at most maxKnown of them.
const (
	knownFor = 7 * 24 * time.Hour
	maxKnown = 256
)

// The warnings about refused attempts WarnRefusal lets through, from all
// addresses and doors together: warnBurst at once, then warnPerMinute a
// minute.
const (
	warnPerMinute = 60
	warnBurst     = 10
)

// Doors that take the back-office token: the values of the counter's door
// label.
const (
	DoorAPI        = "api"        // the JSON API's bearer token
	DoorBackOffice = "backoffice" // the back office's sign-in form
)

// Refusal says which limit refused an attempt.
type Refusal int

// The limits that refuse an attempt.
const (
	NotRefused     Refusal = iota
	RefusedAddress         // this client address's limit
	RefusedGlobal          // the limit over all addresses together
)

// Outcomes of an attempt, the values of the counter's outcome label.
const (
	outcomeSignedIn       = "signed_in"
	outcomeWrongToken     = "wrong_token"
	outcomeLimitedAddress = "limited_address"
	outcomeLimitedGlobal  = "limited_global"
)

const signInHelp = "Attempts at the back-office token, in attempts, by door (api: the API's bearer token; backoffice: the sign-in form, once past its CSRF check) and outcome (signed_in, wrong_token, and limited_address or limited_global: refused by the per-address or the all-addresses limit on wrong tokens, whatever the token)."

// NewSignInLimit builds the limit and registers its counter on
// cfg.Metrics.
func NewSignInLimit(cfg SignInConfig) (*SignInLimit, error) {
	if cfg.PerAddressPerMinute <= 0 {
		cfg.PerAddressPerMinute = 10
	}
	if cfg.GlobalPerMinute <= 0 {
		cfg.GlobalPerMinute = 60
	}
	if cfg.MaxAddresses <= 0 {
		cfg.MaxAddresses = 4096
	}
	l := &SignInLimit{
		addrs: New(time.Minute, cfg.PerAddressPerMinute, cfg.PerAddressPerMinute, cfg.MaxAddresses),
		all:   New(time.Minute, cfg.GlobalPerMinute, cfg.GlobalPerMinute, 1),
		warns: New(time.Minute, warnPerMinute, warnBurst, 1),
		known: make(map[string]time.Time),
		count: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "airtab_ground_backoffice_signins_total",
			Help: signInHelp,
		}, []string{"door", "outcome"}),
	}
	for _, d := range []string{DoorAPI, DoorBackOffice} {
		for _, o := range []string{outcomeSignedIn, outcomeWrongToken, outcomeLimitedAddress, outcomeLimitedGlobal} {
			l.count.WithLabelValues(d, o) // every series present from the start, so a rate over it is never missing
		}
	}
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(l.count); err != nil {
			return nil, fmt.Errorf("ratelimit: register the sign-in counter: %w", err)
		}
	}
	return l, nil
}

// Attempt decides and counts one attempt at the token from client address
// addr (ClientAddress) through door at now. right is whether the token was
// right, compared before the call (in constant time); the caller may act on
// it only when Attempt returns NotRefused. A refused attempt returns the
// limit that refused it and exactly how long until one would be taken, and
// counts against neither limit. A wrong token is counted against addr's
// limit and, unless addr signed in lately, the global one; a right one
// against neither, and it marks addr as one the staff sign in from.
func (l *SignInLimit) Attempt(door, addr string, right bool, now time.Time) (Refusal, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if retry := l.addrs.wait(addr, now); retry > 0 {
		l.count.WithLabelValues(door, outcomeLimitedAddress).Inc()
		return RefusedAddress, retry
	}
	last, known := l.known[addr]
	global := !known || now.Sub(last) >= knownFor
	if retry := l.all.wait("", now); global && retry > 0 {
		l.count.WithLabelValues(door, outcomeLimitedGlobal).Inc()
		return RefusedGlobal, retry
	}
	if right {
		l.remember(addr, now)
		l.count.WithLabelValues(door, outcomeSignedIn).Inc()
		return NotRefused, 0
	}
	l.addrs.take(addr, now)
	if global {
		l.all.take("", now)
	}
	l.count.WithLabelValues(door, outcomeWrongToken).Inc()
	return NotRefused, 0
}

// WarnRefusal says whether to log the warning about an attempt Attempt
// refused at now: warnBurst at once and warnPerMinute a minute after, from
// all addresses and doors together, so a flood of refused attempts cannot
// flood the log. When it says yes, unlogged is how many refused attempts
// were not warned of since the last warning, to log with it. Call it once
// for each refused attempt.
func (l *SignInLimit) WarnRefusal(now time.Time) (warn bool, unlogged int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.warns.wait("", now) > 0 {
		l.unlogged++
		return false, 0
	}
	l.warns.take("", now)
	unlogged, l.unlogged = l.unlogged, 0
	return true, unlogged
}

// remember marks addr as signed in at now, forgetting the address whose
// last sign-in is oldest when maxKnown are remembered. The caller holds
// l.mu.
func (l *SignInLimit) remember(addr string, now time.Time) {
	if _, ok := l.known[addr]; !ok && len(l.known) >= maxKnown {
		var oldest string
		for k, t := range l.known {
			if oldest == "" || t.Before(l.known[oldest]) {
				oldest = k
			}
		}
		delete(l.known, oldest)
	}
	l.known[addr] = now
}
