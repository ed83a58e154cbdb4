package clearing

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/protocol"
)

// batchLog is an Observer keeping the outcomes of every batch cleared.
type batchLog struct {
	mu  sync.Mutex
	out []BatchOutcomes
}

func (l *batchLog) BatchCleared(_ int, _ time.Duration, o BatchOutcomes) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.out = append(l.out, o)
}

func (l *batchLog) ChargeRecorded(string, string) {}

// batches returns the outcomes so far.
func (l *batchLog) batches() []BatchOutcomes {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]BatchOutcomes(nil), l.out...)
}

// comeBack sets the harness's configuration for a test whose nak'd
// messages must come back to the next Service: a nak delay beyond the
// stopped Service's last fetch (IdleWait), so the redelivery is not handed
// to it, and, should it be, an AckWait well within waitFor's patience.
func comeBack(c *Config) {
	c.NakDelay, c.BatchTimeout, c.ChargePhaseTimeout, c.AckWait = time.Second, 2*time.Second, time.Second, 5*time.Second
}

// TestReceiptNotSignedNotAcked: a receipt that cannot be signed (a stored
// record broken under clearing: here a quarantined status without its
// reason, which no receipt may carry) is a broken invariant that stops the
// service, and the message whose receipt it is, and the batch's other
// messages with a receipt, are nak'd, not acked: a message is acked only
// once its receipt is stored. Once the record is mended, the message comes
// back and is acked with its receipt.
func TestReceiptNotSignedNotAcked(t *testing.T) {
	h := newHarness(t, comeBack)
	inv := h.sale(h.passenger(card, 100_00), 5_00)
	h.send(inv)
	h.start()
	h.waitReceipts(inv)
	h.waitAcked()
	h.stop()
	good := h.record(inv.Body.ID)
	if _, err := h.db.ExecContext(h.ctx, `UPDATE clearing_invoices SET status = 'quarantined', reason = 0 WHERE id = ?`, inv.Body.ID[:]); err != nil {
		t.Fatal(err)
	}

	// The aircraft sends it again: its receipt is made anew from the record.
	h.publish(h.fl.Subject(), inv.Raw, "again-"+inv.Body.ID.String())
	log := &batchLog{}
	h.cfg.Observer = log
	h.start()
	waitFor(t, func() error {
		if len(log.batches()) == 0 {
			return errors.New("no batch cleared")
		}
		return nil
	})
	h.cancel()
	err := <-h.done
	h.cancel = nil
	if !errors.Is(err, errInvariant) {
		t.Fatalf("Run after a receipt that cannot be signed = %v, want a broken invariant", err)
	}
	if got := log.batches()[0]; got.Redelivered != 1 || got.Invoices != 0 {
		t.Fatalf("the batch with the receipt that cannot be signed: %d nak'd, %d acked, want 1 nak'd, 0 acked", got.Redelivered, got.Invoices)
	}

	if _, err := h.db.ExecContext(h.ctx, `UPDATE clearing_invoices SET status = ?, reason = ? WHERE id = ?`,
		string(good.Status), int64(good.Reason), inv.Body.ID[:]); err != nil {
		t.Fatal(err)
	}
	log = &batchLog{}
	h.cfg.Observer = log
	h.start()
	waitFor(t, func() error {
		var acked int
		for _, o := range log.batches() {
			acked += o.Invoices
		}
		if acked != 1 {
			return fmt.Errorf("after the record is mended: %d invoices acked, want the one sent again", acked)
		}
		return nil
	})
	h.waitAcked()
	if got := h.receipts()[inv.Body.ID]; len(got) != 1 || got[0].Body.Status != protocol.StatusSettled {
		t.Errorf("receipts of %s: %d, want its one settled receipt", inv.Body.ID, len(got))
	}
}

// TestFatalBatchNotAcked: a batch that stops the service on a broken
// invariant after its first commit (here the card sale's record vanished
// before its charge was recorded) acks none of its messages: the flight's
// close, whose receipt was stored with it, and the sale are nak'd, and
// come back once the record is restored, with their receipts.
func TestFatalBatchNotAcked(t *testing.T) {
	h := newHarness(t, comeBack)
	sale := h.sale(h.passenger(card, 100_00), 5_00)
	h.send(sale)
	h.sendClose()
	log := &batchLog{}
	h.cfg.Observer = log
	svc, err := New(h.ctx, h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	var vanished InvoiceRecord
	svc.hooks.afterPost = func() error {
		svc.hooks.afterPost = nil
		r, ok, err := getInvoice(h.ctx, h.db, sale.Body.ID)
		if err != nil || !ok {
			t.Errorf("the sale's record after the first commit: %v, %v", ok, err)
			return nil
		}
		vanished = r
		_, err = h.db.ExecContext(h.ctx, `DELETE FROM clearing_invoices WHERE id = ?`, sale.Body.ID[:])
		if err != nil {
			t.Error(err)
		}
		return nil
	}
	if err := svc.Run(h.ctx); !errors.Is(err, errInvariant) {
		t.Fatalf("Run with a record vanished under it = %v, want a broken invariant", err)
	}
	b := log.batches()
	if len(b) != 1 || b[0].Redelivered != 2 || b[0].Invoices != 0 || b[0].Closes != 0 {
		t.Fatalf("batches cleared: %+v, want one with both messages nak'd, none acked", b)
	}

	vanished.Raw = sale.Raw
	if err := insertInvoice(h.ctx, h.db, vanished); err != nil {
		t.Fatal(err)
	}
	h.cfg.Observer = nil
	h.start()
	rs := h.waitReceipts(sale)
	if got := rs[sale.Body.ID]; len(got) != 1 || got[0].Body.Status != protocol.StatusSettled {
		t.Errorf("receipts of the sale: %d, want its one settled receipt", len(got))
	}
	waitFor(t, func() error {
		for _, r := range h.receipts()[protocol.ID{}] {
			if r.Body.Status == protocol.StatusCloseAccepted {
				return nil
			}
		}
		return errors.New("no close receipt")
	})
	h.waitAcked()
}
