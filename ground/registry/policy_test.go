package registry

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/protocol"
)

func TestDefaultLimitPolicyBands(t *testing.T) {
	p := DefaultLimitPolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, want := p.Threshold(), EligibleScore; got != want {
		t.Fatalf("threshold = %d, want %d", got, want)
	}
	for _, tc := range []struct {
		score       int
		cur         protocol.Currency
		limit, txCp int64
	}{
		{550, "EUR", 100_00, 40_00},
		{649, "EUR", 100_00, 40_00},
		{650, "EUR", 250_00, 100_00},
		{749, "EUR", 250_00, 100_00},
		{750, "EUR", 600_00, 250_00},
		{850, "EUR", 600_00, 250_00},
		{700, "USD", 250_00, 100_00},
		{600, "GBP", 90_00, 35_00},
		{800, "CHF", 600_00, 250_00},
		{551, "JPY", 15_000, 6_000},
		{760, "JPY", 100_000, 40_000},
	} {
		limit, txCap, err := p.Limits(tc.score, tc.cur)
		if err != nil {
			t.Fatalf("Limits(%d, %s): %v", tc.score, tc.cur, err)
		}
		if got, want := limit, protocol.M(tc.limit, tc.cur); got != want {
			t.Errorf("Limits(%d, %s) limit = %v, want %v", tc.score, tc.cur, got, want)
		}
		if got, want := txCap, protocol.M(tc.txCp, tc.cur); got != want {
			t.Errorf("Limits(%d, %s) cap = %v, want %v", tc.score, tc.cur, got, want)
		}
	}
}

func TestLimitPolicyRefusals(t *testing.T) {
	p := DefaultLimitPolicy()
	t.Run("ErrIneligible", func(t *testing.T) {
		_, _, err := p.Limits(549, "EUR")
		e := wantCode(t, err, CodeIneligible)
		if !strings.Contains(e.Message, "549") || !strings.Contains(e.Message, "550") {
			t.Fatalf("message %q does not name the score and the threshold", e.Message)
		}
	})
	t.Run("ErrUnsupportedCurrency", func(t *testing.T) {
		_, _, err := p.Limits(700, "BRL")
		e := wantCode(t, err, CodeInvalid)
		if !strings.Contains(e.Message, "BRL") || !strings.Contains(e.Message, "EUR") {
			t.Fatalf("message %q does not name the currency and the supported ones", e.Message)
		}
	})
}

func TestLimitPolicyValidate(t *testing.T) {
	for name, p := range map[string]LimitPolicy{
		"NoBands":    {},
		"Descending": {Bands: []Band{{MinScore: 700, Limits: map[protocol.Currency]BandLimits{"EUR": {100, 10}}}, {MinScore: 600, Limits: map[protocol.Currency]BandLimits{"EUR": {100, 10}}}}},
		"CapOverLim": {Bands: []Band{{MinScore: 600, Limits: map[protocol.Currency]BandLimits{"EUR": {100, 200}}}}},
		"BadCur":     {Bands: []Band{{MinScore: 600, Limits: map[protocol.Currency]BandLimits{"XXX": {100, 10}}}}},
		"MixedCurs": {Bands: []Band{{MinScore: 600, Limits: map[protocol.Currency]BandLimits{"EUR": {100, 10}}},
			{MinScore: 700, Limits: map[protocol.Currency]BandLimits{"USD": {100, 10}}}}},
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%s: Validate = nil, want an error", name)
		}
	}
}

func TestHashScorer(t *testing.T) {
	ctx := context.Background()
	var id protocol.ID
	copy(id[:], "passenger-000001")
	a, _ := HashScorer{}.Score(ctx, Applicant{Passenger: id})
	b, _ := HashScorer{}.Score(ctx, Applicant{Passenger: id})
	if a != b {
		t.Fatalf("scores of the same id differ: %d, %d", a, b)
	}
	low := 0
	for i := range 2000 {
		s, _ := HashScorer{}.Score(ctx, Applicant{Passenger: protocol.ID{byte(i), byte(i >> 8), 7}})
		if s < 500 || s > MaxScore {
			t.Fatalf("score %d outside 500..%d", s, MaxScore)
		}
		if s < EligibleScore {
			low++
		}
	}
	if low == 0 || low == 2000 {
		t.Fatalf("%d of 2000 ids below %d: want some, not all", low, EligibleScore)
	}
}

func TestStaticScorer(t *testing.T) {
	dev, _ := crypto.GenerateKey(crypto.Device, nil)
	s := StaticScorer{ByRef: map[string]int{"low": 500}, ByDevice: map[crypto.KeyID]int{dev.ID(): 777}}
	ctx := context.Background()
	if got, _ := s.Score(ctx, Applicant{ExternalRef: "low", Device: dev.Public()}); got != 500 {
		t.Errorf("by ref = %d, want 500", got)
	}
	if got, _ := s.Score(ctx, Applicant{Device: dev.Public()}); got != 777 {
		t.Errorf("by device = %d, want 777", got)
	}
	id := protocol.ID{1}
	want, _ := HashScorer{}.Score(ctx, Applicant{Passenger: id})
	if got, _ := s.Score(ctx, Applicant{Passenger: id}); got != want {
		t.Errorf("fallback = %d, want the hash score %d", got, want)
	}
}

