package api

import (
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/registry"
)

// RateLimits bound how often one client may call the API: a passenger by
// device key (counted once the request's signature has verified, so nobody
// can spend another passenger's allowance), a registration by the key it
// enrols (counted once its proof of possession has verified, in a bucket of
// its own), every call not yet authenticated (registration) also by remote
// IP address before anything is verified, and the back office by bearer
// token.
// A call over its client's limit is answered 429 rate_limited with a
// Retry-After header in seconds. Each limit is a sustained rate with a burst
// on top (a token bucket, kept as the GCRA's one timestamp per client).
type RateLimits struct {
	// PassengerPerMinute is one device key's sustained rate, in calls per
	// minute. Default 120.
	PassengerPerMinute int
	// PassengerBurst is how many calls one device key may make at once
	// beyond the rate. Default 60.
	PassengerBurst int
	// UnauthenticatedPerMinute is one remote IP address's sustained rate of
	// calls that carry no verified identity yet (registration), in calls
	// per minute. It is generous, since many phones may share one address
	// behind a carrier's NAT. Default 600.
	UnauthenticatedPerMinute int
	// UnauthenticatedBurst is how many such calls one address may make at
	// once. Default 300.
	UnauthenticatedBurst int
	// BackOfficePerSecond is one token's sustained rate, in calls per
	// second. Default 100.
	BackOfficePerSecond int
	// BackOfficeBurst is how many calls one token may make at once.
	// Default 1000.
	BackOfficeBurst int
	// Clients bounds how many clients are tracked at once. Default 1<<20
	// (about 100 MiB at most).
	Clients int
	// Off turns the limits off, for benchmarks that drive the API flat out.
	Off bool
}

func (l *RateLimits) setDefaults() {
	if l.PassengerPerMinute <= 0 {
		l.PassengerPerMinute = 120
	}
	if l.PassengerBurst <= 0 {
		l.PassengerBurst = 60
	}
	if l.UnauthenticatedPerMinute <= 0 {
		l.UnauthenticatedPerMinute = 600
	}
	if l.UnauthenticatedBurst <= 0 {
		l.UnauthenticatedBurst = 300
	}
	if l.BackOfficePerSecond <= 0 {
		l.BackOfficePerSecond = 100
	}
	if l.BackOfficeBurst <= 0 {
		l.BackOfficeBurst = 1000
	}
	if l.Clients <= 0 {
		l.Clients = 1 << 20
	}
}

// limiter is one limit over many clients: the generic cell rate algorithm.
// Each call moves the client's theoretical arrival time (tat) on by one
// interval; a call is refused while the tat is more than burst intervals
// ahead of now.
type limiter struct {
	interval  time.Duration // 1 / rate
	tolerance time.Duration // interval * burst
	max       int

	mu  sync.Mutex
	tat map[string]time.Time
}

func newLimiter(per time.Duration, n, burst, clients int) *limiter {
	iv := per / time.Duration(n)
	return &limiter{interval: iv, tolerance: iv * time.Duration(burst), max: clients, tat: map[string]time.Time{}}
}

// allow takes one call for client at now, or returns how long until one
// would be allowed.
func (l *limiter) allow(client string, now time.Time) (ok bool, retry time.Duration) {
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

// sweep forgets the clients whose allowance is whole again: remembering
// them changes nothing.
func (l *limiter) sweep(now time.Time) {
	for c, t := range l.tat {
		if !t.After(now) {
			delete(l.tat, c)
		}
	}
}

// rateLimits are the server's limiters; nil when limits are off.
type rateLimits struct {
	passenger, unauthenticated, backOffice *limiter
}

func newRateLimits(cfg RateLimits) *rateLimits {
	if cfg.Off {
		return nil
	}
	cfg.setDefaults()
	return &rateLimits{
		passenger:       newLimiter(time.Minute, cfg.PassengerPerMinute, cfg.PassengerBurst, cfg.Clients),
		unauthenticated: newLimiter(time.Minute, cfg.UnauthenticatedPerMinute, cfg.UnauthenticatedBurst, cfg.Clients),
		backOffice:      newLimiter(time.Second, cfg.BackOfficePerSecond, cfg.BackOfficeBurst, cfg.Clients),
	}
}

// limit takes one call of the client the request authenticated as (a
// passenger's device key, or the back-office token) or, for a call not yet
// authenticated (registration, before its proof of possession is checked),
// of its remote IP address; or it sets Retry-After and returns a
// rate_limited error. Nothing taken from an unverified header names the
// bucket: that would let anyone spend the allowance of the key it names.
func (s *Server) limit(c *call, a auth) error {
	if s.limits == nil {
		return nil
	}
	switch a {
	case authDevice:
		return s.take(c, s.limits.passenger, "device:"+c.device.Key.ID().String())
	case authProof:
		return s.take(c, s.limits.unauthenticated, "ip:"+remoteIP(c.r.RemoteAddr))
	case authToken:
		h := sha256.Sum256([]byte(c.r.Header.Get("Authorization")))
		return s.take(c, s.limits.backOffice, "token:"+hex.EncodeToString(h[:8]))
	}
	return nil
}

// limitRegistration takes one registration of device key key, once the
// request's proof of possession of it has verified. Its bucket is apart
// from the key's calls as an enrolled device, so registering again never
// spends a passenger's allowance.
func (s *Server) limitRegistration(c *call, key crypto.PublicKey) error {
	if s.limits == nil {
		return nil
	}
	return s.take(c, s.limits.passenger, "register:"+key.ID().String())
}

// remoteIP is the host part of a request's RemoteAddr (the address the
// connection came from; forwarding headers are not trusted).
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr[:min(len(addr), 64)]
}

// take takes one call of client from l, or sets Retry-After and returns a
// rate_limited error.
func (s *Server) take(c *call, l *limiter, client string) error {
	ok, retry := l.allow(client, s.clock())
	if ok {
		return nil
	}
	secs := int64((retry + time.Second - 1) / time.Second)
	c.w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	return registry.Errorf(registry.CodeRateLimited, "too many calls: retry in %d s", max(secs, 1))
}
