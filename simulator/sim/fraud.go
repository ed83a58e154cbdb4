package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
)

// fraudKind names an attack on the payment code. Every attempt must be
// declined; one that is approved counts in fraud_accepted and fails the run.
type fraudKind int

const (
	fraudNone        fraudKind = iota
	fraudForged                // a code signed by a key that is not the passenger's device key
	fraudTampered              // a real code with one bit flipped in its Base45 payload
	fraudScreenshot            // a code already paid with, shown again
	fraudDoubleScan            // one code scanned on two handhelds at the same instant
	fraudOverLimit             // a basket above what the passenger may still spend
	fraudWrongFlight           // a valid credential for another flight
	fraudExpired               // a code from a wallet whose clock is past the freshness window
	fraudDenyListed            // a passenger in arrears, credential carried in the code
	// fraudReOptIn: the back office revokes the passenger's credential,
	// and the same device opts in again for a new one to pay with.
	fraudReOptIn
	// fraudCrossFlight: a dishonest wallet (here a copy of it) signs the
	// same counter for its credentials on two flights flying at once. Both
	// aircraft approve (neither can know the other's counters) and ground
	// must charge both: it is not declined, it must not go unpaid.
	fraudCrossFlight
)

var fraudNames = map[fraudKind]string{
	fraudForged: "forged", fraudTampered: "tampered", fraudScreenshot: "screenshot-replayed",
	fraudDoubleScan: "double-scanned", fraudOverLimit: "over-limit", fraudWrongFlight: "wrong-flight",
	fraudExpired: "expired", fraudDenyListed: "deny-listed", fraudReOptIn: "re-opt-in-after-revocation",
	fraudCrossFlight: "cross-flight-counter",
}

func (k fraudKind) String() string { return fraudNames[k] }

// assignFraud picks victims for each attack on a flight: regular passengers
// who buy in round 1 and whose sale is not voided, and every passenger in
// arrears for the deny-listed attack.
func assignFraud(rng *rand.Rand, pax []*passenger) {
	var pool []*passenger
	for _, p := range pax {
		switch {
		case p.kind == paxArrears:
			p.fraud = fraudDenyListed
		case p.kind == paxRegular && !p.void && !p.lowTopUp && p.baskets[0] != nil:
			pool = append(pool, p)
		}
	}
	rng.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	per := max(1, len(pax)/90)
	k := 0
	for kind := fraudForged; kind <= fraudExpired; kind++ {
		for range per {
			if k >= len(pool) {
				break
			}
			if kind == fraudWrongFlight {
				// The victim opts in to the feeder flight too: a prepaid
				// wallet's balance is held whole by its first credential.
				for j := k; j < len(pool); j++ {
					if pool[j].funding.Kind == ground.FundingCard {
						pool[k], pool[j] = pool[j], pool[k]
						break
					}
				}
			}
			pool[k].fraud = kind
			k++
		}
	}
	// The revoked passenger pays by card: a prepaid wallet's hold is not
	// what this attack is about.
	for ; k < len(pool); k++ {
		if pool[k].funding.Kind == ground.FundingCard {
			pool[k].fraud = fraudReOptIn
			k++
			break
		}
	}
}

// assignConnection picks, on the first flight, a regular card passenger
// with no other attack who buys in round 1, to connect to the second
// flight with a wallet that repeats its counters (fraudCrossFlight).
func assignConnection(from, to *flight) {
	for _, p := range from.pax {
		if p.kind == paxRegular && p.fraud == fraudNone && !p.void && !p.lowTopUp && p.baskets[0] != nil &&
			p.funding.Kind == ground.FundingCard {
			p.fraud, p.connection = fraudCrossFlight, to
			to.guests = append(to.guests, p)
			to.connected = make(chan struct{})
			return
		}
	}
}

// markConnected tells f that its connecting passengers' sales are made.
func (f *flight) markConnected() {
	f.connectOnce.Do(func() {
		if f.connected != nil {
			close(f.connected)
		}
	})
}

// releaseConnections marks every flight f's passengers connect to, so no
// purser waits for a sale that will not come.
func (f *flight) releaseConnections() {
	for _, p := range f.pax {
		if p.connection != nil {
			p.connection.markConnected()
		}
	}
}

// fraudLog counts attempts and what became of them.
type fraudLog struct {
	mu       sync.Mutex
	attempts map[string]int
	accepted map[string]int
	reasons  map[string]int // how the rejected attempts were turned away
}

func newFraudLog() *fraudLog {
	return &fraudLog{attempts: map[string]int{}, accepted: map[string]int{}, reasons: map[string]int{}}
}

// note records one attempt and its outcome: approved, or rejected for why
// (a decline's reason name, or the API's error code for a code it could
// not even read).
func (l *fraudLog) note(k fraudKind, approved bool, why string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.attempts[k.String()]++
	if approved {
		l.accepted[k.String()]++
	} else {
		l.reasons[why]++
	}
}

