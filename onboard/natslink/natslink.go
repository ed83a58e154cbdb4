// Package natslink is the cabin server's link to ground over NATS. For now
// it fetches the signed flight manifest and its deltas by request/reply
// while the link is up (the replay of invoices comes next, here too).
//
// Nothing fetched is trusted: the cabin verifies every manifest and delta
// against its issuer trust anchor before it uses or stores it.
package natslink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
)

// maxDeltaBatches bounds the delta batches one Sync fetches.
const maxDeltaBatches = 64

// ErrGround is wrapped by the error of a request ground answered with an
// error reply (protocol.ErrorHeader).
var ErrGround = errors.New("ground refused the request")

// FetchManifest asks ground for the signed manifest of flight f on aircraft
// a and returns its raw bytes, unverified.
func FetchManifest(ctx context.Context, nc *nats.Conn, a protocol.AircraftID, f protocol.FlightID) ([]byte, error) {
	msg, err := request(ctx, nc, protocol.ManifestSubject(a, f), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch manifest: %w", err)
	}
	if len(msg.Data) > protocol.MaxManifestSize {
		return nil, fmt.Errorf("fetch manifest: %d bytes, over the cap of %d", len(msg.Data), protocol.MaxManifestSize)
	}
	return msg.Data, nil
}

// FetchDeltas asks ground for the deltas of manifest baseSerial after
// afterSeq.
func FetchDeltas(ctx context.Context, nc *nats.Conn, a protocol.AircraftID, f protocol.FlightID, baseSerial, afterSeq uint64) (protocol.DeltaBatch, error) {
	req, err := protocol.EncodeDeltaRequest(protocol.DeltaRequest{BaseSerial: baseSerial, AfterSeq: afterSeq})
	if err != nil {
		return protocol.DeltaBatch{}, fmt.Errorf("fetch deltas: %w", err)
	}
	msg, err := request(ctx, nc, protocol.DeltaSubject(a, f), req)
	if err != nil {
		return protocol.DeltaBatch{}, fmt.Errorf("fetch deltas after %d of serial %d: %w", afterSeq, baseSerial, err)
	}
	b, err := protocol.DecodeDeltaBatch(msg.Data)
	if err != nil {
		return protocol.DeltaBatch{}, fmt.Errorf("fetch deltas after %d of serial %d: %w", afterSeq, baseSerial, err)
	}
	return b, nil
}

func request(ctx context.Context, nc *nats.Conn, subject string, data []byte) (*nats.Msg, error) {
	msg, err := nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: subject, Data: data})
	if err != nil {
		return nil, err
	}
	if e := msg.Header.Get(protocol.ErrorHeader); e != "" {
		return nil, fmt.Errorf("%w: %s", ErrGround, e)
	}
	return msg, nil
}

// Sync brings the cabin's manifest up to date once: it fetches the
// manifest if the cabin has none (or ground says a newer one supersedes
// it), then the deltas after the last one applied, until ground has no
// more. Each is verified and stored by the cabin before use.
func Sync(ctx context.Context, nc *nats.Conn, cabin *onboard.Cabin) error {
	id := cabin.Identity()
	if cabin.Manifest() == nil {
		if err := loadManifest(ctx, nc, cabin); err != nil {
			return err
		}
	}
	for range maxDeltaBatches {
		m := cabin.Manifest()
		b, err := FetchDeltas(ctx, nc, id.Aircraft, id.Flight, m.Serial(), m.DeltaSeq())
		if err != nil {
			return err
		}
		if b.Superseded {
			if err := loadManifest(ctx, nc, cabin); err != nil {
				return err
			}
			continue
		}
		if len(b.Deltas) == 0 {
			return nil
		}
		if _, err := cabin.ApplyDeltas(ctx, b.Deltas); err != nil {
			return err
		}
	}
	return fmt.Errorf("sync: still more deltas after %d batches", maxDeltaBatches)
}

func loadManifest(ctx context.Context, nc *nats.Conn, cabin *onboard.Cabin) error {
	id := cabin.Identity()
	raw, err := FetchManifest(ctx, nc, id.Aircraft, id.Flight)
	if err != nil {
		return err
	}
	return cabin.LoadManifest(ctx, raw)
}

