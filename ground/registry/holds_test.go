package registry

import (
	"errors"
	"strings"
	"testing"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/protocol"
)

// balance returns an account's credit balance, zero when it does not exist.
func (f *fixture) balance(a ledger.Account) protocol.Money {
	f.t.Helper()
	got, err := ledger.LookupAccount(f.ctx, f.db, a.ID)
	if errors.Is(err, ledger.ErrAccountNotFound) {
		return protocol.M(0, a.Currency)
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return got.CreditBalance()
}

func TestWalletOptInHoldsTheLimit(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	fl1 := f.flight("100", "D-AIUA", "EUR")
	fl2 := f.flight("200", "D-AIUA", "EUR")
	eur := func(minor int64) protocol.Money { return protocol.M(minor, "EUR") }

	t.Run("LimitIsTheBalance", func(t *testing.T) {
		p, dev := f.walletPassenger(600) // band limit 100.00, cap 40.00
		f.topUp(p, eur(50_00))
		c := f.optIn(p, dev, fl1).Body
		if got, want := c.Limit, eur(50_00); got != want {
			t.Fatalf("limit = %v, want %v (the balance)", got, want)
		}
		if got, want := c.TxCap, eur(40_00); got != want {
			t.Fatalf("transaction cap = %v, want %v (the band's)", got, want)
		}
		if got, want := f.balance(ledger.HoldAccount(fl1, c.ID, "EUR")), eur(50_00); got != want {
			t.Fatalf("held = %v, want %v", got, want)
		}
		if got, want := f.balance(ledger.WalletAccount(p, "EUR")), eur(0); got != want {
			t.Fatalf("wallet outside holds = %v, want %v", got, want)
		}
		// The same money cannot back a second flight.
		_, _, err := f.reg.OptIn(f.ctx, p, dev.Public(), fl2)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeIneligible || !strings.Contains(e.Message, "0.00 EUR") {
			t.Fatalf("second flight on held money: err = %v, want ineligible naming 0.00 EUR", err)
		}
		// Opting in again for the same flight holds nothing more.
		if again := f.optIn(p, dev, fl1).Body; again.ID != c.ID {
			t.Fatalf("opt-in again gave credential %s, want %s", again.ID, c.ID)
		}
		if got, want := f.balance(ledger.HoldAccount(fl1, c.ID, "EUR")), eur(50_00); got != want {
			t.Fatalf("held after opting in again = %v, want %v", got, want)
		}
	})

	t.Run("TwoFlightsShareOneBalance", func(t *testing.T) {
		p, dev := f.walletPassenger(600)
		f.topUp(p, eur(150_00))
		c1, c2 := f.optIn(p, dev, fl1).Body, f.optIn(p, dev, fl2).Body
		if got, want := c1.Limit, eur(100_00); got != want {
			t.Fatalf("first flight's limit = %v, want %v (the band's)", got, want)
		}
		if got, want := c2.Limit, eur(50_00); got != want {
			t.Fatalf("second flight's limit = %v, want %v (what was left)", got, want)
		}
		if got := c1.Limit.Minor + c2.Limit.Minor; got > 150_00 {
			t.Fatalf("limits add up to %d minor units, more than the 150.00 balance", got)
		}
	})

	t.Run("ErrEmptyWallet", func(t *testing.T) {
		p, dev := f.walletPassenger(600)
		_, _, err := f.reg.OptIn(f.ctx, p, dev.Public(), fl1)
		var e *Error
		if !errors.As(err, &e) || e.Code != CodeIneligible || !strings.Contains(e.Message, "top up") {
			t.Fatalf("empty wallet: err = %v, want ineligible asking for a top-up", err)
		}
	})

	t.Run("CardKeepsTheBandLimit", func(t *testing.T) {
		p, dev := f.cardPassenger(600)
		if got, want := f.optIn(p, dev, fl1).Body.Limit, eur(100_00); got != want {
			t.Fatalf("card limit = %v, want %v", got, want)
		}
	})
	if err := ledger.Check(f.ctx, f.db); err != nil {
		t.Fatal(err)
	}
}

// cardPassenger registers a passenger with the given score and a card.
func (f *fixture) cardPassenger(score int) (protocol.ID, crypto.PrivateKey) {
	f.t.Helper()
	p, dev := f.walletPassenger(score)
	card := ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: "tok_hold_test", Last4: "4242", ExpMonth: 12, ExpYear: 2030}
	if err := f.reg.SetFunding(f.ctx, p, card); err != nil {
		f.t.Fatal(err)
	}
	return p, dev
}

func TestRaiseWalletLimits(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	fl := f.flight("100", "D-AIUA", "EUR")
	eur := func(minor int64) protocol.Money { return protocol.M(minor, "EUR") }
	p, dev := f.walletPassenger(600) // band limit 100.00, cap 40.00
	f.topUp(p, eur(30_00))
	first := f.optIn(p, dev, fl).Body
	if first.Limit != eur(30_00) || first.TxCap != eur(30_00) {
		t.Fatalf("first limits %v / %v, want 30.00 / 30.00", first.Limit, first.TxCap)
	}
	f.topUp(p, eur(200_00))
	n, err := f.reg.RaiseWalletLimits(f.ctx, p, "EUR")
	if err != nil || n != 1 {
		t.Fatalf("raise = %d, %v; want 1 credential raised", n, err)
	}
	ic, err := f.reg.IssuedCredentialByID(f.ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	raised := ic.Signed.Body
	if raised.Limit != eur(100_00) || raised.TxCap != eur(40_00) {
		t.Errorf("raised limits %v / %v, want the band's 100.00 / 40.00", raised.Limit, raised.TxCap)
	}
	if !raised.RaisedFrom(first) {
		t.Errorf("the raised credential is not the first one with higher limits: %+v", raised)
	}
	if got, want := f.balance(ledger.HoldAccount(fl, first.ID, "EUR")), eur(100_00); got != want {
		t.Errorf("held = %v, want %v", got, want)
	}
	if got, want := f.balance(ledger.WalletAccount(p, "EUR")), eur(130_00); got != want {
		t.Errorf("wallet outside the hold = %v, want %v", got, want)
	}
	if n, err := f.reg.RaiseWalletLimits(f.ctx, p, "EUR"); err != nil || n != 0 {
		t.Errorf("raise again = %d, %v; want nothing to raise", n, err)
	}
	// The next delta carries the raised credential.
	m := f.verifyManifest(syncedManifest(t, f, "D-AIUA", fl))
	for _, raw := range m.Body.Credentials {
		c, err := protocol.ParseCredential(raw)
		if err != nil {
			t.Fatal(err)
		}
		if c.Body.ID == first.ID && c.Body.Limit != eur(100_00) {
			t.Errorf("manifest carries limit %v, want the raised 100.00", c.Body.Limit)
		}
	}
	if err := ledger.Check(f.ctx, f.db); err != nil {
		t.Fatal(err)
	}
}

// syncedManifest fetches the flight's manifest as aircraft a does.
func syncedManifest(t *testing.T, f *fixture, a protocol.AircraftID, fl protocol.FlightID) []byte {
	t.Helper()
	m, err := f.reg.SyncManifest(f.ctx, a, fl)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}
