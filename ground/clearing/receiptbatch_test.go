package clearing

import (
	"fmt"
	"testing"

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
		// The same invoices again under other message ids, with one new:
		// the old receipts are re-sent, the batch holding them is refused
		// as a duplicate, and each is published alone.
		fresh := h.sale(h.passenger(card, 100_00), 6_00)
		for _, inv := range invs {
			h.publish(h.fl.Subject(), inv.Raw, "again-"+inv.Body.ID.String())
		}
		h.send(fresh)
		h.waitReceipts(fresh)
		h.waitAcked()
		ids := h.receiptBatchIDs()
		for _, inv := range append(invs, fresh) {
			if got := ids[inv.Body.ID]; len(got) != 1 {
				t.Errorf("invoice %s: %d receipts stored, want 1", inv.Body.ID, len(got))
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
		if !svc.noAtomic.Load() {
			t.Error("the service did not note that the stream takes no atomic batches")
		}
	})
}
