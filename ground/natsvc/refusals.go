package natsvc

import (
	"context"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airtab/airtab/protocol"
)

// Refused logins. nats-server logs every refused login as an error; a
// cabin server started before its aircraft is registered retries every few
// seconds, as documented, and is no error of ground's. A refused login is
// logged at Warn instead, at most once per interval for each nkey (with
// how many refusals the interval held), naming what the server's line
// tells of the client: its address always, the nkey or user it presented,
// and the aircraft when the nkey is a registered aircraft's. The name the
// client gave in its CONNECT ("airtab-onboard D-AIUA" for a cabin server;
// the client's word, unchecked) is not in the server's line: it is looked
// up by connection id while the refused connection is still open.
//
// A connection with no credentials at all is one that had not sent its
// CONNECT yet: an authorization reload (SetAircraft, after every aircraft
// registration or key change) closes each such connection, and the server
// logs that as a refused login with nobody named. Those are logged at Info,
// saying so: the client (a cabin server in the middle of its retry)
// connects again at its next retry. Outside a reload the client sent
// something other than a CONNECT first: not a NATS client.

// DefaultRefusalLogInterval is how often a refused nkey is logged again.
const DefaultRefusalLogInterval = time.Minute

// maxRefusalKeys bounds the nkeys remembered; when full the memory is
// cleared (a cache: at worst a line is logged early).
const maxRefusalKeys = 1024

// refusals rate-limits refused-login lines.
type refusals struct {
	log      *slog.Logger
	interval time.Duration
	now      func() time.Time
	known    atomic.Pointer[map[string]protocol.AircraftID] // nkey → aircraft
	reloads  atomic.Int32                                   // authorization reloads under way
	// clientName returns the CONNECT name of the open connection cid;
	// nil or "" when not known.
	clientName func(cid uint64) string

	mu   sync.Mutex
	seen map[string]*refusal
}

type refusal struct {
	last  time.Time // when it was last logged
	count int       // refusals not yet logged
}

func newRefusals(log *slog.Logger, interval time.Duration, now func() time.Time) *refusals {
	if interval <= 0 {
		interval = DefaultRefusalLogInterval
	}
	r := &refusals{log: log, interval: interval, now: now, seen: map[string]*refusal{}}
	r.setKnown(nil)
	return r
}

// setKnown replaces the nkeys known to belong to aircraft.
func (r *refusals) setKnown(ids []AircraftIdentity) {
	m := make(map[string]protocol.AircraftID, len(ids))
	for _, a := range ids {
		m[a.NKey] = a.ID
	}
	r.known.Store(&m)
}

// reloading marks an authorization reload under way until the returned
// func is called: nats-server closes, from inside the reload, every
// connection that has not logged in yet.
func (r *refusals) reloading() (done func()) {
	r.reloads.Add(1)
	return func() { r.reloads.Add(-1) }
}

// refusedLogin is what nats-server's refused-login line says of the
// client: "<addr> - cid:<n> - authentication error[ - <credential>]", the
// credential `Nkey "U…"`, `User "name"`, `JWT User "U…"` or
// `Token "[REDACTED]"`, or none when the client presented none.
type refusedLogin struct {
	remote string // the client's address, host:port; "" if the line has none
	cid    string // the server's connection id
	cred   string // the credential as the server wrote it; "" for none
	nkey   string // the public nkey presented, if one was
	user   string // the user name presented, if one was
}

// parseRefusal reads a refused-login line; ok is false for any other line.
func parseRefusal(line string) (l refusedLogin, ok bool) {
	const marker = "authentication error"
	i := strings.Index(line, marker)
	if i < 0 {
		return l, false
	}
	l.cred = strings.TrimSpace(strings.TrimPrefix(line[i+len(marker):], " - "))
	if rest, ok := strings.CutPrefix(l.cred, `Nkey "`); ok {
		l.nkey, _, _ = strings.Cut(rest, `"`)
	} else if rest, ok := strings.CutPrefix(l.cred, `User "`); ok {
		l.user, _, _ = strings.Cut(rest, `"`)
	}
	// The prefix is the client: its address, then its connection id.
	parts := strings.Split(strings.TrimSuffix(line[:i], " - "), " - ")
	if len(parts) >= 1 {
		if _, _, err := net.SplitHostPort(parts[0]); err == nil {
			l.remote = parts[0]
		}
	}
	if len(parts) >= 2 {
		if _, id, ok := strings.Cut(parts[1], "id:"); ok {
			l.cid = id
		}
	}
	return l, true
}

// key is what the refusal is rate-limited by: the nkey, else the user
// name, else the client's host (a port is new at every retry).
func (l refusedLogin) key() string {
	switch {
	case l.nkey != "":
		return "nkey " + l.nkey
	case l.cred != "":
		return l.cred
	}
	host, _, err := net.SplitHostPort(l.remote)
	if err != nil {
		return "addr " + l.remote
	}
	return "host " + host
}

// note handles one of nats-server's error lines; it reports whether the
// line was a refused login (and so handled here).
func (r *refusals) note(line string) bool {
	l, ok := parseRefusal(line)
	if !ok {
		return false
	}
	// A reload's closing is counted apart, so it never hides a refusal
	// from the same host that needs looking at.
	reload := l.cred == "" && r.reloads.Load() > 0
	key := l.key()
	if reload {
		key += " reload"
	}
	now := r.now()
	r.mu.Lock()
	e := r.seen[key]
	if e == nil {
		if len(r.seen) >= maxRefusalKeys {
			clear(r.seen)
		}
		e = &refusal{}
		r.seen[key] = e
	}
	e.count++
	due := e.last.IsZero() || now.Sub(e.last) >= r.interval
	n := e.count
	if due {
		e.last, e.count = now, 0
	}
	r.mu.Unlock()
	if !due {
		return true
	}
	attrs := []any{"refusals", n, "next_log_after", r.interval.String()}
	if l.remote != "" {
		attrs = append(attrs, "remote", l.remote)
	}
	// Only a client that presented a credential sent a CONNECT, so has a
	// name; its refusal is logged from the server's CONNECT (or reload)
	// path, which holds no server or client lock (Connz takes both; so in
	// nats-server 2.15).
	if cid, err := strconv.ParseUint(l.cid, 10, 64); err == nil && l.cred != "" && r.clientName != nil {
		if name := r.clientName(cid); name != "" {
			attrs = append(attrs, "client_name", name)
		}
	}
	level := slog.LevelWarn
	switch aircraft, ok := (*r.known.Load())[l.nkey]; {
	case l.nkey != "" && ok:
		attrs = append(attrs, "aircraft", aircraft, "nkey", l.nkey)
	case l.nkey != "":
		attrs = append(attrs, "aircraft", "unregistered", "nkey", l.nkey,
			"hint", "register the aircraft with this nkey (PUT /v1/aircraft/{id}); its cabin server keeps retrying")
	case l.user != "":
		attrs = append(attrs, "user", l.user)
	case l.cred != "":
		attrs = append(attrs, "credential", l.cred)
	case reload:
		level = slog.LevelInfo
		attrs = append(attrs, "credential", "none",
			"reason", "the connection had not logged in yet when the aircraft list was reloaded (an aircraft registered or re-keyed); the server closes such connections and the client connects again")
	default:
		attrs = append(attrs, "credential", "none",
			"reason", "the client sent no CONNECT with an nkey or user first: not a NATS client, or one without credentials")
	}
	r.log.Log(context.Background(), level, "NATS login refused", attrs...)
	return true
}