func TestDefaultCaps(t *testing.T) {
	c := DefaultCaps("EUR")
	want := protocol.Caps{AircraftExposure: protocol.M(2_000_000, "EUR"), CodeFreshSeconds: 120, ClockSkewSeconds: 300, VelocityCount: 6, VelocityWindowSeconds: 600}
	if c != want {
		t.Fatalf("DefaultCaps(EUR) = %+v, want %+v", c, want)
	}
	if got := DefaultCaps("JPY").AircraftExposure; got != protocol.M(3_000_000, "JPY") {
		t.Fatalf("JPY exposure = %v", got)
	}
	if _, err := fillCaps(protocol.Caps{}, "SEK"); err == nil {
		t.Fatal("fillCaps(SEK) with no exposure = nil error, want one")
	}
}

func TestCredentialWindow(t *testing.T) {
	nb, na := CredentialWindow(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC))
	if got, want := nb, time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("not before = %v, want %v", got, want)
	}
	if got, want := na, time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("not after = %v, want %v", got, want)
	}
}

func TestValidateFunding(t *testing.T) {
	now := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	card := func(mod func(*ground.FundingSource)) ground.FundingSource {
		f := ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: "tok_9f8e7d6c5b4a", Last4: "4242", ExpMonth: 12, ExpYear: 2028}
		if mod != nil {
			mod(&f)
		}
		return f
	}
	ok := map[string]ground.FundingSource{
		"Wallet":         {Kind: ground.FundingWallet},
		"Card":           card(nil),
		"CardThisMonth":  card(func(f *ground.FundingSource) { f.ExpMonth, f.ExpYear = 6, 2026 }),
		"Amex":           card(func(f *ground.FundingSource) { f.Network = ground.Amex }),
		"ShortDigitsTok": card(func(f *ground.FundingSource) { f.Token = "acq:12345678901" }),
	}
	for name, f := range ok {
		if err := ValidateFunding(f, now); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	bad := map[string]ground.FundingSource{
		"WalletWithCard": {Kind: ground.FundingWallet, Last4: "4242"},
		"UnknownKind":    {Kind: "cash"},
		"Network":        card(func(f *ground.FundingSource) { f.Network = "diners" }),
		"PAN":            card(func(f *ground.FundingSource) { f.Token = "4242424242424242" }),
		"PANSpaced":      card(func(f *ground.FundingSource) { f.Token = "4242 4242 4242 4242" }),
		"PANDashed":      card(func(f *ground.FundingSource) { f.Token = "tok-4242-4242-4242-4242" }),
		"PANInToken":     card(func(f *ground.FundingSource) { f.Token = "tok_4242424242424242" }),
		"PANInLast4":     card(func(f *ground.FundingSource) { f.Last4 = "4242424242424242" }),
		"TokenChars":     card(func(f *ground.FundingSource) { f.Token = "tok 123<script>" }),
		"TokenShort":     card(func(f *ground.FundingSource) { f.Token = "ab" }),
		"Last4Letters":   card(func(f *ground.FundingSource) { f.Last4 = "42a2" }),
		"Last4Three":     card(func(f *ground.FundingSource) { f.Last4 = "424" }),
		"Month13":        card(func(f *ground.FundingSource) { f.ExpMonth = 13 }),
		"Year2Digits":    card(func(f *ground.FundingSource) { f.ExpYear = 28 }),
		"Expired":        card(func(f *ground.FundingSource) { f.ExpMonth, f.ExpYear = 5, 2026 }),
		"FarFuture":      card(func(f *ground.FundingSource) { f.ExpYear = 2060 }),
	}
	for name, f := range bad {
		t.Run(name, func(t *testing.T) { wantCode(t, ValidateFunding(f, now), CodeInvalid) })
	}
	e := wantCode(t, ValidateFunding(bad["PAN"], now), CodeInvalid)
	if !strings.Contains(e.Message, "card number") {
		t.Errorf("PAN refusal %q does not say why", e.Message)
	}
}

func TestDiffDeny(t *testing.T) {
	a := protocol.DenyEntry{Passenger: protocol.ID{1}, Reason: protocol.DenyArrears}
	b := protocol.DenyEntry{Credential: protocol.ID{2}, Reason: protocol.DenyRevoked}
	c := protocol.DenyEntry{Passenger: protocol.ID{3}, Reason: protocol.DenyArrears}
	add, lift := diffDeny([]protocol.DenyEntry{a, b}, []protocol.DenyEntry{b, c})
	if len(add) != 1 || add[0] != a {
		t.Errorf("add = %v, want [%v]", add, a)
	}
	if len(lift) != 1 || lift[0] != c {
		t.Errorf("lift = %v, want [%v]", lift, c)
	}
}
