package harness

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

// TestCabinProcessKill runs a cabin server as a child process, kills it
// with SIGKILL and restarts it: the approved sale survives in the journal,
// the new process listens on the same address with the same certificate, a
// retry of the sale with its invoice id gets the original approval back,
// and Close leaves no process behind. The child is this test binary (the
// default CabinOptions.Executable), which TestMain runs as a cabin server
// when CabinChildEnv is set.
func TestCabinProcessKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cabin server child")
	}
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
	fv, err := g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "123", Date: time.Now().UTC().Format(time.DateOnly),
		Aircraft: a.ID, Currency: "EUR", Catalog: []protocol.CatalogItem{
			{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.API.SetCrew(ctx, fv.ID, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
		t.Fatal(err)
	}
	p, err := g.RegisterPassenger(ctx, filepath.Join(dir, "wallet"), "pax-1", ground.FundingSource{Kind: ground.FundingWallet},
		protocol.M(5000, "EUR"), fv.ID, protocol.WalletOptions{})
	if err != nil {
		t.Fatal(err)
	}

	c, err := StartCabin(ctx, g, a, fv.ID, CabinOptions{Process: true, StatusCrew: "p1", StatusPIN: "2468"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Main != nil || c.Process() == nil {
		t.Fatal("the cabin server runs in this process")
	}
	first, addr, fp := c.Process(), c.Addr(), c.Fingerprint()
	hh, err := c.Handheld(ctx, "hh-1", "p1", "2468")
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	c.Link.SetState(linkemu.Down)
	code, err := p.Wallet.PaymentCode(fv.ID, false)
	if err != nil {
		t.Fatal(err)
	}
	req := onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: []onboard.Line{{SKU: "coffee", Quantity: 1}}}
	d, err := hh.Authorize(ctx, req)
	if err != nil || !d.Approved {
		t.Fatalf("sale: %+v, %v", d, err)
	}

	if err := c.Kill(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.Done():
	default:
		t.Fatal("the killed child has not exited")
	}
	if c.Process().Pid() == first.Pid() || c.Addr() != addr || c.Fingerprint() != fp {
		t.Fatalf("after the kill: pid %d (was %d), %s %s (was %s %s)", c.Process().Pid(), first.Pid(), c.Addr(), c.Fingerprint(), addr, fp)
	}
	if err := c.WaitSalesOpen(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.LastSeq != 1 {
		t.Fatalf("journal after the kill holds %d invoices, want 1", st.LastSeq)
	}
	// The new process knows no session of the old one: it refuses the
	// handheld's token, which a failure to reach it would not show.
	if _, err := hh.Authorize(ctx, req); err == nil {
		t.Fatal("a session of the killed process still works")
	} else if oe, ok := errors.AsType[*onboard.Error](err); !ok || oe.Code != onboard.CodeUnauthorized {
		t.Fatalf("sale with a session of the killed process: %v, want %s", err, onboard.CodeUnauthorized)
	}
	if _, err := hh.SignIn(ctx, "p1", "2468"); err != nil {
		t.Fatal(err)
	}
	again, err := hh.Authorize(ctx, req)
	if err != nil || !again.Approved || again.Sale.Seq != d.Sale.Seq {
		t.Fatalf("retry after the kill: %+v, %v; want the original approval (seq %d)", again, err, d.Sale.Seq)
	}

	if err := c.Restart(ctx); err != nil {
		t.Fatalf("graceful restart: %v", err)
	}
	last := c.Process()
	if err := c.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case <-last.Done():
	default:
		t.Fatal("Close left the child running")
	}
	if last.Err() != nil {
		t.Fatalf("the child did not shut down cleanly: %v\n%s", last.Err(), last.Logs())
	}
}
