package harness

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/protocol"
)

// A trial is one flight with every real part, set up for the exactly-once
// trials: ground, one registered aircraft, a flight with a high velocity
// cap (the trials sell many coffees to few passengers), passengers with
// wallet and card funding, a cabin server behind the link emulator and a
// signed-in handheld. The handheld's record of approvals (approved) is
// what every trial checks the aircraft and the ledger against.
type trial struct {
	t   *testing.T
	ctx context.Context
	dir string

	g      *Ground
	a      *Aircraft
	flight protocol.FlightID
	pax    []*Passenger
	c      *Cabin
	hh     *client.Client

	mu       sync.Mutex
	approved map[protocol.ID]int64 // invoice id → total in minor units, as the handheld was told
}

// trialOptions shape a trial.
type trialOptions struct {
	aircraft   protocol.AircraftID // default D-AIUA
	passengers int                 // default 4
	cardsOnly  bool                // every passenger pays by card (default: every other)
	ground     GroundOptions
	cabin      CabinOptions
}

// salesPerPassenger keeps each passenger under the 600.00 EUR flight limit
// of the top score band with coffees at 3.50.
const salesPerPassenger = 150

func newTrial(t *testing.T, ctx context.Context, o trialOptions) *trial {
	t.Helper()
	if o.aircraft == "" {
		o.aircraft = "D-AIUA"
	}
	if o.passengers == 0 {
		o.passengers = 4
	}
	if o.ground.Scorer == nil {
		o.ground.Scorer = fixedScore(800)
	}
	tr := &trial{t: t, ctx: ctx, dir: t.TempDir(), approved: map[protocol.ID]int64{}}
	var err error
	tr.g, err = StartGround(ctx, filepath.Join(tr.dir, "ground"), o.ground)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.g.Close() })
	tr.a, tr.flight = tr.registerFlight(o.aircraft, "123")
	for i := range o.passengers {
		tr.pax = append(tr.pax, tr.passenger(fmt.Sprintf("pax-%d", i), o.cardsOnly || i%2 == 1))
	}
	tr.c, err = StartCabin(ctx, tr.g, tr.a, tr.flight, o.cabin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.c.Close() })
	if tr.hh, err = tr.c.Handheld(ctx, "hh-1", "p1", "2468"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.hh.Close)
	return tr
}

// registerFlight registers an aircraft (keys in its cabin directory) and a
// flight for it today, with one crew member.
func (tr *trial) registerFlight(id protocol.AircraftID, number string) (*Aircraft, protocol.FlightID) {
	t, ctx := tr.t, tr.ctx
	t.Helper()
	a, err := tr.g.RegisterAircraft(ctx, id, filepath.Join(tr.dir, "cabin-"+string(id)), nil)
	if err != nil {
		t.Fatal(err)
	}
	fv, err := tr.g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: number,
		Date: time.Now().UTC().Format(time.DateOnly), Aircraft: a.ID, Currency: "EUR",
		Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"}},
		Caps:    &api.Caps{VelocityCount: 1000, VelocityWindowSeconds: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.g.API.SetCrew(ctx, fv.ID, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
		t.Fatal(err)
	}
	return a, fv.ID
}

// passenger registers a passenger paying by card or from a topped-up
// wallet, opted in to the trial's flight.
func (tr *trial) passenger(ref string, card bool) *Passenger {
	tr.t.Helper()
	funding := ground.FundingSource{Kind: ground.FundingWallet}
	top := protocol.M(600_00, "EUR")
	if card {
		funding = ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: "tok_sim_" + ref,
			Last4: "4242", ExpMonth: 12, ExpYear: time.Now().Year() + 2}
		top = protocol.Money{}
	}
	p, err := tr.g.RegisterPassenger(tr.ctx, filepath.Join(tr.dir, "wallets", ref), ref, funding, top, tr.flight, protocol.WalletOptions{})
	if err != nil {
		tr.t.Fatal(err)
	}
	if !p.Eligible {
		tr.t.Fatalf("passenger %s ineligible", ref)
	}
	return p
}

