// Package replay sends a cabin server's invoices to the ground once the
// aircraft has a link, and applies the clearing receipts that come back.
//
// Invoices are published in sequence order to JetStream with the invoice id
// as Nats-Msg-Id, many in flight at once (a sliding window, never one round
// trip per invoice). An invoice is marked sent on its publish ack and cleared
// only when ground's signed clearing receipt says the ledger committed it;
// sent invoices without a receipt are sent again after ResendAfter, once
// the receipt consumer has nothing more to deliver. After an
// interruption the replayer starts again from the lowest invoice not yet
// acknowledged, so nothing is skipped; the duplicates this may send are
// absorbed by JetStream's duplicate window and, beyond it, by the ledger's
// own idempotency on the invoice id.
package replay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Item is one invoice to send.
type Item struct {
	ID  protocol.ID
	Seq uint64
	Raw []byte // the SignedInvoice's bytes, exactly as journaled
}

// Counts are the journal's invoices by replay state.
type Counts struct {
	Pending int // not yet acknowledged by JetStream
	Sent    int // acknowledged, no receipt yet
	Cleared int // receipt received
}

// Journal is the cabin server's invoice journal as the replayer sees it.
type Journal interface {
	// ReplayBatch returns up to limit invoices with Seq > afterSeq that are
	// pending, or were sent before resendBefore and have no receipt, in
	// sequence order.
	ReplayBatch(ctx context.Context, afterSeq uint64, resendBefore time.Time, limit int) ([]Item, error)
	// MarkSent records JetStream's acknowledgement of the invoices.
	MarkSent(ctx context.Context, ids []protocol.ID, at time.Time) error
	// ApplyReceipt records a verified clearing receipt. It is idempotent,
	// and it reports false for a receipt about an invoice or flight the
	// journal does not hold.
	ApplyReceipt(ctx context.Context, r *protocol.SignedReceipt) (bool, error)
	// PendingClose returns the signed flight-close report when the flight
	// is closed, ground has not accepted the report, and it was not sent
	// since resendBefore.
	PendingClose(ctx context.Context, resendBefore time.Time) (raw []byte, ok bool, err error)
	// MarkCloseSent records JetStream's acknowledgement of the report.
	MarkCloseSent(ctx context.Context, at time.Time) error
	// Counts returns the number of invoices in each replay state.
	Counts(ctx context.Context) (Counts, error)
}

// Config configures a Replayer.
type Config struct {
	Aircraft protocol.AircraftID
	Flight   protocol.FlightID
	Journal  Journal
	// Trust holds the issuer keys that sign clearing receipts; a receipt
	// that does not verify is never applied.
	Trust *crypto.TrustList
	// Window is how many publishes may await their ack at once.
	// Default: 512. It must cover the link's bandwidth-delay product:
	// 1 Mbit/s × 600 ms is 75 kB, about 150 invoices.
	Window int
	// ResendAfter is how long a sent invoice may wait for its receipt
	// before it is sent again. Default: 2 minutes.
	ResendAfter time.Duration
	// HeartbeatTimeout: the link counts as down when no ground heartbeat
	// arrived for this long. Default: 15 seconds.
	HeartbeatTimeout time.Duration
	// ReceiptAckWait is the receipt consumer's AckWait: a receipt delivered
	// over a connection that then dropped is delivered again after this
	// long. Receipts are applied idempotently, so a redelivery costs only
	// bytes. Default: 10 seconds.
	ReceiptAckWait time.Duration
	// AckTimeout bounds the wait for one publish ack. Default: 30 seconds.
	AckTimeout time.Duration
	// Clock gives the time. Default: time.Now.
	Clock func() time.Time
	// Log receives progress and errors. Default: discard.
	Log *slog.Logger
	// OnLink, if set, is called when the link comes up or goes down.
	OnLink func(up bool)
	// ConnectErrors, if set, holds the connection's dial errors (the
	// cabin server notes them from nats.ReconnectErrHandler), so Status can
	// say why ground is unreachable.
	ConnectErrors *ConnectErrors
}

