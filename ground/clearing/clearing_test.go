package clearing

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/protocol"
)

func TestClearEndToEnd(t *testing.T) {
	h := newHarness(t)
	svc := h.start()
	pw := h.passenger(wallet, 100_00)
	pc := h.passenger(card, 100_00)
	pt := h.passenger(card, 100_00)
	if err := svc.TopUp(h.ctx, pw.ID, eur(50_00), protocol.NewID(nil)); err != nil {
		t.Fatal(err)
	}

	s1 := h.sale(pw, 12_50)
	s2 := h.sale(pc, 8_00)
	s3, err := h.fl.ConsentSale(pt, eur(23_40)) // two-way mode
	if err != nil {
		t.Fatal(err)
	}
	h.send(s1, s2, s3)
	h.sendClose()
	rs := h.waitReceipts(s1, s2, s3)

	for _, inv := range []*protocol.SignedInvoice{s1, s2, s3} {
		r := rs[inv.Body.ID]
		if len(r) != 1 {
			t.Fatalf("invoice %s: %d receipts, want 1", inv.Body.ID, len(r))
		}
		wantReceipt(t, r[0], protocol.StatusSettled, 0)
		if r[0].Body.Amount != inv.Body.Total || r[0].Body.Seq != inv.Body.Seq || r[0].Body.Flight != testFlight || r[0].Body.Aircraft != h.ac.ID {
			t.Errorf("receipt %+v does not match invoice", r[0].Body)
		}
		wantStatus(t, h.record(inv.Body.ID), StatusSettled)
	}
	if got, want := h.record(s1.Body.ID).Funding, wallet.Kind; got != want {
		t.Errorf("s1 funding = %s, want %s", got, want)
	}
	if got, want := h.acq.Captures(s2.Body.ID), 1; got != want {
		t.Errorf("captures of s2 = %d, want %d", got, want)
	}
	if got, want := h.acq.Captures(s3.Body.ID), 1; got != want {
		t.Errorf("captures of s3 = %d, want %d", got, want)
	}
	if got := h.acq.Captures(s1.Body.ID); got != 0 {
		t.Errorf("wallet sale captured %d times at the acquirer", got)
	}
	bal, err := svc.WalletBalance(h.ctx, pw.ID, "EUR")
	if err != nil {
		t.Fatal(err)
	}
	if want := eur(37_50); bal != want {
		t.Errorf("wallet balance = %v, want %v", bal, want)
	}
	if got, want := h.balance(ledger.RevenueAccount(testFlight, "EUR")), eur(43_90); got != want {
		t.Errorf("flight revenue = %v, want %v", got, want)
	}
	if got, want := h.balance(ledger.AcquirerAccount("EUR")), eur(31_40); got != want {
		t.Errorf("acquirer settlement = %v, want %v", got, want)
	}
	for _, p := range []protocol.ID{pw.ID, pc.ID, pt.ID} {
		if got := h.balance(ledger.ReceivableAccount(p, "EUR")); got.Minor != 0 {
			t.Errorf("receivable of %s = %v, want 0", p, got)
		}
	}
	h.checkLedger()

	// The close report: accepted, and the flight reconciles.
	waitFor(t, func() error {
		if len(h.receipts()[protocol.ID{}]) == 0 {
			return errors.New("no close receipt")
		}
		return nil
	})
	cr := h.receipts()[protocol.ID{}][0]
	wantReceipt(t, cr, protocol.StatusCloseAccepted, 0)
	if cr.Body.Seq != 3 {
		t.Errorf("close receipt seq = %d, want 3", cr.Body.Seq)
	}
	rep, err := svc.Reports().Flight(h.ctx, testFlight)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reconciled {
		t.Fatalf("flight not reconciled: %v", rep.Problems)
	}
	var buf bytes.Buffer
	if err := WriteReport(h.ctx, h.db, testFlight, "csv", Page{}, &buf); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(invoiceRows(rows)), 3; got != want {
		t.Errorf("CSV invoice rows = %d, want %d (one per invoice)", got, want)
	}
	if last := rows[len(rows)-1]; last[3] != CSVKindReconciled || last[4] != "true" {
		t.Errorf("last CSV row = %q, want the reconciled flag, true", last)
	}
}

