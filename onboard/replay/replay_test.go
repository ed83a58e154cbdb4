package replay

// Tests of the replayer against a real embedded nats-server with JetStream
// (file storage), the ground's own stream configuration, real signed
// clearing receipts and, where a link matters, the link emulator between
// the cabin's connection and the server. The journal is an in-memory fake
// that keeps the Journal contract (the SQLite journal has its own tests)
// and checks how the replayer uses it.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

const (
	testAircraft = protocol.AircraftID("D-AIUA")
	testFlight   = protocol.FlightID("XX123-2026-11-21")
	// liveness bounds every wait for something that must happen. It is
	// generous: the machine is shared, and a passing test never waits it out.
	liveness = 30 * time.Second
)

// t0 is the fake clock's start: the replayer's time, the heartbeats' and
// the receipts'.
var t0 = time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)

// ---------------------------------------------------------------------------
// The fake journal.

type invState int

const (
	statePending invState = iota
	stateSent
	stateCleared
)

func (s invState) String() string {
	return [...]string{"pending", "sent", "cleared"}[s]
}

type fakeInvoice struct {
	item    Item
	state   invState
	sentAt  time.Time
	marks   int    // MarkSent calls that named it
	receipt []byte // the receipt that cleared it
	applies int    // ApplyReceipt calls about it
}

type batchCall struct {
	after        uint64
	resendBefore time.Time
	limit        int
	returned     []uint64 // sequence numbers
}

// fakeJournal is an in-memory Journal that keeps the interface's contract
// as the SQLite journal does (ReplayBatch in sequence order, pending or sent
// before resendBefore; MarkSent leaves a cleared invoice cleared;
// ApplyReceipt idempotent, false for what it does not hold, an error for a
// receipt whose sequence number disagrees; calls with a cancelled context
// fail, as database/sql's do). It records how the replayer used it, and
// notes every MarkSent that marks an invoice whose predecessor is not yet
// marked: the replayer must acknowledge in order.
type fakeJournal struct {
	flight protocol.FlightID

	mu         sync.Mutex
	invs       []*fakeInvoice // invs[i] has Seq i+1
	byID       map[protocol.ID]*fakeInvoice
	batches    []batchCall
	markCalls  [][]uint64 // sequence numbers per MarkSent call
	violations []string   // contract breaches by the replayer
	failApply  map[protocol.ID]int

	// Test hooks, set before the replayer runs. pageCap, when not zero,
	// makes ReplayBatch return at most that many invoices (the contract
	// says up to limit). onBatch and onMark are called as ReplayBatch and
	// MarkSent begin, and may block, as a busy disk does.
	pageCap int
	onBatch func(after uint64)
	onMark  func(n int)

	closeRaw    []byte
	closeState  invState
	closeSentAt time.Time
	closeMarks  int
	closeApply  int
}

func newFakeJournal() *fakeJournal {
	return &fakeJournal{flight: testFlight, byID: map[protocol.ID]*fakeInvoice{}, failApply: map[protocol.ID]int{}}
}

// add appends n invoices, each about size bytes, and returns them.
func (j *fakeJournal) add(n, size int) []Item {
	j.mu.Lock()
	defer j.mu.Unlock()
	var out []Item
	for range n {
		seq := uint64(len(j.invs) + 1)
		id := protocol.NewID(nil)
		raw := fmt.Appendf(nil, "invoice %d %s ", seq, id)
		raw = append(raw, bytes.Repeat([]byte{'x'}, max(0, size-len(raw)))...)
		inv := &fakeInvoice{item: Item{ID: id, Seq: seq, Raw: raw}}
		j.invs = append(j.invs, inv)
		j.byID[id] = inv
		out = append(out, inv.item)
	}
	return out
}

// setSent puts every invoice in the sent state, sent at.
func (j *fakeJournal) setSent(at time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, inv := range j.invs {
		inv.state, inv.sentAt = stateSent, at
	}
}

// closeFlight stores a flight-close report, pending.
func (j *fakeJournal) closeFlight(raw []byte) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closeRaw, j.closeState = raw, statePending
}

func (j *fakeJournal) ReplayBatch(ctx context.Context, afterSeq uint64, resendBefore time.Time, limit int) ([]Item, error) {
	if j.onBatch != nil {
		j.onBatch(afterSeq)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	call := batchCall{after: afterSeq, resendBefore: resendBefore, limit: limit}
	if j.pageCap > 0 {
		limit = min(limit, j.pageCap)
	}
	var out []Item
	for _, inv := range j.invs {
		if len(out) >= limit {
			break
		}
		if inv.item.Seq <= afterSeq {
			continue
		}
		if inv.state == statePending || (inv.state == stateSent && inv.sentAt.Before(resendBefore)) {
			out = append(out, inv.item)
			call.returned = append(call.returned, inv.item.Seq)
		}
	}
	j.batches = append(j.batches, call)
	return out, nil
}

func (j *fakeJournal) MarkSent(ctx context.Context, ids []protocol.ID, at time.Time) error {
	if j.onMark != nil {
		j.onMark(len(ids))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	var seqs []uint64
	for _, id := range ids {
		inv, ok := j.byID[id]
		if !ok {
			j.violations = append(j.violations, fmt.Sprintf("MarkSent of unknown invoice %s", id))
			continue
		}
		seqs = append(seqs, inv.item.Seq)
		if s := inv.item.Seq; s > 1 && j.invs[s-2].state == statePending {
			j.violations = append(j.violations, fmt.Sprintf("MarkSent marks invoice %d while %d is unmarked", s, s-1))
		}
		inv.marks++
		if inv.state != stateCleared {
			inv.state, inv.sentAt = stateSent, at
		}
	}
	j.markCalls = append(j.markCalls, seqs)
	return nil
}

func (j *fakeJournal) ApplyReceipt(ctx context.Context, r *protocol.SignedReceipt) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	b := r.Body
	if b.Flight != j.flight {
		return false, nil
	}
	if b.Status == protocol.StatusCloseAccepted {
		if j.closeRaw == nil {
			return false, nil
		}
		j.closeApply++
		j.closeState = stateCleared
		return true, nil
	}
	inv, ok := j.byID[b.Invoice]
	if !ok {
		return false, nil
	}
	inv.applies++
	if j.failApply[b.Invoice] > 0 {
		j.failApply[b.Invoice]--
		return false, errors.New("fake journal: disk busy")
	}
	if inv.item.Seq != b.Seq {
		return false, fmt.Errorf("receipt for invoice %s says seq %d, journal has %d", b.Invoice, b.Seq, inv.item.Seq)
	}
	if inv.state != stateCleared {
		inv.state, inv.receipt = stateCleared, bytes.Clone(r.Raw)
	}
	return true, nil
}

func (j *fakeJournal) PendingClose(ctx context.Context, resendBefore time.Time) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closeRaw == nil || j.closeState == stateCleared || (!j.closeSentAt.IsZero() && !j.closeSentAt.Before(resendBefore)) {
		return nil, false, nil
	}
	return j.closeRaw, true, nil
}

