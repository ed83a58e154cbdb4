package registry

import (
	"context"
	"strings"
	"testing"

	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/protocol"
)

// closedFlights is a FlightClosedFunc over a fixed set, as clearing's close
// reports would answer.
func closedFlights(fs ...protocol.FlightID) FlightClosedFunc {
	return func(_ context.Context, _ ledger.Querier, f protocol.FlightID) (bool, error) {
		for _, c := range fs {
			if c == f {
				return true, nil
			}
		}
		return false, nil
	}
}

// A closed flight takes no new wallet hold: a top-up after the flight
// closed stays in the wallet, and a late opt-in is refused, naming the
// flight.
func TestClosedFlightHoldsNothing(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	fl := f.flight("100", "D-AIUA", "EUR")
	eur := func(minor int64) protocol.Money { return protocol.M(minor, "EUR") }

	t.Run("RaiseSkipsClosedFlight", func(t *testing.T) {
		p, dev := f.walletPassenger(600)
		f.topUp(p, eur(20_00))
		c := f.optIn(p, dev, fl).Body
		f.reg.SetFlightClosed(closedFlights(fl))
		defer f.reg.SetFlightClosed(nil)
		f.topUp(p, eur(100_00))
		if n, err := f.reg.RaiseWalletLimits(f.ctx, p, "EUR"); err != nil || n != 0 {
			t.Fatalf("raise on a closed flight = %d, %v; want 0 raised", n, err)
		}
		if got, want := f.balance(ledger.HoldAccount(fl, c.ID, "EUR")), eur(20_00); got != want {
			t.Errorf("held = %v, want %v (nothing added after the close)", got, want)
		}
		if got, want := f.balance(ledger.WalletAccount(p, "EUR")), eur(100_00); got != want {
			t.Errorf("wallet = %v, want the top-up %v", got, want)
		}
	})

	t.Run("ErrOptInClosedFlight", func(t *testing.T) {
		p, dev := f.walletPassenger(600)
		f.topUp(p, eur(50_00))
		f.reg.SetFlightClosed(closedFlights(fl))
		defer f.reg.SetFlightClosed(nil)
		_, _, err := f.reg.OptIn(f.ctx, p, dev.Public(), fl)
		e := wantCode(t, err, CodeInvalid)
		if !strings.Contains(e.Message, "closed") || !strings.Contains(e.Message, string(fl)) {
			t.Errorf("error %q does not say flight %s is closed", e.Message, fl)
		}
		if got, want := f.balance(ledger.WalletAccount(p, "EUR")), eur(50_00); got != want {
			t.Errorf("wallet = %v, want %v (nothing held)", got, want)
		}
	})

	t.Run("OpenFlightStillRaises", func(t *testing.T) {
		other := f.flight("200", "D-AIUA", "EUR")
		p, dev := f.walletPassenger(600)
		f.topUp(p, eur(20_00))
		f.optIn(p, dev, other)
		f.reg.SetFlightClosed(closedFlights(fl))
		defer f.reg.SetFlightClosed(nil)
		f.topUp(p, eur(30_00))
		if n, err := f.reg.RaiseWalletLimits(f.ctx, p, "EUR"); err != nil || n != 1 {
			t.Fatalf("raise on an open flight = %d, %v; want 1", n, err)
		}
	})
	if err := ledger.Check(f.ctx, f.db); err != nil {
		t.Fatal(err)
	}
}
