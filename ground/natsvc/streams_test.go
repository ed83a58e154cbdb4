package natsvc

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtab/airtab/ground/natsvc/natscluster"
	"github.com/airtab/airtab/protocol"
)

// jsAttempt bounds one JetStream request in the cluster tests, which are
// retried until hangGuard: under load a JetStream meta leader can lose its
// leadership, and a request it had is then never answered (clients ask
// again).
const jsAttempt = 20 * time.Second

// retryJS calls f with a context of jsAttempt until it returns anything but
// a request that went unanswered, or hangGuard passes.
func retryJS(ctx context.Context, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(hangGuard)
	for {
		actx, cancel := context.WithTimeout(ctx, jsAttempt)
		err := f(actx)
		cancel()
		unanswered := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
		if !unanswered || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
	}
}

func TestEnsureStreamsReplicas(t *testing.T) {
	ctx := t.Context()
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
	ensure := func(cfg Streams) error {
		return retryJS(ctx, func(ctx context.Context) error { return EnsureStreams(ctx, js, cfg) })
	}
	replicas := func(t *testing.T) map[string]int {
		t.Helper()
		got := map[string]int{}
		for _, name := range []string{protocol.StreamInvoices, protocol.StreamReceipts} {
			err := retryJS(ctx, func(ctx context.Context) error {
				s, err := js.Stream(ctx, name)
				if err == nil {
					got[name] = s.CachedInfo().Config.Replicas
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		return got
	}
	t.Run("CreateR1", func(t *testing.T) {
		if err := ensure(Streams{Logger: quiet}); err != nil {
			t.Fatal(err)
		}
		for name, n := range replicas(t) {
			if n != 1 {
				t.Errorf("%s replicas = %d, want 1", name, n)
			}
		}
	})
	t.Run("UpdateR1ToR3", func(t *testing.T) {
		if err := ensure(Streams{Replicas: 3, Logger: quiet}); err != nil {
			t.Fatal(err)
		}
		for name, n := range replicas(t) {
			if n != 3 {
				t.Errorf("%s replicas = %d, want 3", name, n)
			}
		}
	})
	t.Run("AgainR3", func(t *testing.T) {
		if err := ensure(Streams{Replicas: 3, Logger: quiet}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ErrMoreReplicasThanNodes", func(t *testing.T) {
		err := ensure(Streams{Replicas: 5, Logger: quiet})
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