func (j *fakeJournal) MarkCloseSent(ctx context.Context, at time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.closeMarks++
	if j.closeRaw != nil && j.closeState != stateCleared {
		j.closeState, j.closeSentAt = stateSent, at
	}
	return nil
}

func (j *fakeJournal) Counts(ctx context.Context) (Counts, error) {
	if err := ctx.Err(); err != nil {
		return Counts{}, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.countsLocked(), nil
}

func (j *fakeJournal) countsLocked() Counts {
	var c Counts
	for _, inv := range j.invs {
		switch inv.state {
		case statePending:
			c.Pending++
		case stateSent:
			c.Sent++
		case stateCleared:
			c.Cleared++
		}
	}
	return c
}

func (j *fakeJournal) counts() Counts {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.countsLocked()
}

// inv returns a copy of invoice seq's state.
func (j *fakeJournal) inv(seq uint64) fakeInvoice {
	j.mu.Lock()
	defer j.mu.Unlock()
	return *j.invs[seq-1]
}

func (j *fakeJournal) nBatches() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return len(j.batches)
}

// checkReplayerUse fails t if the replayer broke the journal's contract.
func (j *fakeJournal) checkReplayerUse(t *testing.T) {
	t.Helper()
	j.mu.Lock()
	defer j.mu.Unlock()
	for _, v := range j.violations {
		t.Error(v)
	}
}

var _ Journal = (*fakeJournal)(nil)

// ---------------------------------------------------------------------------
// Clock, logs, polling.

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testLog writes to t.Log until the test's cleanup ends; the log shows with
// -v or when the test fails.
type testLog struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

// poll waits up to liveness for cond, and fails the test if it never holds.
func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(liveness)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", liveness, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// The world: a nats-server with JetStream, the ground's connection, the
// cabin's, and what the ground sees published.

type env struct {
	t      *testing.T
	ctx    context.Context
	srv    *server.Server
	ground *nats.Conn
	js     jetstream.JetStream // ground's
	clock  *fakeClock
	j      *fakeJournal
	issuer crypto.PrivateKey
	trust  *crypto.TrustList
	sniff  *sniffer
	log    *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	lw := &testLog{t: t}
	t.Cleanup(func() { lw.mu.Lock(); lw.done = true; lw.mu.Unlock() }) // runs last but one
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	ground, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ground.Close)
	js, err := jetstream.New(ground)
	if err != nil {
		t.Fatal(err)
	}
	if err := clearing.EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	issuer, err := crypto.GenerateKey(crypto.Issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	trust, err := crypto.NewTrustList(crypto.TrustedKey{Key: issuer.Public(), NotBefore: t0.AddDate(-1, 0, 0), NotAfter: t0.AddDate(1, 0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, srv: srv, ground: ground, js: js, clock: &fakeClock{t: t0}, j: newFakeJournal(),
		issuer: issuer, trust: trust, log: slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	e.sniff = newSniffer(t, ground, e.j)
	return e
}

// link starts a link emulator in front of the server.
func (e *env) link(cfg linkemu.Config) *linkemu.Link {
	e.t.Helper()
	l, err := linkemu.Listen("127.0.0.1:0", e.srv.Addr().String(), cfg, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { l.Close() })
	return l
}

// dial connects as the cabin does: reconnect forever, ping often; quicker
// than production so a test's many reconnects take milliseconds. opts
// override these.
func (e *env) dial(url string, opts ...nats.Option) *nats.Conn {
	e.t.Helper()
	nc, err := nats.Connect(url, append([]nats.Option{
		nats.CustomInboxPrefix(protocol.InboxPrefix(testAircraft)),
		nats.MaxReconnects(-1),
		nats.ReconnectBufSize(-1),
		nats.ReconnectWait(20 * time.Millisecond),
		nats.ReconnectJitter(5*time.Millisecond, 5*time.Millisecond),
		nats.PingInterval(250 * time.Millisecond),
		nats.MaxPingsOutstanding(2),
	}, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(nc.Close)
	return nc
}

// config is the replayer's configuration in this world; mod changes it.
func (e *env) config(mod func(*Config)) Config {
	cfg := Config{Aircraft: testAircraft, Flight: testFlight, Journal: e.j, Trust: e.trust,
		Window: 64, AckTimeout: 10 * time.Second, Clock: e.clock.Now, Log: e.log}
	if mod != nil {
		mod(&cfg)
	}
	return cfg
}

// run starts a replayer on nc until the test ends.
func (e *env) run(nc *nats.Conn, mod func(*Config)) *Replayer {
	e.t.Helper()
	r, err := New(e.config(mod))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, nc) }()
	e.t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				e.t.Errorf("Run: %v", err)
			}
		case <-time.After(liveness):
			e.t.Errorf("Run did not return within %v of its context's end", liveness)
		}
	})
	return r
}

// beat publishes a ground heartbeat saying the ground's clock is at.
func (e *env) beat(at time.Time) {
	e.t.Helper()
	b, err := protocol.EncodeHeartbeat(protocol.Heartbeat{Time: at})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := e.ground.Publish(protocol.HeartbeatSubject, b); err != nil {
		e.t.Fatal(err)
	}
	if err := e.ground.Flush(); err != nil {
		e.t.Fatal(err)
	}
}

// linkUp sends heartbeats until the replayer sees the link up (one sent
// while the cabin reconnects is lost, as on a real link).
func (e *env) linkUp(r *Replayer) {
	e.t.Helper()
	last := time.Time{}
	poll(e.t, "link up after a heartbeat", func() bool {
		if time.Since(last) > 100*time.Millisecond {
			e.beat(e.clock.Now())
			last = time.Now()
		}
		return r.LinkUp()
	})
}

// streamMsgs returns every message of the invoice stream, in stream order.
func (e *env) streamMsgs() []*jetstream.RawStreamMsg {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, protocol.StreamInvoices)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(e.ctx, seq)
		if err != nil {
			e.t.Fatalf("stream message %d: %v", seq, err)
		}
		out = append(out, m)
	}
	return out
}

