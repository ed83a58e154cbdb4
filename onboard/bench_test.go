package onboard_test

import (
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// benchCodes makes n fresh payment codes spread over the flight's
// passengers, before the timer starts: the wallet's signing is the
// passenger's phone's work, not the cabin server's.
func benchCodes(b *testing.B, f *ft.Flight, n int) []string {
	b.Helper()
	codes := make([]string, n)
	for i := range codes {
		codes[i] = f.Passengers[i%len(f.Passengers)].Code()
	}
	return codes
}

// BenchmarkAuthorize measures approvals in process, from 64 concurrent
// callers, with every approval committed (fsync) to a real SQLite journal.
// commits/op below 1 is group commit at work.
func BenchmarkAuthorize(b *testing.B) {
	f := ft.New(b, ft.Options{Passengers: 64, Limit: protocol.M(100_000_000, "EUR"),
		Caps: protocol.Caps{AircraftExposure: protocol.M(1_000_000_000_000, "EUR"), CodeFreshSeconds: 60,
			ClockSkewSeconds: 30, VelocityCount: 1 << 30, VelocityWindowSeconds: 60}})
	c, _ := f.OpenCabin(f.SignManifest(nil), nil)
	codes := benchCodes(b, f, b.N)
	lines := ft.Basket("COFFEE", 1)
	var next atomic.Int64
	b.SetParallelism(max(1, 64/benchProcs()))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			d, err := c.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: codes[i], Lines: lines, Crew: "fa1"})
			if err != nil || !d.Approved {
				b.Errorf("authorize = %+v, %v", d, err)
				return
			}
		}
	})
	b.StopTimer()
	st := c.Stats()
	b.ReportMetric(float64(st.Commits)/float64(b.N), "commits/op")
	b.ReportMetric(float64(st.MaxBatch), "max-batch")
}

// BenchmarkVerifyPaymentCode is the bound BenchmarkAuthorize is measured
// against: parsing and verifying one compact payment code, the Ed25519 work
// every sale needs.
func BenchmarkVerifyPaymentCode(b *testing.B) {
	f := ft.New(b, ft.Options{Passengers: 1})
	p := f.Passengers[0]
	code := p.Code()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s, err := protocol.ParsePaymentCodeText(code)
			if err != nil {
				b.Error(err)
				return
			}
			if err := s.Verify(p.Credential.Body.Device.PublicKey, p.Credential.Body.ID[:]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchProcs() int { return runtime.GOMAXPROCS(0) }
