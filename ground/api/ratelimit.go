package api

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"sync"
	"time"

	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// RateLimits bound how often one client may call the API: a passenger by
// device key (counted once the request's signature has verified, so nobody
// can spend another passenger's allowance), the back office by bearer token.
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
	passenger, backOffice *limiter
}

func newRateLimits(cfg RateLimits) *rateLimits {
	if cfg.Off {
		return nil
	}
	cfg.setDefaults()
	return &rateLimits{
		passenger:  newLimiter(time.Minute, cfg.PassengerPerMinute, cfg.PassengerBurst, cfg.Clients),
		backOffice: newLimiter(time.Second, cfg.BackOfficePerSecond, cfg.BackOfficeBurst, cfg.Clients),
	}
}

// limit takes one call of the client the request authenticated as (a
// passenger's device key, or the back-office token), or sets Retry-After and
// returns a rate_limited error.
func (s *Server) limit(c *call, a auth) error {
	if s.limits == nil {
		return nil
	}
	var l *limiter
	var client string
	switch a {
	case authDevice:
		l, client = s.limits.passenger, "device:"+c.device.Key.ID().String()
	case authProof:
		// Registration: the key in the body signs it, checked by the
		// handler; its id in the header names the client (at most the
		// length of an id is kept).
		id := c.r.Header.Get(passengerapi.HeaderDevice)
		l, client = s.limits.passenger, "device:"+id[:min(len(id), 16)]
	case authToken:
		h := sha256.Sum256([]byte(c.r.Header.Get("Authorization")))
		l, client = s.limits.backOffice, "token:"+hex.EncodeToString(h[:8])
	default:
		return nil
	}
	ok, retry := l.allow(client, s.clock())
	if ok {
		return nil
	}
	secs := int64((retry + time.Second - 1) / time.Second)
	c.w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	return registry.Errorf(registry.CodeRateLimited, "too many calls: retry in %d s", max(secs, 1))
}
