package ratelimit

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func newSignIns(t *testing.T, cfg SignInConfig) *SignInLimit {
	t.Helper()
	l, err := NewSignInLimit(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestSignInLimitBoundsAddresses: however many addresses fail, the table
// holds at most its bound, and the one forgotten is the least restricted.
func TestSignInLimitBoundsAddresses(t *testing.T) {
	l := newSignIns(t, SignInConfig{PerAddressPerMinute: 2, GlobalPerMinute: 1_000_000, MaxAddresses: 100})
	for i := range 10_000 {
		at := now.Add(time.Duration(i) * time.Millisecond)
		if limit, _ := l.Attempt(DoorAPI, fmt.Sprintf("10.0.%d.%d", i/256, i%256), false, at); limit != NotRefused {
			t.Fatalf("address %d refused its first failure (limit %d)", i, limit)
		}
		if n := l.addrs.clients(); n > 100 {
			t.Fatalf("after %d addresses the table holds %d, want at most 100", i+1, n)
		}
	}
	busy := now.Add(10 * time.Second)
	l.Attempt(DoorAPI, "192.0.2.1", false, busy)
	l.Attempt(DoorAPI, "192.0.2.1", false, busy) // limited now, and the furthest from whole
	for i := range 200 {
		l.Attempt(DoorAPI, fmt.Sprintf("198.51.100.%d", i), false, busy)
	}
	if limit, _ := l.Attempt(DoorAPI, "192.0.2.1", false, busy); limit != RefusedAddress {
		t.Errorf("the most restricted address was forgotten: limit %d, want %d", limit, RefusedAddress)
	}
}

// TestSignInLimitRetryIsExact: an attempt made when the retry says is
// taken; one made a moment earlier is not, whatever its token.
func TestSignInLimitRetryIsExact(t *testing.T) {
	l := newSignIns(t, SignInConfig{PerAddressPerMinute: 10, GlobalPerMinute: 1000, MaxAddresses: 10})
	for range 10 {
		l.Attempt(DoorBackOffice, "a", false, now)
	}
	limit, retry := l.Attempt(DoorBackOffice, "a", false, now)
	if limit != RefusedAddress || retry != 6*time.Second {
		t.Fatalf("after the burst: limit %d retry %v, want %d 6s", limit, retry, RefusedAddress)
	}
	if limit, _ := l.Attempt(DoorAPI, "a", true, now.Add(retry-time.Nanosecond)); limit != RefusedAddress {
		t.Error("the right token taken before the retry time")
	}
	if limit, _ := l.Attempt(DoorAPI, "a", false, now.Add(retry)); limit != NotRefused {
		t.Error("refused at the retry time")
	}
}

// TestSignInLimitRightNotCounted: right tokens count against neither
// limit, however many, also at once; an address that presented one is held
// to its own limit only, for knownFor.
func TestSignInLimitRightNotCounted(t *testing.T) {
	l := newSignIns(t, SignInConfig{PerAddressPerMinute: 2, GlobalPerMinute: 3, MaxAddresses: 10})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			if limit, _ := l.Attempt(DoorAPI, "a", true, now); limit != NotRefused {
				t.Errorf("a right token refused (limit %d)", limit)
			}
		})
	}
	wg.Wait()
	l.Attempt(DoorAPI, "b", false, now)
	l.Attempt(DoorBackOffice, "b", false, now)
	l.Attempt(DoorAPI, "c", false, now)
	if limit, _ := l.Attempt(DoorBackOffice, "d", false, now); limit != RefusedGlobal {
		t.Errorf("fourth failure in all: limit %d, want %d", limit, RefusedGlobal)
	}
	if limit, _ := l.Attempt(DoorBackOffice, "d", true, now); limit != RefusedGlobal {
		t.Errorf("the right token from d past the global limit: limit %d, want %d (not looked at)", limit, RefusedGlobal)
	}
	if limit, _ := l.Attempt(DoorAPI, "b", false, now); limit != RefusedAddress {
		t.Errorf("third failure from b: limit %d, want %d", limit, RefusedAddress)
	}
	for i, want := range []Refusal{NotRefused, NotRefused, RefusedAddress} {
		if limit, _ := l.Attempt(DoorAPI, "a", false, now); limit != want {
			t.Errorf("failure %d from a, which signed in: limit %d, want %d", i+1, limit, want)
		}
	}
	later := now.Add(knownFor)
	for _, c := range []string{"e", "f", "g"} {
		l.Attempt(DoorAPI, c, false, later)
	}
	if limit, _ := l.Attempt(DoorAPI, "a", false, later); limit != RefusedGlobal {
		t.Errorf("a, its sign-in %v old: limit %d, want %d", knownFor, limit, RefusedGlobal)
	}
}

// TestSignInLimitBoundsKnown: the addresses that signed in are bounded too,
// the one that signed in longest ago forgotten first.
func TestSignInLimitBoundsKnown(t *testing.T) {
	l := newSignIns(t, SignInConfig{})
	for i := range 1000 {
		l.Attempt(DoorBackOffice, fmt.Sprintf("10.0.%d.%d", i/256, i%256), true, now.Add(time.Duration(i)*time.Second))
		if n := len(l.known); n > maxKnown {
			t.Fatalf("after %d sign-ins %d addresses known, want at most %d", i+1, n, maxKnown)
		}
	}
	if _, ok := l.known["10.0.0.0"]; ok {
		t.Error("the first address is still known")
	}
	if _, ok := l.known["10.0.3.231"]; !ok {
		t.Error("the last address is not known")
	}
}

// TestSignInLimitCounter: every attempt is counted by door and outcome on
// the registry given, every series there from the start.
func TestSignInLimitCounter(t *testing.T) {
	reg := prometheus.NewRegistry()
	l := newSignIns(t, SignInConfig{PerAddressPerMinute: 1, Metrics: reg})
	l.Attempt(DoorAPI, "a", true, now)
	l.Attempt(DoorAPI, "b", false, now)
	l.Attempt(DoorBackOffice, "b", false, now)
	got := map[string]float64{}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "airtab_ground_backoffice_signins_total" {
			t.Errorf("unexpected metric %s", f.GetName())
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			got[labels["door"]+" "+labels["outcome"]] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{
		"api limited_address": 0, "api limited_global": 0, "api signed_in": 1, "api wrong_token": 1,
		"backoffice limited_address": 1, "backoffice limited_global": 0, "backoffice signed_in": 0, "backoffice wrong_token": 0,
	}
	if len(got) != len(want) {
		t.Errorf("%d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	if _, err := NewSignInLimit(SignInConfig{Metrics: reg}); err == nil {
		t.Error("a second limit registered on the same registry: nil error, want the duplicate refused")
	}
}
