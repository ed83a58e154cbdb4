package clearing

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/protocol"
)

// batchSizes is an Observer recording the size of every batch cleared.
type batchSizes struct {
	mu    sync.Mutex
	sizes []int
}

func (b *batchSizes) BatchCleared(n int, _ time.Duration, _ BatchOutcomes) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sizes = append(b.sizes, n)
}

func (b *batchSizes) ChargeRecorded(string, string) {}

// TestOneBatch clears, in a single batch, good sales together with the
// cases whose answers the batch's shortcuts must get right: its signatures
// checked together (crypto.Batch) with a forged aircraft signature and a
// bad device signature among them, and what the batch's prefetched reads
// (prefetch.go) must see change under its own writes: a sale and its void,
// a void before its sale, a counter used twice, an id used twice, a limit
// crossed by the second of two sales.
func TestOneBatch(t *testing.T) {
	sizes := &batchSizes{}
	h := newHarness(t, func(c *Config) { c.Observer = sizes })
	rogue, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		status   Status // "" for a reject
		reason   protocol.Reason
		receipt  protocol.ClearingStatus
		rejected bool
	}
	var (
		msgs  [][2]string // subject, message id
		raws  [][]byte
		ids   []protocol.ID
		wants []want
	)
	add := func(inv *protocol.SignedInvoice, msgID string, w want) {
		if msgID == "" {
			msgID = inv.Body.ID.String()
		}
		msgs = append(msgs, [2]string{h.fl.Subject(), msgID})
		raws = append(raws, inv.Raw)
		ids = append(ids, inv.Body.ID)
		wants = append(wants, w)
	}
	settled := want{status: StatusSettled, receipt: protocol.StatusSettled}
	var pax []*clearingtest.Passenger
	for range 8 {
		pax = append(pax, h.passenger(card, 1000_00))
	}
	for i := range 40 {
		add(h.sale(pax[i%len(pax)], int64(100+i)), "", settled)
	}
	// A forged aircraft signature and a bad device signature.
	forged, err := protocol.Sign(h.sale(pax[0], 5_00).Body, rogue, nil)
	if err != nil {
		t.Fatal(err)
	}
	add(forged, "", want{reason: protocol.ReasonBadAircraftSignature, receipt: protocol.StatusQuarantined, rejected: true})
	other, err := pax[1].PaymentCode(testFlight, false)
	if err != nil {
		t.Fatal(err)
	}
	add(h.sale(pax[2], 5_00, func(inv *protocol.Invoice) { inv.Code = other }), "",
		want{status: StatusQuarantined, reason: protocol.ReasonBadDeviceSignature, receipt: protocol.StatusQuarantined})
	// The same with the right key ids, so they reach the batch's
	// arithmetic: the aircraft's and the device's signature bytes changed.
	flipped := h.sale(pax[0], 5_00)
	badSig := bytes.Clone(flipped.Raw)
	badSig[len(badSig)-1] ^= 0x01 // the COSE signature is the last field
	flippedForged, err := protocol.ParseInvoice(badSig)
	if err != nil {
		t.Fatal(err)
	}
	add(flippedForged, "", want{reason: protocol.ReasonBadAircraftSignature, receipt: protocol.StatusQuarantined, rejected: true})
	add(h.sale(pax[3], 5_00, func(inv *protocol.Invoice) {
		inv.Code = bytes.Clone(inv.Code)
		inv.Code[len(inv.Code)-1] ^= 0x01
	}), "", want{status: StatusQuarantined, reason: protocol.ReasonBadDeviceSignature, receipt: protocol.StatusQuarantined})
	// A sale and its void, one after the other.
	s1 := h.sale(pax[3], 7_00)
	add(s1, "", want{status: StatusVoided, receipt: protocol.StatusVoided})
	add(h.void(s1), "", want{status: StatusVoided, receipt: protocol.StatusVoided})
	// A void before its sale.
	s2 := h.sale(pax[4], 8_00)
	add(h.void(s2), "", want{status: StatusVoided, receipt: protocol.StatusVoided})
	add(s2, "", want{status: StatusVoided, receipt: protocol.StatusVoided})
	// One code's counter used by two sales.
	s3 := h.sale(pax[5], 3_00)
	add(s3, "", settled)
	add(h.sale(pax[5], 4_00, func(inv *protocol.Invoice) { inv.Code = s3.Body.Code }), "",
		want{status: StatusDisputed, reason: protocol.ReasonCodeReused, receipt: protocol.StatusQuarantined})
	// One invoice id with other content, after the original.
	s4 := h.sale(pax[6], 6_00)
	add(s4, "", settled)
	add(h.sale(pax[6], 60_00, func(inv *protocol.Invoice) { inv.ID = s4.Body.ID }), "dup-"+s4.Body.ID.String(),
		want{reason: protocol.ReasonDuplicateConflict, receipt: protocol.StatusQuarantined, rejected: true})
	// The second of two sales crossing the passenger's limit.
	lim := h.passenger(card, 20_00)
	add(h.sale(lim, 15_00), "", settled)
	add(h.sale(lim, 10_00), "", want{status: StatusDisputed, reason: protocol.ReasonOverPassengerLimit, receipt: protocol.StatusQuarantined})

	for i, m := range msgs {
		h.publish(m[0], raws[i], m[1])
	}
	h.start()
	waitFor(t, func() error {
		got := h.receipts()
		for i, id := range ids {
			if !hasReceipt(got[id], wants[i].receipt) {
				return fmt.Errorf("message %d (invoice %s): no %s receipt", i, id, wants[i].receipt)
			}
		}
		return nil
	})
	sizes.mu.Lock()
	first := sizes.sizes[0]
	sizes.mu.Unlock()
	if first != len(msgs) {
		t.Fatalf("first batch held %d messages, want all %d in one", first, len(msgs))
	}
	for i, w := range wants {
		if w.rejected {
			reason, stored, err := h.rejectRow(raws[i])
			if err != nil || reason != w.reason || !bytes.Equal(stored, raws[i]) {
				t.Errorf("message %d: reject row: reason %s, err %v; want %s", i, reason, err, w.reason)
			}
			continue
		}
		rec := h.record(ids[i])
		if rec.Status != w.status || rec.Reason != w.reason {
			t.Errorf("message %d (invoice %s): status %s reason %s, want %s %s", i, ids[i], rec.Status, rec.Reason, w.status, w.reason)
		}
	}
	for _, s := range []*protocol.SignedInvoice{s3, s4} {
		if n := h.saleTransfers(s.Body.ID); n != 1 || h.acq.Captures(s.Body.ID) != 1 {
			t.Errorf("sale %s: %d sale transfers, %d captures; want 1 and 1", s.Body.ID, n, h.acq.Captures(s.Body.ID))
		}
	}
	h.checkLedger()
}

func hasReceipt(rs []*protocol.SignedReceipt, status protocol.ClearingStatus) bool {
	for _, r := range rs {
		if r.Body.Status == status {
			return true
		}
	}
	return false
}