// checkStreamComplete checks the invoice stream holds every invoice of items
// exactly once, in sequence order, with its id as Nats-Msg-Id and its bytes
// unchanged, followed by the close report when closeRaw is not nil.
func (e *env) checkStreamComplete(items []Item, closeRaw []byte) {
	e.t.Helper()
	msgs := e.streamMsgs()
	want := len(items)
	if closeRaw != nil {
		want++
	}
	if len(msgs) != want {
		e.t.Errorf("invoice stream holds %d messages, want %d (%d invoices, close report %v)", len(msgs), want, len(items), closeRaw != nil)
	}
	for i, m := range msgs[:min(len(msgs), len(items))] {
		it := items[i]
		if m.Subject != protocol.InvoiceSubject(testAircraft, testFlight) ||
			m.Header.Get(jetstream.MsgIDHeader) != protocol.InvoiceMsgID(it.ID) || !bytes.Equal(m.Data, it.Raw) {
			e.t.Errorf("stream message %d: subject %s, Nats-Msg-Id %s, data %.20q; want invoice %d: %s, %s, %.20q",
				m.Sequence, m.Subject, m.Header.Get(jetstream.MsgIDHeader), m.Data, it.Seq,
				protocol.InvoiceSubject(testAircraft, testFlight), protocol.InvoiceMsgID(it.ID), it.Raw)
			return
		}
	}
	if closeRaw != nil && len(msgs) == want {
		m := msgs[len(msgs)-1]
		if m.Subject != protocol.CloseSubject(testAircraft, testFlight) ||
			m.Header.Get(jetstream.MsgIDHeader) != protocol.CloseMsgID(testFlight) || !bytes.Equal(m.Data, closeRaw) {
			e.t.Errorf("last stream message: subject %s, Nats-Msg-Id %s; want the close report on %s with %s",
				m.Subject, m.Header.Get(jetstream.MsgIDHeader), protocol.CloseSubject(testAircraft, testFlight), protocol.CloseMsgID(testFlight))
		}
	}
}

