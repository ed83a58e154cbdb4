package api

import (
	"strconv"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/ratelimit"
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

// rateLimits are the server's limiters; nil when limits are off.
type rateLimits struct {
	passenger, unauthenticated, backOffice *ratelimit.Limiter
}

func newRateLimits(cfg RateLimits) *rateLimits {
	if cfg.Off {
		return nil
	}
	cfg.setDefaults()
	return &rateLimits{
		passenger:       ratelimit.New(time.Minute, cfg.PassengerPerMinute, cfg.PassengerBurst, cfg.Clients),
		unauthenticated: ratelimit.New(time.Minute, cfg.UnauthenticatedPerMinute, cfg.UnauthenticatedBurst, cfg.Clients),
		backOffice:      ratelimit.New(time.Second, cfg.BackOfficePerSecond, cfg.BackOfficeBurst, cfg.Clients),
	}
}

// limit takes one call of the client the request authenticated as (a
// passenger's device key, or the back-office token once it matched) or,
// for a call not yet authenticated (registration, before its proof of
// possession is checked), of its client address (ratelimit.ClientAddress);
// or it sets Retry-After and returns a rate_limited error. Nothing taken
// from an unverified header names the bucket: that would let anyone spend
// the allowance of the key it names.
func (s *Server) limit(c *call, a auth) error {
	if s.limits == nil {
		return nil
	}
	switch a {
	case authDevice:
		return s.take(c, s.limits.passenger, "device:"+c.device.Key.ID().String())
	case authProof:
		return s.take(c, s.limits.unauthenticated, "ip:"+ratelimit.ClientAddress(c.r.RemoteAddr))
	case authToken: // only the right token gets here (checkToken)
		return s.take(c, s.limits.backOffice, "token")
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

// take takes one call of client from l, or sets Retry-After and returns a
// rate_limited error.
func (s *Server) take(c *call, l *ratelimit.Limiter, client string) error {
	ok, retry := l.Allow(client, s.clock())
	if ok {
		return nil
	}
	secs := ratelimit.RetrySeconds(retry)
	c.w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	return registry.Errorf(registry.CodeRateLimited, "too many calls: retry in %d s", secs)
}

// checkToken decides a call that needs the back-office token. Every call
// carrying an Authorization header is an attempt at the token, decided by
// the sign-in limit (Config.SignIns, shared with the back office's sign-in
// form) with the token already compared: a call from an address past a
// limit is refused 429 rate_limited with Retry-After whatever its token, a
// wrong token is counted and refused 401, and the right one is never
// counted. A call with no Authorization header is no guess: 401, not
// counted. The token itself is never logged, and refusals are logged as
// SignInLimit.WarnRefusal allows.
func (s *Server) checkToken(c *call) error {
	const missing = "missing or wrong back-office token (Authorization: Bearer …)"
	if _, sent := c.r.Header["Authorization"]; !sent {
		return unauthorized(missing)
	}
	addr := ratelimit.ClientAddress(c.r.RemoteAddr)
	right := tokenMatches(c.r, s.token)
	now := s.clock()
	limit, retry := s.signIns.Attempt(ratelimit.DoorAPI, addr, right, now)
	switch {
	case limit != ratelimit.NotRefused:
		secs := ratelimit.RetrySeconds(retry)
		c.w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
		which, err := "address", registry.Errorf(registry.CodeRateLimited, "too many wrong back-office tokens from this address: retry in %d s", secs)
		if limit == ratelimit.RefusedGlobal {
			which, err = "global", registry.Errorf(registry.CodeRateLimited, "too many wrong back-office tokens from all addresses together just now: retry in %d s", secs)
		}
		if warn, unlogged := s.signIns.WarnRefusal(now); warn {
			s.log.Warn("api back-office token refused: too many wrong tokens", "limit", which, "remote", c.r.RemoteAddr, "client", addr, "retry_after_s", secs, "unlogged", unlogged)
		}
		return err
	case !right:
		s.log.Warn("api back-office token refused: wrong token", "method", c.r.Method, "path", c.r.URL.Path, "remote", c.r.RemoteAddr, "client", addr)
		return unauthorized(missing)
	}
	return nil
}