// Bounds on the configuration.
const (
	// minWindow is where the publish window restarts after a broken drain:
	// one publish, then one more per ack, as TCP's slow start.
	minWindow      = 1
	MaxWindow      = 4096
	pollInterval   = time.Second
	maxBackoff     = 30 * time.Second
	receiptBatch   = 256
	receiptWait    = 2 * time.Second
	progressPeriod = 5 * time.Second
	// quietDrain is the size from which a drain on a link already
	// carrying traffic is logged at info; smaller ones log at debug.
	quietDrain = 100
	apiTimeout = 5 * time.Second // one JetStream API call
)

func (c *Config) setDefaults() error {
	if err := firstErr(c.Aircraft.Validate(), c.Flight.Validate()); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if c.Journal == nil {
		return errors.New("replay: no journal")
	}
	if c.Trust == nil || c.Trust.Len() == 0 {
		return errors.New("replay: no issuer trust list for receipts")
	}
	if c.Window == 0 {
		c.Window = 512
	}
	if c.Window < 1 || c.Window > MaxWindow {
		return fmt.Errorf("replay: window %d, want 1 to %d", c.Window, MaxWindow)
	}
	if c.ResendAfter == 0 {
		c.ResendAfter = 2 * time.Minute
	}
	if c.HeartbeatTimeout == 0 {
		c.HeartbeatTimeout = 15 * time.Second
	}
	if c.ReceiptAckWait == 0 {
		c.ReceiptAckWait = 10 * time.Second
	}
	if c.AckTimeout == 0 {
		c.AckTimeout = 30 * time.Second
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Status is what the replayer reports to the cabin server's status endpoint.
type Status struct {
	LinkUp        bool      `json:"link_up"`
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
	// ClockSkew is ground's clock minus ours at the last heartbeat.
	ClockSkew     time.Duration `json:"clock_skew_ns"`
	Counts        Counts        `json:"counts"`
	SentThisLink  int           `json:"sent_this_link"`
	RatePerSecond float64       `json:"rate_per_second"`
	ETASeconds    float64       `json:"eta_seconds"`
	CloseAccepted bool          `json:"close_accepted"`
	// CloseRejected is ground's signed word that the flight-close report
	// failed verification there: the reason, and when. The close stays
	// pending and is sent again; an acceptance clears this.
	CloseRejected *CloseRejection `json:"close_rejected,omitempty"`
	// LastError is, with the link down, since when ground has been
	// unreachable, how many invoices wait and why; with the link up, the
	// last replay error.
	LastError string `json:"last_error,omitempty"`
	// ReceiptsApplied is how many invoices of the journal hold their
	// clearing receipt: distinct invoices, so a receipt delivered again
	// is not counted twice, and the same after a restart.
	ReceiptsApplied int `json:"receipts_applied"`
	ReceiptsBad     int `json:"receipts_rejected"`
}

// CloseRejection is a close-rejected receipt (SPEC §9.4) as the status
// shows it.
type CloseRejection struct {
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Replayer moves invoices to the ground and receipts back.
type Replayer struct {
	cfg  Config
	kick chan struct{}

	mu         sync.Mutex
	status     Status
	window     int                // publishes allowed in flight now; see publishAll
	cons       jetstream.Consumer // the receipt consumer, once created
	drainT     time.Time          // when the current drain started
	drained    int                // invoices acked in the current drain, for its rate
	drainLevel slog.Level         // the current drain's log level
	started    time.Time          // when New made the replayer
	nc         *nats.Conn         // the connection Run uses, for Status
	lastErr    error              // the last replay error, as LastError
	lastLog    time.Time          // when progress was last logged
	// receiptsIdle: the receipt consumer, on the current connection, has
	// nothing more to deliver, by ground's word (see consumerIdle). Only
	// then are invoices without a receipt sent again (see publish).
	receiptsIdle bool
}

// New checks cfg and returns a Replayer.
func New(cfg Config) (*Replayer, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	return &Replayer{cfg: cfg, kick: make(chan struct{}, 1), started: cfg.Clock()}, nil
}

// Kick wakes the replayer, for example after a new invoice was committed or
// the flight closed. It never blocks.
func (r *Replayer) Kick() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Status returns a snapshot of the replay state. Its counts are the
// journal's as Status reads them (the last ones the replayer saw if the
// journal fails to answer), so "N invoices waiting" agrees with the cabin
// server's own count even while nothing drains.
func (r *Replayer) Status() Status {
	ctx, cancel := context.WithTimeout(context.Background(), apiTimeout)
	live, err := r.cfg.Journal.Counts(ctx)
	cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	if err == nil {
		s.Counts = live
	}
	s.ReceiptsApplied = s.Counts.Cleared
	// A heartbeat is good for HeartbeatTimeout, but a dropped connection
	// is news at once.
	s.LinkUp = r.linkUpLocked() && (r.nc == nil || r.nc.IsConnected())
	if !s.LinkUp {
		// The rate and the time remaining are the drain's, and none runs
		// with the link down: last_error says what waits.
		s.RatePerSecond, s.ETASeconds = 0, 0
	}
	s.RatePerSecond = math.Round(s.RatePerSecond*10) / 10
	s.ETASeconds = math.Round(s.ETASeconds*10) / 10
	r.explainLocked(&s)
	return s
}

func (r *Replayer) linkUpLocked() bool {
	return !r.status.LastHeartbeat.IsZero() && r.cfg.Clock().Sub(r.status.LastHeartbeat) < r.cfg.HeartbeatTimeout
}

// LinkUp reports whether a ground heartbeat arrived recently.
func (r *Replayer) LinkUp() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.linkUpLocked()
}

// Run replays over nc until ctx ends. nc should reconnect forever
// (nats.MaxReconnects(-1)) and ping often (nats.PingInterval of a few
// seconds), and must use protocol.InboxPrefix(aircraft) as its inbox prefix
// when the server enforces per-aircraft permissions.
//
// nc must pass CheckConn; Run refuses one that does not.
func (r *Replayer) Run(ctx context.Context, nc *nats.Conn) error {
	if err := CheckConn(nc); err != nil {
		return err
	}
	r.mu.Lock()
	r.nc = nc
	r.mu.Unlock()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(r.cfg.Window))
	if err != nil {
		return fmt.Errorf("replay: jetstream: %w", err)
	}
	sub, err := nc.Subscribe(protocol.HeartbeatSubject, r.onHeartbeat)
	if err != nil {
		return fmt.Errorf("replay: subscribe heartbeat: %w", err)
	}
	defer sub.Unsubscribe()

	// A reconnect resumes an interrupted replay at once: on a link that
	// drops every few seconds, waiting out a backoff would waste most of
	// each connection's life.
	reconnected := make(chan struct{}, 1)
	receiptsReconnected := make(chan struct{}, 1)
	status := nc.StatusChanged(nats.CONNECTED)
	defer nc.RemoveStatusListener(status)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		r.receiptLoop(ctx, js, receiptsReconnected)
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-status:
				if !ok {
					return
				}
				for _, ch := range []chan struct{}{reconnected, receiptsReconnected} {
					select {
					case ch <- struct{}{}:
					default:
					}
				}
				r.Kick()
			}
		}
	}()
	defer wg.Wait()

	backoff := pollInterval
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	wasUp := false
	var conns uint64 // nc's reconnects when the link last came up
	for {
		up := r.LinkUp() && nc.IsConnected()
		if up != wasUp {
			wasUp = up
			if up {
				conns = nc.Stats().Reconnects
				r.linkCameUp()
			} else {
				r.logLinkDown(nc)
			}
			if r.cfg.OnLink != nil {
				r.cfg.OnLink(up)
			}
		} else if n := nc.Stats().Reconnects; up && n != conns {
			// The connection dropped and came back between two looks
			// (ground's heartbeat never went stale): a new link all the
			// same, so its count starts again.
			conns = n
			r.linkCameUp()
		}
		if up {
			select { // a reconnect before this drain is not news
			case <-reconnected:
			default:
			}
			sent, err := r.drain(ctx, js)
			if sent > 0 {
				backoff = pollInterval // the link carries traffic, if not for long
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				r.setErr(err)
				if !nc.IsConnected() {
					// The link went down under the drain: that is the
					// news, not the buffer error or the missing answer a
					// publish then gets (the error stays in the status).
					r.cfg.Log.Info("replay paused: link down, ground unreachable; it resumes when the link is back", "sent", sent, "err", err)
				} else {
					r.cfg.Log.Warn("replay interrupted; will resume", "err", err, "sent", sent, "retry_in", backoff)
				}
				if !r.wait(ctx, backoff, reconnected) {
					return nil
				}
				backoff = min(2*backoff, maxBackoff)
				continue
			}
			backoff = pollInterval
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		case <-r.kick:
		}
	}
}

