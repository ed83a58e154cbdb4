package harness

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

// TestStatusCountsWhatTheJournalHolds flies a flight with approvals and
// declines of both kinds (a code the cabin does not know, refused before
// the writer; a sale over the limit, refused by it), clears it, has every
// receipt delivered a second time, and restarts the cabin server: the
// status's counters say what the journal holds, each invoice and each
// decline once, before and after the restart.
func TestStatusCountsWhatTheJournalHolds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	g, err := StartGround(ctx, filepath.Join(dir, "ground"), GroundOptions{Scorer: fixedScore(720)})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	a, err := g.RegisterAircraft(ctx, "D-AIUA", filepath.Join(dir, "cabin"), nil)
	if err != nil {
		t.Fatal(err)
	}
	fv, err := g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "555", Date: time.Now().UTC().Format(time.DateOnly),
		Aircraft: a.ID, Currency: "EUR", Catalog: []protocol.CatalogItem{{SKU: "meal", Name: "Meal", Price: protocol.M(20_00, "EUR"), Category: "meal"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.API.SetCrew(ctx, fv.ID, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
		t.Fatal(err)
	}
	wallet, err := g.RegisterPassenger(ctx, filepath.Join(dir, "w1"), "w1", ground.FundingSource{Kind: ground.FundingWallet},
		protocol.M(50_00, "EUR"), fv.ID, protocol.WalletOptions{})
	if err != nil || !wallet.Eligible {
		t.Fatalf("wallet passenger: %v", err)
	}
	c, err := StartCabin(ctx, g, a, fv.ID, CabinOptions{SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { c.Close() }()
	hh, err := c.Handheld(ctx, "hh-1", "p1", "2468")
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()

	c.Link.SetState(linkemu.Down)
	// Opted in while the aircraft is offline: the cabin does not know them.
	stranger, err := g.RegisterPassenger(ctx, filepath.Join(dir, "w2"), "w2", ground.FundingSource{Kind: ground.FundingWallet},
		protocol.M(50_00, "EUR"), fv.ID, protocol.WalletOptions{})
	if err != nil || !stranger.Eligible {
		t.Fatalf("late passenger: %v", err)
	}
	sell := func(p *Passenger) onboard.Decision {
		code, err := p.Wallet.PaymentCode(fv.ID, false)
		if err != nil {
			t.Fatal(err)
		}
		d, err := hh.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: []onboard.Line{{SKU: "meal", Quantity: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	var approved, declined int
	for _, p := range []*Passenger{wallet, wallet, stranger, wallet, stranger} { // 2 approved, then 3 declined
		if d := sell(p); d.Approved {
			approved++
		} else {
			declined++
		}
	}
	if approved != 2 || declined != 3 {
		t.Fatalf("approved %d, declined %d; want 2 and 3", approved, declined)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := st.Stats.Declined, uint64(declined); got != want {
		t.Fatalf("status declined = %d, want %d (each decline once, the handler's and the writer's)", got, want)
	}
	if _, err := hh.CloseFlight(ctx); err != nil {
		t.Fatal(err)
	}

	c.Link.SetState(linkemu.Up)
	if err := Poll(ctx, time.Minute, "every invoice cleared", func() (bool, error) {
		st, err := c.Status(ctx)
		return err == nil && st.Invoices.Cleared == int64(approved) && st.Replay != nil && st.Replay.CloseAccepted, err
	}); err != nil {
		t.Fatal(err)
	}
	resendReceipts(ctx, t, g.Main.NATS())
	if err := c.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	resendReceipts(ctx, t, g.Main.NATS())
	if err := Poll(ctx, time.Minute, "the restarted cabin server's status", func() (bool, error) {
		st, err := c.Status(ctx)
		return err == nil && st.Replay != nil && st.Replay.ReceiptsApplied > 0, err
	}); err != nil {
		t.Fatal(err)
	}
	st, err = c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Invoices.Cleared != int64(approved) || st.Invoices.Pending != 0 || st.Invoices.Sent != 0 {
		t.Errorf("invoices after restart = %+v, want %d cleared and nothing else", st.Invoices, approved)
	}
	if got, want := st.Replay.ReceiptsApplied, approved; got != want {
		t.Errorf("receipts_applied = %d, want %d: distinct invoices, however often a receipt came", got, want)
	}
	if got, want := st.LastSeq, uint64(approved); got != want {
		t.Errorf("last_seq = %d, want %d", got, want)
	}
	if got, want := st.Stats.Declined, uint64(declined); got != want {
		t.Errorf("declined after restart = %d, want %d (the journal counts declines)", got, want)
	}
}

// resendReceipts publishes every receipt in the receipt stream again,
// without a message id, as a redelivery after JetStream's duplicate window
// would.
func resendReceipts(ctx context.Context, t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, protocol.StreamReceipts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && seq > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		if _, err := js.Publish(ctx, m.Subject, m.Data); err != nil {
			t.Fatal(err)
		}
	}
}
