package sim

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/harness"
)

// The passenger mix of a flight, the catalog and the baskets. All of it is
// a plan drawn from the seed; what the parts did with it is counted later.

// paxKind is how a passenger relates to Airtab on this flight.
type paxKind int

const (
	paxNone    paxKind = iota // did not register: pays another way, or not at all
	paxRegular                // registered before the manifest sync
	paxRefused                // registered, refused for a score below the threshold
	paxArrears                // registered, then in arrears after the feeder flight
	paxLate                   // registered after the manifest sync: codes carry the credential
)

// Shares of a flight's seats, in per mille of the passengers.
const (
	registeredPerMille = 700 // pre-registered, all kinds
	refusedPerMille    = 22  // of all seats: low scores
	arrearsPerMille    = 17  // of all seats: in arrears from an earlier flight
	latePerMille       = 17  // of all seats: registered at the gate after the sync
	walletPercent      = 35  // of registered: prepaid wallet rather than a card
	lowTopUpPercent    = 12  // of wallets: a top-up too small for what they buy
	buyRound1Percent   = 80  // meals and drinks
	buyRound2Percent   = 55  // drinks and duty-free
	voidPerMille       = 50  // round-1 sales the crew voids before close
)

// passenger is one seat: the plan, and once registered the wallet.
type passenger struct {
	seat     int
	ref      string
	kind     paxKind
	score    int
	funding  ground.FundingSource
	topUp    int64 // wallet top-up, minor units
	lowTopUp bool
	baskets  [2][]onboard.Line // nil: does not buy in that round
	void     bool              // the crew voids the round-1 sale
	fraud    fraudKind         // this passenger's code is abused (fraudNone: not)
	handheld int               // the handheld serving this seat's section

	reg *harness.Passenger // nil until registered
	// issuedLinkUp: ground issued the credential while the aircraft's
	// link was up (at the gate), so the cabin should know it.
	issuedLinkUp bool
	skew         atomic.Int64 // wallet clock offset, ns: an expired-code attack sets it

	// The cross-flight counter reuse: connection is the other flight the
	// passenger opted in to, clone a copy of their wallet that hands out
	// the same counters (see fraud.go).
	connection *flight
	clone      *protocol.Wallet
}

// clock is the wallet's clock.
func (p *passenger) clock() time.Time { return time.Now().Add(time.Duration(p.skew.Load())) }

// eligible reports whether the passenger holds a credential for the flight.
func (p *passenger) eligible() bool { return p.reg != nil && p.reg.Eligible }

// catalog returns the flight's catalog in currency c.
func catalog(c protocol.Currency) []protocol.CatalogItem {
	items := []struct {
		sku, name, cat string
		cents          int64
	}{
		{"sandwich", "Ham and cheese sandwich", "meal", 790},
		{"hot-meal", "Chicken curry with rice", "meal", 1250},
		{"snack-box", "Snack box", "meal", 550},
		{"salad", "Mediterranean salad", "meal", 890},
		{"coffee", "Coffee", "drink", 350},
		{"tea", "Tea", "drink", 300},
		{"water", "Still water 50 cl", "drink", 250},
		{"soda", "Cola 33 cl", "drink", 320},
		{"juice", "Orange juice", "drink", 350},
		{"beer", "Beer 33 cl", "drink", 550},
		{"wine", "Red wine 18.7 cl", "drink", 690},
		{"champagne", "Champagne 20 cl", "drink", 1200},
		{"chocolates", "Chocolate pralines", "duty-free", 1490},
		{"sunglasses", "Sunglasses", "duty-free", 7900},
		{"headphones", "Noise-cancelling headphones", "duty-free", 8900},
		{"perfume", "Eau de parfum 50 ml", "duty-free", 6800},
		{"watch", "Pilot's watch", "duty-free", 14900},
	}
	out := make([]protocol.CatalogItem, 0, len(items))
	for _, it := range items {
		out = append(out, protocol.CatalogItem{SKU: it.sku, Name: it.name, Category: it.cat, Price: protocol.M(price(it.cents, c), c)})
	}
	return out
}

// price converts a price in euro cents to currency c: the same figure in
// major units (100 JPY for 1 EUR, as the limit policy's round numbers do).
func price(cents int64, c protocol.Currency) int64 {
	e, _ := c.Exponent()
	if c == "JPY" {
		return cents * 150 / 100
	}
	for ; e < 2; e++ {
		cents /= 10
	}
	for ; e > 2; e-- {
		cents *= 10
	}
	return cents
}

func skus(cat string) []string {
	var out []string
	for _, it := range catalog("EUR") {
		if it.Category == cat {
			out = append(out, it.SKU)
		}
	}
	return out
}

var (
	meals    = skus("meal")
	drinks   = skus("drink")
	dutyFree = skus("duty-free")
	networks = []struct {
		n      ground.CardNetwork
		weight int
	}{{ground.Visa, 40}, {ground.Mastercard, 35}, {ground.Amex, 12}, {ground.Discover, 6}, {ground.JCB, 7}}
)

