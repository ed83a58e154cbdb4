package onboard_test

import (
	"testing"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

func void(sale protocol.ID) onboard.VoidRequest {
	return onboard.VoidRequest{InvoiceID: protocol.NewID(nil), SaleID: sale, Crew: ft.Purser.ID}
}

func TestVoid(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, j := f.OpenCabin(f.SignManifest(nil), nil)
	p := f.Passengers[0]
	s := mustApprove(t, c, sale(p.Code(), ft.Basket("PERFUME", 1)...))
	req := void(s.InvoiceID)
	v, err := c.Void(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if v.Kind != "void" || v.Voids != s.InvoiceID || v.Total != s.Total || v.Seq != 2 {
		t.Fatalf("void = %+v, want a reversal of %s as seq 2", v, s.InvoiceID)
	}
	lim, err := c.Limit(ctx, onboard.LimitRequest{Code: p.Code()})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := lim.Remaining, f.Limit; got != want {
		t.Errorf("remaining after the void = %v, want the full limit %v", got, want)
	}
	looked, err := c.Sale(ctx, s.InvoiceID)
	if err != nil || looked.VoidedBy != req.InvoiceID {
		t.Errorf("voided sale = %+v, %v; want voided by %s", looked, err, req.InvoiceID)
	}

	t.Run("Retry", func(t *testing.T) {
		again, err := c.Void(ctx, req)
		if err != nil || again.Hash != v.Hash {
			t.Fatalf("retried void = %+v, %v; want the original", again, err)
		}
	})
	t.Run("Twice", func(t *testing.T) {
		if _, err := c.Void(ctx, void(s.InvoiceID)); ErrorCodeOf(err) != onboard.CodeConflict {
			t.Fatalf("second void of a sale: err = %v, want conflict", err)
		}
	})
	t.Run("UnknownSale", func(t *testing.T) {
		if _, err := c.Void(ctx, void(protocol.NewID(nil))); ErrorCodeOf(err) != onboard.CodeNotFound {
			t.Fatalf("void of an unknown sale: err = %v, want not found", err)
		}
	})
	t.Run("AVoid", func(t *testing.T) {
		if _, err := c.Void(ctx, void(v.InvoiceID)); ErrorCodeOf(err) != onboard.CodeInvalid {
			t.Fatalf("void of a void: err = %v, want invalid", err)
		}
	})
	t.Run("IDOfASale", func(t *testing.T) {
		r := void(s.InvoiceID)
		r.InvoiceID = s.InvoiceID
		if _, err := c.Void(ctx, r); ErrorCodeOf(err) != onboard.CodeConflict {
			t.Fatalf("void under a sale's invoice id: err = %v, want conflict", err)
		}
	})
	// The released exposure and spend can be sold again.
	mustApprove(t, c, sale(p.Code(), ft.Basket("PERFUME", 1)...))
	mustApprove(t, c, sale(p.Code(), ft.Basket("PERFUME", 1)...))
	mustApprove(t, c, sale(p.Code(), ft.Basket("PERFUME", 1)...))
	if got, want := len(checkJournal(t, f, j)), 5; got != want {
		t.Fatalf("journal holds %d invoices, want %d", got, want)
	}
}

// TestVoidReleasesAircraftExposure fills the aircraft cap, voids a sale and
// sells again.
func TestVoidReleasesAircraftExposure(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 2})
	c, _ := f.OpenCabin(f.SignManifest(func(m *protocol.Manifest) {
		m.Caps.AircraftExposure = protocol.M(700, "EUR")
	}), nil)
	s := mustApprove(t, c, sale(f.Passengers[0].Code(), coffee(2)...))
	d, err := c.Authorize(ctx, sale(f.Passengers[1].Code(), coffee(1)...))
	if got, want := reasonOf(t, d, err), protocol.ReasonOverAircraftCap; got != want {
		t.Fatalf("reason = %d, want %d", got, want)
	}
	if _, err := c.Void(ctx, void(s.InvoiceID)); err != nil {
		t.Fatal(err)
	}
	mustApprove(t, c, sale(f.Passengers[1].Code(), coffee(2)...))
}