// CheckConn reports whether nc suits a replay: it must have no reconnect
// buffer (nats.ReconnectBufSize(-1)). With a buffer, the invoices published
// between a drop and the replayer noticing it would go out first on the
// next connection, ahead of earlier ones lost in transit, and the stream
// would no longer hold a flight's invoices in sequence order.
func CheckConn(nc *nats.Conn) error {
	if nc.Opts.ReconnectBufSize >= 0 {
		return errors.New("replay: the NATS connection buffers publishes while it reconnects; connect with nats.ReconnectBufSize(-1)")
	}
	return nil
}

func (r *Replayer) onHeartbeat(m *nats.Msg) {
	h, err := protocol.DecodeHeartbeat(m.Data)
	if err != nil {
		r.cfg.Log.Warn("bad heartbeat", "err", err)
		return
	}
	now := r.cfg.Clock()
	r.mu.Lock()
	wasUp := r.linkUpLocked()
	r.status.LastHeartbeat = now
	r.status.ClockSkew = h.Time.Sub(now)
	r.mu.Unlock()
	if !wasUp {
		r.cfg.Log.Info("link up: ground heartbeat received", "ground_clock_skew", h.Time.Sub(now).Round(time.Millisecond))
		r.Kick()
	}
}

// wait sleeps for d, or until the connection is re-established. It
// reports false when ctx ended.
func (r *Replayer) wait(ctx context.Context, d time.Duration, reconnected <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-reconnected:
		return true
	case <-ctx.Done():
		return false
	}
}