// planPassengers draws the seats of flight fi.
func planPassengers(cfg Config, fi int, year int) []*passenger {
	rng := newRand(cfg.Seed, "passengers", fi)
	n := cfg.Passengers
	pax := make([]*passenger, n)
	for i := range pax {
		pax[i] = &passenger{seat: i, ref: fmt.Sprintf("f%02d-seat%03d", fi, i)}
	}
	// Who registered, and as what kind: a fixed count of each, at seats
	// drawn from the seed.
	order := rng.Perm(n)
	refused, arrears, late := atLeast1(n*refusedPerMille/1000), atLeast1(n*arrearsPerMille/1000), atLeast1(n*latePerMille/1000)
	registered := min(n, max(n*registeredPerMille/1000, refused+arrears+late+8))
	for k, seat := range order[:registered] {
		p := pax[seat]
		switch {
		case k < refused:
			p.kind, p.score = paxRefused, 420+rng.IntN(130)
		case k < refused+arrears:
			p.kind, p.score = paxArrears, 620+rng.IntN(100)
		case k < refused+arrears+late:
			p.kind, p.score = paxLate, drawScore(rng)
		default:
			p.kind, p.score = paxRegular, drawScore(rng)
		}
	}
	for _, p := range pax {
		if p.kind == paxNone {
			continue
		}
		p.funding, p.topUp, p.lowTopUp = drawFunding(rng, cfg, fi, p, year)
		p.baskets[0] = drawBasket(rng, 0)
		p.baskets[1] = drawBasket(rng, 1)
		if p.kind == paxArrears {
			// Each tries once, is declined, and does not try again.
			p.baskets[0], p.baskets[1] = []onboard.Line{{SKU: "coffee", Quantity: 1}}, nil
		}
		p.void = p.kind == paxRegular && !p.lowTopUp && p.baskets[0] != nil && rng.IntN(1000) < voidPerMille
	}
	ensureVoid(pax)
	// Sections of the cabin: handheld k serves a contiguous block of rows.
	for _, p := range pax {
		p.handheld = p.seat * cfg.Handhelds / n
	}
	return pax
}

func atLeast1(n int) int { return max(n, 1) }

// drawScore draws an eligible credit score: a quarter in the lowest band.
func drawScore(rng *rand.Rand) int {
	switch r := rng.IntN(100); {
	case r < 25:
		return 550 + rng.IntN(100)
	case r < 70:
		return 650 + rng.IntN(100)
	default:
		return 750 + rng.IntN(100)
	}
}

// drawFunding picks a wallet with a top-up or a card of some network.
// Passengers in arrears hold a card the simulated acquirer always declines.
func drawFunding(rng *rand.Rand, cfg Config, fi int, p *passenger, year int) (ground.FundingSource, int64, bool) {
	card := func(token string) ground.FundingSource {
		w := rng.IntN(100)
		net := networks[0].n
		for _, n := range networks {
			if w < n.weight {
				net = n.n
				break
			}
			w -= n.weight
		}
		return ground.FundingSource{Kind: ground.FundingCard, Network: net, Token: token,
			Last4: fmt.Sprintf("%04d", rng.IntN(10000)), ExpMonth: 1 + rng.IntN(12), ExpYear: year + 1 + rng.IntN(4)}
	}
	if p.kind == paxArrears {
		return card(fmt.Sprintf("tok_insufficient_%d_%02d_%03d", cfg.Seed, fi, p.seat)), 0, false
	}
	if rng.IntN(100) >= walletPercent {
		return card(fmt.Sprintf("tok_sim_%d_%02d_%03d", cfg.Seed, fi, p.seat)), 0, false
	}
	if rng.IntN(100) < lowTopUpPercent {
		return ground.FundingSource{Kind: ground.FundingWallet}, price(1500, cfg.Currency), true
	}
	return ground.FundingSource{Kind: ground.FundingWallet}, price(int64(100+50*rng.IntN(7))*100, cfg.Currency), false
}

// drawBasket draws what a passenger orders in a round, or nil.
func drawBasket(rng *rand.Rand, round int) []onboard.Line {
	var lines []onboard.Line
	add := func(sku string, q int64) { lines = append(lines, onboard.Line{SKU: sku, Quantity: q}) }
	if round == 0 {
		if rng.IntN(100) >= buyRound1Percent {
			return nil
		}
		if rng.IntN(100) < 65 {
			add(meals[rng.IntN(len(meals))], int64(1+rng.IntN(10)/9))
		}
		if len(lines) == 0 || rng.IntN(100) < 80 {
			add(drinks[rng.IntN(len(drinks))], int64(1+rng.IntN(4)/3))
		}
		return lines
	}
	if rng.IntN(100) >= buyRound2Percent {
		return nil
	}
	if rng.IntN(100) < 25 {
		add(dutyFree[rng.IntN(len(dutyFree))], 1)
	}
	if len(lines) == 0 || rng.IntN(100) < 50 {
		add(drinks[rng.IntN(len(drinks))], int64(1+rng.IntN(3)/2))
	}
	return lines
}

// ensureVoid makes sure the crew voids at least one sale per flight.
func ensureVoid(pax []*passenger) {
	for _, p := range pax {
		if p.void {
			return
		}
	}
	for _, p := range pax {
		if p.kind == paxRegular && !p.lowTopUp && p.baskets[0] != nil {
			p.void = true
			return
		}
	}
}
