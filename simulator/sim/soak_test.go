package sim

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestSoakOneRun: a soak shorter than a run flies exactly one run, and its
// hour's totals are that run's.
func TestSoakOneRun(t *testing.T) {
	if testing.Short() {
		t.Skip("flies a flight end to end")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := DefaultConfig()
	cfg.Seed, cfg.Passengers, cfg.DeclineRate = 11, 20, 0.2
	var progress strings.Builder
	cfg.Progress = &progress
	rep, err := Soak(ctx, cfg, time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(rep.Runs), 1; got != want {
		t.Fatalf("runs = %d, want %d", got, want)
	}
	run := rep.Runs[0]
	if !rep.OK || !run.OK {
		t.Fatalf("soak not OK: %+v", run)
	}
	if len(rep.Hours) != 1 {
		t.Fatalf("hours = %+v, want one", rep.Hours)
	}
	h, tot := rep.Hours[0], run.Totals
	if h.Runs != 1 || h.Approved != tot.Approved || h.Charged != tot.Settled || h.Collections != tot.Collections ||
		h.Declined != tot.Declined || h.InvariantsHeld != 1 || h.InvariantsBroken != 0 {
		t.Errorf("hour 0 = %+v, want the run's totals %+v", h, tot)
	}
	if h.Approved == 0 || h.Collections == 0 {
		t.Errorf("hour 0 = %+v: want approvals and, at a 20%% decline rate, collections", h)
	}
	if rep.Total.Approved != h.Approved || rep.Total.Hour != -1 {
		t.Errorf("total = %+v, want hour 0's figures", rep.Total)
	}
	if !strings.Contains(progress.String(), "run 1, seed 11") || !strings.Contains(progress.String(), "hour 0 so far") {
		t.Errorf("progress:\n%s\nwant a line for run 1 and for hour 0", progress.String())
	}
}

func TestSoakBadDuration(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second, MaxSoak + time.Hour} {
		if _, err := Soak(context.Background(), DefaultConfig(), d); err == nil || !strings.Contains(err.Error(), "soak duration") {
			t.Errorf("Soak(%s) = %v, want an error naming the soak duration", d, err)
		}
	}
}
