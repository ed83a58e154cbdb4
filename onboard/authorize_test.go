package onboard_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

var ctx = context.Background()

// reasonOf returns the reason a sale was refused with: a decline's reason,
// or an *onboard.Error's. It returns 0 for an approval.
func reasonOf(t *testing.T, d onboard.Decision, err error) protocol.Reason {
	t.Helper()
	if e, ok := errors.AsType[*onboard.Error](err); ok {
		return e.Reason
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if d.Approved {
		return 0
	}
	if d.Decline == nil {
		t.Fatalf("decision neither approved nor declined: %+v", d)
	}
	if got, want := d.Decline.Name, onboard.ReasonName(d.Decline.Reason); got != want {
		t.Errorf("decline name = %q, want %q", got, want)
	}
	return d.Decline.Reason
}

func sale(code string, lines ...onboard.Line) onboard.SaleRequest {
	return onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: lines, Crew: ft.Attendant.ID}
}

func coffee(n int) []onboard.Line { return ft.Basket("COFFEE", n) }

func mustApprove(t *testing.T, c *onboard.Cabin, req onboard.SaleRequest) *onboard.Sale {
	t.Helper()
	d, err := c.Authorize(ctx, req)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	if !d.Approved {
		t.Fatalf("authorize: declined %d %s", d.Decline.Reason, d.Decline.Name)
	}
	return d.Sale
}