// attack runs p's attack from handheld h (and, for a double scan, other).
func (f *flight) attack(ctx context.Context, p *passenger, h, other *handheld) error {
	water := []onboard.Line{{SKU: "water", Quantity: 1}}
	w := p.reg.Wallet
	// Each victim's attack draws from its own stream: the handhelds attack
	// at once, and the attack must not depend on their interleaving.
	rng := newRand(f.run.cfg.Seed, "fraud-"+string(f.id), p.seat)
	switch p.fraud {
	case fraudForged:
		code, err := f.forge(p, rng)
		if err != nil {
			return err
		}
		return f.try(ctx, h, p.fraud, code, water)
	case fraudTampered:
		code, err := f.code(p)
		if err != nil {
			return err
		}
		return f.try(ctx, h, p.fraud, flipBit(rng, code), water)
	case fraudScreenshot:
		code, err := f.code(p)
		if err != nil {
			return err
		}
		if _, err := f.sell(ctx, h, p, code, water); err != nil { // the genuine sale
			return err
		}
		return f.try(ctx, h, p.fraud, code, []onboard.Line{{SKU: "champagne", Quantity: 1}})
	case fraudDoubleScan:
		return f.doubleScan(ctx, p, h, other, water)
	case fraudOverLimit:
		return f.overLimit(ctx, p, h)
	case fraudWrongFlight:
		code, err := w.PaymentCode(f.run.feeder.id, true)
		if err != nil {
			return err
		}
		return f.try(ctx, h, p.fraud, code, water)
	case fraudExpired:
		fresh := time.Duration(f.caps.CodeFreshSeconds+f.caps.ClockSkewSeconds+60) * time.Second
		p.skew.Store(int64(-fresh))
		code, err := f.code(p)
		p.skew.Store(0)
		if err != nil {
			return err
		}
		return f.try(ctx, h, p.fraud, code, water)
	case fraudDenyListed:
		code, err := w.PaymentCode(f.id, true)
		if err != nil {
			return err
		}
		return f.try(ctx, h, p.fraud, code, water)
	case fraudReOptIn:
		return f.reOptIn(ctx, p, h, water)
	case fraudCrossFlight:
		return f.crossFlight(ctx, p, h, water)
	}
	return nil
}

// revokeReasons are the reasons the re-opt-in attack's revocation gives,
// one per flight in turn.
var revokeReasons = []string{"revoked", "device_lost", "fraud_suspected"}

// reOptIn revokes p's credential as the back office would, then opts in
// again from the same device: ground must refuse (403 revoked). Had it
// issued a credential, the attacker pays with it in full form, which no
// deny list on board could know.
func (f *flight) reOptIn(ctx context.Context, p *passenger, h *handheld, lines []onboard.Line) error {
	w := p.reg.Wallet
	cred, ok := w.Credential(f.id)
	if !ok {
		return fmt.Errorf("re-opt-in: %s holds no credential", p.ref)
	}
	reason := revokeReasons[f.idx%len(revokeReasons)]
	if _, err := f.run.g.API.RevokeFor(ctx, cred.Body.ID, reason, "simulator: fraud run"); err != nil {
		return fmt.Errorf("re-opt-in: revoke %s: %w", cred.Body.ID, err)
	}
	again, err := f.run.g.API.OptIn(ctx, w, f.id)
	if ae, ok := errors.AsType[*registry.Error](err); ok && ae.Code == registry.CodeRevoked {
		f.fraud.note(fraudReOptIn, false, "opt-in refused after "+reason+" ("+string(ae.Code)+")")
		return nil
	}
	if err != nil {
		return fmt.Errorf("re-opt-in after %s: %w", reason, err)
	}
	if _, err := w.AddCredential(again.COSE, nil); err != nil {
		return err
	}
	code, err := w.PaymentCode(f.id, true)
	if err != nil {
		return err
	}
	return f.try(ctx, h, fraudReOptIn, code, lines)
}

// crossFlight has p's wallet and its copy sign the same counter, one for
// this flight and one for the connection, and sells on both aircraft at
// once. Both approvals are real authorizations that ground must charge:
// the run's "none unpaid" invariant checks that they were.
func (f *flight) crossFlight(ctx context.Context, p *passenger, h *handheld, lines []onboard.Line) error {
	other := p.connection
	defer other.markConnected()
	code1, err := p.reg.Wallet.PaymentCode(f.id, false)
	if err != nil {
		return err
	}
	// The copy was taken at registration; the wallet has paid since. The
	// dishonest copy skips ahead to the counter the wallet just signed.
	c1 := codeCounter(code1)
	var code2 string
	for range 1000 {
		if code2, err = p.clone.PaymentCode(other.id, false); err != nil || codeCounter(code2) >= c1 {
			break
		}
	}
	if err != nil {
		return err
	}
	if c2 := codeCounter(code2); c1 != c2 || c1 == 0 {
		return fmt.Errorf("cross-flight: the copied wallet signed counter %d, the wallet %d", c2, c1)
	}
	var ds [2]onboard.Decision
	var errs [2]error
	var wg sync.WaitGroup
	wg.Go(func() { ds[0], errs[0] = f.sell(ctx, h, p, code1, lines) })
	wg.Go(func() { ds[1], errs[1] = other.sell(ctx, other.hh[0], p, code2, lines) })
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return fmt.Errorf("cross-flight: %w", err)
	}
	for i, d := range ds {
		if !d.Approved {
			return fmt.Errorf("cross-flight: the sale on %s was declined %+v: a valid credential's fresh code", []protocol.FlightID{f.id, other.id}[i], d.Decline)
		}
	}
	f.fraud.note(fraudCrossFlight, false, "approved on both aircraft, to be charged on both")
	return nil
}

