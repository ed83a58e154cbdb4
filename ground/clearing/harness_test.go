package clearing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/storetest"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var t0 = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

const testFlight protocol.FlightID = "XX123-2026-11-21"

func eur(minor int64) protocol.Money { return protocol.M(minor, "EUR") }

// harness is one clearing service over a real SQLite file and a real
// in-process JetStream, with a world of real keys.
type harness struct {
	t     testing.TB
	ctx   context.Context
	db    *sql.DB
	dsn   string // what db was opened from (storetest.DSN)
	js    jetstream.JetStream
	nc    *nats.Conn
	world *clearingtest.World
	clock *clearingtest.Clock
	acq   *SimAcquirer
	ac    *clearingtest.Aircraft
	fl    *clearingtest.Flight
	cfg   Config

	svc    *Service
	cancel context.CancelFunc
	done   chan error
}

// TestMain runs the tests once on SQLite and once on PostgreSQL.
func TestMain(m *testing.M) { storetest.Main(m) }

func testLogger() *slog.Logger {
	if os.Getenv("CLEARING_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newHarness(t testing.TB, tweak ...func(*Config)) *harness {
	t.Helper()
	ctx := context.Background()
	dsn := storetest.DSN(t)
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	_, nc, js := clearingtest.StartJetStream(t)
	if err := EnsureStreams(ctx, js); err != nil {
		t.Fatal(err)
	}
	world, err := clearingtest.NewWorld(t.TempDir(), t0)
	if err != nil {
		t.Fatal(err)
	}
	clock := clearingtest.NewClock(t0)
	acq := NewSimAcquirer(SimConfig{Clock: clock.Now})
	ac, err := world.NewAircraft("D-AIUA")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{
		t: t, ctx: ctx, db: db, dsn: dsn, js: js, nc: nc, world: world, clock: clock, acq: acq, ac: ac,
		fl: world.NewFlight(ac, testFlight, "EUR"),
	}
	h.cfg = Config{
		DB: db, JS: js, Directory: world.Dir, IssuerKey: world.Issuer, Acquirer: acq, Clock: clock.Now, Logger: testLogger(),
		IdleWait: 200 * time.Millisecond, NakDelay: 20 * time.Millisecond, RetryInterval: time.Hour,
		CaptureTimeout: 500 * time.Millisecond, ChargePhaseTimeout: 2 * time.Second, BatchTimeout: 5 * time.Second,
		AckWait: 15 * time.Second, PublishTimeout: 5 * time.Second,
		Consumer: "airtab-clearing", RetryBase: time.Minute, RetryMax: time.Hour,
	}
	for _, f := range tweak {
		f(&h.cfg)
	}
	t.Cleanup(func() {
		h.stop()
		if err := ledger.Check(context.Background(), db); err != nil {
			t.Errorf("ledger after the test: %v", err)
		}
	})
	return h
}

// start creates a Service on the harness's database and stream and runs it.
func (h *harness) start() *Service {
	h.t.Helper()
	h.stop()
	svc, err := New(h.ctx, h.cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	h.svc, h.cancel, h.done = svc, cancel, make(chan error, 1)
	go func() { h.done <- svc.Run(ctx) }()
	return svc
}

// stop stops the running Service, if any, and waits for Run to return.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Errorf("Run: %v", err)
	}
	h.cancel = nil
}

func (h *harness) passenger(fs ground.FundingSource, limitMinor int64) *clearingtest.Passenger {
	h.t.Helper()
	p, err := h.world.NewPassenger(h.fl, fs, eur(limitMinor), eur(limitMinor))
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

var (
	card   = ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: "tok_ok_1", Last4: "4242", ExpMonth: 12, ExpYear: 2030}
	wallet = ground.FundingSource{Kind: ground.FundingWallet}
)

func cardWith(token string) ground.FundingSource {
	c := card
	c.Token = token
	return c
}

func (h *harness) sale(p *clearingtest.Passenger, minor int64, mods ...clearingtest.Mod) *protocol.SignedInvoice {
	h.t.Helper()
	inv, err := h.fl.Sale(p, eur(minor), mods...)
	if err != nil {
		h.t.Fatal(err)
	}
	return inv
}

func (h *harness) void(sale *protocol.SignedInvoice) *protocol.SignedInvoice {
	h.t.Helper()
	inv, err := h.fl.Void(sale)
	if err != nil {
		h.t.Fatal(err)
	}
	return inv
}

// publish publishes data on subject to JetStream with msgID (none if "").
func (h *harness) publish(subject string, data []byte, msgID string) {
	h.t.Helper()
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := h.js.Publish(h.ctx, subject, data, opts...); err != nil {
		h.t.Fatal(err)
	}
}

// send publishes invoices as their aircraft's replayer does: on the
// flight's subject, with the invoice id as message id.
func (h *harness) send(invs ...*protocol.SignedInvoice) {
	h.t.Helper()
	for _, inv := range invs {
		h.publish(h.fl.Subject(), inv.Raw, inv.Body.ID.String())
	}
}

