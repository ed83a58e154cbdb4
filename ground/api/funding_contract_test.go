package api_test

import (
	"testing"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// TestFundingRulesAgree checks that passengerapi.Funding.Validate, which a
// client runs before sending, accepts and refuses exactly what ground's
// registry does.
func TestFundingRulesAgree(t *testing.T) {
	now := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	card := func(mod func(*passengerapi.Funding)) passengerapi.Funding {
		f := passengerapi.Funding{Kind: "card", Network: "visa", Token: "tok_sim_1", Last4: "4242", ExpMonth: 9, ExpYear: 2029}
		mod(&f)
		return f
	}
	cases := map[string]passengerapi.Funding{
		"Wallet":            {Kind: "wallet"},
		"WalletWithCard":    {Kind: "wallet", Last4: "4242"},
		"UnknownKind":       {Kind: "cash"},
		"Card":              card(func(*passengerapi.Funding) {}),
		"CardEveryNetwork":  card(func(f *passengerapi.Funding) { f.Network = "jcb" }),
		"UnknownNetwork":    card(func(f *passengerapi.Funding) { f.Network = "unionpay" }),
		"PANAsToken":        card(func(f *passengerapi.Funding) { f.Token = "4242424242424242" }),
		"PANWithSpaces":     card(func(f *passengerapi.Funding) { f.Token = "tok 4242 4242 4242 4242" }),
		"ShortToken":        card(func(f *passengerapi.Funding) { f.Token = "ab" }),
		"TokenBadChar":      card(func(f *passengerapi.Funding) { f.Token = "tok/1" }),
		"Last4Letters":      card(func(f *passengerapi.Funding) { f.Last4 = "42a2" }),
		"Last4Five":         card(func(f *passengerapi.Funding) { f.Last4 = "42424" }),
		"Month13":           card(func(f *passengerapi.Funding) { f.ExpMonth = 13 }),
		"Expired":           card(func(f *passengerapi.Funding) { f.ExpYear, f.ExpMonth = 2026, 10 }),
		"ThisMonth":         card(func(f *passengerapi.Funding) { f.ExpYear, f.ExpMonth = 2026, 11 }),
		"TooFarAhead":       card(func(f *passengerapi.Funding) { f.ExpYear = 2047 }),
		"TwentyYearsAhead":  card(func(f *passengerapi.Funding) { f.ExpYear = 2046 }),
		"TwoDigitYear":      card(func(f *passengerapi.Funding) { f.ExpYear = 29 }),
		"MaxToken":          card(func(f *passengerapi.Funding) { f.Token = string(make([]byte, 128)) }),
		"TokenColonsDashes": card(func(f *passengerapi.Funding) { f.Token = "tok_a-b.c:d" }),
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			client := f.Validate(now)
			server := registry.ValidateFunding(ground.FundingSource{Kind: ground.FundingKind(f.Kind), Network: ground.CardNetwork(f.Network),
				Token: f.Token, Last4: f.Last4, ExpMonth: f.ExpMonth, ExpYear: f.ExpYear}, now)
			if (client == nil) != (server == nil) {
				t.Errorf("client says %v, ground says %v", client, server)
			}
		})
	}
}

// TestErrorCodesAgree checks every code ground can answer is one the
// contract names, with the status the contract gives it.
func TestErrorCodesAgree(t *testing.T) {
	want := map[registry.Code]passengerapi.Code{
		registry.CodeInvalid: passengerapi.CodeInvalid, registry.CodeUnauthorized: passengerapi.CodeUnauthorized,
		registry.CodeForbidden: passengerapi.CodeForbidden, registry.CodeIneligible: passengerapi.CodeIneligible,
		registry.CodeNotFound: passengerapi.CodeNotFound, registry.CodeConflict: passengerapi.CodeConflict,
		registry.CodeTooLarge: passengerapi.CodeTooLarge, registry.CodeUnavailable: passengerapi.CodeUnavailable,
		registry.CodeInternal: passengerapi.CodeInternal, registry.CodeRevoked: passengerapi.CodeRevoked,
	}
	for r, p := range want {
		if string(r) != string(p) {
			t.Errorf("ground's %q is the contract's %q", r, p)
		}
	}
}
