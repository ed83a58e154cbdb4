package ratelimit

import (
	"testing"
	"time"
)

// TestWarnRefusal: warnings about refusals come warnBurst at once, then one
// an interval, and the one let through says how many were held back.
func TestWarnRefusal(t *testing.T) {
	l := newSignIns(t, SignInConfig{})
	for i := range warnBurst {
		if warn, unlogged := l.WarnRefusal(now); !warn || unlogged != 0 {
			t.Fatalf("refusal %d of the burst: warn %v unlogged %d, want true 0", i+1, warn, unlogged)
		}
	}
	for i := range 1000 {
		if warn, _ := l.WarnRefusal(now); warn {
			t.Fatalf("refusal %d past the burst at the same instant warned of", warnBurst+i+1)
		}
	}
	interval := time.Minute / warnPerMinute
	if warn, _ := l.WarnRefusal(now.Add(interval - time.Nanosecond)); warn {
		t.Error("warned of a nanosecond before the interval")
	}
	if warn, unlogged := l.WarnRefusal(now.Add(interval)); !warn || unlogged != 1001 {
		t.Errorf("an interval later: warn %v unlogged %d, want true 1001", warn, unlogged)
	}
	if warn, unlogged := l.WarnRefusal(now.Add(2 * interval)); !warn || unlogged != 0 {
		t.Errorf("another interval later: warn %v unlogged %d, want true 0", warn, unlogged)
	}
}
