package app_test

import (
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/clearing/clearingtest"
)

// records keeps the warnings logged, message and attributes.
type records struct {
	mu   sync.Mutex
	warn []slog.Record
}

func (r *records) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.warn = append(r.warn, rec.Clone())
	r.mu.Unlock()
	return nil
}
func (r *records) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *records) WithGroup(string) slog.Handler      { return r }

// refusals returns the warnings about refused attempts at the token, and
// the sum of their "unlogged" attributes.
func (r *records) refusals() (lines int, unlogged int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.warn {
		if !strings.Contains(rec.Message, "too many wrong tokens") {
			continue
		}
		lines++
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "unlogged" {
				unlogged += a.Value.Int64()
			}
			return true
		})
	}
	return lines, unlogged
}

// TestSignInRefusalsLogBounded: a flood of attempts refused by the limit
// on wrong tokens, through either door, writes a bounded number of
// warnings (each refusal is still counted on /metrics), and a warning says
// how many refusals before it went unlogged, so none goes unaccounted.
func TestSignInRefusalsLogBounded(t *testing.T) {
	clk := clearingtest.NewClock(time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC))
	log := &records{}
	m := &app.Main{Config: app.Config{DataDir: filepath.Join(t.TempDir(), "ground"), HTTPAddr: "127.0.0.1:0",
		NATSListen: "127.0.0.1:0", BackOfficeToken: testToken, Clock: clk.Now, Logger: slog.New(log)}}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	base := "http://" + m.HTTPAddr()

	for range 10 {
		want(t, viaAPI, base, "127.0.0.3", wrongToken, http.StatusUnauthorized, "")
	}
	const flood = 150 // per door, all at one instant
	for range flood {
		want(t, viaAPI, base, "127.0.0.3", wrongToken, http.StatusTooManyRequests, "6")
		want(t, viaForm, base, "127.0.0.3", wrongToken, http.StatusTooManyRequests, "6")
	}
	lines, _ := log.refusals()
	if lines > 20 {
		t.Fatalf("%d refusals at one instant logged %d warnings, want at most 20", 2*flood, lines)
	}
	if lines == 0 {
		t.Fatal("no refusal logged")
	}
	clk.Advance(time.Minute) // the address's allowance whole again, and the log's
	for range 10 {
		want(t, viaAPI, base, "127.0.0.3", wrongToken, http.StatusUnauthorized, "")
	}
	want(t, viaForm, base, "127.0.0.3", wrongToken, http.StatusTooManyRequests, "6")
	after, unlogged := log.refusals()
	if after != lines+1 {
		t.Fatalf("a refusal a minute later: %d warnings in all, want %d", after, lines+1)
	}
	if got, want := int64(after)+unlogged, int64(2*flood+1); got != want {
		t.Errorf("warnings (%d) and the refusals they say went unlogged (%d) account for %d refusals, want %d", after, unlogged, got, want)
	}
}
