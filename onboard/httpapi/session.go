package httpapi

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"io"
	"sync"
	"time"
)

// sessions holds crew sessions in memory: a restart signs everyone out,
// which costs a sign-in and loses nothing. One session per handheld; at most
// max sessions, the oldest dropped first when full. Tokens are kept by their
// SHA-256, so a lookup's timing says nothing about a token.
type sessions struct {
	mu         sync.Mutex
	byToken    map[[32]byte]*session
	byHandheld map[string][32]byte
	max        int
	ttl        time.Duration
	rand       io.Reader
}

type session struct {
	Session
	key [32]byte
}

func newSessions(maxSessions int, ttl time.Duration, rnd io.Reader) *sessions {
	if rnd == nil {
		rnd = rand.Reader
	}
	return &sessions{byToken: map[[32]byte]*session{}, byHandheld: map[string][32]byte{},
		max: maxSessions, ttl: ttl, rand: rnd}
}

// create makes a session for crew on handheld, replacing the handheld's
// previous one.
func (s *sessions) create(crew, role, handheld string, now time.Time) (Session, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(s.rand, b); err != nil {
		return Session{}, fmt.Errorf("session token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	ss := &session{Session: Session{Token: token, CrewID: crew, Role: role, Handheld: handheld,
		ExpiresAt: now.Add(s.ttl)}, key: sha256.Sum256([]byte(token))}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.byHandheld[handheld]; ok {
		delete(s.byToken, old)
	}
	if len(s.byToken) >= s.max {
		s.evict(now)
	}
	s.byToken[ss.key] = ss
	s.byHandheld[handheld] = ss.key
	return ss.Session, nil
}

// evict drops expired sessions, and the oldest one if none had expired.
func (s *sessions) evict(now time.Time) {
	var oldest *session
	for k, ss := range s.byToken {
		if !now.Before(ss.ExpiresAt) {
			s.drop(k, ss)
			continue
		}
		if oldest == nil || ss.ExpiresAt.Before(oldest.ExpiresAt) {
			oldest = ss
		}
	}
	if len(s.byToken) >= s.max && oldest != nil {
		s.drop(oldest.key, oldest)
	}
}

func (s *sessions) drop(k [32]byte, ss *session) {
	delete(s.byToken, k)
	if s.byHandheld[ss.Handheld] == k {
		delete(s.byHandheld, ss.Handheld)
	}
}

// Why a token was refused, for the crew.
const (
	msgNoSession     = "no session: sign in first"
	msgExpired       = "session expired: sign in again"
	msgOtherHandheld = "session belongs to another handheld: sign in on this one"
)

// lookup returns the session of token used from handheld, or why not.
func (s *sessions) lookup(token, handheld string, now time.Time) (Session, string) {
	k := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.byToken[k]
	switch {
	case !ok:
		return Session{}, msgNoSession
	case !now.Before(ss.ExpiresAt):
		s.drop(k, ss)
		return Session{}, msgExpired
	case ss.Handheld != handheld:
		return Session{}, msgOtherHandheld
	}
	return ss.Session, ""
}

// remove signs a session out.
func (s *sessions) remove(token string) {
	k := sha256.Sum256([]byte(token))
	s.mu.Lock()
	defer s.mu.Unlock()
	if ss, ok := s.byToken[k]; ok {
		s.drop(k, ss)
	}
}

// limiter allows at most n events per key in any window: a sliding log of
// the last n event times per key. It holds at most maxKeys keys; when full,
// keys whose events have all left the window are dropped, and if none has,
// new keys are refused.
type limiter struct {
	mu      sync.Mutex
	n       int
	window  time.Duration
	maxKeys int
	events  map[string][]time.Time
}

func newLimiter(n int, window time.Duration, maxKeys int) *limiter {
	return &limiter{n: n, window: window, maxKeys: maxKeys, events: map[string][]time.Time{}}
}

// allow records an event for every key and returns 0 if each key is within
// its limit; otherwise it records nothing and returns how long until the
// first of the keys is allowed again.
func (l *limiter) allow(now time.Time, keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := now.Add(-l.window)
	var wait time.Duration
	for _, k := range keys {
		ev := l.recent(k, from)
		if len(ev) >= l.n {
			wait = max(wait, ev[0].Sub(from))
		}
	}
	if wait > 0 {
		return wait
	}
	for _, k := range keys {
		if _, ok := l.events[k]; !ok && len(l.events) >= l.maxKeys {
			l.sweep(from)
			if len(l.events) >= l.maxKeys {
				return l.window // every slot holds a key still in its window
			}
		}
	}
	for _, k := range keys {
		l.events[k] = append(l.recent(k, from), now)
	}
	return 0
}

// release forgets the event recorded at at for every key: the attempt it
// counted succeeded. Only failed sign-ins count against the limit, so a
// purser may sign in on every handheld of a wide-body in a minute, while
// guessing stays bounded per crew id and per handheld; an attempt counts
// while it is checked, so concurrent guesses cannot pass the bound.
func (l *limiter) release(at time.Time, keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		ev := l.events[k]
		for i := len(ev) - 1; i >= 0; i-- {
			if ev[i].Equal(at) {
				l.events[k] = append(ev[:i:i], ev[i+1:]...)
				break
			}
		}
		if len(l.events[k]) == 0 {
			delete(l.events, k)
		}
	}
}

// recent returns key's events after from, dropping older ones.
func (l *limiter) recent(k string, from time.Time) []time.Time {
	ev := l.events[k]
	i := 0
	for i < len(ev) && !ev[i].After(from) {
		i++
	}
	return ev[i:]
}

func (l *limiter) sweep(from time.Time) {
	for k := range l.events {
		if len(l.recent(k, from)) == 0 {
			delete(l.events, k)
		}
	}
}
