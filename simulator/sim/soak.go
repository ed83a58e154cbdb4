package sim

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The soak: runs of the configured flights one after another until a
// duration is up, each run a whole day (ground up, registration, the fleet
// flying, landing, replay, counting) with its own seed, so any failing run
// replays alone with --seed. The figures are summed by the hour of the soak
// in which each run ended.

// MaxSoak bounds a soak's duration.
const MaxSoak = 7 * 24 * time.Hour

// HourTotals are the runs that ended in one hour of a soak, added up.
type HourTotals struct {
	// Hour counts from 0, the first hour of the soak.
	Hour        int `json:"hour"`
	Runs        int `json:"runs"`
	Flights     int `json:"flights"`
	Approved    int `json:"approved"`
	Declined    int `json:"declined"`
	Charged     int `json:"charged"` // settled: the card captured or the wallet charged
	Collections int `json:"collections"`
	Voided      int `json:"voided"`
	// FraudRefused counts fraud attempts declined; FraudAccepted those
	// that were not (must be 0).
	FraudRefused  int `json:"fraud_refused"`
	FraudAccepted int `json:"fraud_accepted"`
	Lost          int `json:"lost"`
	DoubleCharged int `json:"double_charged"`
	// InvariantsHeld counts runs in which every invariant held;
	// InvariantsBroken those in which one did not.
	InvariantsHeld   int `json:"invariants_held"`
	InvariantsBroken int `json:"invariants_broken"`
}

// SoakRun is one run of a soak.
type SoakRun struct {
	Seed     uint64   `json:"seed"`
	Hour     int      `json:"hour"`
	Seconds  float64  `json:"seconds"`
	Totals   Totals   `json:"totals"`
	OK       bool     `json:"ok"`
	Problems []string `json:"violations,omitempty"`
}

// SoakReport is a whole soak.
type SoakReport struct {
	Options  Options       `json:"options"`
	Duration time.Duration `json:"duration_ns"`
	Seconds  float64       `json:"seconds"`
	Hours    []HourTotals  `json:"hours"`
	Total    HourTotals    `json:"total"` // Hour is -1
	Runs     []SoakRun     `json:"runs"`
	// OK: at least one run ended and every run kept every invariant.
	OK bool `json:"ok"`
}

// Soak flies runs of cfg one after another until d has passed since it
// began: the first run always, a run is never cut short, and none starts
// after d. Run k has seed
// cfg.Seed+k. A progress line follows each run. A run that breaks (a part
// would not start) ends the soak with an error; a broken invariant is
// counted and the soak goes on.
func Soak(ctx context.Context, cfg Config, d time.Duration) (*SoakReport, error) {
	if d <= 0 || d > MaxSoak {
		return nil, fmt.Errorf("soak duration %s: want more than 0 and at most %s", d, MaxSoak)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Dir != "" || cfg.Keep || cfg.QROut != "" {
		return nil, errors.New("a soak keeps no data directory and writes no QR codes: drop --keep and --qr-out")
	}
	if cfg.Postgres != "" {
		// Each run starts a ground on a database of its own.
		return nil, errors.New("a soak runs ground on SQLite, a new database each run: drop --postgres and --store postgres")
	}
	start := time.Now()
	rep := &SoakReport{Duration: d, Options: Options{Passengers: cfg.Passengers, Handhelds: cfg.Handhelds,
		Flights: cfg.Flights, Outages: cfg.Outages, Crash: cfg.Crash, Fraud: cfg.Fraud, DeclineRate: cfg.DeclineRate}}
	progress := func(format string, args ...any) {
		if cfg.Progress != nil {
			el := time.Since(start)
			fmt.Fprintf(cfg.Progress, "[soak %s of %s] "+format+"\n",
				append([]any{el.Round(time.Second), d}, args...)...)
		}
	}
	base := cfg.Seed
	for k := uint64(0); (k == 0 || time.Since(start) < d) && ctx.Err() == nil; k++ {
		c := cfg
		c.Seed = base + k
		c.Progress = nil // one line per run, not the run's own phases
		runStart := time.Now()
		r, err := Run(ctx, c)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return rep, fmt.Errorf("soak run %d (seed %d): %w", k+1, c.Seed, err)
		}
		hour := int(time.Since(start) / time.Hour)
		sr := SoakRun{Seed: c.Seed, Hour: hour, Seconds: time.Since(runStart).Seconds(), Totals: r.Totals, OK: r.OK, Problems: r.Violations}
		rep.Runs = append(rep.Runs, sr)
		h := rep.hour(hour)
		h.add(sr, len(r.Flights))
		verdict := "every invariant held"
		if !r.OK {
			verdict = fmt.Sprintf("INVARIANT BROKEN (replay with --seed %d): %v", c.Seed, r.Violations)
		}
		t := r.Totals
		progress("run %d, seed %d, %.0fs: %d approved, %d declined, %d charged, %d in collections, %d fraud refused; %s",
			k+1, c.Seed, sr.Seconds, t.Approved, t.Declined, t.Settled, t.Collections, t.FraudAttempts-t.FraudAccepted, verdict)
		progress("hour %d so far: %s", hour, h)
	}
	rep.Total.Hour = -1
	for _, sr := range rep.Runs {
		rep.Total.add(sr, cfg.Flights)
	}
	rep.Seconds = time.Since(start).Seconds()
	rep.OK = len(rep.Runs) > 0 && rep.Total.InvariantsBroken == 0
	return rep, nil
}

// hour returns the totals of hour h, adding it (and any hour before it
// without a run) at the end.
func (r *SoakReport) hour(h int) *HourTotals {
	for len(r.Hours) <= h {
		r.Hours = append(r.Hours, HourTotals{Hour: len(r.Hours)})
	}
	return &r.Hours[h]
}

func (h *HourTotals) add(r SoakRun, flights int) {
	t := r.Totals
	h.Runs++
	h.Flights += flights
	h.Approved += t.Approved
	h.Declined += t.Declined
	h.Charged += t.Settled
	h.Collections += t.Collections
	h.Voided += t.Voided
	h.FraudRefused += t.FraudAttempts - t.FraudAccepted
	h.FraudAccepted += t.FraudAccepted
	h.Lost += t.Lost
	h.DoubleCharged += t.DoubleCharged
	if r.OK {
		h.InvariantsHeld++
	} else {
		h.InvariantsBroken++
	}
}

// String is the totals on one line.
func (h HourTotals) String() string {
	return fmt.Sprintf("%d runs, %d flights: %d approved, %d declined, %d charged, %d in collections, %d voided, %d fraud refused (%d accepted); lost %d, double-charged %d; invariants held in %d of %d runs",
		h.Runs, h.Flights, h.Approved, h.Declined, h.Charged, h.Collections, h.Voided, h.FraudRefused, h.FraudAccepted,
		h.Lost, h.DoubleCharged, h.InvariantsHeld, h.Runs)
}