// saleTransfers counts the sale transfers (not reversals) of invoice id.
func (h *harness) saleTransfers(id protocol.ID) int {
	return h.transfers(id)[ledger.TransferSale.String()]
}

func TestRedeliveryPostsOnce(t *testing.T) {
	t.Run("AbandonedAfterCommit", func(t *testing.T) {
		// The batch commits, then "crashes" before charging, receipts or
		// acks: JetStream redelivers after AckWait and the stored invoice
		// is finished, not posted again.
		h := newHarness(t, func(c *Config) {
			c.AckWait, c.BatchTimeout, c.ChargePhaseTimeout = 1500*time.Millisecond, 700*time.Millisecond, 300*time.Millisecond
		})
		svc := h.start()
		crashes := 1
		svc.mu.Lock()
		svc.hooks.afterPost = func() error {
			if crashes > 0 {
				crashes--
				return errors.New("crash")
			}
			return nil
		}
		svc.mu.Unlock()
		pc := h.passenger(card, 100_00)
		s := h.sale(pc, 9_99)
		h.send(s)
		wantReceipt(t, h.receipt(s.Body.ID), protocol.StatusSettled, 0)
		if got := h.saleTransfers(s.Body.ID); got != 1 {
			t.Errorf("sale transfers = %d, want 1", got)
		}
		if got := h.acq.Captures(s.Body.ID); got != 1 {
			t.Errorf("captures = %d, want 1", got)
		}
	})
	t.Run("NakedThenRedelivered", func(t *testing.T) {
		// The registry is down for the first lookups: not the invoice's
		// fault, so it is nak'd, redelivered, and cleared once.
		h := newHarness(t)
		pw := h.passenger(wallet, 100_00)
		h.start()
		if err := h.svc.TopUp(h.ctx, pw.ID, eur(20_00), protocol.NewID(nil)); err != nil {
			t.Fatal(err)
		}
		h.world.Dir.FailNext(3, errors.New("registry database is busy"))
		s := h.sale(pw, 5_00)
		h.send(s)
		wantReceipt(t, h.receipt(s.Body.ID), protocol.StatusSettled, 0)
		if got := h.saleTransfers(s.Body.ID); got != 1 {
			t.Errorf("sale transfers = %d, want 1", got)
		}
		if got, want := h.balance(ledger.WalletAccount(pw.ID, "EUR")), eur(15_00); got != want {
			t.Errorf("wallet = %v, want %v", got, want)
		}
		cons, err := h.js.Consumer(h.ctx, protocol.StreamInvoices, h.cfg.Consumer)
		if err != nil {
			t.Fatal(err)
		}
		info, err := cons.Info(h.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumRedelivered == 0 && info.Delivered.Consumer < 2 {
			t.Errorf("the message was delivered once; want a nak and a redelivery (info %+v)", info.Delivered)
		}
	})
}

func TestRepublishPostsOnce(t *testing.T) {
	// The same invoice published again with another message id, as after
	// the stream's duplicate window: a second stream message, cleared once.
	h := newHarness(t)
	h.start()
	pc := h.passenger(card, 100_00)
	s := h.sale(pc, 4_20)
	h.send(s)
	h.publish(h.fl.Subject(), s.Raw, "replay-after-window-1")
	h.publish(h.fl.Subject(), s.Raw, "replay-after-window-2")
	h.publish(h.fl.Subject(), s.Raw, s.Body.ID.String()) // within the window: dropped by JetStream
	wantReceipt(t, h.receipt(s.Body.ID), protocol.StatusSettled, 0)
	waitFor(t, func() error {
		cons, err := h.js.Consumer(h.ctx, protocol.StreamInvoices, h.cfg.Consumer)
		if err != nil {
			return err
		}
		info, err := cons.Info(h.ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending > 0 || info.NumPending > 0 {
			return fmt.Errorf("%d pending, %d unacked", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	if got := h.saleTransfers(s.Body.ID); got != 1 {
		t.Errorf("sale transfers = %d, want 1", got)
	}
	if got := h.acq.Captures(s.Body.ID); got != 1 {
		t.Errorf("captures = %d, want 1", got)
	}
	if got := len(h.receipts()[s.Body.ID]); got != 1 {
		t.Errorf("receipts = %d, want 1 (re-sent receipts share a message id)", got)
	}
}

func TestRestartMidStream(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.BatchSize = 8
		c.AckWait, c.BatchTimeout, c.ChargePhaseTimeout = 1500*time.Millisecond, 700*time.Millisecond, 300*time.Millisecond
	})
	var pax []*clearingtest.Passenger
	for i := range 6 {
		fs := card
		if i%2 == 0 {
			fs = wallet
		}
		pax = append(pax, h.passenger(fs, 1000_00))
	}
	svc := h.start()
	for _, p := range pax {
		if err := svc.TopUp(h.ctx, p.ID, eur(500_00), protocol.NewID(nil)); err != nil {
			t.Fatal(err)
		}
	}
	var invs []*protocol.SignedInvoice
	for i := range 80 {
		invs = append(invs, h.sale(pax[i%len(pax)], int64(100+i)))
	}
	h.send(invs[:50]...)
	waitFor(t, func() error {
		if n := len(h.receipts()); n < 10 {
			return fmt.Errorf("%d receipts", n)
		}
		return nil
	})
	// The second service "crashes" after its first commit: what it posted
	// is neither charged nor acked until a third one takes over.
	h.stop()
	h.send(invs[50:]...)
	svc2 := h.start()
	svc2.mu.Lock()
	svc2.hooks.afterPost = func() error { return errors.New("crash") }
	svc2.mu.Unlock()
	waitFor(t, func() error {
		var n int
		err := h.db.QueryRow(`SELECT COUNT(*) FROM clearing_invoices WHERE status = 'posted'`).Scan(&n)
		if err == nil && n == 0 {
			return errors.New("no sale left posted by the crash yet")
		}
		return err
	})
	h.stop()
	h.start()
	rs := h.waitReceipts(invs...)
	for _, inv := range invs {
		id := inv.Body.ID
		if got := h.saleTransfers(id); got != 1 {
			t.Errorf("invoice %d: sale transfers = %d, want 1", inv.Body.Seq, got)
		}
		if got := len(rs[id]); got != 1 {
			t.Errorf("invoice %d: %d receipts, want 1", inv.Body.Seq, got)
		}
		wantStatus(t, h.record(id), StatusSettled)
	}
	if got := h.acq.MaxCaptures(); got > 1 {
		t.Errorf("an invoice was captured %d times", got)
	}
	var n int
	if err := h.db.QueryRow(`SELECT COUNT(*) FROM ledger_transfers WHERE code = ?`, ledger.TransferSale).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(invs) {
		t.Errorf("sale transfers in the ledger = %d, want %d", n, len(invs))
	}
}

func TestAcquirerTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failure SimFailure
		token   string
	}{
		{"BeforeCapture", SimTimeout, "tok_ok_2"},
		{"AfterCapture", SimTimeoutAfterCapture, "tok_ok_3"},
		{"FlakyCard", 0, "tok_flaky_1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.start()
			if tc.failure != 0 {
				h.acq.FailNext(1, tc.failure)
			}
			p := h.passenger(cardWith(tc.token), 100_00)
			s := h.sale(p, 30_00)
			h.send(s)
			// The outcome is unknown: collections pending retry, not arrears.
			wantReceipt(t, h.receipt(s.Body.ID), protocol.StatusCollections, 0)
			r := h.record(s.Body.ID)
			wantStatus(t, r, StatusPendingRetry)
			if got := h.world.Dir.Arrears(p.ID); got != 0 {
				t.Errorf("arrears after a timeout = %d, want 0", got)
			}
			if got := h.retry(); got.Due != 0 {
				t.Errorf("retry before it is due: %+v", got)
			}
			h.clock.Advance(h.cfg.RetryBase)
			if got := h.retry(); got.Settled != 1 {
				t.Fatalf("retry = %+v, want 1 settled", got)
			}
			r = h.record(s.Body.ID)
			wantStatus(t, r, StatusSettled)
			if r.Attempt != 1 {
				t.Errorf("attempt = %d, want 1: an unknown outcome is retried with the same key", r.Attempt)
			}
			if got := h.acq.Captures(s.Body.ID); got != 1 {
				t.Errorf("captures = %d, want 1", got)
			}
			if got, want := h.balance(ledger.AcquirerAccount("EUR")), eur(30_00); got != want {
				t.Errorf("acquirer settlement = %v, want %v", got, want)
			}
			if got := len(h.receipts()[s.Body.ID]); got != 1 {
				t.Errorf("receipts = %d, want 1", got)
			}
		})
	}
}

func TestDeclineToCollections(t *testing.T) {
	for _, tc := range []struct {
		token string
		want  DeclineCode
	}{
		{"tok_insufficient_1", DeclineInsufficientFunds},
		{"tok_expired_1", DeclineCardExpired},
		{"tok_fraud_1", DeclineFraudSuspected},
	} {
		t.Run(string(tc.want), func(t *testing.T) {
			h := newHarness(t)
			h.start()
			p := h.passenger(cardWith(tc.token), 100_00)
			s := h.sale(p, 45_00)
			h.send(s)
			wantReceipt(t, h.receipt(s.Body.ID), protocol.StatusCollections, 0)
			waitFor(t, func() error {
				if h.world.Dir.Arrears(p.ID) != 1 {
					return errors.New("passenger not in arrears")
				}
				return nil
			})
			r := h.record(s.Body.ID)
			wantStatus(t, r, StatusCollections)
			if r.Decline != string(tc.want) {
				t.Errorf("decline = %q, want %q", r.Decline, tc.want)
			}
			if got, want := r.NextRetryAt.Sub(t0), h.cfg.RetryBase; got != want {
				t.Errorf("first retry in %s, want %s", got, want)
			}
			if got, want := h.balance(ledger.ReceivableAccount(p.ID, "EUR")), eur(45_00); got != want {
				t.Errorf("receivable = %v, want %v (the debt)", got, want)
			}

			// Retries back off: 1m, then 2m, then 4m.
			h.clock.Advance(h.cfg.RetryBase)
			if st := h.retry(); st.Declined != 1 {
				t.Fatalf("retry = %+v, want 1 declined", st)
			}
			r = h.record(s.Body.ID)
			if got, want := r.NextRetryAt.Sub(h.clock.Now()), 2*h.cfg.RetryBase; got != want {
				t.Errorf("second retry in %s, want %s", got, want)
			}
			if r.Attempt != 3 {
				t.Errorf("attempt = %d, want 3 (a fresh key after each definite decline)", r.Attempt)
			}
			h.clock.Advance(time.Minute)
			if st := h.retry(); st.Due != 0 {
				t.Errorf("retry before due = %+v", st)
			}

			// The passenger replaces the card; the next retry succeeds and
			// lifts the arrears.
			h.world.Dir.SetFunding(p.ID, cardWith("tok_new_card"))
			h.clock.Advance(time.Minute)
			if st := h.retry(); st.Settled != 1 {
				t.Fatalf("retry = %+v, want 1 settled", st)
			}
			wantStatus(t, h.record(s.Body.ID), StatusSettled)
			if got := h.world.Dir.Arrears(p.ID); got != 0 {
				t.Errorf("arrears after payment = %d, want 0", got)
			}
			if marks, clears := h.world.Dir.ArrearsCalls(); marks != 1 || clears != 1 {
				t.Errorf("arrears calls: %d marks, %d clears, want 1 and 1", marks, clears)
			}
			if got := h.acq.Captures(s.Body.ID); got != 1 {
				t.Errorf("captures = %d, want 1", got)
			}
			if got := h.balance(ledger.ReceivableAccount(p.ID, "EUR")); got.Minor != 0 {
				t.Errorf("receivable = %v, want 0", got)
			}
		})
	}
	t.Run("ScheduleStops", func(t *testing.T) {
		h := newHarness(t, func(c *Config) { c.RetryMaxAttempts = 3 })
		h.start()
		p := h.passenger(cardWith("tok_insufficient_2"), 100_00)
		s := h.sale(p, 1_00)
		h.send(s)
		h.receipt(s.Body.ID)
		for range 5 {
			h.clock.Advance(h.cfg.RetryMax)
			h.retry()
		}
		r := h.record(s.Body.ID)
		wantStatus(t, r, StatusCollections)
		if r.Tries != 3 || !r.NextRetryAt.IsZero() {
			t.Errorf("tries %d, next retry %v; want 3 and none (the back office takes over)", r.Tries, r.NextRetryAt)
		}
		// The passenger links a new card: the registry asks for a retry.
		h.world.Dir.SetFunding(p.ID, cardWith("tok_replacement"))
		if err := h.svc.RetryPassenger(h.ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		// Run retries at once, long before its RetryInterval (an hour).
		waitFor(t, func() error {
			if r := h.record(s.Body.ID); r.Status != StatusSettled {
				return fmt.Errorf("status %s, want settled", r.Status)
			}
			if got := h.world.Dir.Arrears(p.ID); got != 0 {
				return fmt.Errorf("arrears = %d, want 0", got)
			}
			return nil
		})
	})
	t.Run("DirectoryDownDuringRetry", func(t *testing.T) {
		h := newHarness(t)
		h.start()
		p := h.passenger(cardWith("tok_insufficient_3"), 100_00)
		s := h.sale(p, 1_00)
		h.send(s)
		h.receipt(s.Body.ID)
		before := h.record(s.Body.ID)
		h.clock.Advance(h.cfg.RetryBase)
		h.world.Dir.FailNext(2, errors.New("registry unavailable"))
		if st := h.retry(); st.Pending != 1 {
			t.Fatalf("retry = %+v, want 1 pending", st)
		}
		r := h.record(s.Body.ID)
		wantStatus(t, r, StatusCollections) // not "outcome unknown": the acquirer was never called
		if r.Tries != before.Tries || r.Attempt != before.Attempt || h.acq.Calls(s.Body.ID) != 1 {
			t.Errorf("tries %d→%d, attempt %d→%d, acquirer calls %d", before.Tries, r.Tries, before.Attempt, r.Attempt, h.acq.Calls(s.Body.ID))
		}
	})
}

func TestWalletShortToCollections(t *testing.T) {
	h := newHarness(t)
	svc := h.start()
	p := h.passenger(wallet, 100_00)
	if err := svc.TopUp(h.ctx, p.ID, eur(5_00), protocol.NewID(nil)); err != nil {
		t.Fatal(err)
	}
	s := h.sale(p, 12_50)
	h.send(s)
	wantReceipt(t, h.receipt(s.Body.ID), protocol.StatusCollections, 0)
	r := h.record(s.Body.ID)
	wantStatus(t, r, StatusCollections)
	if r.Decline != string(DeclineWalletShort) {
		t.Errorf("decline = %q", r.Decline)
	}
	waitFor(t, func() error {
		if h.world.Dir.Arrears(p.ID) != 1 {
			return errors.New("not in arrears")
		}
		return nil
	})
	if got, want := h.balance(ledger.WalletAccount(p.ID, "EUR")), eur(5_00); got != want {
		t.Errorf("wallet = %v, want %v (untouched)", got, want)
	}
	ref := protocol.NewID(nil)
	if err := svc.TopUp(h.ctx, p.ID, eur(10_00), ref); err != nil {
		t.Fatal(err)
	}
	if err := svc.TopUp(h.ctx, p.ID, eur(10_00), ref); err != nil { // a retried top-up
		t.Fatal(err)
	}
	if err := svc.TopUp(h.ctx, p.ID, eur(11_00), ref); !errors.Is(err, ErrTopUpConflict) {
		t.Errorf("top-up reusing a reference: %v, want ErrTopUpConflict", err)
	}
	if st := h.retry(); st.Settled != 1 { // a top-up makes the retry due at once
		t.Fatalf("retry = %+v, want 1 settled", st)
	}
	wantStatus(t, h.record(s.Body.ID), StatusSettled)
	if got, want := h.balance(ledger.WalletAccount(p.ID, "EUR")), eur(2_50); got != want {
		t.Errorf("wallet = %v, want %v", got, want)
	}
	if got := h.world.Dir.Arrears(p.ID); got != 0 {
		t.Errorf("arrears = %d, want 0", got)
	}
}

func TestVoid(t *testing.T) {
	t.Run("WalletRefund", func(t *testing.T) {
		h := newHarness(t)
		svc := h.start()
		p := h.passenger(wallet, 100_00)
		if err := svc.TopUp(h.ctx, p.ID, eur(30_00), protocol.NewID(nil)); err != nil {
			t.Fatal(err)
		}
		s := h.sale(p, 7_00)
		h.send(s)
		wantReceipt(t, h.receipt(s.Body.ID), protocol.StatusSettled, 0)
		v := h.void(s)
		h.send(v)
		wantReceipt(t, h.receipt(v.Body.ID), protocol.StatusVoided, 0)
		r := h.record(s.Body.ID)
		wantStatus(t, r, StatusVoided)
		if r.Refund != RefundDone {
			t.Errorf("refund = %q, want done", r.Refund)
		}
		if got, want := h.balance(ledger.WalletAccount(p.ID, "EUR")), eur(30_00); got != want {
			t.Errorf("wallet = %v, want %v (refunded)", got, want)
		}
		if got := h.balance(ledger.RevenueAccount(testFlight, "EUR")); got.Minor != 0 {
			t.Errorf("revenue = %v, want 0", got)
		}
		want := map[string]int{"sale": 1, "sale reversal": 1, "wallet charge": 1, "wallet charge reversal": 1}
		if got := h.transfers(s.Body.ID); !maps.Equal(got, want) {
			t.Errorf("transfers = %v, want %v", got, want)
		}
	})
	t.Run("CardRefund", func(t *testing.T) {
		h := newHarness(t)
		h.start()
		p := h.passenger(card, 100_00)
		s := h.sale(p, 19_00)
		v := h.void(s)
		h.send(s)
		wantReceipt(t, h.receipt(s.Body.ID), protocol.StatusSettled, 0)
		h.send(v)
		wantReceipt(t, h.receipt(v.Body.ID), protocol.StatusVoided, 0)
		r := h.record(s.Body.ID)
		wantStatus(t, r, StatusVoided)
		if r.Refund != RefundDone || !h.acq.Refunded(s.Body.ID) {
			t.Errorf("refund = %q, acquirer refunded %v; want done and true", r.Refund, h.acq.Refunded(s.Body.ID))
		}
		if got := h.balance(ledger.AcquirerAccount("EUR")); got.Minor != 0 {
			t.Errorf("acquirer settlement = %v, want 0", got)
		}
		if got := h.balance(ledger.ReceivableAccount(p.ID, "EUR")); got.Minor != 0 {
			t.Errorf("receivable = %v, want 0", got)
		}
	})
	t.Run("VoidBeforeSale", func(t *testing.T) {
		h := newHarness(t)
		h.start()
		p := h.passenger(card, 100_00)
		s := h.sale(p, 3_00)
		v := h.void(s)
		h.send(v) // the sale is late
		wantReceipt(t, h.receipt(v.Body.ID), protocol.StatusVoided, 0)
		wantStatus(t, h.record(v.Body.ID), StatusVoidPending)
		h.send(s)
		wantReceipt(t, h.receipt(s.Body.ID), protocol.StatusVoided, 0)
		wantStatus(t, h.record(s.Body.ID), StatusVoided)
		wantStatus(t, h.record(v.Body.ID), StatusVoided)
		if got := h.acq.Calls(s.Body.ID); got != 0 {
			t.Errorf("acquirer calls for a voided sale = %d, want 0", got)
		}
		if got := h.balance(ledger.RevenueAccount(testFlight, "EUR")); got.Minor != 0 {
			t.Errorf("revenue = %v, want 0", got)
		}
	})
	t.Run("CollectionsVoided", func(t *testing.T) {
		h := newHarness(t)
		h.start()
		p := h.passenger(cardWith("tok_fraud_9"), 100_00)
		s := h.sale(p, 6_00)
		h.send(s)
		h.receipt(s.Body.ID)
		waitFor(t, func() error {
			if h.world.Dir.Arrears(p.ID) != 1 {
				return errors.New("not in arrears")
			}
			return nil
		})
		h.send(h.void(s))
		waitFor(t, func() error {
			if h.world.Dir.Arrears(p.ID) != 0 {
				return errors.New("still in arrears after the void")
			}
			return nil
		})
		r := h.record(s.Body.ID)
		wantStatus(t, r, StatusVoided)
		if !r.NextRetryAt.IsZero() {
			t.Errorf("a voided sale is still scheduled for a retry at %v", r.NextRetryAt)
		}
		if got := h.balance(ledger.ReceivableAccount(p.ID, "EUR")); got.Minor != 0 {
			t.Errorf("receivable = %v, want 0", got)
		}
	})
	t.Run("SaleAndVoidInOneBatchWithUnknownCapture", func(t *testing.T) {
		h := newHarness(t)
		h.start()
		p := h.passenger(cardWith("tok_flaky_2"), 100_00)
		s := h.sale(p, 8_00)
		h.send(s)
		h.receipt(s.Body.ID) // pending-retry: the capture happened, the answer was lost
		wantStatus(t, h.record(s.Body.ID), StatusPendingRetry)
		h.send(h.void(s))
		waitFor(t, func() error {
			if r := h.record(s.Body.ID); r.Refund != RefundDone {
				return fmt.Errorf("refund %q", r.Refund)
			}
			return nil
		})
		if !h.acq.Refunded(s.Body.ID) {
			t.Error("the capture of unknown outcome was not voided and refunded at the acquirer")
		}
		want := map[string]int{"sale": 1, "sale reversal": 1, "card capture": 1, "card capture reversal": 1}
		if got := h.transfers(s.Body.ID); !maps.Equal(got, want) {
			t.Errorf("transfers = %v, want %v", got, want)
		}
	})
	t.Run("SecondVoidQuarantined", func(t *testing.T) {
		h := newHarness(t)
		h.start()
		p := h.passenger(card, 100_00)
		s := h.sale(p, 2_00)
		v1, v2 := h.void(s), h.void(s)
		h.send(s, v1, v2)
		wantReceipt(t, h.receipt(v2.Body.ID), protocol.StatusQuarantined, protocol.ReasonDuplicateConflict)
		if got := h.transfers(s.Body.ID)["sale reversal"]; got != 1 {
			t.Errorf("sale reversals = %d, want 1", got)
		}
	})
}

func TestInvariantStopsService(t *testing.T) {
	// The ledger already holds a different transfer under the id the sale
	// of an incoming invoice derives: the money data is not what clearing
	// wrote. Run stops with an error rather than post on top of it, and the
	// invoice is neither recorded nor acked.
	h := newHarness(t)
	p := h.passenger(card, 100_00)
	s := h.sale(p, 5_00)
	rec := InvoiceRecord{ID: s.Body.ID, Passenger: p.ID, Flight: testFlight, Total: eur(9_99)}
	if err := Migrate(h.ctx, h.db); err != nil {
		t.Fatal(err)
	}
	tx, err := h.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	sale := saleTransfer(rec)
	if err := ledger.CreateAccounts(h.ctx, tx, t0, sale.accounts[:]...); err != nil {
		t.Fatal(err)
	}
	if _, err := ledger.Post(h.ctx, tx, t0, sale.t); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	h.start()
	h.send(s)
	select {
	case err := <-h.done:
		if !errors.Is(err, errInvariant) || !errors.Is(err, ledger.ErrExistsWithDifferentFields) {
			t.Fatalf("Run = %v, want a broken invariant", err)
		}
		h.cancel()
		h.cancel = nil
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
	if _, found, err := LookupInvoice(h.ctx, h.db, s.Body.ID); err != nil || found {
		t.Errorf("invoice recorded: %v, %v", found, err)
	}
	if n := len(h.receipts()); n != 0 {
		t.Errorf("%d receipts published", n)
	}
}