// sell has the handheld sell n coffees, spread over the passengers (each
// passenger's sales in order, passengers at once), and records the
// approvals. Every sale must be approved.
func (tr *trial) sell(n int) {
	t := tr.t
	t.Helper()
	if n > len(tr.pax)*salesPerPassenger {
		t.Fatalf("%d sales would exceed the passengers' limits", n)
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(tr.pax))
	for i, p := range tr.pax {
		share := n / len(tr.pax)
		if i < n%len(tr.pax) {
			share++
		}
		wg.Go(func() {
			for range share {
				if err := tr.sellOne(p); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func (tr *trial) sellOne(p *Passenger) error {
	code, err := p.Wallet.PaymentCode(tr.flight, false)
	if err != nil {
		return err
	}
	d, err := tr.hh.Authorize(tr.ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code,
		Lines: []onboard.Line{{SKU: "coffee", Quantity: 1}}})
	if err != nil {
		return err
	}
	if !d.Approved {
		return fmt.Errorf("sale to %s declined: %+v", p.Ref, d.Decline)
	}
	tr.mu.Lock()
	tr.approved[d.Sale.InvoiceID] = d.Sale.Total.Minor
	tr.mu.Unlock()
	return nil
}

// closeFlight closes the flight on the handheld.
func (tr *trial) closeFlight() {
	tr.t.Helper()
	if _, err := tr.hh.CloseFlight(tr.ctx); err != nil {
		tr.t.Fatal(err)
	}
}

// counts returns the cabin server's invoice counts.
func (tr *trial) counts() onboard.InvoiceCounts {
	tr.t.Helper()
	st, err := tr.c.Main.Cabin().Status(tr.ctx)
	if err != nil {
		tr.t.Fatal(err)
	}
	return st.Invoices
}

// waitCleared waits until the aircraft holds a receipt for every approved
// invoice and ground has accepted the flight-close report.
func (tr *trial) waitCleared(timeout time.Duration) {
	tr.t.Helper()
	want := int64(len(tr.approved))
	if err := Poll(tr.ctx, timeout, "every invoice cleared on the aircraft", func() (bool, error) {
		st, err := tr.c.Main.Cabin().Status(tr.ctx)
		return err == nil && st.Invoices.Cleared == want && st.Replay != nil && st.Replay.CloseAccepted, err
	}); err != nil {
		tr.t.Fatalf("%v (counts %+v, replay %+v, link %+v)", err, tr.counts(), tr.c.Main.Replayer().Status(), tr.c.Link.Stats())
	}
}

// groundJS is JetStream on ground's own connection.
func (tr *trial) groundJS() jetstream.JetStream {
	tr.t.Helper()
	js, err := jetstream.New(tr.g.Main.NATS())
	if err != nil {
		tr.t.Fatal(err)
	}
	return js
}

// waitGroundDrained waits until the clearing consumer has acknowledged
// everything in the invoice stream, so nothing published is still to be
// cleared.
func (tr *trial) waitGroundDrained() {
	tr.t.Helper()
	js := tr.groundJS()
	if err := Poll(tr.ctx, 30*time.Second, "clearing consumer drained", func() (bool, error) {
		cons, err := js.Consumer(tr.ctx, protocol.StreamInvoices, "airtab-clearing")
		if err != nil {
			return false, err
		}
		ci, err := cons.Info(tr.ctx)
		return err == nil && ci.NumPending == 0 && ci.NumAckPending == 0, err
	}); err != nil {
		tr.t.Fatal(err)
	}
}

// assertExactlyOnce checks the end state every trial must reach: each
// approved invoice cleared in the aircraft's journal and nothing else
// there; on ground, each posted once as a sale and charged once, nothing
// else posted as a sale, the ledger balanced, and the flight reconciled
// with every sale settled.
func (tr *trial) assertExactlyOnce() {
	t, ctx := tr.t, tr.ctx
	t.Helper()
	tr.waitGroundDrained()
	if got, want := tr.counts(), (onboard.InvoiceCounts{Cleared: int64(len(tr.approved))}); got != want {
		t.Fatalf("aircraft invoice counts = %+v, want %+v", got, want)
	}
	j := tr.c.Main.Journal()
	db := tr.g.Main.DB()
	var sum int64
	for id, minor := range tr.approved {
		rec, err := j.Invoice(ctx, id)
		if err != nil {
			t.Fatalf("journal invoice %s: %v", id, err)
		}
		if rec.Status != onboard.StatusCleared {
			t.Fatalf("journal invoice %s is %s, want cleared", id, rec.Status)
		}
		var sales, saleMinor, charges int64
		if err := db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(amount), 0) FROM ledger_transfers
			WHERE ref = ? AND code = ? AND reverses IS NULL`, id[:], ledger.TransferSale).Scan(&sales, &saleMinor); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM ledger_transfers
			WHERE ref = ? AND code IN (?, ?) AND reverses IS NULL`, id[:], ledger.TransferWalletCharge, ledger.TransferCardCapture).Scan(&charges); err != nil {
			t.Fatal(err)
		}
		if sales != 1 || charges != 1 || saleMinor != minor {
			t.Fatalf("invoice %s in the ledger: %d sale transfers of %d minor, %d charges; want 1 of %d, 1", id, sales, saleMinor, charges, minor)
		}
		sum += minor
	}
	var sales, reversals int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM ledger_transfers WHERE code = ? AND reverses IS NULL`, ledger.TransferSale).Scan(&sales); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM ledger_transfers WHERE reverses IS NOT NULL`).Scan(&reversals); err != nil {
		t.Fatal(err)
	}
	if sales != int64(len(tr.approved)) || reversals != 0 {
		t.Fatalf("ledger holds %d sales and %d reversals, want %d and 0", sales, reversals, len(tr.approved))
	}
	if err := ledger.Check(ctx, db); err != nil {
		t.Fatalf("ledger: %v", err)
	}
	rep, err := tr.g.Main.Clearing().Reports().Flight(ctx, tr.flight)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reconciled {
		t.Fatalf("flight not reconciled: %v", rep.Problems)
	}
	if got, want := rep.Settled.Count, len(tr.approved); got != want {
		t.Fatalf("settled = %d, want %d", got, want)
	}
	if got, want := rep.Received.Invoices, len(tr.approved); got != want {
		t.Fatalf("received = %d, want %d", got, want)
	}
	if got, want := rep.Settled.Totals, []protocol.Money{protocol.M(sum, "EUR")}; len(got) != 1 || got[0] != want[0] {
		t.Fatalf("settled totals = %v, want %v", got, want)
	}
}

// aircraftConn connects to ground's NATS directly (not through the link)
// as aircraft a, with its nkey and inbox prefix. Errors the server reports
// asynchronously (permission violations) go to the returned channel.
func (tr *trial) aircraftConn(a *Aircraft) (*nats.Conn, <-chan error) {
	tr.t.Helper()
	opt, err := nats.NkeyOptionFromSeed(a.NKeyFile())
	if err != nil {
		tr.t.Fatal(err)
	}
	errs := make(chan error, 64)
	nc, err := nats.Connect(tr.g.Main.NATSURL(), opt, nats.CustomInboxPrefix(protocol.InboxPrefix(a.ID)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			select {
			case errs <- err:
			default:
			}
		}))
	if err != nil {
		tr.t.Fatal(err)
	}
	tr.t.Cleanup(nc.Close)
	return nc, errs
}