// drain publishes every invoice that needs sending, then the close report.
// It returns how many invoices JetStream acknowledged, also on an error.
func (r *Replayer) drain(ctx context.Context, js jetstream.JetStream) (int, error) {
	if err := r.refreshCounts(ctx); err != nil {
		return 0, err
	}
	r.mu.Lock()
	pending := r.status.Counts.Pending
	r.drainT = r.cfg.Clock()
	r.drained = 0
	// The first drain on a link (the backlog at landing) and a large one
	// are news; with the link up, the sales sent one or two at a time as
	// they are made are not.
	r.drainLevel = slog.LevelDebug
	if r.status.SentThisLink == 0 || pending >= quietDrain {
		r.drainLevel = slog.LevelInfo
	}
	level := r.drainLevel
	r.mu.Unlock()
	if pending > 0 {
		r.cfg.Log.Log(ctx, level, "replay starting", "pending", pending, "flight", r.cfg.Flight)
	}
	sent, err := r.publishAll(ctx, js)
	if err != nil {
		return sent, err
	}
	if sent > 0 {
		elapsed := r.cfg.Clock().Sub(r.drainT)
		r.cfg.Log.Log(ctx, level, "replay done", "sent", sent, "seconds", elapsed.Seconds())
	}
	if err := r.publishClose(ctx, js); err != nil {
		return sent, err
	}
	return sent, r.refreshCounts(ctx)
}

type inflight struct {
	item Item
	fut  jetstream.PubAckFuture
}

// publishAll streams invoices through a sliding window of async publishes.
// A collector marks the acknowledged ones sent, in order; the first failure
// stops both, and everything from that invoice on stays pending for the
// next attempt.
//
// The window adapts, as TCP's does: it starts at Window, drops to
// minWindow (one) after a drain breaks off, and grows by one for every ack,
// doubling each round trip. A link that resets every few KB loses whatever
// was in flight with its acks; restarting with a full window there resends
// the same invoices on every connection and gets none acknowledged (480
// connections and 3.5 MB for 160 invoices with a window of 16 restarting
// every 8 KiB, against 25 connections and 170 KB restarting at one).
func (r *Replayer) publishAll(ctx context.Context, js jetstream.JetStream) (int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	acks := make(chan inflight, r.cfg.Window)
	credits := make(chan struct{}, r.cfg.Window)
	r.mu.Lock()
	if r.window == 0 {
		r.window = r.cfg.Window
	}
	for range r.window {
		credits <- struct{}{}
	}
	r.mu.Unlock()
	var (
		collected int
		collErr   error
		done      = make(chan struct{})
	)
	go func() {
		defer close(done)
		collected, collErr = r.collect(ctx, acks, credits)
		if collErr != nil {
			cancel()
		}
	}()
	pubErr := r.publish(ctx, js, acks, credits)
	close(acks)
	<-done
	if err := errors.Join(collErr, pubErr); err != nil {
		r.mu.Lock()
		r.window = min(minWindow, r.cfg.Window)
		r.mu.Unlock()
		return collected, err
	}
	return collected, nil
}