func TestAuthorizeApproves(t *testing.T) {
	f := ft.New(t, ft.Options{})
	c, _ := f.OpenCabin(f.SignManifest(nil), nil)
	p := f.Passengers[0]
	req := sale(p.Code(), ft.Basket("COFFEE", 2, "SANDWICH", 1)...)
	d, err := c.Authorize(ctx, req)
	if err != nil || !d.Approved {
		t.Fatalf("authorize = %+v, %v; want approved", d, err)
	}
	s := d.Sale
	if got, want := s.Total, protocol.M(2*350+850, "EUR"); got != want {
		t.Errorf("total = %v, want %v", got, want)
	}
	if got, want := s.Seq, uint64(1); got != want {
		t.Errorf("seq = %d, want %d", got, want)
	}
	if s.InvoiceID != req.InvoiceID || s.Passenger != p.ID || s.Credential != p.Credential.Body.ID {
		t.Errorf("sale = %+v: wrong invoice, passenger or credential", s)
	}
	if got, want := d.Remaining, protocol.M(20000-1550, "EUR"); got != want {
		t.Errorf("remaining = %v, want %v", got, want)
	}
	if got, want := s.Lines[1].UnitPrice, protocol.M(850, "EUR"); got != want {
		t.Errorf("unit price = %v, want %v (from the catalog)", got, want)
	}
	got, err := c.Sale(ctx, req.InvoiceID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash != s.Hash || got.Status != onboard.StatusPending {
		t.Errorf("looked-up sale = %+v, want hash %s and pending", got, s.Hash)
	}
}

// TestDeclineReasons covers every reason the cabin server can refuse a sale
// with, each asserted by number: declines (a Decision) and malformed
// requests (an *onboard.Error carrying the reason).
func TestDeclineReasons(t *testing.T) {
	type setup func(t *testing.T, f *ft.Flight) (onboard.Decision, error)
	// open loads the flight's manifest, changed by mut, into a new cabin.
	open := func(f *ft.Flight, mut func(*protocol.Manifest)) *onboard.Cabin {
		c, _ := f.OpenCabin(f.SignManifest(mut), nil)
		return c
	}
	cases := []struct {
		want protocol.Reason
		run  setup
	}{
		{protocol.ReasonMalformed, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			return open(f, nil).Authorize(ctx, sale("AT1:NOT BASE45!", coffee(1)...))
		}},
		{protocol.ReasonUnknownCredential, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			late := f.NewPassenger(false)
			return open(f, nil).Authorize(ctx, sale(late.Code(), coffee(1)...))
		}},
		{protocol.ReasonBadIssuerSignature, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			rogue, _ := crypto.GenerateKey(crypto.Issuer, nil)
			late := f.NewPassengerWith(ft.PassengerOptions{Issuer: rogue})
			return open(f, nil).Authorize(ctx, sale(late.FullCode(), coffee(1)...))
		}},
		{protocol.ReasonCredentialNotYet, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			p := f.NewPassengerWith(ft.PassengerOptions{InManifest: true, Mutate: func(c *protocol.Credential) {
				c.NotBefore = f.Now().Add(time.Hour)
			}})
			return open(f, nil).Authorize(ctx, sale(p.Code(), coffee(1)...))
		}},
		{protocol.ReasonCredentialExpired, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			p := f.NewPassengerWith(ft.PassengerOptions{InManifest: true, Mutate: func(c *protocol.Credential) {
				c.NotAfter = f.Now().Add(-time.Minute)
			}})
			return open(f, nil).Authorize(ctx, sale(p.Code(), coffee(1)...))
		}},
		{protocol.ReasonWrongFlight, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			other, _ := protocol.NewFlightID("XX", "999", f.Now())
			p := f.NewPassengerWith(ft.PassengerOptions{Mutate: func(c *protocol.Credential) { c.Flight = other }})
			return open(f, nil).Authorize(ctx, sale(p.FullCode(), coffee(1)...))
		}},
		{protocol.ReasonDenyListed, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			p := f.Passengers[0]
			c := open(f, func(m *protocol.Manifest) {
				m.Deny = []protocol.DenyEntry{{Passenger: p.ID, Reason: protocol.DenyArrears}}
			})
			return c.Authorize(ctx, sale(p.Code(), coffee(1)...))
		}},
		{protocol.ReasonBadDeviceSignature, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			return open(f, nil).Authorize(ctx, sale(tamperSignature(t, f.Passengers[0].Code()), coffee(1)...))
		}},
		{protocol.ReasonCodeStale, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			c := open(f, nil)
			code := f.Passengers[0].Code()
			f.Clock.Advance(61 * time.Second)
			return c.Authorize(ctx, sale(code, coffee(1)...))
		}},
		{protocol.ReasonCodeFromFuture, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			c := open(f, nil)
			now := f.Now()
			f.Clock.Set(now.Add(31 * time.Second)) // the phone's clock runs ahead
			code := f.Passengers[0].Code()
			f.Clock.Set(now)
			return c.Authorize(ctx, sale(code, coffee(1)...))
		}},
		{protocol.ReasonCodeReused, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			c := open(f, nil)
			code := f.Passengers[0].Code()
			mustApprove(t, c, sale(code, coffee(1)...))
			return c.Authorize(ctx, sale(code, coffee(1)...))
		}},
		{protocol.ReasonInvalidAmount, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			return open(f, nil).Authorize(ctx, sale(f.Passengers[0].Code(), ft.Basket("WATER", 2)...))
		}},
		{protocol.ReasonCurrencyMismatch, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			p := f.NewPassengerWith(ft.PassengerOptions{InManifest: true, Mutate: func(c *protocol.Credential) {
				c.Limit, c.TxCap = protocol.M(20000, "USD"), protocol.M(10000, "USD")
			}})
			return open(f, nil).Authorize(ctx, sale(p.Code(), coffee(1)...))
		}},
		{protocol.ReasonOverTransactionCap, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			return open(f, nil).Authorize(ctx, sale(f.Passengers[0].Code(), ft.Basket("PERFUME", 2)...))
		}},
		{protocol.ReasonOverPassengerLimit, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			c, p := open(f, nil), f.Passengers[0]
			for range 3 {
				mustApprove(t, c, sale(p.Code(), ft.Basket("PERFUME", 1)...)) // 3 × 65.00 of 200.00
			}
			return c.Authorize(ctx, sale(p.Code(), ft.Basket("PERFUME", 1)...))
		}},
		{protocol.ReasonOverAircraftCap, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			c := open(f, func(m *protocol.Manifest) { m.Caps.AircraftExposure = protocol.M(1000, "EUR") })
			mustApprove(t, c, sale(f.Passengers[0].Code(), coffee(2)...))
			return c.Authorize(ctx, sale(f.Passengers[1].Code(), coffee(1)...))
		}},
		{protocol.ReasonVelocity, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			c, p := open(f, nil), f.Passengers[0]
			for range 5 {
				mustApprove(t, c, sale(p.Code(), coffee(1)...))
			}
			return c.Authorize(ctx, sale(p.Code(), coffee(1)...))
		}},
		{protocol.ReasonUnknownSKU, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			return open(f, nil).Authorize(ctx, sale(f.Passengers[0].Code(), ft.Basket("CAVIAR", 1)...))
		}},
		{protocol.ReasonInvalidQuantity, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			return open(f, nil).Authorize(ctx, sale(f.Passengers[0].Code(), coffee(0)...))
		}},
		{protocol.ReasonNoManifest, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			c, _ := f.OpenCabin(nil, nil)
			return c.Authorize(ctx, sale(f.Passengers[0].Code(), coffee(1)...))
		}},
		{protocol.ReasonManifestExpired, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			c := open(f, nil)
			f.Clock.Advance(25 * time.Hour)
			return c.Authorize(ctx, sale(f.Passengers[0].Code(), coffee(1)...))
		}},
		{protocol.ReasonConsentMismatch, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			c := open(f, nil)
			a, err := c.CreateOrder(ctx, onboard.OrderRequest{Lines: coffee(1)})
			if err != nil {
				t.Fatal(err)
			}
			b, err := c.CreateOrder(ctx, onboard.OrderRequest{Lines: coffee(2)})
			if err != nil {
				t.Fatal(err)
			}
			consent := f.Passengers[0].Consent(a.Text) // consents to A, submitted as B
			return c.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: consent, OrderID: b.OrderID, Crew: "fa1"})
		}},
		{protocol.ReasonFlightClosed, func(t *testing.T, f *ft.Flight) (onboard.Decision, error) {
			c := open(f, nil)
			if _, err := c.CloseFlight(ctx, ft.Purser.ID); err != nil {
				t.Fatal(err)
			}
			return c.Authorize(ctx, sale(f.Passengers[0].Code(), coffee(1)...))
		}},
	}
	seen := map[protocol.Reason]bool{}
	for _, tc := range cases {
		seen[tc.want] = true
		t.Run(onboard.ReasonName(tc.want), func(t *testing.T) {
			f := ft.New(t, ft.Options{Passengers: 2})
			d, err := tc.run(t, f)
			if got := reasonOf(t, d, err); got != tc.want {
				t.Fatalf("reason = %d (%s), want %d (%s); decision %+v, err %v",
					got, onboard.ReasonName(got), tc.want, onboard.ReasonName(tc.want), d, err)
			}
		})
	}
	// Every reason up to ReasonFlightClosed is the cabin server's; the
	// rest are ground's.
	for r := protocol.ReasonMalformed; r <= protocol.ReasonFlightClosed; r++ {
		if !seen[r] {
			t.Errorf("no test case for reason %d (%s)", r, onboard.ReasonName(r))
		}
	}
}

