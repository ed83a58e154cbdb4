package clearing

import (
	"fmt"
	"testing"
	"time"

	"github.com/airtab/airtab/protocol"
)

// receiptBatchIDs returns the atomic batch id each stored receipt came in
// ("" for one published alone), by invoice.
func (h *harness) receiptBatchIDs() map[protocol.ID][]string {
	h.t.Helper()
	s, err := h.js.Stream(h.ctx, protocol.StreamReceipts)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(h.ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[protocol.ID][]string{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(h.ctx, seq)
		if err != nil {
			h.t.Fatal(err)
		}
		r, err := protocol.ParseReceipt(m.Data)
		if err != nil {
			h.t.Fatal(err)
		}
		out[r.Body.Invoice] = append(out[r.Body.Invoice], m.Header.Get(hdrBatchID))
	}
	return out
}

// waitAcked waits until the clearing consumer has no message pending an ack.
func (h *harness) waitAcked() {
	h.t.Helper()
	waitFor(h.t, func() error {
		c, err := h.js.Consumer(h.ctx, protocol.StreamInvoices, h.cfg.Consumer)
		if err != nil {
			return err
		}
		info, err := c.Info(h.ctx)
		if err != nil {
			return err
		}
		if info.NumAckPending > 0 || info.NumPending > 0 {
			return fmt.Errorf("%d messages pending an ack, %d not delivered", info.NumAckPending, info.NumPending)
		}
		return nil
	})
}

// TestReceiptBatches checks how receipts reach the receipt stream: a
// batch's receipts as one atomic batch; a batch holding receipts the stream
// has already (a redelivery) one at a time, the duplicates dropped; and
// every receipt alone on a stream that takes no atomic batches.
func TestReceiptBatches(t *testing.T) {
	sales := func(h *harness, n int) []*protocol.SignedInvoice {
		var invs []*protocol.SignedInvoice
		for range n {
			invs = append(invs, h.sale(h.passenger(card, 100_00), 5_00))
		}
		return invs
	}
	t.Run("OneAtomicBatch", func(t *testing.T) {
		h := newHarness(t)
		invs := sales(h, 6)
		h.send(invs...) // all waiting before the service starts: one fetch
		h.start()
		h.waitReceipts(invs...)
		ids := h.receiptBatchIDs()
		first := ids[invs[0].Body.ID]
		for _, inv := range invs {
			if got := ids[inv.Body.ID]; len(got) != 1 || got[0] == "" || got[0] != first[0] {
				t.Errorf("invoice %s: receipts in batches %q, want one in the batch of the others (%q)", inv.Body.ID, got, first)
			}
		}
		h.waitAcked()
	})
	t.Run("RedeliveredDuplicates", func(t *testing.T) {
		h := newHarness(t)
		invs := sales(h, 4)
		h.send(invs...)
		h.start()
		h.waitReceipts(invs...)
		h.waitAcked()
		// The same invoices again under other message ids, with three new,
		// in one fetch: the old receipts are re-sent one at a time, where
		// JetStream drops them as duplicates, and the new ones go as an
		// atomic batch, which a duplicate in it would have made JetStream
		// refuse.
		h.stop()
		fresh := sales(h, 3)
		for _, inv := range invs {
			h.publish(h.fl.Subject(), inv.Raw, "again-"+inv.Body.ID.String())
		}
		h.send(fresh...)
		svc := h.start()
		h.waitReceipts(fresh...)
		h.waitAcked()
		ids := h.receiptBatchIDs()
		for _, inv := range invs {
			if got := ids[inv.Body.ID]; len(got) != 1 {
				t.Errorf("invoice %s: %d receipts stored, want 1", inv.Body.ID, len(got))
			}
		}
		first := ids[fresh[0].Body.ID]
		for _, inv := range fresh {
			if got := ids[inv.Body.ID]; len(got) != 1 || got[0] == "" || got[0] != first[0] {
				t.Errorf("new invoice %s: receipts in batches %q, want one in the batch of the other new ones (%q)", inv.Body.ID, got, first)
			}
		}
		if !svc.atomicAllowed() {
			t.Error("re-sent receipts stopped atomic batches")
		}
	})
	t.Run("SameMessageTwiceInOneFetch", func(t *testing.T) {
		// A card sale and the flight's close, each in the stream twice
		// (the aircraft sent them again after the stream's duplicate
		// window), with other sales, all in one fetch: the second copy's
		// receipt is the first's, with its message id, and a batch holding
		// one message id twice JetStream refuses whole; so the copy goes
		// apart, and the new receipts still go as one atomic batch.
		h := newHarness(t)
		invs := sales(h, 4)
		h.send(invs...)
		h.publish(h.fl.Subject(), invs[1].Raw, "again-"+invs[1].Body.ID.String())
		h.sendClose()
		c, err := h.fl.Close()
		if err != nil {
			t.Fatal(err)
		}
		h.publish(h.fl.CloseSubject(), c.Raw, "again-close-"+string(h.fl.ID))
		h.start()
		h.waitReceipts(invs...)
		h.waitAcked()
		ids := h.receiptBatchIDs()
		first := ids[invs[0].Body.ID]
		for _, id := range []protocol.ID{invs[0].Body.ID, invs[1].Body.ID, invs[2].Body.ID, invs[3].Body.ID, {}} {
			if got := ids[id]; len(got) != 1 || got[0] == "" || got[0] != first[0] {
				t.Errorf("receipt of %s (zero: the close): in batches %q, want one in the batch of the others (%q)", id, got, first)
			}
		}
	})
	t.Run("StreamWithoutAtomicBatches", func(t *testing.T) {
		h := newHarness(t)
		s, err := h.js.Stream(h.ctx, protocol.StreamReceipts)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		cfg.AllowAtomicPublish = false
		if _, err := h.js.UpdateStream(h.ctx, cfg); err != nil {
			t.Fatal(err)
		}
		invs := sales(h, 3)
		h.send(invs...)
		svc := h.start()
		h.waitReceipts(invs...)
		h.waitAcked()
		for id, got := range h.receiptBatchIDs() {
			if len(got) != 1 || got[0] != "" {
				t.Errorf("invoice %s: receipts in batches %q, want one published alone", id, got)
			}
		}
		if svc.atomicAllowed() {
			t.Error("the service did not note that the stream takes no atomic batches")
		}
	})
}

// receiptItems returns n items of settled sales of the harness's flight
// with their receipts signed by svc, as stage 5 gets them.
func (h *harness) receiptItems(svc *Service, n int) []*item {
	h.t.Helper()
	var items []*item
	for range n {
		inv := h.sale(h.passenger(card, 100_00), 5_00).Body
		rec := InvoiceRecord{ID: inv.ID, Flight: inv.Flight, Aircraft: inv.Aircraft, Seq: inv.Seq, Kind: inv.Kind,
			Passenger: inv.Passenger, Total: inv.Total, UpdatedAt: h.clock.Now(), Status: StatusSettled}
		items = append(items, &item{rec: &rec})
	}
	if err := svc.signReceipts(items); err != nil {
		h.t.Fatal(err)
	}
	return items
}

// publishItems runs stage 5's publish of items on svc and fails the test
// for any receipt not acknowledged.
func (h *harness) publishItems(svc *Service, items ...*item) {
	h.t.Helper()
	svc.publishReceipts(h.ctx, items)
	for _, it := range items {
		if it.verdict == retry {
			h.t.Fatalf("receipt of %s not published: %v", it.rec.ID, it.err)
		}
	}
}

// wantBatches checks the batches the receipts of items are stored in: one
// receipt each, all in one atomic batch when atomic, else each alone.
func wantBatches(t *testing.T, ids map[protocol.ID][]string, atomic bool, items ...*item) {
	t.Helper()
	first := ids[items[0].rec.ID]
	for _, it := range items {
		got := ids[it.rec.ID]
		switch {
		case len(got) != 1:
			t.Errorf("invoice %s: %d receipts stored (batches %q), want 1", it.rec.ID, len(got), got)
		case atomic && (got[0] == "" || got[0] != first[0]):
			t.Errorf("invoice %s: receipt in batch %q, want in one atomic batch with the others (%q)", it.rec.ID, got[0], first)
		case !atomic && got[0] != "":
			t.Errorf("invoice %s: receipt in batch %q, want it published alone", it.rec.ID, got[0])
		}
	}
}

// TestReceiptBatchRefusals checks what an atomic batch the receipt stream
// refuses does to the batches after it: one refused for a receipt the
// stream has (JetStream's code 10201) is published one receipt at a time,
// each stored once, and the next batch is atomic again; re-sent receipts go
// in batches apart from new ones; a stream that takes no atomic batches
// (10174) gets one receipt at a time until atomicRetryAfter has passed on
// the service's clock, then is asked again.
func TestReceiptBatchRefusals(t *testing.T) {
	t.Run("DuplicateInBatch", func(t *testing.T) {
		h := newHarness(t)
		svc, err := New(h.ctx, h.cfg)
		if err != nil {
			t.Fatal(err)
		}
		items := h.receiptItems(svc, 5)
		h.publishItems(svc, items[0])
		// items[0] again, not known to be re-sent (as after a database
		// restored from a backup): JetStream refuses the batch.
		again := *items[0]
		h.publishItems(svc, &again, items[1], items[2])
		ids := h.receiptBatchIDs()
		wantBatches(t, ids, false, items[:3]...)
		if !svc.atomicAllowed() {
			t.Fatal("a batch refused for a duplicate stopped atomic batches")
		}
		h.publishItems(svc, items[3], items[4])
		wantBatches(t, h.receiptBatchIDs(), true, items[3:]...)
	})
	t.Run("ResentInBatchesOfTheirOwn", func(t *testing.T) {
		h := newHarness(t)
		svc, err := New(h.ctx, h.cfg)
		if err != nil {
			t.Fatal(err)
		}
		items := h.receiptItems(svc, 6)
		h.publishItems(svc, items[0], items[1])
		resent := func(it *item) *item {
			again := *it
			again.resent = true
			return &again
		}
		// Re-sent receipts the stream has, with new ones: the new ones
		// still go as one atomic batch.
		h.publishItems(svc, resent(items[0]), items[2], resent(items[1]), items[3])
		ids := h.receiptBatchIDs()
		wantBatches(t, ids, true, items[:2]...)
		wantBatches(t, ids, true, items[2:4]...)
		if a, b := ids[items[0].rec.ID], ids[items[2].rec.ID]; len(a) == 1 && len(b) == 1 && a[0] == b[0] {
			t.Errorf("the new receipts are in the first batch, %q", a[0])
		}
		// Re-sent receipts the stream never stored (a crash before their
		// publish) go as one atomic batch.
		h.publishItems(svc, resent(items[4]), resent(items[5]))
		wantBatches(t, h.receiptBatchIDs(), true, items[4:]...)
		if !svc.atomicAllowed() {
			t.Error("re-sent receipts stopped atomic batches")
		}
	})
	t.Run("StreamWithoutAtomicBatches", func(t *testing.T) {
		h := newHarness(t)
		setAtomic := func(on bool) {
			t.Helper()
			s, err := h.js.Stream(h.ctx, protocol.StreamReceipts)
			if err != nil {
				t.Fatal(err)
			}
			cfg := s.CachedInfo().Config
			cfg.AllowAtomicPublish = on
			if _, err := h.js.UpdateStream(h.ctx, cfg); err != nil {
				t.Fatal(err)
			}
		}
		setAtomic(false)
		svc, err := New(h.ctx, h.cfg)
		if err != nil {
			t.Fatal(err)
		}
		items := h.receiptItems(svc, 8)
		h.publishItems(svc, items[0], items[1])
		if svc.atomicAllowed() {
			t.Fatal("the service did not note that the stream takes no atomic batches")
		}
		setAtomic(true) // the operator allows them
		h.publishItems(svc, items[2], items[3])
		h.clock.Advance(atomicRetryAfter - time.Second)
		h.publishItems(svc, items[4], items[5])
		ids := h.receiptBatchIDs()
		wantBatches(t, ids, false, items[:6]...)
		h.clock.Advance(time.Second)
		h.publishItems(svc, items[6], items[7])
		wantBatches(t, h.receiptBatchIDs(), true, items[6:]...)
		if !svc.atomicAllowed() {
			t.Error("atomic batches still off after the stream took one")
		}
	})
}
