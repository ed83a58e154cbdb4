package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

// ReplayResult is one replay measured by MeasureReplay.
type ReplayResult struct {
	Invoices int
	// Seconds is from the moment the replayer sees the link up (ground's
	// first heartbeat after the link came back) until JetStream has
	// acknowledged every invoice (journal status sent or cleared).
	Seconds float64
	// ConnectSeconds is from the link coming up until the replayer saw
	// it: the NATS reconnect, its handshake and the wait for a heartbeat.
	ConnectSeconds float64
	// Bytes is what crossed the link in both directions during Seconds.
	Bytes int64
	// BoundSeconds is Bytes×8 ÷ bandwidth + one round trip: the least
	// time those bytes need.
	BoundSeconds float64
	// Ratio is Seconds ÷ BoundSeconds; the target is 1.5 or less.
	Ratio float64
	// BytesUp and BytesDown split Bytes by direction. The emulated link
	// caps each direction on its own, so the stricter bound is the busier
	// direction's bytes: LineBoundSeconds = max(up, down)×8 ÷ bandwidth +
	// one round trip, and LineRatio = Seconds ÷ LineBoundSeconds.
	BytesUp, BytesDown int64
	LineBoundSeconds   float64
	LineRatio          float64
	BytesPerInvoice    float64
	KbitPerSecond      int
	RTT                time.Duration
}

func (r ReplayResult) String() string {
	return fmt.Sprintf("replay of %d invoices over %d kbit/s, %v RTT: %.2f s; bound %.2f s, ratio %.2f; busier-direction bound %.2f s, ratio %.2f; %d bytes (%d up, %d down), %.0f bytes/invoice; connect %.2f s",
		r.Invoices, r.KbitPerSecond, r.RTT, r.Seconds, r.BoundSeconds, r.Ratio, r.LineBoundSeconds, r.LineRatio,
		r.Bytes, r.BytesUp, r.BytesDown, r.BytesPerInvoice, r.ConnectSeconds)
}

// Each bench passenger buys at most this many coffees at 3.50 EUR, within
// the 600.00 EUR limit of the top score band.
const benchSalesPerPassenger = 150

