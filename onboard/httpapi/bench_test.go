package httpapi_test

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/onboard/httpapi"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// BenchmarkAuthorizeHTTP measures approvals over the real handheld API:
// HTTPS with a pinned certificate, 64 concurrent callers on 8 signed-in
// handhelds, every approval committed to a real SQLite journal. cpu-µs/op
// is the process's user+system CPU per approval, client and server
// together (both run here, as in the bench, where the handhelds share the
// cabin server's cores).
func BenchmarkAuthorizeHTTP(b *testing.B) {
	const handhelds = 8
	e := newEnv(b, ft.Options{Passengers: 64, Limit: protocol.M(100_000_000, "EUR"),
		Caps: protocol.Caps{AircraftExposure: protocol.M(1_000_000_000_000, "EUR"), CodeFreshSeconds: 60,
			ClockSkewSeconds: 30, VelocityCount: 1 << 30, VelocityWindowSeconds: 60}},
		func(c *httpapi.Config) { c.SignInAttempts = 1000 })
	clients := make([]*client.Client, handhelds)
	for i := range clients {
		clients[i] = e.signedIn(b, fmt.Sprintf("hh-%d", i), ft.Attendant)
	}
	codes := make([]string, b.N)
	for i := range codes {
		codes[i] = e.f.Passengers[i%len(e.f.Passengers)].Code()
	}
	lines := ft.Basket("COFFEE", 1)
	var next, worker atomic.Int64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ReportAllocs()
	b.ResetTimer()
	cpu0, cpuOK := processCPU()
	b.RunParallel(func(pb *testing.PB) {
		c := clients[worker.Add(1)%handhelds]
		for pb.Next() {
			i := next.Add(1) - 1
			d, err := c.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: codes[i], Lines: lines})
			if err != nil || !d.Approved {
				b.Errorf("authorize = %+v, %v", d, err)
				return
			}
		}
	})
	b.StopTimer()
	if cpu1, ok := processCPU(); ok && cpuOK {
		b.ReportMetric(float64(cpu1-cpu0)/float64(time.Microsecond)/float64(b.N), "cpu-µs/op")
	}
	st := e.cabin.Stats()
	b.ReportMetric(float64(st.Commits)/float64(b.N), "commits/op")
}