// journalRaws returns every invoice in the aircraft's journal as replayed:
// id, sequence number and signed bytes.
func (tr *trial) journalRaws() []replayItem {
	tr.t.Helper()
	var out []replayItem
	err := tr.c.Main.Journal().Invoices(tr.ctx, func(r onboard.Record) error {
		inv, err := protocol.ParseInvoice(r.Raw)
		if err != nil {
			return err
		}
		out = append(out, replayItem{ID: inv.Body.ID, Raw: r.Raw})
		return nil
	})
	if err != nil {
		tr.t.Fatal(err)
	}
	return out
}

type replayItem struct {
	ID  protocol.ID
	Raw []byte
}

// republish publishes items on aircraft a's invoice subject for flight f
// with their invoice ids as Nats-Msg-Id, as a replayer would, and returns
// how many JetStream reported as duplicates.
func republish(ctx context.Context, js jetstream.JetStream, a protocol.AircraftID, f protocol.FlightID, items []replayItem) (dups int, err error) {
	futs := make([]jetstream.PubAckFuture, 0, len(items))
	for _, it := range items {
		m := nats.NewMsg(protocol.InvoiceSubject(a, f))
		m.Data = it.Raw
		fut, err := js.PublishMsgAsync(m, jetstream.WithMsgID(protocol.InvoiceMsgID(it.ID)))
		if err != nil {
			return dups, err
		}
		futs = append(futs, fut)
	}
	for _, f := range futs {
		select {
		case ack := <-f.Ok():
			if ack.Duplicate {
				dups++
			}
		case err := <-f.Err():
			return dups, err
		case <-ctx.Done():
			return dups, ctx.Err()
		}
	}
	return dups, nil
}

// testLogger logs to stderr when AIRTAB_TEST_LOG is set, else nowhere.
func testLogger() *slog.Logger {
	if os.Getenv("AIRTAB_TEST_LOG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// republishNew publishes items like republish and returns those JetStream
// still dropped as duplicates.
func republishNew(ctx context.Context, js jetstream.JetStream, a protocol.AircraftID, f protocol.FlightID, items []replayItem) ([]replayItem, error) {
	var dups []replayItem
	for _, it := range items {
		n, err := republish(ctx, js, a, f, []replayItem{it})
		if err != nil {
			return nil, err
		}
		if n > 0 {
			dups = append(dups, it)
		}
	}
	return dups, nil
}