// publish sends every invoice the journal says needs sending, handing each
// ack future to the collector.
func (r *Replayer) publish(ctx context.Context, js jetstream.JetStream, acks chan<- inflight, credits <-chan struct{}) error {
	subject := protocol.InvoiceSubject(r.cfg.Aircraft, r.cfg.Flight)
	resendBefore := r.resendBefore()
	var after uint64
	for {
		items, err := r.cfg.Journal.ReplayBatch(ctx, after, resendBefore, r.cfg.Window)
		if err != nil {
			if ctx.Err() != nil {
				return nil // the collector failed and said why
			}
			return fmt.Errorf("read journal: %w", err)
		}
		if len(items) == 0 {
			return nil
		}
		for _, it := range items {
			if it.Seq <= after {
				panic(fmt.Sprintf("replay: journal returned seq %d after %d", it.Seq, after))
			}
			msg := &nats.Msg{Subject: subject, Data: it.Raw, Header: nats.Header{}}
			msg.Header.Set(jetstream.MsgIDHeader, protocol.InvoiceMsgID(it.ID))
			select {
			case <-credits:
			case <-ctx.Done():
				return nil
			}
			// No retry inside nats.go: it re-sends one invoice that found
			// no stream (ground restarting) a little later, after the
			// invoices behind it. The drain fails instead, and the next one
			// resends from that invoice, in order.
			fut, err := js.PublishMsgAsync(msg, jetstream.WithStallWait(r.cfg.AckTimeout), jetstream.WithRetryAttempts(0))
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("publish invoice %d (%s): %w", it.Seq, it.ID, err)
			}
			select {
			case acks <- inflight{it, fut}:
			case <-ctx.Done():
				return nil
			}
			after = it.Seq
		}
	}
}

// resendBefore is the time before which a sent invoice without a receipt
// is sent again: ResendAfter ago, but only while the receipt consumer is
// idle. A resend asks ground for a receipt it has not sent, or sent into a
// stream that lost it; while receipts still arrive, or the receipt consumer
// is not there (a ground power cut can drop it), resending cannot help and
// would take the link from the receipts. On a slow link the resends of a
// whole flight otherwise keep the uplink full: the pulls and the consumer's
// creation wait behind them past their timeouts, no receipt arrives, every
// invoice is due again by the end of the pass, and the aircraft resends for
// ever (a ground power-loss trial did: 1117 invoices resent every 19 s
// over 200 kbit/s with ResendAfter 3 s, for minutes, none receipted). The
// zero time resends nothing: only pending invoices go.
func (r *Replayer) resendBefore() time.Time {
	r.mu.Lock()
	idle := r.receiptsIdle
	r.mu.Unlock()
	if !idle {
		return time.Time{}
	}
	return r.cfg.Clock().Add(-r.cfg.ResendAfter)
}

// consumerIdle asks ground whether the receipt consumer has nothing left
// to deliver and nothing delivered unacknowledged. An empty pull does not
// tell: on a congested link the pull can wait in the uplink past its
// expiry, and the client gives up on it while ground still fills it. A
// consumer gone on the server is an error (it is created again); any other
// failure only means not idle.
func (r *Replayer) consumerIdle(ctx context.Context, cons jetstream.Consumer) (bool, error) {
	cctx, cancel := context.WithTimeout(ctx, min(r.cfg.AckTimeout, apiTimeout))
	defer cancel()
	info, err := cons.Info(cctx)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return false, fmt.Errorf("receipt consumer: %w", err)
	}
	if err != nil {
		return false, nil
	}
	return info.NumPending == 0 && info.NumAckPending == 0, nil
}

// setReceiptsIdle records whether the receipt consumer has nothing more
// to deliver (see resendBefore).
func (r *Replayer) setReceiptsIdle(idle bool) {
	r.mu.Lock()
	r.receiptsIdle = idle
	r.mu.Unlock()
}