// codeCounter returns a payment code's counter, 0 if it does not parse.
func codeCounter(text string) uint64 {
	raw, err := protocol.FromQRText(protocol.PrefixPaymentCode, text)
	if err != nil {
		return 0
	}
	pc, err := protocol.ParsePaymentCode(raw)
	if err != nil {
		return 0
	}
	return pc.Body.Counter
}

// try presents a fraudulent code and records the outcome.
func (f *flight) try(ctx context.Context, h *handheld, k fraudKind, code string, lines []onboard.Line) error {
	d, err := h.sell(ctx, code, lines)
	if oe, ok := errors.AsType[*onboard.Error](err); ok && (oe.Code == onboard.CodeInvalid) {
		f.fraud.note(k, false, "unreadable ("+string(oe.Code)+")")
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s attempt: %w", k, err)
	}
	why := ""
	if d.Decline != nil {
		why = d.Decline.Name
	}
	f.fraud.note(k, d.Approved, why)
	return nil
}

// forge signs a payment code naming p's credential with a key the attacker
// made: the device signature cannot verify.
func (f *flight) forge(p *passenger, rng *rand.Rand) (string, error) {
	cred, ok := p.reg.Wallet.Credential(f.id)
	if !ok {
		return "", fmt.Errorf("forge: %s holds no credential", p.ref)
	}
	key, err := crypto.GenerateKey(crypto.Device, newReader(f.run.cfg.Seed, "forger-"+string(f.id), p.seat))
	if err != nil {
		return "", err
	}
	pc := protocol.PaymentCode{Counter: uint64(1 + rng.IntN(1<<20)), Time: time.Now().Truncate(time.Second)}
	s, err := protocol.Sign(pc, key, cred.Body.ID[:])
	if err != nil {
		return "", err
	}
	return protocol.QRText(protocol.PrefixPaymentCode, s.Raw), nil
}

// flipBit flips one bit of a code's payload, as a damaged or doctored
// print would.
func flipBit(rng *rand.Rand, code string) string {
	raw, err := protocol.FromQRText(protocol.PrefixPaymentCode, code)
	if err != nil || len(raw) == 0 {
		return code + "X"
	}
	i := rng.IntN(len(raw) * 8)
	raw[i/8] ^= 1 << (i % 8)
	return protocol.QRText(protocol.PrefixPaymentCode, raw)
}

// doubleScan presents one code on two handhelds at the same instant: one
// sale may be approved, the other must be declined.
func (f *flight) doubleScan(ctx context.Context, p *passenger, a, b *handheld, lines []onboard.Line) error {
	code, err := f.code(p)
	if err != nil {
		return err
	}
	var ds [2]onboard.Decision
	var errs [2]error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, h := range []*handheld{a, b} {
		wg.Go(func() {
			<-start
			ds[i], errs[i] = f.sell(ctx, h, p, code, lines)
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return fmt.Errorf("double scan: %w", err)
	}
	n := 0
	for _, d := range ds {
		if d.Approved {
			n++
		}
	}
	why := ""
	for _, d := range ds {
		if d.Decline != nil {
			why = d.Decline.Name
		}
	}
	f.fraud.note(fraudDoubleScan, n > 1, why)
	return nil
}

// overLimit asks what the passenger may still spend, then tries a basket
// of the dearest item above it.
func (f *flight) overLimit(ctx context.Context, p *passenger, h *handheld) error {
	code, err := f.code(p)
	if err != nil {
		return err
	}
	var ans onboard.LimitAnswer
	if err := h.retry(ctx, "limit", func() (err error) { ans, err = h.cl.Limit(ctx, code); return err }); err != nil {
		return err
	}
	if !ans.Valid {
		return fmt.Errorf("over-limit attempt: %s's code refused by the limit check: %+v", p.ref, ans.Decline)
	}
	var dear protocol.CatalogItem
	for _, it := range f.catalog {
		if it.Price.Minor > dear.Price.Minor {
			dear = it
		}
	}
	q := min(ans.Remaining.Minor/dear.Price.Minor+1, protocol.MaxQuantity)
	code, err = f.code(p)
	if err != nil {
		return err
	}
	return f.try(ctx, h, fraudOverLimit, code, []onboard.Line{{SKU: dear.SKU, Quantity: q}})
}
