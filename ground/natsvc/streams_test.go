package natsvc

import (
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtab/airtab/ground/natsvc/natscluster"
	"github.com/airtab/airtab/protocol"
)

func TestEnsureStreamsReplicas(t *testing.T) {
	// A deadline, so that each JetStream request waits for it rather than
	// for the client's default of 5 s: placing or growing a replicated
	// stream takes a cluster election, which a loaded machine running
	// -race can stretch past that.
	ctx, cancel := context.WithTimeout(t.Context(), hangGuard)
	defer cancel()
	c, err := natscluster.Start(ctx, natscluster.Config{Dir: t.TempDir(), ReadyTimeout: hangGuard, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nc, err := dial(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	replicas := func(t *testing.T) map[string]int {
		t.Helper()
		got := map[string]int{}
		for _, name := range []string{protocol.StreamInvoices, protocol.StreamReceipts} {
			s, err := js.Stream(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			got[name] = s.CachedInfo().Config.Replicas
		}
		return got
	}
	t.Run("CreateR1", func(t *testing.T) {
		if err := EnsureStreams(ctx, js, Streams{Logger: quiet}); err != nil {
			t.Fatal(err)
		}
		for name, n := range replicas(t) {
			if n != 1 {
				t.Errorf("%s replicas = %d, want 1", name, n)
			}
		}
	})
	t.Run("UpdateR1ToR3", func(t *testing.T) {
		if err := EnsureStreams(ctx, js, Streams{Replicas: 3, Logger: quiet}); err != nil {
			t.Fatal(err)
		}
		for name, n := range replicas(t) {
			if n != 3 {
				t.Errorf("%s replicas = %d, want 3", name, n)
			}
		}
	})
	t.Run("AgainR3", func(t *testing.T) {
		if err := EnsureStreams(ctx, js, Streams{Replicas: 3, Logger: quiet}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrMoreReplicasThanNodes", func(t *testing.T) {
		err := EnsureStreams(ctx, js, Streams{Replicas: 5, Logger: quiet})
		if err == nil || !strings.Contains(err.Error(), "needs a JetStream cluster of at least 5 servers") {
			t.Fatalf("err = %v, want the cluster size named", err)
		}
		for name, n := range replicas(t) {
			if n != 3 {
				t.Errorf("%s replicas = %d after the refusal, want 3 kept", name, n)
			}
		}
	})
	t.Run("ErrOutOfRange", func(t *testing.T) {
		for _, n := range []int{-1, MaxReplicas + 1} {
			if err := EnsureStreams(ctx, js, Streams{Replicas: n}); err == nil || !strings.Contains(err.Error(), "want 1 to 5") {
				t.Errorf("Replicas %d: err = %v, want the range named", n, err)
			}
		}
	})
}

func TestEnsureStreamsReplicasOnSingleServer(t *testing.T) {
	js, _ := jetstream.New(startNATS(t))
	err := EnsureStreams(t.Context(), js, Streams{Replicas: 3, Logger: quiet})
	if err == nil || !strings.Contains(err.Error(), "needs a JetStream cluster") {
		t.Fatalf("err = %v, want a refusal naming the cluster", err)
	}
}
