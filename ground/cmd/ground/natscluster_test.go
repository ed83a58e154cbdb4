package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/natsvc/natscluster"
	"github.com/airtab/airtab/protocol"
)

// TestServeNATSCluster runs ground serve against a three-node cluster
// given as a list of URLs, with --nats-replicas 3.
func TestServeNATSCluster(t *testing.T) {
	c, err := natscluster.Start(t.Context(), natscluster.Config{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var stdout, stderr bytes.Buffer
	cfg, err := parseServeFlags([]string{"-data-dir", t.TempDir(), "-http", "127.0.0.1:0", "-nats-url", c.URL(), "-nats-replicas", "3"}, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.NATSReplicas, 3; got != want {
		t.Fatalf("NATSReplicas = %d, want %d", got, want)
	}
	cfg.Logger, cfg.BackOfficeToken = quiet, "nats-cluster-test-token"
	m := &app.Main{Config: cfg}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	nc, err := nats.Connect(c.URLs()[2])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	for _, name := range []string{protocol.StreamInvoices, protocol.StreamReceipts} {
		s, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := s.CachedInfo().Config.Replicas, 3; got != want {
			t.Errorf("%s replicas = %d, want %d", name, got, want)
		}
	}
}

func TestServeNATSReplicasRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  app.Config
		want string
	}{
		"ErrEmbedded":   {app.Config{NATSReplicas: 3}, "need an external JetStream cluster"},
		"ErrOutOfRange": {app.Config{NATSReplicas: 6, NATSURL: "nats://127.0.0.1:1"}, "want 1 to 5"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.cfg.DataDir, tc.cfg.HTTPAddr, tc.cfg.NATSListen = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
			tc.cfg.Logger, tc.cfg.BackOfficeToken = quiet, "nats-cluster-test-token"
			m := &app.Main{Config: tc.cfg}
			err := m.Run(context.Background())
			m.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}
