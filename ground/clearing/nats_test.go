package clearing

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go/jetstream"
)

func TestEnsureStreams(t *testing.T) {
	ctx := context.Background()
	t.Run("CreateThenIdempotent", func(t *testing.T) {
		_, _, js := clearingtest.StartJetStream(t)
		for range 2 {
			if err := EnsureStreams(ctx, js); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range []string{protocol.StreamInvoices, protocol.StreamReceipts} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.CachedInfo().Config.Storage; got != jetstream.FileStorage {
				t.Errorf("%s storage = %v", name, got)
			}
		}
	})
	t.Run("ExistingCompatible", func(t *testing.T) {
		_, _, js := clearingtest.StartJetStream(t)
		// Created by someone else: a wider invoice subject, no close
		// subject, another age limit.
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: protocol.StreamInvoices, Subjects: []string{"airtab.v1.invoice.>"}, Storage: jetstream.FileStorage, MaxAge: time.Hour,
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := EnsureStreams(ctx, js); err != nil {
			t.Fatal(err)
		}
		s, err := js.Stream(ctx, protocol.StreamInvoices)
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		if want := []string{"airtab.v1.invoice.>", protocol.AllCloses}; !slices.Equal(cfg.Subjects, want) {
			t.Errorf("subjects = %v, want %v", cfg.Subjects, want)
		}
		if cfg.MaxAge != time.Hour {
			t.Errorf("MaxAge = %v: an existing setting was changed", cfg.MaxAge)
		}
	})
	t.Run("MemoryStorageRefused", func(t *testing.T) {
		_, _, js := clearingtest.StartJetStream(t)
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: protocol.StreamReceipts, Subjects: []string{protocol.AllReceipts}, Storage: jetstream.MemoryStorage})
		if err != nil {
			t.Fatal(err)
		}
		if err := EnsureStreams(ctx, js); err == nil {
			t.Fatal("EnsureStreams accepted a memory-backed receipt stream")
		}
	})
}

func TestSubjectCovers(t *testing.T) {
	for _, tc := range []struct {
		pattern, subj string
		want          bool
	}{
		{"a.b.*.*", "a.b.*.*", true},
		{"a.>", "a.b.*.*", true},
		{"a.b.>", "a.b.*.*", true},
		{"a.*.*.*", "a.b.*.*", true},
		{"a.b.*", "a.b.*.*", false},
		{"a.b.c.*", "a.b.*.*", false},
		{"a.b.*.*", "a.b.>", false},
		{"a.c.>", "a.b.*.*", false},
	} {
		if got := subjectCovers(tc.pattern, tc.subj); got != tc.want {
			t.Errorf("subjectCovers(%q, %q) = %v, want %v", tc.pattern, tc.subj, got, tc.want)
		}
	}
}
