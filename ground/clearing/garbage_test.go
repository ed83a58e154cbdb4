package clearing

import (
	"bytes"
	"strings"
	"testing"
)

// TestGarbageCountedApart: stray bytes on a flight's invoice and close
// subjects are kept and counted as garbage, and the flight still reconciles;
// an invoice that parses but fails verification still stops it.
func TestGarbageCountedApart(t *testing.T) {
	h := newHarness(t)
	h.start()
	p := h.passenger(card, 100_00)
	s1, s2 := h.sale(p, 3_50), h.sale(p, 4_50)
	h.send(s1, s2)
	h.waitReceipts(s1, s2)
	h.sendClose()
	h.waitClose()
	junk := [][]byte{[]byte("not an invoice at all"), {0xa1, 0x01}}
	h.publish(h.fl.Subject(), junk[0], "")
	h.publish(h.fl.CloseSubject(), junk[1], "")
	for _, j := range junk {
		waitFor(t, func() error { _, _, err := h.rejectRow(j); return err })
	}

	rep, err := h.svc.Reports().Flight(h.ctx, testFlight)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reconciled {
		t.Fatalf("garbage stopped the flight reconciling: %v", rep.Problems)
	}
	if rep.Garbage != 2 || rep.Rejected != 0 {
		t.Errorf("garbage = %d, rejected = %d; want 2 and 0", rep.Garbage, rep.Rejected)
	}
	var buf bytes.Buffer
	if err := rep.WriteCSV(&buf); err != nil {
		t.Fatal(err)
	}
	rows := csvRows(t, buf.Bytes())
	if g := rows[len(rows)-2]; g[3] != CSVKindTotal || g[4] != "garbage" || !strings.HasPrefix(g[10], "2 messages") {
		t.Errorf("CSV row before the verdict = %q, want the garbage count", g)
	}
	if last := rows[len(rows)-1]; last[4] != "true" {
		t.Errorf("CSV verdict = %q, want true", last)
	}

	t.Run("ForgedInvoiceStillCounts", func(t *testing.T) {
		forged := h.sale(p, 5_00)
		raw := append([]byte(nil), forged.Raw...)
		raw[len(raw)-1] ^= 0xff // the signature's last byte
		h.publish(h.fl.Subject(), raw, "")
		waitFor(t, func() error { _, _, err := h.rejectRow(raw); return err })
		rep, err := h.svc.Reports().Flight(h.ctx, testFlight)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Reconciled || rep.Rejected != 1 {
			t.Errorf("after a forged invoice: reconciled %v, rejected %d; want false and 1", rep.Reconciled, rep.Rejected)
		}
	})
}
