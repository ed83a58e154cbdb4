package natscluster_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtab/airtab/ground/natsvc/natscluster"
)

// TestKillStreamLeader runs three nodes, writes to an R3 stream, kills the
// stream's leader, and checks another node takes over with every message,
// and that the killed node rejoins.
// hangGuard bounds the test's waits: only a hung test waits this long, so
// it is generous for a loaded machine running -race.
const hangGuard = 2 * time.Minute

// retryJS calls f with a context of 20 s (not the client's default of 5 s,
// which a leader election under load can take) until it returns anything
// but a request that went unanswered (a leader that lost its leadership
// drops the requests it had; clients ask again), or hangGuard passes.
func retryJS(ctx context.Context, f func(ctx context.Context) error) error {
	deadline := time.Now().Add(hangGuard)
	for {
		actx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := f(actx)
		cancel()
		unanswered := errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders)
		if !unanswered || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
	}
}

func TestKillStreamLeader(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*hangGuard)
	defer cancel()
	c, err := natscluster.Start(ctx, natscluster.Config{Dir: t.TempDir(), ReadyTimeout: hangGuard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if got, want := len(c.URLs()), 3; got != want {
		t.Fatalf("URLs = %d, want %d", got, want)
	}
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.Timeout(hangGuard))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := retryJS(ctx, func(ctx context.Context) error {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}, Replicas: 3, Storage: jetstream.FileStorage})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return nil // an earlier attempt made it
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	publish := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			// Sent again after no answer: the message id makes it once.
			if err := retryJS(ctx, func(ctx context.Context) error {
				_, err := js.Publish(ctx, "t.x", fmt.Appendf(nil, "%d", i), jetstream.WithMsgID(fmt.Sprint(i)), jetstream.WithRetryAttempts(50))
				return err
			}); err != nil {
				t.Fatalf("publish %d: %v", i, err)
			}
		}
	}
	publish(0, 50)
	old, err := c.WaitStreamLeader(ctx, "T", -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Kill(old); err != nil {
		t.Fatal(err)
	}
	if c.Server(old) != nil {
		t.Fatalf("node %d still listed after Kill", old+1)
	}
	next, err := c.WaitStreamLeader(ctx, "T", old)
	if err != nil {
		t.Fatal(err)
	}
	if next == old {
		t.Fatalf("leader after kill = node %d, the killed one", next+1)
	}
	publish(50, 100)
	waitMsgs(t, ctx, js, 100)
	if err := c.Restart(old); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	waitMsgs(t, ctx, js, 100)
}

// waitMsgs polls until stream T holds want messages.
func waitMsgs(t *testing.T, ctx context.Context, js jetstream.JetStream, want uint64) {
	t.Helper()
	var got uint64
	deadline := time.Now().Add(hangGuard)
	for {
		s, err := js.Stream(ctx, "T")
		if err == nil {
			got = s.CachedInfo().State.Msgs
			if got == want {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream messages = %d (%v), want %d", got, err, want)
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestStartRefusesBadConfig(t *testing.T) {
	for name, cfg := range map[string]natscluster.Config{
		"ErrNoDir":        {},
		"ErrTooManyNodes": {Dir: t.TempDir(), Nodes: natscluster.MaxNodes + 1},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := natscluster.Start(context.Background(), cfg); err == nil {
				t.Fatal("Start accepted the config")
			}
		})
	}
}
