package walletweb

import (
	"testing"
	"time"

	"github.com/airtab/airtab/protocol/browsertest"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// TestTokenizer runs the simulated tokenizer on the test card numbers many
// times and checks every answer is a funding source ground accepts, with
// the outcome prefix, network and last four the number asks for, and that
// bad numbers are refused and the field always cleared.
func TestTokenizer(t *testing.T) {
	srv := testServer(t)
	b := browsertest.New(t, browsertest.Options{})
	b.Navigate(srv.URL + "/test/blank.html")
	type card struct {
		Network  string `json:"network"`
		Token    string `json:"token"`
		Last4    string `json:"last4"`
		ExpMonth int    `json:"exp_month"`
		ExpYear  int    `json:"exp_year"`
	}
	type result struct {
		Cards   []card   `json:"cards"`
		Refused []string `json:"refused"`
		Left    []string `json:"left"`
	}
	got := browsertest.Eval[result](b, `(async () => {
		const tk = await import("/wallet/js/tokenizer.js");
		const input = document.createElement("input");
		const out = { cards: [], refused: [], left: [] };
		const numbers = ["4242 4242 4242 4242", "4000 0000 0000 9995", "4000000000000069", "4100-0000-0000-0019",
			"5555 5555 5555 4444", "3782 822463 10005", "6011 1111 1111 1117", "3530 1113 3330 0000"];
		for (let i = 0; i < 500; i++) {
			input.value = numbers[i % numbers.length];
			out.cards.push(tk.tokenize(input, "09/30"));
			if (input.value) out.left.push(input.value);
		}
		for (const bad of ["4242 4242 4242 4241", "1234", "9999 9999 9999 9995", "4242 4242 4242 4242|13/30", "4242 4242 4242 4242|01/20"]) {
			const [n, exp] = bad.split("|");
			input.value = n;
			try { tk.tokenize(input, exp || "09/30"); } catch (e) { out.refused.push(e.message); }
			if (input.value) out.left.push(input.value);
		}
		return out;
	})()`)
	if len(got.Left) > 0 {
		t.Errorf("card numbers left in the field: %q", got.Left)
	}
	if len(got.Refused) != 5 {
		t.Errorf("refused %d of 5 bad cards: %q", len(got.Refused), got.Refused)
	}
	wantNet := []string{"visa", "visa", "visa", "visa", "mastercard", "amex", "discover", "jcb"}
	wantPrefix := []string{"tok_sim_", "tok_insufficient_", "tok_expired_", "tok_fraud_", "tok_sim_", "tok_sim_", "tok_sim_", "tok_sim_"}
	now := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	for i, c := range got.Cards {
		f := passengerapi.Funding{Kind: passengerapi.FundingCard, Network: c.Network, Token: c.Token, Last4: c.Last4, ExpMonth: c.ExpMonth, ExpYear: c.ExpYear}
		if err := f.Validate(now); err != nil {
			t.Fatalf("card %d %+v: ground would refuse it: %v", i, c, err)
		}
		if c.Network != wantNet[i%8] || len(c.Token) < len(wantPrefix[i%8]) || c.Token[:len(wantPrefix[i%8])] != wantPrefix[i%8] || c.ExpMonth != 9 || c.ExpYear != 2030 {
			t.Fatalf("card %d = %+v, want %s with a %s token", i, c, wantNet[i%8], wantPrefix[i%8])
		}
	}
}
