package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/airtab/airtab/crypto"
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
)

var fraudNames = map[fraudKind]string{
	fraudForged: "forged", fraudTampered: "tampered", fraudScreenshot: "screenshot-replayed",
	fraudDoubleScan: "double-scanned", fraudOverLimit: "over-limit", fraudWrongFlight: "wrong-flight",
	fraudExpired: "expired", fraudDenyListed: "deny-listed",
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
			if k < len(pool) {
				pool[k].fraud = kind
				k++
			}
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
	}
	return nil
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