// collect waits for the publish acks in order and marks invoices sent in
// groups. It stops at the first failure.
func (r *Replayer) collect(ctx context.Context, in <-chan inflight, credits chan<- struct{}) (int, error) {
	const group = 64
	var (
		ids   []protocol.ID
		total int
	)
	flush := func() error {
		if len(ids) == 0 {
			return nil
		}
		if err := r.cfg.Journal.MarkSent(ctx, ids, r.cfg.Clock()); err != nil {
			return fmt.Errorf("mark %d invoices sent: %w", len(ids), err)
		}
		total += len(ids)
		r.progress(len(ids))
		ids = ids[:0]
		return nil
	}
	timer := time.NewTimer(r.cfg.AckTimeout)
	defer timer.Stop()
	for f := range in {
		timer.Reset(r.cfg.AckTimeout)
		select {
		case <-f.fut.Ok():
		case err := <-f.fut.Err():
			return total, errors.Join(flush(), fmt.Errorf("invoice %d (%s) not acknowledged: %w", f.item.Seq, f.item.ID, err))
		case <-timer.C:
			return total, errors.Join(flush(), fmt.Errorf("invoice %d (%s): no ack within %v", f.item.Seq, f.item.ID, r.cfg.AckTimeout))
		case <-ctx.Done():
			return total, errors.Join(flush(), ctx.Err())
		}
		ids = append(ids, f.item.ID)
		r.grant(credits)
		if len(ids) >= group || len(in) == 0 {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	return total, flush()
}

// grant returns the credit of an acknowledged publish and, while the window
// is below Window, grants one more.
func (r *Replayer) grant(credits chan<- struct{}) {
	n := 1
	r.mu.Lock()
	if r.window < r.cfg.Window {
		r.window++
		n++
	}
	r.mu.Unlock()
	for range n {
		select {
		case credits <- struct{}{}:
		default: // full: the window is already open
		}
	}
}

// publishClose sends the signed flight-close report once the flight is
// closed and every invoice has been acknowledged.
func (r *Replayer) publishClose(ctx context.Context, js jetstream.JetStream) error {
	raw, ok, err := r.cfg.Journal.PendingClose(ctx, r.cfg.Clock().Add(-r.cfg.ResendAfter))
	if err != nil || !ok {
		return err
	}
	c, err := r.cfg.Journal.Counts(ctx)
	if err != nil {
		return err
	}
	if c.Pending > 0 {
		return nil // the next drain sends the rest first
	}
	msg := &nats.Msg{Subject: protocol.CloseSubject(r.cfg.Aircraft, r.cfg.Flight), Data: raw, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, protocol.CloseMsgID(r.cfg.Flight))
	actx, cancel := context.WithTimeout(ctx, r.cfg.AckTimeout)
	defer cancel()
	if _, err := js.PublishMsg(actx, msg); err != nil {
		return fmt.Errorf("publish flight close: %w", err)
	}
	if err := r.cfg.Journal.MarkCloseSent(ctx, r.cfg.Clock()); err != nil {
		return fmt.Errorf("mark flight close sent: %w", err)
	}
	r.cfg.Log.Info("flight-close report sent", "flight", r.cfg.Flight)
	return nil
}

// receiptLoop reads this aircraft's durable receipt consumer while ctx
// lasts, re-creating it after link failures. A failure after receipts were
// applied, or a reconnect, retries at once: on a link that drops every few
// seconds a growing backoff would leave the receipts waiting.
//
// While the connection is down it does not ask: a pull then fails at once
// with nats.go's "outbound buffer limit exceeded" (there is no reconnect
// buffer, see CheckConn), which says nothing to an operator. It says once
// per outage that the receipts wait for the link, and why.
func (r *Replayer) receiptLoop(ctx context.Context, js jetstream.JetStream, reconnected <-chan struct{}) {
	backoff := pollInterval
	said := true      // "receipts wait for the link", this outage; none before the first link
	shutdown := false // "ground's NATS server is shutting down" said since the last good fetch
	for ctx.Err() == nil {
		if !r.LinkUp() || !r.connected() {
			r.setReceiptsIdle(false)
			if !said && !r.connected() {
				said = true
				r.cfg.Log.Info("receipts wait for the link to ground: link down, ground unreachable", "cause", r.cause())
			}
			if !r.wait(ctx, pollInterval, reconnected) {
				return
			}
			continue
		}
		said = false
		applied, err := r.readReceipts(ctx, js)
		if ctx.Err() != nil {
			return
		}
		if applied > 0 {
			backoff = pollInterval
		}
		if err != nil && (errors.Is(err, jetstream.ErrServerShutdown) || !r.connected() && isOutage(err)) {
			// Ground's server is going away, or the link went down under
			// the fetch: said above once the connection is down, and
			// after a reconnect to another server nothing is amiss. A
			// server that stays in lame-duck mode with the connection up
			// is said once.
			r.setReceiptsIdle(false)
			if !shutdown && r.connected() && errors.Is(err, jetstream.ErrServerShutdown) {
				shutdown = true
				r.cfg.Log.Info("receipts wait: ground's NATS server is shutting down; retrying", "err", err)
			}
			if !r.wait(ctx, pollInterval, reconnected) {
				return
			}
			continue
		}
		if err != nil {
			r.setReceiptsIdle(false)
			r.cfg.Log.Warn("receipts: will retry", "err", err, "applied", applied, "retry_in", backoff)
			if !r.wait(ctx, backoff, reconnected) {
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		shutdown = false
		backoff = pollInterval
	}
}

// readReceipts applies receipts while the link is up and returns how many
// it applied.
func (r *Replayer) readReceipts(ctx context.Context, js jetstream.JetStream) (int, error) {
	// The durable consumer outlives connections: create it once, then only
	// fetch, so a flaky link spends its bytes on receipts, not API calls.
	if r.cons != nil {
		n, err := r.fetchReceipts(ctx, r.cons)
		// Gone on the server: create it again. A pull from a consumer
		// that no longer exists gets no responders, not "not found": so
		// after a ground power cut, which can drop the consumer's files
		// (nats-server does not fsync them), the aircraft would wait for
		// receipts for ever. Created again, it delivers them.
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, nats.ErrNoResponders) {
			r.cons = nil
		}
		return n, err
	}
	// A request lost to a drop mid-call gets no answer: wait seconds, not
	// AckTimeout, before asking again.
	cctx, cancel := context.WithTimeout(ctx, min(r.cfg.AckTimeout, apiTimeout))
	cons, err := js.CreateOrUpdateConsumer(cctx, protocol.StreamReceipts, jetstream.ConsumerConfig{
		Durable:       protocol.ReceiptConsumer(r.cfg.Aircraft),
		FilterSubject: protocol.ReceiptFilter(r.cfg.Aircraft),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckWait:       r.cfg.ReceiptAckWait,
		MaxAckPending: 4 * receiptBatch,
	})
	cancel()
	if err != nil {
		return 0, fmt.Errorf("receipt consumer: %w", err)
	}
	r.cons = cons
	return r.fetchReceipts(ctx, cons)
}

// fetchReceipts pulls and applies receipts while the link is up.
func (r *Replayer) fetchReceipts(ctx context.Context, cons jetstream.Consumer) (int, error) {
	applied := 0
	for ctx.Err() == nil && r.LinkUp() && r.connected() {
		// The fetch's expiry is left to the server (the client waits a
		// second longer): a client deadline shorter than a slow link's
		// delay would abandon pulls the server still fills, and each
		// receipt so delivered would wait out its AckWait.
		batch, err := cons.Fetch(receiptBatch, jetstream.FetchMaxWait(receiptWait))
		if err != nil {
			return applied, fmt.Errorf("fetch receipts: %w", err)
		}
		msgs := batch.Messages()
		got := 0
	read:
		for {
			select {
			case m, ok := <-msgs:
				if !ok {
					break read
				}
				r.setReceiptsIdle(false)
				got++
				if err := r.applyReceipt(ctx, m); err != nil {
					return applied, err
				}
				applied++
			case <-ctx.Done():
				// Stopping: what the fetch still brings is delivered
				// again after its AckWait.
				return applied, nil
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) {
			return applied, fmt.Errorf("fetch receipts: %w", err)
		}
		if got == 0 {
			idle, err := r.consumerIdle(ctx, cons)
			if err != nil {
				return applied, err
			}
			r.setReceiptsIdle(idle)
		}
		if err := r.refreshCounts(ctx); err != nil {
			return applied, err
		}
	}
	return applied, nil
}

// applyReceipt verifies one receipt and records it. A receipt that fails
// verification is refused for good (Term) and counted; a journal error is
// returned so the message is redelivered.
func (r *Replayer) applyReceipt(ctx context.Context, m jetstream.Msg) error {
	rc, err := protocol.ParseReceipt(m.Data())
	if err == nil {
		_, err = rc.VerifyTrusted(r.cfg.Trust, rc.Body.At, nil)
	}
	if err == nil && rc.Body.Aircraft != r.cfg.Aircraft {
		err = fmt.Errorf("receipt for aircraft %s, not %s", rc.Body.Aircraft, r.cfg.Aircraft)
	}
	if err != nil {
		r.cfg.Log.Error("receipt refused", "subject", m.Subject(), "err", err)
		r.mu.Lock()
		r.status.ReceiptsBad++
		r.mu.Unlock()
		return m.Term()
	}
	if rc.Body.Status == protocol.StatusCloseRejected {
		return r.closeRejected(m, rc)
	}
	known, err := r.cfg.Journal.ApplyReceipt(ctx, rc)
	if err != nil {
		return fmt.Errorf("apply receipt for invoice %s: %w", rc.Body.Invoice, err)
	}
	if !known {
		r.cfg.Log.Warn("receipt for an invoice this journal does not hold", "flight", rc.Body.Flight, "invoice", rc.Body.Invoice, "status", rc.Body.Status)
	}
	r.mu.Lock()
	if rc.Body.Status == protocol.StatusCloseAccepted && rc.Body.Flight == r.cfg.Flight {
		r.status.CloseAccepted = true
		r.status.CloseRejected = nil
	}
	r.mu.Unlock()
	return m.Ack()
}

// closeRejected records a close-rejected receipt for the status, loudly.
// Nothing in the journal changes: the close stays pending, and a later
// acceptance (a corrected close, or ground's registry fixed) clears it.
func (r *Replayer) closeRejected(m jetstream.Msg, rc *protocol.SignedReceipt) error {
	if rc.Body.Flight != r.cfg.Flight {
		r.cfg.Log.Warn("close rejection for another flight", "flight", rc.Body.Flight)
		return m.Ack()
	}
	reason := rc.Body.Reason.String()
	r.cfg.Log.Error("ground rejected the flight-close report", "flight", rc.Body.Flight, "reason", reason, "at", rc.Body.At)
	r.mu.Lock()
	if !r.status.CloseAccepted {
		r.status.CloseRejected = &CloseRejection{Reason: reason, At: rc.Body.At}
	}
	r.mu.Unlock()
	return m.Ack()
}

func (r *Replayer) refreshCounts(ctx context.Context) error {
	c, err := r.cfg.Journal.Counts(ctx)
	if err != nil {
		return fmt.Errorf("count invoices: %w", err)
	}
	r.mu.Lock()
	r.status.Counts = c
	r.mu.Unlock()
	return nil
}

// progress records n more invoices acknowledged and logs the rate and the
// time remaining every few seconds.
func (r *Replayer) progress(n int) {
	now := r.cfg.Clock()
	r.mu.Lock()
	r.status.SentThisLink += n
	r.drained += n
	r.status.Counts.Pending = max(0, r.status.Counts.Pending-n)
	r.status.Counts.Sent += n
	elapsed := now.Sub(r.drainT).Seconds()
	if elapsed > 0 {
		r.status.RatePerSecond = float64(r.drained) / elapsed
	}
	if r.status.RatePerSecond > 0 {
		r.status.ETASeconds = float64(r.status.Counts.Pending) / r.status.RatePerSecond
	}
	logNow := now.Sub(r.lastLog) >= progressPeriod
	if logNow {
		r.lastLog = now
	}
	s, level := r.status, r.drainLevel
	r.mu.Unlock()
	if logNow {
		r.cfg.Log.Log(context.Background(), level, "replay progress", "sent", s.SentThisLink, "pending", s.Counts.Pending,
			"per_second", int(s.RatePerSecond), "eta_seconds", int(s.ETASeconds))
	}
}

func (r *Replayer) setErr(err error) {
	r.mu.Lock()
	r.status.LastError, r.lastErr = err.Error(), err
	r.mu.Unlock()
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