func TestFlightClose(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 2})
	c, j := f.OpenCabin(f.SignManifest(nil), nil)
	a := mustApprove(t, c, sale(f.Passengers[0].Code(), coffee(1)...))
	mustApprove(t, c, sale(f.Passengers[1].Code(), ft.Basket("SANDWICH", 2)...))
	mustApprove(t, c, sale(f.Passengers[1].Code(), coffee(1)...))
	if _, err := c.Void(ctx, void(a.InvoiceID)); err != nil {
		t.Fatal(err)
	}
	r, err := c.CloseFlight(ctx, ft.Purser.ID)
	if err != nil {
		t.Fatal(err)
	}

	invoices := checkJournal(t, f, j)
	var sales, voids uint64
	var salesTotal, voidsTotal int64
	for _, inv := range invoices {
		if inv.Body.Kind == protocol.KindSale {
			sales++
			salesTotal += inv.Body.Total.Minor
		} else {
			voids++
			voidsTotal += inv.Body.Total.Minor
		}
	}
	last := invoices[len(invoices)-1]
	if r.Sales != sales || r.Voids != voids || r.LastSeq != last.Body.Seq || r.Head != last.Hash() {
		t.Fatalf("report = %+v; want %d sales, %d voids, last seq %d, head %s", r, sales, voids, last.Body.Seq, last.Hash())
	}
	if len(r.SalesTotal) != 1 || r.SalesTotal[0] != protocol.M(salesTotal, "EUR") ||
		len(r.VoidsTotal) != 1 || r.VoidsTotal[0] != protocol.M(voidsTotal, "EUR") {
		t.Fatalf("report totals = %v / %v, want %d / %d EUR", r.SalesTotal, r.VoidsTotal, salesTotal, voidsTotal)
	}
	signed, err := protocol.ParseFlightClose(r.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := signed.Verify(f.AircraftKey.Public(), nil); err != nil {
		t.Fatalf("report signature: %v", err)
	}

	d, err := c.Authorize(ctx, sale(f.Passengers[0].Code(), coffee(1)...))
	if got, want := reasonOf(t, d, err), protocol.ReasonFlightClosed; got != want {
		t.Fatalf("sale after close: reason %d, want %d", got, want)
	}
	if _, err := c.Void(ctx, void(invoices[1].Body.ID)); ErrorCodeOf(err) != onboard.CodeConflict {
		t.Fatalf("void after close: err = %v, want conflict", err)
	}
	if _, err := c.CreateOrder(ctx, onboard.OrderRequest{Lines: coffee(1)}); ErrorCodeOf(err) != onboard.CodeConflict {
		t.Fatalf("order after close: err = %v, want conflict", err)
	}
	again, err := c.CloseFlight(ctx, ft.Purser.ID)
	if err != nil || string(again.Raw) != string(r.Raw) {
		t.Fatalf("second close = %v; want the same report", err)
	}

	// A restart keeps the flight closed with the same report.
	c.Close()
	c2, err := onboard.Open(ctx, f.Config(j))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	st, err := c2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Closed || st.SalesOpen || st.SalesOff.Reason != protocol.ReasonFlightClosed {
		t.Fatalf("status after restart = %+v, want closed", st)
	}
	third, err := c2.CloseFlight(ctx, ft.Purser.ID)
	if err != nil || string(third.Raw) != string(r.Raw) {
		t.Fatalf("close after restart = %v; want the same report", err)
	}
}

func TestCloseEmptyFlight(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, _ := f.OpenCabin(f.SignManifest(nil), nil)
	r, err := c.CloseFlight(ctx, ft.Purser.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.LastSeq != 0 || !r.Head.IsZero() || r.Sales != 0 {
		t.Fatalf("report of an empty flight = %+v", r)
	}
}