// tamperSignature flips a bit of the signature in a payment code's QR text:
// the code still parses, but the device signature no longer verifies.
func tamperSignature(t *testing.T, text string) string {
	t.Helper()
	raw, err := protocol.FromQRText(protocol.PrefixPaymentCode, text)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)-1] ^= 1 // the signature is the last field
	return protocol.QRText(protocol.PrefixPaymentCode, raw)
}

func TestMalformedRequests(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, j := f.OpenCabin(f.SignManifest(nil), nil)
	code := f.Passengers[0].Code()
	cases := []struct {
		name string
		req  onboard.SaleRequest
		want protocol.Reason
	}{
		{"MissingInvoiceID", onboard.SaleRequest{Code: code, Lines: coffee(1)}, protocol.ReasonMalformed},
		{"EmptyCode", sale("", coffee(1)...), protocol.ReasonMalformed},
		{"OrderQRInsteadOfConsent", sale("ATO1:ABC", coffee(1)...), protocol.ReasonMalformed},
		{"FutureVersion", sale("AT2:ABC", coffee(1)...), protocol.ReasonMalformed},
		{"EmptyBasket", sale(code), protocol.ReasonMalformed},
		{"NegativeQuantity", sale(code, coffee(-1)...), protocol.ReasonInvalidQuantity},
		{"QuantityOverMax", sale(code, coffee(100)...), protocol.ReasonInvalidQuantity},
		{"UnknownSKU", sale(code, ft.Basket("COFFEE", 1, "CAVIAR", 1)...), protocol.ReasonUnknownSKU},
		{"OrderIDWithPaymentCode", onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code,
			OrderID: protocol.NewID(nil), Lines: coffee(1)}, protocol.ReasonMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Authorize(ctx, tc.req)
			e, ok := errors.AsType[*onboard.Error](err)
			if !ok || e.Code != onboard.CodeInvalid || e.Reason != tc.want {
				t.Fatalf("err = %v, want an invalid-request error with reason %d", err, tc.want)
			}
		})
	}
	// Nothing was written, and the code is still good.
	if n := countInvoices(t, j); n != 0 {
		t.Fatalf("journal holds %d invoices after malformed requests, want 0", n)
	}
	mustApprove(t, c, sale(code, coffee(1)...))
}

func TestGoldOverflowIsInvalidAmount(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, _ := f.OpenCabin(f.SignManifest(nil), nil)
	d, err := c.Authorize(ctx, sale(f.Passengers[0].Code(), ft.Basket("GOLD", 2)...))
	if got, want := reasonOf(t, d, err), protocol.ReasonInvalidAmount; got != want {
		t.Fatalf("reason = %d, want %d", got, want)
	}
}

