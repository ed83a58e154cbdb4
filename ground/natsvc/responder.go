package natsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go"
)

// Source answers sync requests; *registry.Registry is one. Both methods
// check that aircraft a flies flight f.
type Source interface {
	SyncManifest(ctx context.Context, a protocol.AircraftID, f protocol.FlightID) (*protocol.SignedManifest, error)
	SyncDeltas(ctx context.Context, a protocol.AircraftID, f protocol.FlightID, req protocol.DeltaRequest) (protocol.DeltaBatch, error)
}

// ResponderConfig configures a Responder. Conn and Source are required.
type ResponderConfig struct {
	Conn   *nats.Conn
	Source Source
	// Queue is the queue group, so several ground instances share the
	// requests. Default "airtab-ground-sync".
	Queue string
	// Workers is how many requests are served at once. Default 4.
	Workers int
	// Pending bounds the requests waiting for a worker; beyond it NATS
	// drops them (the requester times out and retries). Default 256.
	Pending int
	// Timeout bounds the handling of one request. Default 10 s.
	Timeout time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// maxErrorHeader bounds the error header's value, in bytes.
const maxErrorHeader = 300

// Responder serves manifest and delta requests from cabin servers:
//
//	airtab.v1.manifest.<aircraft>.<flight>  empty body          → SignedManifest raw bytes
//	airtab.v1.delta.<aircraft>.<flight>     DeltaRequest (CBOR) → DeltaBatch (CBOR)
//
// A request that fails gets an empty reply with the header
// protocol.ErrorHeader set to "<code> <message>", code being one of the
// registry error codes (invalid, forbidden, not_found, internal, ...).
type Responder struct {
	cfg    ResponderConfig
	subs   []*nats.Subscription
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartResponder subscribes to every manifest and delta subject and starts
// the workers. When it returns, the subscriptions are registered with the
// server. Stop it with Stop.
func StartResponder(ctx context.Context, cfg ResponderConfig) (*Responder, error) {
	if cfg.Conn == nil || cfg.Source == nil {
		return nil, errors.New("natsvc: ResponderConfig.Conn and Source are required")
	}
	if cfg.Queue == "" {
		cfg.Queue = "airtab-ground-sync"
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.Pending <= 0 {
		cfg.Pending = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Responder{cfg: cfg}
	msgs := make(chan *nats.Msg, cfg.Pending)
	for _, subj := range []string{protocol.AllManifests, protocol.AllDeltas} {
		sub, err := cfg.Conn.ChanQueueSubscribe(subj, cfg.Queue, msgs)
		if err != nil {
			r.unsubscribe()
			return nil, fmt.Errorf("natsvc: subscribe %s: %w", subj, err)
		}
		r.subs = append(r.subs, sub)
	}
	fctx, fcancel := context.WithTimeout(ctx, cfg.Timeout) // Flush needs a deadline
	defer fcancel()
	if err := cfg.Conn.FlushWithContext(fctx); err != nil {
		r.unsubscribe()
		return nil, fmt.Errorf("natsvc: register sync subscriptions: %w", err)
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	for range cfg.Workers {
		r.wg.Go(func() { r.work(wctx, msgs) })
	}
	cfg.Logger.Info("sync responder started", "subjects", []string{protocol.AllManifests, protocol.AllDeltas}, "queue", cfg.Queue)
	return r, nil
}

// Stop unsubscribes, so no new request arrives, and waits for the requests
// in hand. Requests still queued are dropped; their senders time out.
func (r *Responder) Stop() {
	r.unsubscribe()
	r.cancel()
	r.wg.Wait()
	r.cfg.Logger.Info("sync responder stopped")
}

func (r *Responder) unsubscribe() {
	for _, s := range r.subs {
		if err := s.Unsubscribe(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) && !errors.Is(err, nats.ErrBadSubscription) {
			r.cfg.Logger.Warn("unsubscribe", "subject", s.Subject, "err", err)
		}
	}
}

func (r *Responder) work(ctx context.Context, msgs <-chan *nats.Msg) {
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-msgs:
			r.serve(ctx, m)
		}
	}
}

// serve answers one request.
func (r *Responder) serve(ctx context.Context, m *nats.Msg) {
	if m.Reply == "" {
		r.cfg.Logger.Debug("sync message without reply subject dropped", "subject", m.Subject)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	body, err := r.answer(ctx, m)
	if err != nil {
		r.respondError(m, err)
		return
	}
	if err := m.Respond(body); err != nil {
		r.cfg.Logger.Warn("sync reply", "subject", m.Subject, "err", err)
	}
}

func (r *Responder) answer(ctx context.Context, m *nats.Msg) ([]byte, error) {
	kind, a, f, err := protocol.ParseSubject(m.Subject)
	if err != nil {
		return nil, registry.Errorf(registry.CodeInvalid, "%v", err)
	}
	switch kind {
	case "manifest":
		if len(m.Data) != 0 {
			return nil, registry.Errorf(registry.CodeInvalid, "a manifest request has an empty body, got %d bytes", len(m.Data))
		}
		s, err := r.cfg.Source.SyncManifest(ctx, a, f)
		if err != nil {
			return nil, err
		}
		r.cfg.Logger.Debug("manifest served", "aircraft", a, "flight", f, "serial", s.Body.Serial)
		return s.Raw, nil
	case "delta":
		req, err := protocol.DecodeDeltaRequest(m.Data)
		if err != nil {
			return nil, registry.Errorf(registry.CodeInvalid, "%v", err)
		}
		batch, err := r.cfg.Source.SyncDeltas(ctx, a, f, req)
		if err != nil {
			return nil, err
		}
		r.cfg.Logger.Debug("deltas served", "aircraft", a, "flight", f, "base", req.BaseSerial, "after", req.AfterSeq,
			"deltas", len(batch.Deltas), "superseded", batch.Superseded)
		return protocol.EncodeDeltaBatch(batch)
	}
	return nil, registry.Errorf(registry.CodeInvalid, "subject %s: not a manifest or delta request", m.Subject)
}

func (r *Responder) respondError(m *nats.Msg, err error) {
	code := registry.ErrorCode(err)
	if code == registry.CodeInternal {
		r.cfg.Logger.Error("sync request failed", "subject", m.Subject, "err", err)
	} else {
		r.cfg.Logger.Info("sync request refused", "subject", m.Subject, "code", code, "err", err)
	}
	reply := nats.NewMsg(m.Reply)
	reply.Header.Set(protocol.ErrorHeader, ErrorHeaderValue(code, registry.ErrorMessage(err)))
	if err := m.RespondMsg(reply); err != nil {
		r.cfg.Logger.Warn("sync error reply", "subject", m.Subject, "err", err)
	}
}

// ErrorHeaderValue formats the error header of a failed sync reply:
// "<code> <message>" on one line, at most 300 bytes.
func ErrorHeaderValue(code registry.Code, msg string) string {
	v := string(code) + " " + strings.Join(strings.Fields(msg), " ")
	if len(v) > maxErrorHeader {
		v = v[:maxErrorHeader]
	}
	return v
}

// ParseErrorHeader splits an error header into code and message.
func ParseErrorHeader(v string) (registry.Code, string) {
	code, msg, _ := strings.Cut(v, " ")
	return registry.Code(code), msg
}