// receipt signs a clearing receipt for invoice it with key; mod changes the
// body before signing.
func (e *env) receipt(key crypto.PrivateKey, it Item, mod func(*protocol.ClearingReceipt)) *protocol.SignedReceipt {
	e.t.Helper()
	body := protocol.ClearingReceipt{Version: protocol.Version, Invoice: it.ID, Flight: testFlight, Aircraft: testAircraft,
		Seq: it.Seq, Status: protocol.StatusSettled, Amount: protocol.M(450, "EUR"), At: e.clock.Now()}
	if mod != nil {
		mod(&body)
	}
	s, err := protocol.Sign(body, key, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// publishReceipt publishes raw on the flight's receipt subject as ground
// does, with msgID as Nats-Msg-Id unless it is empty.
func (e *env) publishReceipt(raw []byte, msgID string) {
	e.t.Helper()
	m := nats.NewMsg(protocol.ReceiptSubject(testAircraft, testFlight))
	m.Data = raw
	if msgID != "" {
		m.Header.Set(jetstream.MsgIDHeader, msgID)
	}
	if _, err := e.js.PublishMsg(e.ctx, m); err != nil {
		e.t.Fatal(err)
	}
}

// closeReport is a flight-close report signed by an aircraft key.
func (e *env) closeReport(n int) []byte {
	e.t.Helper()
	key, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	fc := protocol.FlightClose{Version: protocol.Version, Flight: testFlight, Aircraft: testAircraft, ClosedAt: t0,
		Sales: uint64(n), LastSeq: uint64(n), SalesTotal: []protocol.Money{protocol.M(450*int64(n), "EUR")}}
	if n > 0 {
		fc.Head = protocol.Sum([]byte("head"))
	}
	s, err := protocol.Sign(fc, key, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return s.Raw
}

// sniffer is a plain subscription of the ground's to everything aircraft
// publish: it sees every copy, also those JetStream drops as duplicates.
type sniffer struct {
	j *fakeJournal

	mu     sync.Mutex
	copies map[string]int // by Nats-Msg-Id
	closes []closeSeen
}

// closeSeen is the journal's state when a close report reached the server.
type closeSeen struct {
	pending  int      // invoices not acknowledged
	unmarked []uint64 // their sequence numbers, the first few
}

func newSniffer(t *testing.T, nc *nats.Conn, j *fakeJournal) *sniffer {
	t.Helper()
	s := &sniffer{j: j, copies: map[string]int{}}
	_, err := nc.Subscribe("airtab.v1.>", func(m *nats.Msg) {
		kind, _, _, err := protocol.ParseSubject(m.Subject)
		if err != nil || (kind != "invoice" && kind != "close") {
			return
		}
		var seen closeSeen
		if kind == "close" {
			// The close left the cabin after the replayer decided every
			// invoice was acknowledged: the journal says so by now.
			j.mu.Lock()
			for _, inv := range j.invs {
				if inv.state == statePending {
					seen.pending++
					if len(seen.unmarked) < 5 {
						seen.unmarked = append(seen.unmarked, inv.item.Seq)
					}
				}
			}
			j.mu.Unlock()
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.copies[m.Header.Get(jetstream.MsgIDHeader)]++
		if kind == "close" {
			s.closes = append(s.closes, seen)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *sniffer) count(msgID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.copies[msgID]
}

func (s *sniffer) closesSeen() []closeSeen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.closes)
}

// checkCloses fails unless at least one close report reached the server
// and every one did so with every invoice acknowledged.
func (s *sniffer) checkCloses(t *testing.T) {
	t.Helper()
	closes := s.closesSeen()
	if len(closes) == 0 {
		t.Error("no flight-close report reached the server")
	}
	for i, c := range closes {
		if c.pending > 0 {
			t.Errorf("close report %d reached the server with %d invoices not acknowledged (%v ...)", i+1, c.pending, c.unmarked)
		}
	}
}

// ---------------------------------------------------------------------------
// 1. Everything once, in order, then the close.

func TestPublishesEveryInvoiceOnceInOrderThenClose(t *testing.T) {
	e := newEnv(t)
	const n = 300 // several journal batches of Window (64)
	items := e.j.add(n, 400)
	closeRaw := e.closeReport(n)
	e.j.closeFlight(closeRaw)

	nc := e.dial(e.srv.ClientURL())
	r := e.run(nc, nil)
	e.linkUp(r)

	poll(t, "the close report published", func() bool { return e.sniff.count(protocol.CloseMsgID(testFlight)) > 0 })
	poll(t, "the close marked sent", func() bool {
		e.j.mu.Lock()
		defer e.j.mu.Unlock()
		return e.j.closeState == stateSent
	})
	// One more drain after the close: it must find nothing to send.
	before := e.j.nBatches()
	r.Kick()
	poll(t, "another drain", func() bool { return e.j.nBatches() > before })

	e.checkStreamComplete(items, closeRaw)
	e.sniff.checkCloses(t)
	for _, it := range items {
		if c := e.sniff.count(protocol.InvoiceMsgID(it.ID)); c != 1 {
			t.Errorf("invoice %d published %d times, want once", it.Seq, c)
		}
		if inv := e.j.inv(it.Seq); inv.state != stateSent || inv.marks != 1 || !inv.sentAt.Equal(t0) {
			t.Errorf("invoice %d: %s, marked %d times, at %v; want sent once at %v", it.Seq, inv.state, inv.marks, inv.sentAt, t0)
		}
	}
	if c := e.sniff.count(protocol.CloseMsgID(testFlight)); c != 1 {
		t.Errorf("close report published %d times, want once", c)
	}
	// MarkSent named every invoice once, in sequence order.
	e.j.mu.Lock()
	all := slices.Concat(e.j.markCalls...)
	closeMarks := e.j.closeMarks
	e.j.mu.Unlock()
	if len(all) != n || !slices.IsSorted(all) || all[0] != 1 || all[n-1] != n {
		t.Errorf("MarkSent marked %d invoices (%v ... %v), want 1 to %d in order", len(all), all[:min(3, len(all))], all[max(0, len(all)-3):], n)
	}
	if closeMarks != 1 {
		t.Errorf("MarkCloseSent called %d times, want once", closeMarks)
	}
	e.j.checkReplayerUse(t)
	st := r.Status()
	if st.Counts != (Counts{Sent: n}) || st.LastError != "" {
		t.Errorf("status: counts %+v, last error %q; want %d sent and no error", st.Counts, st.LastError, n)
	}
}

// TestCloseWaitsForEveryInvoice has JetStream refuse invoice 3 (larger than
// the stream's MaxMsgSize, so every publish of it fails): the close report
// must never go out, and nothing after the refused invoice may be marked
// sent, though invoices 4 and 5 were published in the same window.
func TestCloseWaitsForEveryInvoice(t *testing.T) {
	e := newEnv(t)
	items := e.j.add(5, 400)
	e.j.mu.Lock()
	e.j.invs[2].item.Raw = bytes.Repeat([]byte{'x'}, clearing.InvoiceStreamMaxMsgSize+1)
	e.j.mu.Unlock()
	e.j.closeFlight(e.closeReport(5))

	nc := e.dial(e.srv.ClientURL())
	r := e.run(nc, nil)
	e.linkUp(r)
	// Two drains that failed on invoice 3: the second after the retry backoff.
	poll(t, "two drains refused on invoice 3", func() bool {
		e.j.mu.Lock()
		starts := 0
		for _, b := range e.j.batches {
			if b.after == 0 {
				starts++
			}
		}
		e.j.mu.Unlock() // Status reads the journal's counts
		return starts >= 2 && strings.Contains(r.Status().LastError, "invoice 3")
	})
	for _, it := range items {
		want := stateSent
		if it.Seq >= 3 {
			want = statePending
		}
		if inv := e.j.inv(it.Seq); inv.state != want {
			t.Errorf("invoice %d is %s, want %s", it.Seq, inv.state, want)
		}
	}
	if c := e.sniff.count(protocol.CloseMsgID(testFlight)); c != 0 {
		t.Errorf("the close report went out %d times while invoice 3 was not acknowledged", c)
	}
	e.j.mu.Lock()
	closeMarks := e.j.closeMarks
	e.j.mu.Unlock()
	if closeMarks != 0 {
		t.Errorf("MarkCloseSent called %d times", closeMarks)
	}
	e.j.checkReplayerUse(t)
}

// ---------------------------------------------------------------------------
// 2. A broken link neither skips nor reorders.

// TestBrokenLinkMidBatch replays through a link that breaks mid-batch and
// checks every invoice ends in the stream once, in sequence order, every
// invoice is marked sent, MarkSent never runs ahead of an unmarked
// invoice, and the close follows the last invoice. Its resets case guards
// the order on a link that resets every 8 KiB: a replayer that published
// between a reset and its collector failing the drain would put invoices
// ahead of earlier ones lost in transit (see
// TestStreamOrderWhenLinkDropsWhileJournalIsSlow).
func TestBrokenLinkMidBatch(t *testing.T) {
	// A rate cap stretches the replay so the fault lands mid-batch.
	slow := linkemu.Config{Latency: 2 * time.Millisecond, BitsPerSecond: 1_000_000}
	cases := []struct {
		name  string
		start linkemu.Config // while the replay runs
		fault func(t *testing.T, l *linkemu.Link)
	}{
		{name: "resets every 8 KiB", start: linkemu.Config{ResetEveryBytes: 8 << 10}},
		{name: "down mid-batch", start: slow, fault: func(t *testing.T, l *linkemu.Link) {
			l.SetState(linkemu.Down)
			time.Sleep(300 * time.Millisecond)
			l.SetState(linkemu.Up)
		}},
		{name: "black hole mid-batch", start: slow, fault: func(t *testing.T, l *linkemu.Link) {
			// Longer than the cabin's ping timeout: it gives up on the
			// connection and redials into the black hole.
			l.SetState(linkemu.Blackhole)
			time.Sleep(1500 * time.Millisecond)
			l.SetState(linkemu.Up)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			const n = 300
			items := e.j.add(n, 400)
			closeRaw := e.closeReport(n)
			e.j.closeFlight(closeRaw)

			l := e.link(linkemu.Config{})
			nc := e.dial(l.URL())
			l.SetState(linkemu.Down) // nothing goes before the link is shaped
			poll(t, "the cabin disconnected", func() bool { return !nc.IsConnected() })
			l.SetConfig(tc.start)
			r := e.run(nc, func(c *Config) { c.Window = 32 })
			l.SetState(linkemu.Up)
			poll(t, "the cabin reconnected", nc.IsConnected)
			e.linkUp(r)

			var before linkemu.Stats
			if tc.fault != nil {
				poll(t, "the replay under way", func() bool { return e.j.counts().Sent >= 40 })
				if c := e.j.counts(); c.Pending == 0 {
					t.Fatalf("the replay ended before the fault: %+v", c)
				}
				before = l.Stats()
				tc.fault(t, l)
			}
			poll(t, "every invoice acknowledged and the close sent", func() bool {
				e.j.mu.Lock()
				defer e.j.mu.Unlock()
				return e.j.countsLocked().Pending == 0 && e.j.closeState == stateSent
			})
			st := l.Stats()
			t.Logf("link: %d connections, %d resets, %d bytes up, %d down", st.Conns, st.Resets, st.BytesUp, st.BytesDown)
			if tc.fault != nil && st.Conns == before.Conns {
				t.Fatalf("the cabin never reconnected after the fault: %+v", st)
			}
			if tc.fault == nil && st.Resets < 10 {
				t.Fatalf("only %d resets: the replay was not cut", st.Resets)
			}

			e.checkStreamComplete(items, closeRaw)
			e.sniff.checkCloses(t)
			e.j.checkReplayerUse(t) // no MarkSent ahead of an unmarked predecessor
			for _, it := range items {
				if inv := e.j.inv(it.Seq); inv.state != stateSent || inv.marks < 1 {
					t.Errorf("invoice %d: %s, marked %d times", it.Seq, inv.state, inv.marks)
				}
			}
		})
	}
}

// TestStreamOrderWhenLinkDropsWhileJournalIsSlow: the replayer must not
// publish while the connection is down, or the invoices it publishes then
// overtake earlier ones in the stream.
//
// nats.go keeps what is published while a connection is reconnecting in its
// reconnect buffer (8 MB unless nats.ReconnectBufSize(-1)) and writes that
// buffer first on the new connection, before anything published after the
// reconnect. The replayer's publisher goes on after the link drops until
// its collector fails the drain. A journal write (MarkSent) in progress
// delays that failure, and the publisher, holding credits from the acks
// being written, is handed invoices 129 to 192. Were they buffered, the
// invoices lost in transit before them (some of 65 to 128), re-sent from
// the lowest unacknowledged, would reach the stream after them: the
// invoices would still all arrive once (JetStream drops the copies) and
// the journal would still acknowledge in order, but they would not be
// published in sequence order, and ground would clear them out of order.
// The cabin server's connection has no reconnect buffer (Run refuses one,
// see CheckConn), and the replayer publishes without nats.go's retries
// (jetstream.WithRetryAttempts(0)), so the first publish while
// disconnected fails the drain: the test checks that the publisher asks
// for no page after 192 while disconnected and nothing is buffered, and
// that the stream ends complete and in order. TestBrokenLinkMidBatch/resets covers the same on a link
// that resets every 8 KiB, without a slow journal: there the publisher
// would send between the reset and the collector's failure.
func TestStreamOrderWhenLinkDropsWhileJournalIsSlow(t *testing.T) {
	e := newEnv(t)
	const n = 200
	items := e.j.add(n, 200)
	batchHeld, batchGo := make(chan struct{}), make(chan struct{})
	markHeld, markGo := make(chan struct{}), make(chan struct{})
	var onceBatch, onceMark, onceBatchGo, onceMarkGo sync.Once
	releaseBatch := func() { onceBatchGo.Do(func() { close(batchGo) }) }
	releaseMark := func() { onceMarkGo.Do(func() { close(markGo) }) }
	e.j.pageCap = 64
	e.j.onBatch = func(after uint64) {
		if after == 128 { // the third page of the first drain
			onceBatch.Do(func() { close(batchHeld); <-batchGo })
		}
	}
	e.j.onMark = func(int) { onceMark.Do(func() { close(markHeld); <-markGo }) }

	l := e.link(linkemu.Config{})
	// Pings as in production: a PING queued behind seconds of invoices
	// must not end the connection.
	nc := e.dial(l.URL(), nats.PingInterval(5*time.Second), nats.MaxPingsOutstanding(3))
	r := e.run(nc, func(c *Config) { c.Window = 128 })
	t.Cleanup(func() { releaseBatch(); releaseMark() }) // before Run is stopped
	// 100 kbit/s: a 16 KiB chunk of the link takes 1.3 s, so when the
	// first 64 acks are in, the later invoices are still on the wire.
	l.SetConfig(linkemu.Config{BitsPerSecond: 100_000})
	e.linkUp(r)
	waitClosed := func(ch chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(liveness):
			t.Fatalf("waited %v for %s", liveness, what)
		}
	}
	// Invoices 1 to 128 published (two pages), the publisher reading the
	// third page, the collector writing the first 64 acks: both are held.
	waitClosed(batchHeld, "the publisher reading the third page")
	waitClosed(markHeld, "the collector marking the first 64 invoices sent")

	// The link drops; what is on the wire is lost.
	l.SetState(linkemu.Down)
	poll(t, "the cabin disconnected", func() bool { return !nc.IsConnected() })
	releaseBatch()
	// The publisher, with the 64 credits of those acks and its drain not
	// yet failed, goes on: 129 to 192, then the next page.
	// A replayer that does not publish while disconnected stops at 129; one
	// that does reaches the page after 192 within milliseconds.
	pastPage := func(after uint64) func() bool {
		return func() bool {
			e.j.mu.Lock()
			defer e.j.mu.Unlock()
			return slices.ContainsFunc(e.j.batches, func(b batchCall) bool { return b.after == after })
		}
	}
	poll(t, "the publisher given invoices 129 to 192", pastPage(128))
	for end := time.Now().Add(time.Second); time.Now().Before(end) && !pastPage(192)(); {
		time.Sleep(5 * time.Millisecond)
	}
	if nc.IsConnected() {
		t.Fatal("the cabin reconnected through a link that is down")
	}
	if pastPage(192)() {
		t.Error("the publisher read the page after invoice 192 while disconnected: its publishes of 129 to 192 did not fail")
	}
	if buffered, err := nc.Buffered(); err != nil || buffered != 0 {
		t.Errorf("%d bytes (%v) in nats.go's reconnect buffer while disconnected, want none", buffered, err)
	}

	l.SetConfig(linkemu.Config{})
	releaseMark()
	l.SetState(linkemu.Up)
	poll(t, "every invoice acknowledged", func() bool { return e.j.counts().Pending == 0 })

	e.checkStreamComplete(items, nil)
	e.j.checkReplayerUse(t)
}

// ---------------------------------------------------------------------------
// 3. The window restarts at one after a broken drain and grows by one per
// ack.

// gatedJS is the replayer's JetStream with the acks of async publishes
// held back until the test releases them: the test then knows exactly how
// many publishes the replayer has in flight. Publishes go to the real
// server; only what the replayer learns of the acks is gated.
type gatedJS struct {
	jetstream.JetStream
	done chan struct{}

	mu       sync.Mutex
	auto     bool // release every ack as it comes
	pubs     []*gatedFuture
	released int // acks released since the last reset
}

type gatedFuture struct {
	inner    jetstream.PubAckFuture
	seq      uint64 // the invoice's
	n        int    // its place among the publishes since the last reset, from 1
	released int    // acks released before it was published
	gate     chan error
	ok       chan *jetstream.PubAck
	err      chan error
}

func (f *gatedFuture) Ok() <-chan *jetstream.PubAck { return f.ok }
func (f *gatedFuture) Err() <-chan error            { return f.err }
func (f *gatedFuture) Msg() *nats.Msg               { return f.inner.Msg() }

func (g *gatedJS) PublishMsgAsync(m *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	inner, err := g.JetStream.PublishMsgAsync(m, opts...)
	if err != nil {
		return nil, err
	}
	var seq uint64
	fmt.Sscanf(string(m.Data), "invoice %d ", &seq)
	g.mu.Lock()
	f := &gatedFuture{inner: inner, seq: seq, n: len(g.pubs) + 1, released: g.released,
		gate: make(chan error, 1), ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	g.pubs = append(g.pubs, f)
	if g.auto {
		g.released++
		f.gate <- nil
	}
	g.mu.Unlock()
	go func() {
		var override error
		select {
		case override = <-f.gate:
		case <-g.done:
			return
		}
		if override != nil {
			f.err <- override
			return
		}
		select {
		case a := <-inner.Ok():
			f.ok <- a
		case err := <-inner.Err():
			f.err <- err
		case <-g.done:
		}
	}()
	return f, nil
}

// published returns the publishes since the last reset.
func (g *gatedJS) published() []*gatedFuture {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.pubs)
}

// release lets the replayer see the next unreleased ack, or err instead.
func (g *gatedJS) release(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pubs[g.released].gate <- err
	g.released++
}

// setAuto releases every ack from now on, and those held.
func (g *gatedJS) setAuto(auto bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.auto = auto
	for auto && g.released < len(g.pubs) {
		g.pubs[g.released].gate <- nil
		g.released++
	}
}

// reset starts counting publishes afresh (with every ack released).
func (g *gatedJS) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pubs, g.released = nil, 0
}

// settle is how long a test waits to see that no further publish comes. A
// replayer that publishes beyond its window does so within microseconds of
// its last ack; a longer pause here only makes the test slower.
const settle = 150 * time.Millisecond

// waitPublished waits until exactly n publishes happened since the last
// reset and no more follow within settle.
func waitPublished(t *testing.T, g *gatedJS, n int, what string) {
	t.Helper()
	poll(t, fmt.Sprintf("%d publishes (%s)", n, what), func() bool { return len(g.published()) >= n })
	time.Sleep(settle)
	if got := len(g.published()); got != n {
		t.Fatalf("%s: %d publishes in flight or acknowledged, want %d", what, got, n)
	}
}

func TestWindowRestartsAtOneAfterBrokenDrain(t *testing.T) {
	e := newEnv(t)
	const window = 16
	items := e.j.add(60, 300)
	nc := e.dial(e.srv.ClientURL())
	r, err := New(e.config(func(c *Config) { c.Window = window }))
	if err != nil {
		t.Fatal(err)
	}
	inner, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window))
	if err != nil {
		t.Fatal(err)
	}
	g := &gatedJS{JetStream: inner, done: make(chan struct{})}
	t.Cleanup(func() { close(g.done) })
	drain := func() <-chan error {
		ch := make(chan error, 1)
		go func() {
			_, err := r.drain(e.ctx, g)
			ch <- err
		}()
		return ch
	}
	wait := func(ch <-chan error, what string) error {
		t.Helper()
		select {
		case err := <-ch:
			return err
		case <-time.After(liveness):
			t.Fatalf("%s did not end", what)
			return nil
		}
	}

	// A fresh replayer fills its whole window at once.
	first := drain()
	waitPublished(t, g, window, "first drain, no ack yet")
	// Three acks, each opening one more slot (the window is full, so each
	// ack lets exactly one more go), then a broken publish: the drain ends.
	for range 3 {
		g.release(nil)
	}
	waitPublished(t, g, window+3, "first drain, 3 acks")
	g.release(errors.New("test: connection reset"))
	if err := wait(first, "the broken drain"); err == nil || !strings.Contains(err.Error(), "connection reset") {
		t.Fatalf("broken drain returned %v", err)
	}
	if c := e.j.counts(); c.Sent != 3 {
		t.Fatalf("after the broken drain %d invoices are sent, want 3", c.Sent)
	}

	// The next drain starts again at invoice 4 with one publish in flight,
	// and every ack lets two more go (its own slot and one new).
	g.reset()
	second := drain()
	waitPublished(t, g, 1, "drain after the break, no ack")
	for k := 1; k <= 5; k++ {
		g.release(nil)
		waitPublished(t, g, 1+2*k, fmt.Sprintf("drain after the break, %d acks", k))
	}
	g.setAuto(true)
	if err := wait(second, "the drain after the break"); err != nil {
		t.Fatalf("drain after the break: %v", err)
	}
	pubs := g.published()
	if pubs[0].seq != 4 {
		t.Errorf("the drain after the break started at invoice %d, want 4", pubs[0].seq)
	}
	// Never more published than one plus two per ack so far: each ack frees
	// its own slot and grows the window by one.
	for _, p := range pubs {
		if p.n > 1+2*p.released {
			t.Errorf("publish %d (invoice %d) with only %d acks released: more than %d published", p.n, p.seq, p.released, 1+2*p.released)
		}
	}
	if c := e.j.counts(); c.Pending != 0 || c.Sent != len(items) {
		t.Fatalf("after the second drain: %+v, want all %d sent", c, len(items))
	}

	// The window grew back to Window: a later drain fills it at once.
	e.j.add(2*window, 300)
	g.setAuto(false)
	g.reset()
	third := drain()
	waitPublished(t, g, window, "a later drain, no ack yet")
	g.setAuto(true)
	if err := wait(third, "the later drain"); err != nil {
		t.Fatalf("later drain: %v", err)
	}
	e.j.checkReplayerUse(t)
}

// ---------------------------------------------------------------------------
// 4. Resend after ResendAfter.

func TestResendAfterResendAfter(t *testing.T) {
	e := newEnv(t)
	const resendAfter = 2 * time.Minute
	items := e.j.add(10, 400)
	closeRaw := e.closeReport(10)
	e.j.closeFlight(closeRaw)
	nc := e.dial(e.srv.ClientURL())
	r := e.run(nc, func(c *Config) { c.ResendAfter = resendAfter })
	e.linkUp(r)
	poll(t, "the first replay and the close", func() bool {
		e.j.mu.Lock()
		defer e.j.mu.Unlock()
		return e.j.closeState == stateSent // after every invoice was marked
	})

	// Ground clears invoices 1 to 3.
	for _, it := range items[:3] {
		rc := e.receipt(e.issuer, it, nil)
		e.publishReceipt(rc.Raw, protocol.ReceiptMsgID(testFlight, it.ID))
	}
	poll(t, "three receipts applied", func() bool { return e.j.counts().Cleared == 3 })

	// drainAt waits for a drain that began at the clock's time now (after a
	// heartbeat: the clock jumped past HeartbeatTimeout).
	drainAt := func() {
		t.Helper()
		e.linkUp(r)
		rb := e.clock.Now().Add(-resendAfter)
		r.Kick()
		poll(t, "a drain at "+e.clock.Now().Format(time.TimeOnly), func() bool {
			e.j.mu.Lock()
			defer e.j.mu.Unlock()
			for _, b := range e.j.batches {
				if b.resendBefore.Equal(rb) && len(b.returned) == 0 {
					return true // its last page: the drain has published all it will
				}
			}
			return false
		})
	}

	// Not yet due: nothing is sent again.
	e.clock.Add(resendAfter - time.Second)
	drainAt()
	for _, it := range items {
		if c := e.sniff.count(protocol.InvoiceMsgID(it.ID)); c != 1 {
			t.Errorf("invoice %d published %d times before ResendAfter, want once", it.Seq, c)
		}
	}
	if c := e.sniff.count(protocol.CloseMsgID(testFlight)); c != 1 {
		t.Errorf("close report published %d times before ResendAfter, want once", c)
	}

	// Due: the sent but uncleared ones, and the close, go again; the
	// cleared ones do not.
	e.clock.Add(2 * time.Second)
	resent := e.clock.Now()
	drainAt()
	poll(t, "the close sent again", func() bool { return e.sniff.count(protocol.CloseMsgID(testFlight)) == 2 })
	for _, it := range items {
		want, inv := 2, e.j.inv(it.Seq)
		wantState, wantAt := stateSent, resent
		if it.Seq <= 3 {
			want, wantState, wantAt = 1, stateCleared, t0
		}
		if c := e.sniff.count(protocol.InvoiceMsgID(it.ID)); c != want {
			t.Errorf("invoice %d published %d times, want %d", it.Seq, c, want)
		}
		if inv.state != wantState || !inv.sentAt.Equal(wantAt) {
			t.Errorf("invoice %d: %s, sent at %v; want %s, sent at %v", it.Seq, inv.state, inv.sentAt, wantState, wantAt)
		}
	}
	// JetStream dropped the copies within its duplicate window.
	e.checkStreamComplete(items, closeRaw)
	e.sniff.checkCloses(t)
	e.j.checkReplayerUse(t)
}

// ---------------------------------------------------------------------------
// 5. Receipts.

func TestReceipts(t *testing.T) {
	e := newEnv(t)
	items := e.j.add(6, 400)
	e.j.setSent(t0) // the replay is done; receipts are what is left
	e.j.closeFlight(e.closeReport(6))
	e.j.mu.Lock()
	e.j.closeState, e.j.closeSentAt = stateSent, t0
	e.j.mu.Unlock()
	nc := e.dial(e.srv.ClientURL())
	r := e.run(nc, nil)
	e.linkUp(r)

	// A valid receipt is applied.
	r1 := e.receipt(e.issuer, items[0], nil)
	e.publishReceipt(r1.Raw, protocol.ReceiptMsgID(testFlight, items[0].ID))
	poll(t, "receipt 1 applied", func() bool { return r.Status().ReceiptsApplied == 1 })
	if inv := e.j.inv(1); inv.state != stateCleared || !bytes.Equal(inv.receipt, r1.Raw) {
		t.Fatalf("invoice 1 is %s with receipt %x, want cleared with the receipt", inv.state, inv.receipt)
	}

	// The same receipt delivered again (as a copy outside JetStream's
	// duplicate window would be) is applied idempotently and acked.
	e.publishReceipt(r1.Raw, "")
	poll(t, "receipt 1 applied again", func() bool { return e.j.inv(1).applies == 2 })
	if inv := e.j.inv(1); inv.state != stateCleared || !bytes.Equal(inv.receipt, r1.Raw) {
		t.Errorf("invoice 1 after the second delivery: %s, %d applies", inv.state, inv.applies)
	}
	poll(t, "status counts invoice 1 once", func() bool { return r.Status().Counts.Cleared == 1 })
	if got, want := r.Status().ReceiptsApplied, 1; got != want {
		t.Errorf("receipts applied after a redelivery = %d, want %d (distinct invoices)", got, want)
	}

	// Receipts that do not verify are refused and never reach the journal:
	// signed by a key the trust list lacks, with a broken signature, and
	// for another aircraft (on this aircraft's subject).
	stranger, err := crypto.GenerateKey(crypto.Issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.publishReceipt(e.receipt(stranger, items[1], nil).Raw, "")
	broken := bytes.Clone(e.receipt(e.issuer, items[2], nil).Raw)
	broken[len(broken)-1] ^= 1 // the signature's last byte
	e.publishReceipt(broken, "")
	e.publishReceipt(e.receipt(e.issuer, items[3], func(b *protocol.ClearingReceipt) { b.Aircraft = "D-AIUB" }).Raw, "")
	// A good receipt after them: once it is applied, they were handled.
	e.publishReceipt(e.receipt(e.issuer, items[4], nil).Raw, "")
	poll(t, "receipt 5 applied", func() bool { return e.j.inv(5).state == stateCleared })

	poll(t, "status counts invoices 1 and 5", func() bool { return r.Status().ReceiptsApplied == 2 })
	if st := r.Status(); st.ReceiptsBad != 3 || st.ReceiptsApplied != 2 {
		t.Errorf("status: %d receipts applied, %d rejected; want 2 (invoices 1 and 5) and 3", st.ReceiptsApplied, st.ReceiptsBad)
	}
	for _, seq := range []uint64{2, 3, 4} {
		if inv := e.j.inv(seq); inv.state != stateSent || inv.applies != 0 {
			t.Errorf("invoice %d: %s after %d ApplyReceipt calls; a refused receipt must not reach the journal", seq, inv.state, inv.applies)
		}
	}

	// The close's receipt.
	e.publishReceipt(e.receipt(e.issuer, Item{Seq: 6}, func(b *protocol.ClearingReceipt) {
		b.Status, b.Amount = protocol.StatusCloseAccepted, protocol.Money{}
	}).Raw, protocol.ReceiptMsgID(testFlight, protocol.ID{}))
	poll(t, "close accepted", func() bool { return r.Status().CloseAccepted })
	e.j.mu.Lock()
	closeState := e.j.closeState
	e.j.mu.Unlock()
	if closeState != stateCleared {
		t.Errorf("close is %s, want cleared", closeState)
	}

	// Every receipt was acked or refused for good: none waits for
	// redelivery.
	cons, err := e.js.Consumer(e.ctx, protocol.StreamReceipts, protocol.ReceiptConsumer(testAircraft))
	if err != nil {
		t.Fatal(err)
	}
	var info *jetstream.ConsumerInfo
	poll(t, "every receipt acked or terminated", func() bool {
		info, err = cons.Info(e.ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == 7
	})
	if info.NumRedelivered != 0 {
		t.Errorf("%d receipts redelivered", info.NumRedelivered)
	}
	poll(t, "status counts 4 sent, 2 cleared", func() bool { return r.Status().Counts == (Counts{Sent: 4, Cleared: 2}) })
}

// TestReceiptRedeliveredAfterJournalError: a receipt the journal could not
// record is not acked, so JetStream delivers it again and it is applied.
func TestReceiptRedeliveredAfterJournalError(t *testing.T) {
	e := newEnv(t)
	items := e.j.add(2, 400)
	e.j.setSent(t0)
	e.j.mu.Lock()
	e.j.failApply[items[0].ID] = 1
	e.j.mu.Unlock()
	nc := e.dial(e.srv.ClientURL())
	r := e.run(nc, func(c *Config) { c.ReceiptAckWait = time.Second })
	e.linkUp(r)

	e.publishReceipt(e.receipt(e.issuer, items[0], nil).Raw, "")
	poll(t, "the receipt applied after a journal error", func() bool { return e.j.inv(1).state == stateCleared })
	if inv := e.j.inv(1); inv.applies != 2 {
		t.Errorf("ApplyReceipt called %d times, want 2 (a failure, then the redelivery)", inv.applies)
	}
	// The status counts the journal's cleared invoices after each fetch.
	poll(t, "status counts 1 receipt applied", func() bool { return r.Status().ReceiptsApplied == 1 })
	if st := r.Status(); st.ReceiptsApplied != 1 || st.ReceiptsBad != 0 {
		t.Errorf("status: %d receipts applied, %d rejected; want 1 and 0", st.ReceiptsApplied, st.ReceiptsBad)
	}
}

// TestReceiptConsumerLostOnGround: ground loses the aircraft's durable
// receipt consumer (a power cut drops its files, which nats-server never
// fsyncs) while the replayer holds it. A pull from a consumer that is gone
// gets no responders, not "consumer not found"; the replayer creates the
// consumer again, and the receipts published since are applied.
func TestReceiptConsumerLostOnGround(t *testing.T) {
	e := newEnv(t)
	items := e.j.add(2, 400)
	e.j.setSent(t0)
	nc := e.dial(e.srv.ClientURL())
	r := e.run(nc, nil)
	e.linkUp(r)
	e.publishReceipt(e.receipt(e.issuer, items[0], nil).Raw, "")
	poll(t, "receipt 1 applied", func() bool { return e.j.inv(1).state == stateCleared })

	if err := e.js.DeleteConsumer(e.ctx, protocol.StreamReceipts, protocol.ReceiptConsumer(testAircraft)); err != nil {
		t.Fatal(err)
	}
	e.publishReceipt(e.receipt(e.issuer, items[1], nil).Raw, "")
	poll(t, "receipt 2 applied through a new consumer", func() bool { return e.j.inv(2).state == stateCleared })
}

// ---------------------------------------------------------------------------
// 6. The link is up while ground's heartbeats arrive.

func TestLinkFollowsHeartbeats(t *testing.T) {
	e := newEnv(t)
	const timeout = 15 * time.Second
	e.j.add(3, 400)
	links := &linkCalls{}
	onLink := links.seen
	nc := e.dial(e.srv.ClientURL())
	r := e.run(nc, func(c *Config) {
		c.HeartbeatTimeout = timeout
		c.OnLink = links.record
	})

	// Connected, but no heartbeat: the link is down and nothing is sent,
	// not even the receipt consumer created. (A tick of the run loop is a
	// second.)
	time.Sleep(1200 * time.Millisecond)
	if st := r.Status(); st.LinkUp || !st.LastHeartbeat.IsZero() {
		t.Fatalf("link up %v, last heartbeat %v, before any heartbeat", st.LinkUp, st.LastHeartbeat)
	}
	if n := e.j.nBatches(); n != 0 {
		t.Errorf("%d journal reads before any heartbeat", n)
	}
	if _, err := e.js.Consumer(e.ctx, protocol.StreamReceipts, protocol.ReceiptConsumer(testAircraft)); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("receipt consumer before any heartbeat: %v, want not found", err)
	}
	if l := onLink(); len(l) != 0 {
		t.Errorf("OnLink called %v before any heartbeat", l)
	}

	// A heartbeat from a ground whose clock is 5 s ahead.
	e.beat(t0.Add(5 * time.Second))
	poll(t, "link up", r.LinkUp)
	st := r.Status()
	if !st.LinkUp || !st.LastHeartbeat.Equal(t0) || st.ClockSkew != 5*time.Second {
		t.Errorf("status: link up %v, last heartbeat %v, skew %v; want up, %v, 5s", st.LinkUp, st.LastHeartbeat, st.ClockSkew, t0)
	}
	poll(t, "OnLink(true)", func() bool { return slices.Equal(onLink(), []bool{true}) })
	poll(t, "the invoices sent", func() bool { return e.j.counts().Sent == 3 })

	// Up for HeartbeatTimeout after the last heartbeat, then down.
	e.clock.Add(timeout - time.Millisecond)
	if !r.LinkUp() || !r.Status().LinkUp {
		t.Error("link down before HeartbeatTimeout passed")
	}
	e.clock.Add(time.Millisecond)
	if r.LinkUp() || r.Status().LinkUp {
		t.Error("link still up HeartbeatTimeout after the last heartbeat")
	}
	poll(t, "OnLink(false)", func() bool { return slices.Equal(onLink(), []bool{true, false}) })

	// A heartbeat that does not decode does not count.
	if err := e.ground.Publish(protocol.HeartbeatSubject, []byte("not a heartbeat")); err != nil {
		t.Fatal(err)
	}
	e.ground.Flush()
	time.Sleep(settle)
	if r.LinkUp() {
		t.Error("link up after a heartbeat that does not decode")
	}

	// The next heartbeat brings it back.
	e.beat(e.clock.Now())
	poll(t, "link up again", r.LinkUp)
	poll(t, "OnLink(true) again", func() bool { return slices.Equal(onLink(), []bool{true, false, true}) })
	if st := r.Status(); !st.LastHeartbeat.Equal(t0.Add(timeout)) || st.ClockSkew != 0 {
		t.Errorf("status: last heartbeat %v, skew %v; want %v, 0", st.LastHeartbeat, st.ClockSkew, t0.Add(timeout))
	}
}

// TestRunRefusesReconnectBuffer: a connection that buffers publishes while
// it reconnects would send the invoices published after a drop ahead of
// earlier ones lost in transit, so Run refuses it before publishing
// anything.
func TestRunRefusesReconnectBuffer(t *testing.T) {
	e := newEnv(t)
	e.j.add(3, 100)
	nc, err := nats.Connect(e.srv.ClientURL(), nats.CustomInboxPrefix(protocol.InboxPrefix(testAircraft)))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	r, err := New(e.config(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = r.Run(e.ctx, nc)
	if err == nil || !strings.Contains(err.Error(), "ReconnectBufSize(-1)") {
		t.Fatalf("Run with a buffering connection: %v, want a refusal naming ReconnectBufSize(-1)", err)
	}
	if c := e.j.counts(); c.Pending != 3 {
		t.Errorf("counts after the refusal %+v, want 3 pending", c)
	}
}

// linkCalls records the replayer's OnLink calls.
type linkCalls struct {
	mu  sync.Mutex
	ups []bool
}

func (l *linkCalls) record(up bool) { l.mu.Lock(); l.ups = append(l.ups, up); l.mu.Unlock() }

// seen returns the calls so far, in order.
func (l *linkCalls) seen() []bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.ups)
}
