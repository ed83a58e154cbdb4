package backoffice_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/protocol"
)

// TestFlightPageWithoutData: a flight ground knows but has received nothing
// for says so; a flight id ground has never registered (a mistyped one, as
// often as not) is a 404 that says the flight is not known, for the page and
// its downloads alike.
func TestFlightPageWithoutData(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	_, base := startGround(t, clk)
	ctx := context.Background()
	bo := &api.Client{BaseURL: base, Token: testToken}
	ak, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bo.RegisterAircraft(ctx, "D-AIUA", ak.Public(), ""); err != nil {
		t.Fatal(err)
	}
	fv, err := bo.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "123", Date: "2026-11-21",
		Aircraft: "D-AIUA", Currency: "EUR", Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR")}}})
	if err != nil {
		t.Fatal(err)
	}
	c := browser(t)
	signIn(t, c, base)

	res, page := get(t, c, base+"/backoffice/flights/"+string(fv.ID))
	if res.StatusCode != http.StatusOK || !strings.Contains(page, "Clearing has received nothing for this flight yet.") {
		t.Errorf("registered flight with no data: status %d, want 200 and that nothing was received; page:\n%s", res.StatusCode, page)
	}
	for _, p := range []string{"XX999-2026-11-21", "XX999-2026-11-21.csv", "XX999-2026-11-21.json"} {
		res, page := get(t, c, base+"/backoffice/flights/"+p)
		if res.StatusCode != http.StatusNotFound || !strings.Contains(page, "Flight XX999-2026-11-21 is not known to ground") {
			t.Errorf("GET %s: status %d, want 404 saying the flight is not known; page:\n%s", p, res.StatusCode, page)
		}
	}
}
