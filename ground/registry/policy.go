package registry

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// Credit scores live in [MinScore, MaxScore], the range of the common
// consumer scores. A passenger may opt in to a flight from the first band of
// the limit policy: EligibleScore in the default policy.
const (
	MinScore      = 300
	MaxScore      = 850
	EligibleScore = 550
)

// ArrearsPenalty is how many points MarkArrears takes off a passenger's
// score for each invoice that goes into arrears (never below MinScore).
// Paying the debt (ClearArrears) lifts the deny-list entry but does not give
// the points back, as a credit bureau would not: the score history keeps
// both events.
const ArrearsPenalty = 75

// Applicant is what a Scorer may look at: the new passenger's pseudonymous
// id, the device key being enrolled and the optional external reference.
// There is no personal data to look at, by design.
type Applicant struct {
	Passenger   protocol.ID
	Device      crypto.PublicKey
	ExternalRef string
}

// Scorer gives a new passenger their initial credit score. It is called once,
// at registration, outside any database transaction (a real one would call a
// bureau); later changes come from MarkArrears.
type Scorer interface {
	// Score returns a score in [MinScore, MaxScore].
	Score(ctx context.Context, a Applicant) (int, error)
}

// HashScorer is the deterministic default Scorer for demos and tests: the
// score is 500 plus the first two bytes of SHA-256("airtab/score/v1" ||
// passenger id), read big-endian, modulo 351. It lies in 500..850, is the
// same for the same id on every run, and about one random id in seven scores
// below EligibleScore.
type HashScorer struct{}

// Score returns the hash-derived score of a.Passenger.
func (HashScorer) Score(_ context.Context, a Applicant) (int, error) {
	h := sha256.New()
	h.Write([]byte("airtab/score/v1"))
	h.Write(a.Passenger[:])
	sum := h.Sum(nil)
	return 500 + int(binary.BigEndian.Uint16(sum[:2]))%351, nil
}

// StaticScorer pins the score of chosen applicants, for tests and the
// simulator, and asks Next (HashScorer when nil) about everyone else.
// ByRef is looked up first, by external reference; then ByDevice, by the
// device key's id.
type StaticScorer struct {
	ByRef    map[string]int
	ByDevice map[crypto.KeyID]int
	Next     Scorer
}

// Score returns the pinned score, or Next's.
func (s StaticScorer) Score(ctx context.Context, a Applicant) (int, error) {
	if v, ok := s.ByRef[a.ExternalRef]; ok && a.ExternalRef != "" {
		return v, nil
	}
	if v, ok := s.ByDevice[a.Device.ID()]; ok {
		return v, nil
	}
	if s.Next == nil {
		return HashScorer{}.Score(ctx, a)
	}
	return s.Next.Score(ctx, a)
}

// BandLimits are one score band's limits in one currency, in minor units.
type BandLimits struct {
	LimitMinor int64 // per-flight spending limit
	TxCapMinor int64 // per-transaction cap
}

// Band applies to scores from MinScore up to the next band's MinScore.
type Band struct {
	MinScore int
	Limits   map[protocol.Currency]BandLimits
}

// LimitPolicy maps a credit score to the limits written into a credential.
// Bands are in ascending MinScore order; a score below the first band is not
// eligible. Every band lists the same currencies; a flight in any other
// currency cannot be registered.
type LimitPolicy struct {
	Bands []Band
}

// DefaultLimitPolicy returns the documented default policy. The figures are
// round numbers of similar value per currency, not exchange rates:
//
//	score      EUR  limit/cap   USD        GBP        CHF        JPY
//	550–649    100.00 / 40.00   100 / 40   90 / 35    100 / 40   15 000 / 6 000
//	650–749    250.00 / 100.00  250 / 100  220 / 90   250 / 100  40 000 / 15 000
//	750–850    600.00 / 250.00  600 / 250  520 / 220  600 / 250  100 000 / 40 000
func DefaultLimitPolicy() LimitPolicy {
	type row struct{ eur, usd, gbp, chf, jpy [2]int64 }
	rows := []struct {
		min int
		row
	}{
		{550, row{[2]int64{100_00, 40_00}, [2]int64{100_00, 40_00}, [2]int64{90_00, 35_00}, [2]int64{100_00, 40_00}, [2]int64{15_000, 6_000}}},
		{650, row{[2]int64{250_00, 100_00}, [2]int64{250_00, 100_00}, [2]int64{220_00, 90_00}, [2]int64{250_00, 100_00}, [2]int64{40_000, 15_000}}},
		{750, row{[2]int64{600_00, 250_00}, [2]int64{600_00, 250_00}, [2]int64{520_00, 220_00}, [2]int64{600_00, 250_00}, [2]int64{100_000, 40_000}}},
	}
	p := LimitPolicy{}
	for _, r := range rows {
		bl := func(v [2]int64) BandLimits { return BandLimits{LimitMinor: v[0], TxCapMinor: v[1]} }
		p.Bands = append(p.Bands, Band{MinScore: r.min, Limits: map[protocol.Currency]BandLimits{
			"EUR": bl(r.eur), "USD": bl(r.usd), "GBP": bl(r.gbp), "CHF": bl(r.chf), "JPY": bl(r.jpy),
		}})
	}
	return p
}

