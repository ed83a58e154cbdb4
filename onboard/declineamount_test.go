package onboard_test

import (
	"strings"
	"testing"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// TestDeclineNamesTheAmount checks that a decline over a limit says how
// much the limit allows, as an amount: the cap, what is left of the
// passenger's limit, what is left of the aircraft's exposure.
func TestDeclineNamesTheAmount(t *testing.T) {
	eur := func(minor int64) protocol.Money { return protocol.M(minor, "EUR") }
	cases := []struct {
		name           string
		reason         protocol.Reason
		amount         protocol.Money
		remaining      protocol.Money
		caps           func(*protocol.Manifest)
		before, basket []onboard.Line
	}{
		{"OverTransactionCap", protocol.ReasonOverTransactionCap, eur(100_00), eur(200_00), nil,
			nil, ft.Basket("PERFUME", 2)}, // 130.00 over the 100.00 cap
		{"OverPassengerLimit", protocol.ReasonOverPassengerLimit, eur(5_00), eur(5_00), nil,
			ft.Basket("PERFUME", 1), ft.Basket("PERFUME", 1)}, // 3 × 65.00 of 200.00, then a fourth
		{"OverAircraftCap", protocol.ReasonOverAircraftCap, eur(3_00), eur(200_00 - 7_00),
			func(m *protocol.Manifest) { m.Caps.AircraftExposure = eur(10_00) },
			coffee(2), coffee(1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := ft.New(t, ft.Options{Passengers: 1})
			c, _ := f.OpenCabin(f.SignManifest(tc.caps), nil)
			p := f.Passengers[0]
			if tc.before != nil {
				n := 1
				if tc.reason == protocol.ReasonOverPassengerLimit {
					n = 3
				}
				for range n {
					mustApprove(t, c, sale(p.Code(), tc.before...))
				}
			}
			d, err := c.Authorize(ctx, sale(p.Code(), tc.basket...))
			if got := reasonOf(t, d, err); got != tc.reason {
				t.Fatalf("reason = %s, want %s", onboard.ReasonName(got), onboard.ReasonName(tc.reason))
			}
			if got, want := d.Decline.Amount, tc.amount; got != want {
				t.Errorf("decline amount = %v, want %v", got, want)
			}
			if got, want := d.Remaining, tc.remaining; got != want {
				t.Errorf("remaining = %v, want %v", got, want)
			}
			if !strings.Contains(d.Decline.Message, tc.amount.String()) {
				t.Errorf("message %q does not name %v", d.Decline.Message, tc.amount)
			}
		})
	}
}