func (h *harness) sendClose() {
	h.t.Helper()
	c, err := h.fl.Close()
	if err != nil {
		h.t.Fatal(err)
	}
	h.publish(h.fl.CloseSubject(), c.Raw, "close-"+string(h.fl.ID))
}

// receipts reads the receipt stream: every receipt, verified with the
// issuer's key, by invoice id (the zero id holds close receipts).
func (h *harness) receipts() map[protocol.ID][]*protocol.SignedReceipt {
	h.t.Helper()
	s, err := h.js.Stream(h.ctx, protocol.StreamReceipts)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[protocol.ID][]*protocol.SignedReceipt{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(h.ctx, seq)
		if err != nil {
			h.t.Fatal(err)
		}
		r, err := protocol.ParseReceipt(m.Data)
		if err != nil {
			h.t.Fatalf("receipt %d: %v", seq, err)
		}
		if err := r.Verify(h.world.Issuer.Public(), nil); err != nil {
			h.t.Fatalf("receipt %d: %v", seq, err)
		}
		if want := protocol.ReceiptSubject(r.Body.Aircraft, r.Body.Flight); m.Subject != want {
			h.t.Fatalf("receipt %d on %s, want %s", seq, m.Subject, want)
		}
		out[r.Body.Invoice] = append(out[r.Body.Invoice], r)
	}
	return out
}

// receipt waits for the receipt of invoice id and returns it.
func (h *harness) receipt(id protocol.ID) *protocol.SignedReceipt {
	h.t.Helper()
	var got *protocol.SignedReceipt
	waitFor(h.t, func() error {
		rs := h.receipts()[id]
		if len(rs) == 0 {
			return fmt.Errorf("no receipt for invoice %s", id)
		}
		got = rs[0]
		return nil
	})
	return got
}

// waitReceipts waits until every invoice has a receipt.
func (h *harness) waitReceipts(invs ...*protocol.SignedInvoice) map[protocol.ID][]*protocol.SignedReceipt {
	h.t.Helper()
	var rs map[protocol.ID][]*protocol.SignedReceipt
	waitFor(h.t, func() error {
		rs = h.receipts()
		missing := 0
		for _, inv := range invs {
			if len(rs[inv.Body.ID]) == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d invoices have no receipt", missing, len(invs))
		}
		return nil
	})
	return rs
}

func (h *harness) record(id protocol.ID) InvoiceRecord {
	h.t.Helper()
	r, ok, err := LookupInvoice(h.ctx, h.db, id)
	if err != nil || !ok {
		h.t.Fatalf("invoice %s: found %v, %v", id, ok, err)
	}
	return r
}

// transfers returns the ledger transfers of invoice id, by code and
// whether they are reversals.
func (h *harness) transfers(id protocol.ID) map[string]int {
	h.t.Helper()
	ts, err := ledger.TransfersByRef(h.ctx, h.db, id)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[string]int{}
	for _, t := range ts {
		k := t.Code.String()
		if t.IsReversal() {
			k += " reversal"
		}
		out[k]++
	}
	return out
}

func (h *harness) balance(a ledger.Account) protocol.Money {
	h.t.Helper()
	acct, err := ledger.LookupAccount(h.ctx, h.db, a.ID)
	if errors.Is(err, ledger.ErrAccountNotFound) {
		return protocol.M(0, a.Currency)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	if a.Code == ledger.AccountPassengerReceivable || a.Code == ledger.AccountAcquirerSettlement || a.Code == ledger.AccountTopUpFunding {
		return acct.DebitBalance()
	}
	return acct.CreditBalance()
}

func (h *harness) checkLedger() {
	h.t.Helper()
	if err := ledger.Check(h.ctx, h.db); err != nil {
		h.t.Fatalf("ledger: %v", err)
	}
}

func (h *harness) retry() RetryStats {
	h.t.Helper()
	st, err := h.svc.RetryCollections(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	return st
}

// waitFor polls f until it returns nil, failing the test after 20 s.
func waitFor(t testing.TB, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func wantStatus(t testing.TB, r InvoiceRecord, want Status) {
	t.Helper()
	if r.Status != want {
		t.Fatalf("invoice %s (seq %d): status %s (reason %s, detail %q, decline %q), want %s", r.ID, r.Seq, r.Status, r.Reason, r.Detail, r.Decline, want)
	}
}

func wantReceipt(t testing.TB, r *protocol.SignedReceipt, status protocol.ClearingStatus, reason protocol.Reason) {
	t.Helper()
	if r.Body.Status != status || r.Body.Reason != reason {
		t.Fatalf("receipt of %s: status %s reason %s, want %s reason %s", r.Body.Invoice, r.Body.Status, r.Body.Reason, status, reason)
	}
}
