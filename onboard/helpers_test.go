package onboard_test

import (
	"testing"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/onboard/sqlite"
	"github.com/airtab/airtab/protocol"
)

func countInvoices(t *testing.T, j onboard.Journal) int {
	t.Helper()
	n := 0
	if err := j.Invoices(ctx, func(onboard.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// checkJournal reads every invoice in the journal and checks what ground
// will check: each is signed by the aircraft, the sequence runs from 1
// without gaps, and each links to the previous one by hash. It returns the
// invoices in order.
func checkJournal(t *testing.T, f *ft.Flight, j *sqlite.Journal) []*protocol.SignedInvoice {
	t.Helper()
	var out []*protocol.SignedInvoice
	var head protocol.Hash
	err := j.Invoices(ctx, func(rec onboard.Record) error {
		inv, err := protocol.ParseInvoice(rec.Raw)
		if err != nil {
			return err
		}
		if err := inv.Verify(f.AircraftKey.Public(), nil); err != nil {
			return err
		}
		if got, want := inv.Body.Seq, uint64(len(out)+1); got != want {
			t.Errorf("invoice %s: seq %d, want %d", inv.Body.ID, got, want)
		}
		if inv.Body.Prev != head {
			t.Errorf("invoice seq %d: prev %s, want %s", inv.Body.Seq, inv.Body.Prev, head)
		}
		head = inv.Hash()
		out = append(out, inv)
		return nil
	})
	if err != nil {
		t.Fatalf("read journal: %v", err)
	}
	return out
}
