package ratelimit

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"
	"time"
)

// BenchmarkMakeRoom is the pause a full table of busy clients costs the
// call that finds it full: one makeRoom over a table of 1<<20, each client
// with a tat of its own in the future.
func BenchmarkMakeRoom(b *testing.B) {
	const clients = 1 << 20
	l := New(time.Minute, 60, 10, clients)
	next := 0
	fill := func() { // to full, each new client with its own tat
		for len(l.tat) < clients {
			l.tat[strconv.Itoa(next)] = now.Add(time.Duration(next*7919%clients+1) * time.Millisecond)
			next++
		}
	}
	fill()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		fill() // what the last round dropped
		b.StartTimer()
		l.makeRoom(now)
	}
}

// TestNth: the selection finds what sorting would put at each index, with
// duplicates, runs and a single value.
func TestNth(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 10, 100, 1000} {
		for _, spread := range []int{1, 3, n} {
			a := make([]int64, n)
			for i := range a {
				a[i] = int64(rng.IntN(spread))
			}
			sorted := slices.Sorted(slices.Values(a))
			for k := range n {
				if got := nth(slices.Clone(a), k); got != sorted[k] {
					t.Fatalf("n %d spread %d: nth(%d) = %d, want %d", n, spread, k, got, sorted[k])
				}
			}
		}
	}
}
