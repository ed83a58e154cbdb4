package sim

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/simulator/harness"
)

// TestMain lets the test binary be the cabin server child that --crash
// kills, as the simulator's main is when it flies for real.
func TestMain(m *testing.M) {
	if os.Getenv(harness.CabinChildEnv) == "1" {
		os.Exit(harness.RunCabinChild())
	}
	os.Exit(m.Run())
}

// TestSmallFlightEverythingGoesWrong flies a small flight with fraud,
// crashes, a flaky link and card declines, twice with the same seed (at
// the same time, on two separate grounds): both runs must keep every
// invariant and count the same totals, however their goroutines and
// outages interleaved.
func TestSmallFlightEverythingGoesWrong(t *testing.T) {
	if testing.Short() {
		t.Skip("flies two flights end to end (about 30 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := DefaultConfig()
	cfg.Seed, cfg.Passengers = 7, 20
	cfg.Fraud, cfg.Crash, cfg.Outages, cfg.DeclineRate = true, true, true, 0.1
	var reps [2]*Report
	var errs [2]error
	var wg sync.WaitGroup
	for i := range reps {
		c := cfg
		c.Dir = t.TempDir()
		wg.Go(func() { reps[i], errs[i] = Run(ctx, c) })
	}
	wg.Wait()
	for i, r := range reps {
		if errs[i] != nil {
			t.Fatalf("run %d: %v", i, errs[i])
		}
		if !r.OK {
			t.Errorf("run %d: invariants %+v, violations %v", i, r.Invariants, r.Violations)
		}
		if r.Totals.FraudAttempts == 0 || r.Totals.FraudAccepted != 0 {
			t.Errorf("run %d: fraud attempts %d, accepted %d", i, r.Totals.FraudAttempts, r.Totals.FraudAccepted)
		}
		if r.Totals.Approved == 0 || r.Totals.Voided == 0 {
			t.Errorf("run %d: %d approved, %d voided: want some of each", i, r.Totals.Approved, r.Totals.Voided)
		}
		if r.Flights[0].Crashes == 0 {
			t.Errorf("run %d: no crash happened", i)
		}
	}
	if got, want := reps[1].Totals, reps[0].Totals; got != want {
		t.Errorf("same seed, different totals:\n%+v\n%+v", got, want)
	}
	a, b := reps[0].Flights[0], reps[1].Flights[0]
	if a.ApprovedMinor != b.ApprovedMinor || a.SettledMinor != b.SettledMinor || a.CollectionsMinor != b.CollectionsMinor {
		t.Errorf("same seed, different amounts: %d/%d/%d and %d/%d/%d",
			a.ApprovedMinor, a.SettledMinor, a.CollectionsMinor, b.ApprovedMinor, b.SettledMinor, b.CollectionsMinor)
	}
}

// TestPlanIsSeeded checks that the passenger mix is a function of the
// seed alone.
func TestPlanIsSeeded(t *testing.T) {
	cfg := DefaultConfig()
	a, b := planPassengers(cfg, 0, 2026), planPassengers(cfg, 0, 2026)
	cfg.Seed++
	c := planPassengers(cfg, 0, 2026)
	same := func(x, y []*passenger) bool {
		for i := range x {
			if x[i].kind != y[i].kind || x[i].score != y[i].score || x[i].funding != y[i].funding || len(x[i].baskets[0]) != len(y[i].baskets[0]) {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatal("the same seed planned different passengers")
	}
	if same(a, c) {
		t.Fatal("different seeds planned the same passengers")
	}
	kinds := map[paxKind]int{}
	for _, p := range a {
		kinds[p.kind]++
	}
	if kinds[paxRefused] == 0 || kinds[paxArrears] == 0 || kinds[paxLate] == 0 || kinds[paxNone] == 0 {
		t.Fatalf("passenger mix %v: want some of every kind", kinds)
	}
}
