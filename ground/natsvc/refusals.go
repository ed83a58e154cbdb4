package natsvc

import (
	"log/slog"
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
// how many refusals the interval held), naming the aircraft when the nkey
// is a registered aircraft's.

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

// note handles one of nats-server's error lines; it reports whether the
// line was a refused login (and so handled here).
func (r *refusals) note(line string) bool {
	const marker = "authentication error"
	i := strings.Index(line, marker)
	if i < 0 {
		return false
	}
	who := strings.TrimSpace(strings.TrimPrefix(line[i+len(marker):], " - "))
	nkey := ""
	if rest, ok := strings.CutPrefix(who, `Nkey "`); ok {
		nkey, _, _ = strings.Cut(rest, `"`)
	}
	key := who
	if nkey != "" {
		key = nkey
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
	switch aircraft, ok := (*r.known.Load())[nkey]; {
	case nkey == "":
		attrs = append(attrs, "who", who)
	case ok:
		attrs = append(attrs, "aircraft", aircraft, "nkey", nkey)
	default:
		attrs = append(attrs, "aircraft", "unregistered", "nkey", nkey,
			"hint", "register the aircraft with this nkey (PUT /v1/aircraft/{id}); its cabin server keeps retrying")
	}
	r.log.Warn("NATS login refused", attrs...)
	return true
}
