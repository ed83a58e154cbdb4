package sqlite_test

import (
	"testing"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// BenchmarkCommit measures group commits of 64 invoices (fsync included);
// ns/invoice is the journal's share of a sale.
func BenchmarkCommit(b *testing.B) {
	const batch = 64
	f := ft.New(b, ft.Options{Passengers: 1})
	j := f.OpenJournal()
	defer j.Close()
	entries := make([]onboard.Entry, b.N*batch)
	var prev protocol.Hash
	for i := range entries {
		entries[i] = invoice(b, f, uint64(i+1), prev, f.Passengers[0].Code())
		prev = entries[i].Invoice.Hash()
	}
	b.ResetTimer()
	for i := range b.N {
		if err := j.Commit(ctx, onboard.Batch{Invoices: entries[i*batch : (i+1)*batch]}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(len(entries)), "ns/invoice")
}