// Syncer runs Sync every Interval while its context lasts, and at once
// whenever ground's manifest change notice for this aircraft and flight
// arrives (protocol.NoticeSubject), so a passenger who opts in, a revoked
// credential or a new roster reaches the cabin while the link is up within
// a round trip rather than an Interval. A failed sync is logged and tried
// again soon: on an aircraft the link is down most of the time, and no
// money moves here.
type Syncer struct {
	Conn  *nats.Conn
	Cabin *onboard.Cabin
	// Interval between syncs. Default: 30 s.
	Interval time.Duration
	// RequestTimeout bounds one sync. Default: 20 s.
	RequestTimeout time.Duration
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// DialError, if set, returns the latest error connecting to ground:
	// nats.go clears its LastError on every retry and reports dial errors
	// only to its ReconnectErrHandler, so the cabin server keeps them. The
	// wait for the link names it.
	DialError func() error
}

// Run syncs at once and then every Interval until ctx ends, and at once
// whenever the connection to ground comes (back) up, so a cabin server
// whose aircraft was just registered sells within seconds rather than at
// the next interval. While there is no connection it does not ask, and says
// why once.
func (s *Syncer) Run(ctx context.Context) {
	interval, timeout, log := s.Interval, s.RequestTimeout, s.Logger
	if interval <= 0 {
		interval = 30 * time.Second
	}
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	connected := s.Conn.StatusChanged(nats.CONNECTED)
	defer s.Conn.RemoveStatusListener(connected)
	dropped := s.Conn.StatusChanged(nats.RECONNECTING, nats.DISCONNECTED)
	defer s.Conn.RemoveStatusListener(dropped)
	notices, unsubscribe := s.subscribeNotices(log)
	defer unsubscribe()
	t := time.NewTimer(interval)
	defer t.Stop()
	waiting := false
	retry := time.Second // after a failure, doubling up to interval
	for {
		next := interval
		if s.Conn.IsConnected() {
			waiting = false
			err := s.syncOnce(ctx, timeout, dropped)
			if err != nil && ctx.Err() == nil {
				// Soon again: a link just up may not reach ground's
				// responders yet, and a manifest missing means no sales.
				next, retry = min(retry, interval), min(2*retry, interval)
				args := []any{"in", next, "err", err}
				if errors.Is(err, ErrGround) && strings.Contains(err.Error(), "not_found") {
					// Ground knows the aircraft but not this flight.
					args = append(args, "hint", "create the flight on ground (POST /v1/flights with this aircraft and the flight's carrier, number and date); sales open once its manifest arrives")
				}
				log.Warn("manifest sync failed; will retry", args...)
			} else {
				retry = time.Second
			}
		} else if !waiting {
			waiting = true
			args := []any{"nats_status", s.Conn.Status().String()}
			if err := s.linkError(); err != nil {
				args = append(args, "last_error", err.Error())
			}
			log.Info("manifest sync waits for the link to ground: link down", args...)
		}
		t.Reset(next)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case _, ok := <-connected:
			if !ok { // closed by RemoveStatusListener only; never spin on it
				connected = nil
			}
		case <-notices:
		}
	}
}

// syncOnce runs one Sync, bounded by timeout and abandoned when the
// connection drops: a request sent to a server that then went away is never
// answered, and the next sync, on the server the client reconnects to
// (another of a cluster's URLs), should not wait out the timeout first.
func (s *Syncer) syncOnce(ctx context.Context, timeout time.Duration, dropped <-chan nats.Status) error {
	for len(dropped) > 0 { // drops before this sync are not this sync's
		<-dropped
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-dropped:
			cancel()
		case <-done:
		}
	}()
	return Sync(sctx, s.Conn, s.Cabin)
}

// subscribeNotices subscribes to this cabin's manifest change notices. The
// channel holds at most one pending notice: notices that arrive during a
// sync make exactly one more. Without the subscription (a ground whose
// permissions predate notices refuses it) the Syncer polls only.
func (s *Syncer) subscribeNotices(log *slog.Logger) (<-chan struct{}, func()) {
	id := s.Cabin.Identity()
	ch := make(chan struct{}, 1)
	sub, err := s.Conn.Subscribe(protocol.NoticeSubject(id.Aircraft, id.Flight), func(*nats.Msg) {
		select {
		case ch <- struct{}{}:
		default:
		}
	})
	if err != nil {
		log.Warn("manifest change notices not subscribed; polling only", "every", s.Interval, "err", err)
		return nil, func() {}
	}
	return ch, func() { sub.Unsubscribe() }
}

// linkError is why the connection is down, as far as is known: its own
// last error, or the latest dial error; nil when neither is known yet.
func (s *Syncer) linkError() error {
	if err := s.Conn.LastError(); err != nil {
		return err
	}
	if s.DialError != nil {
		return s.DialError()
	}
	return nil
}
