package harness

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/protocol"
)

// TestFlightStateAndClosedFlight: the back office's flight list follows a
// real flight from open to reconciled, and a closed flight's catalog can no
// longer change (409).
func TestFlightStateAndClosedFlight(t *testing.T) {
	f := newFleet(t, "D-AIUA")
	fl := f.flights[0]
	state := func() api.FlightState {
		l, err := f.g.API.Flights(f.ctx, time.Now().UTC().Format(time.DateOnly), "D-AIUA", "", 0)
		if err != nil || len(l.Flights) != 1 {
			t.Fatalf("flights = %+v, %v", l, err)
		}
		return l.Flights[0].State
	}
	if got := state(); got != api.FlightOpen {
		t.Fatalf("state at the gate = %s, want open", got)
	}
	p := f.passenger("state")
	code, err := p.Wallet.PaymentCode(fl, true)
	if err != nil {
		t.Fatal(err)
	}
	f.sell(0, code)
	if _, err := f.hh[0].CloseFlight(f.ctx); err != nil {
		t.Fatal(err)
	}
	if err := Poll(f.ctx, time.Minute, "flight reconciled", func() (bool, error) {
		return state() == api.FlightReconciled, nil
	}); err != nil {
		t.Fatal(err)
	}
	req := api.FlightRequest{Carrier: "XX", Number: "401", Date: fl.Date().Format(time.DateOnly), Aircraft: "D-AIUA", Currency: "EUR",
		Catalog: []protocol.CatalogItem{{SKU: "tea", Name: "Tea", Price: protocol.M(300, "EUR")}}}
	a := f.groundCall(http.MethodPut, "/v1/flights/"+string(fl), req, nil)
	if e := a.errorBody(); a.status != http.StatusConflict || !strings.Contains(e.Message, "closed") {
		t.Fatalf("PUT on a closed flight: HTTP %d %s, want 409 saying it is closed", a.status, a.body)
	}
	got, err := f.g.API.Flight(f.ctx, fl)
	if err != nil || got.State != api.FlightReconciled || len(got.Catalog) != 1 || got.Catalog[0].SKU != "coffee" {
		t.Fatalf("flight after the refused PUT = %+v, %v; want reconciled with its coffee", got, err)
	}
}