// Validate checks the policy: at least one band, ascending scores within
// [MinScore, MaxScore], the same supported currencies in every band, and
// 0 < cap <= limit <= protocol.MaxMinor.
func (p LimitPolicy) Validate() error {
	if len(p.Bands) == 0 {
		return fmt.Errorf("limit policy: no bands")
	}
	first := p.Bands[0]
	for i, b := range p.Bands {
		if b.MinScore < MinScore || b.MinScore > MaxScore {
			return fmt.Errorf("limit policy: band %d starts at %d, outside %d..%d", i, b.MinScore, MinScore, MaxScore)
		}
		if i > 0 && b.MinScore <= p.Bands[i-1].MinScore {
			return fmt.Errorf("limit policy: band %d starts at %d, not above band %d", i, b.MinScore, i-1)
		}
		if len(b.Limits) == 0 || len(b.Limits) != len(first.Limits) {
			return fmt.Errorf("limit policy: band %d lists %d currencies, band 0 lists %d", i, len(b.Limits), len(first.Limits))
		}
		for c, l := range b.Limits {
			if _, ok := first.Limits[c]; !ok {
				return fmt.Errorf("limit policy: band %d lists %s, band 0 does not", i, c)
			}
			if err := c.Validate(); err != nil {
				return fmt.Errorf("limit policy: band %d: %w", i, err)
			}
			if l.TxCapMinor <= 0 || l.TxCapMinor > l.LimitMinor || l.LimitMinor > protocol.MaxMinor {
				return fmt.Errorf("limit policy: band %d %s: want 0 < cap %d <= limit %d <= %d", i, c, l.TxCapMinor, l.LimitMinor, protocol.MaxMinor)
			}
		}
	}
	return nil
}

// Threshold is the lowest eligible score: the first band's MinScore.
func (p LimitPolicy) Threshold() int { return p.Bands[0].MinScore }

// Currencies lists the currencies the policy has limits for, sorted.
func (p LimitPolicy) Currencies() []protocol.Currency {
	return slices.Sorted(maps.Keys(p.Bands[0].Limits))
}

// Supports returns an invalid-request error unless the policy has limits in c.
func (p LimitPolicy) Supports(c protocol.Currency) error {
	if _, ok := p.Bands[0].Limits[c]; ok {
		return nil
	}
	names := make([]string, 0, len(p.Bands[0].Limits))
	for _, s := range p.Currencies() {
		names = append(names, string(s))
	}
	return invalid("currency %q has no limit table (supported: %s)", string(c), strings.Join(names, ", "))
}

// Limits returns the per-flight limit and per-transaction cap for score in
// currency c. A score below the threshold is refused with an ineligible
// error naming the score and the threshold; a currency without a table with
// an invalid-request error.
func (p LimitPolicy) Limits(score int, c protocol.Currency) (limit, txCap protocol.Money, err error) {
	if err := p.Supports(c); err != nil {
		return protocol.Money{}, protocol.Money{}, err
	}
	if score < p.Threshold() {
		return protocol.Money{}, protocol.Money{}, Errorf(CodeIneligible,
			"credit score %d is below the eligibility threshold of %d", score, p.Threshold())
	}
	band := p.Bands[0]
	for _, b := range p.Bands {
		if score >= b.MinScore {
			band = b
		}
	}
	l := band.Limits[c]
	return protocol.M(l.LimitMinor, c), protocol.M(l.TxCapMinor, c), nil
}