// MeasureReplay fills a cabin journal with n approved invoices while the
// link is down, then brings the link up at kbitPerS with round trip rtt
// (half of it each way) and measures the replay (see ReplayResult). It runs
// a ground service and a cabin server in a temporary directory, with the
// real parts; sales go through the cabin's in-process Authorize, the
// handheld API's code path minus HTTP.
func MeasureReplay(ctx context.Context, n, kbitPerS int, rtt time.Duration) (ReplayResult, error) {
	res := ReplayResult{Invoices: n, KbitPerSecond: kbitPerS, RTT: rtt}
	if n <= 0 || kbitPerS <= 0 || rtt < 0 {
		return res, errors.New("measure replay: want n > 0, kbitPerS > 0 and rtt >= 0")
	}
	dir, err := os.MkdirTemp("", "airtab-replaybench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	g, err := StartGround(ctx, filepath.Join(dir, "ground"), GroundOptions{Scorer: benchScore(800)})
	if err != nil {
		return res, err
	}
	defer g.Close()
	a, err := g.RegisterAircraft(ctx, "D-AIBN", filepath.Join(dir, "cabin"), nil)
	if err != nil {
		return res, err
	}
	exposure := protocol.M(int64(n)*350+100_00, "EUR")
	fv, err := g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "900",
		Date: time.Now().UTC().Format(time.DateOnly), Aircraft: a.ID, Currency: "EUR",
		Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"}},
		Caps:    &api.Caps{AircraftExposure: &exposure, VelocityCount: 1000, VelocityWindowSeconds: 1}})
	if err != nil {
		return res, err
	}
	if _, err := g.API.SetCrew(ctx, fv.ID, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
		return res, err
	}
	var pax []*Passenger
	for i := range (n + benchSalesPerPassenger - 1) / benchSalesPerPassenger {
		ref := fmt.Sprintf("bench-%d", i)
		p, err := g.RegisterPassenger(ctx, filepath.Join(dir, "wallets", ref), ref, ground.FundingSource{Kind: ground.FundingWallet},
			protocol.M(600_00, "EUR"), fv.ID, protocol.WalletOptions{})
		if err != nil {
			return res, err
		}
		if !p.Eligible {
			return res, fmt.Errorf("bench passenger %s ineligible", ref)
		}
		pax = append(pax, p)
	}
	c, err := StartCabin(ctx, g, a, fv.ID, CabinOptions{ReconnectWait: 100 * time.Millisecond})
	if err != nil {
		return res, err
	}
	defer c.Close()
	c.Link.SetState(linkemu.Down)
	if err := benchSell(ctx, c.Main.Cabin(), fv.ID, pax, n); err != nil {
		return res, err
	}
	if err := Poll(ctx, 30*time.Second, "replayer sees the link down", func() (bool, error) {
		return !c.Main.Replayer().LinkUp(), nil
	}); err != nil {
		return res, err
	}

	c.Link.SetConfig(linkemu.Config{BitsPerSecond: int64(kbitPerS) * 1000, Latency: rtt / 2})
	up := time.Now()
	c.Link.SetState(linkemu.Up)
	start, before, err := waitFine(ctx, time.Minute, func() (bool, error) { return c.Main.Replayer().LinkUp(), nil }, c.Link)
	if err != nil {
		return res, fmt.Errorf("link up: %w", err)
	}
	end, after, err := waitFine(ctx, time.Hour, func() (bool, error) {
		st, err := c.Main.Cabin().Status(ctx)
		return err == nil && st.Invoices.Pending == 0, err
	}, c.Link)
	if err != nil {
		return res, fmt.Errorf("replay: %w", err)
	}
	res.ConnectSeconds = start.Sub(up).Seconds()
	res.Seconds = end.Sub(start).Seconds()
	res.Bytes = after.BytesUp + after.BytesDown - before.BytesUp - before.BytesDown
	res.BoundSeconds = float64(res.Bytes)*8/float64(kbitPerS*1000) + rtt.Seconds()
	res.Ratio = res.Seconds / res.BoundSeconds
	res.BytesPerInvoice = float64(res.Bytes) / float64(n)
	res.BytesUp, res.BytesDown = after.BytesUp-before.BytesUp, after.BytesDown-before.BytesDown
	res.LineBoundSeconds = float64(max(res.BytesUp, res.BytesDown))*8/float64(kbitPerS*1000) + rtt.Seconds()
	res.LineRatio = res.Seconds / res.LineBoundSeconds
	return res, nil
}

// waitFine polls cond every few milliseconds, for a measurement, and
// returns when it held and the link's counters then.
func waitFine(ctx context.Context, timeout time.Duration, cond func() (bool, error), l *linkemu.Link) (time.Time, linkemu.Stats, error) {
	deadline := time.Now().Add(timeout)
	for {
		st := l.Stats()
		ok, err := cond()
		now := time.Now()
		if err != nil {
			return now, st, err
		}
		if ok {
			return now, st, nil
		}
		if now.After(deadline) {
			return now, st, fmt.Errorf("not within %v", timeout)
		}
		select {
		case <-ctx.Done():
			return now, st, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// benchSell approves n coffee sales, spread over the passengers, each
// passenger's in order and the passengers at once, so the group commit
// has company.
func benchSell(ctx context.Context, cabin *onboard.Cabin, f protocol.FlightID, pax []*Passenger, n int) error {
	var wg sync.WaitGroup
	errs := make(chan error, len(pax))
	for i, p := range pax {
		share := n / len(pax)
		if i < n%len(pax) {
			share++
		}
		wg.Go(func() {
			for range share {
				code, err := p.Wallet.PaymentCode(f, false)
				if err != nil {
					errs <- err
					return
				}
				d, err := cabin.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Crew: "p1",
					Lines: []onboard.Line{{SKU: "coffee", Quantity: 1}}})
				if err == nil && !d.Approved {
					err = fmt.Errorf("bench sale declined: %+v", d.Decline)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

type benchScore int

func (s benchScore) Score(context.Context, registry.Applicant) (int, error) { return int(s), nil }