// TestDeclineOrder checks that when several rules fail, the first in the
// sale flow is named: a reused code over the transaction cap is "code
// reused" (rule 8 before rule 10), and a stale code from a deny-listed
// passenger is "deny listed" (rule 5 before rule 7).
func TestDeclineOrder(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 2})
	denied := f.Passengers[1]
	c, _ := f.OpenCabin(f.SignManifest(func(m *protocol.Manifest) {
		m.Deny = []protocol.DenyEntry{{Passenger: denied.ID, Reason: protocol.DenyFraudSuspected}}
	}), nil)
	code := f.Passengers[0].Code()
	mustApprove(t, c, sale(code, coffee(1)...))
	d, err := c.Authorize(ctx, sale(code, ft.Basket("PERFUME", 2)...))
	if got, want := reasonOf(t, d, err), protocol.ReasonCodeReused; got != want {
		t.Errorf("reused code over the cap: reason = %d, want %d", got, want)
	}
	stale := denied.Code()
	f.Clock.Advance(2 * time.Minute)
	d, err = c.Authorize(ctx, sale(stale, coffee(1)...))
	if got, want := reasonOf(t, d, err), protocol.ReasonDenyListed; got != want {
		t.Errorf("stale code of a denied passenger: reason = %d, want %d", got, want)
	}
}

func TestTwoWayMode(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, _ := f.OpenCabin(f.SignManifest(nil), nil)
	o, err := c.CreateOrder(ctx, onboard.OrderRequest{Lines: ft.Basket("SANDWICH", 1, "COFFEE", 1)})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := o.Total, protocol.M(1200, "EUR"); got != want {
		t.Fatalf("order total = %v, want %v", got, want)
	}
	consent := f.Passengers[0].Consent(o.Text)
	req := onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: consent, OrderID: o.OrderID, Crew: "fa1"}
	s := mustApprove(t, c, req)
	if s.Total != o.Total || len(s.Lines) != 2 {
		t.Fatalf("sale = %+v, want the order's lines and total", s)
	}
	// The consent is a single-use code like any other.
	req.InvoiceID = protocol.NewID(nil)
	if _, err := c.Authorize(ctx, req); ErrorCodeOf(err) != onboard.CodeNotFound {
		t.Fatalf("second sale on a completed order: err = %v, want not found", err)
	}
	// Lines with a consent are refused: the order holds the basket.
	_, err = c.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: consent, OrderID: o.OrderID, Lines: coffee(1)})
	if got, want := ErrorCodeOf(err), onboard.CodeInvalid; got != want {
		t.Fatalf("consent with lines: code = %q, want %q", got, want)
	}
}

// ErrorCodeOf returns the code of an *onboard.Error, or "" for nil.
func ErrorCodeOf(err error) onboard.Code {
	if err == nil {
		return ""
	}
	return onboard.ErrorCode(err)
}

func TestLimitDoesNotUseCode(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, _ := f.OpenCabin(f.SignManifest(nil), nil)
	p := f.Passengers[0]
	mustApprove(t, c, sale(p.Code(), coffee(2)...))
	code := p.Code()
	a, err := c.Limit(ctx, onboard.LimitRequest{Code: code})
	if err != nil || !a.Valid {
		t.Fatalf("limit = %+v, %v", a, err)
	}
	if got, want := a.Remaining, protocol.M(20000-700, "EUR"); got != want {
		t.Errorf("remaining = %v, want %v", got, want)
	}
	if got, want := a.Spent, protocol.M(700, "EUR"); got != want {
		t.Errorf("spent = %v, want %v", got, want)
	}
	mustApprove(t, c, sale(code, coffee(1)...)) // the code still pays
	a, err = c.Limit(ctx, onboard.LimitRequest{Code: tamperSignature(t, p.Code())})
	if err != nil || a.Valid || a.Decline == nil || a.Decline.Reason != protocol.ReasonBadDeviceSignature {
		t.Fatalf("limit with a forged code = %+v, %v; want a bad-device-signature decline", a, err)
	}
}

func TestCheckCrew(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, _ := f.OpenCabin(nil, nil)
	if _, err := c.CheckCrew(ctx, ft.Purser.ID, ft.Purser.PIN); ErrorCodeOf(err) != onboard.CodeUnavailable {
		t.Fatalf("sign-in without a manifest: err = %v, want unavailable", err)
	}
	if err := c.LoadManifest(ctx, f.SignManifest(nil)); err != nil {
		t.Fatal(err)
	}
	m, err := c.CheckCrew(ctx, ft.Purser.ID, ft.Purser.PIN)
	if err != nil || m.Role != "purser" {
		t.Fatalf("sign-in = %+v, %v; want the purser", m, err)
	}
	for _, tc := range []struct{ name, id, pin string }{
		{"WrongPIN", ft.Purser.ID, "0000"},
		{"UnknownCrew", "nobody", ft.Purser.PIN},
		{"PINTooLong", ft.Purser.ID, "1234567890123"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.CheckCrew(ctx, tc.id, tc.pin); ErrorCodeOf(err) != onboard.CodeUnauthorized {
				t.Fatalf("err = %v, want unauthorized", err)
			}
		})
	}
}
