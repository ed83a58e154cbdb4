package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/natsvc"
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

// TestServeNATSCallout runs ground serve on a cluster authorized by its auth
// callout: an aircraft registered through the API connects to any node
// with its nkey, and heartbeats reach it; an unregistered nkey is refused.
func TestServeNATSCallout(t *testing.T) {
	dir := t.TempDir()
	nkFile, calloutFile := filepath.Join(dir, "ground-nats.nk"), filepath.Join(dir, "nats-callout.nk")
	groundKey, _, err := natsvc.LoadOrCreateNKey(nkFile, nkeys.PrefixByteUser)
	if err != nil {
		t.Fatal(err)
	}
	issuer, _, err := natsvc.LoadOrCreateNKey(calloutFile, nkeys.PrefixByteAccount)
	if err != nil {
		t.Fatal(err)
	}
	groundPub, _ := groundKey.PublicKey()
	issuerPub, _ := issuer.PublicKey()
	c, err := natscluster.Start(t.Context(), natscluster.Config{Dir: filepath.Join(dir, "nats"), Logger: quiet,
		Callout: &natscluster.Callout{GroundNKey: groundPub, Issuer: issuerPub}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var stdout, stderr bytes.Buffer
	cfg, err := parseServeFlags([]string{"-data-dir", filepath.Join(dir, "ground"), "-http", "127.0.0.1:0", "-nats-url", c.URL(),
		"-nats-replicas", "3", "-nats-nkey", nkFile, "-nats-callout-key", calloutFile, "-heartbeat", "50ms"}, &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger, cfg.BackOfficeToken = quiet, "nats-cluster-test-token"
	m := &app.Main{Config: cfg}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ak, _ := crypto.GenerateKey(crypto.Aircraft, nil)
	nk, _ := nkeys.CreateUser()
	nkPub, _ := nk.PublicKey()
	client := &api.Client{BaseURL: "http://" + m.HTTPAddr(), Token: "nats-cluster-test-token"}
	if _, err := client.RegisterAircraft(t.Context(), "D-AIUA", ak.Public(), nkPub); err != nil {
		t.Fatal(err)
	}
	stranger, _ := nkeys.CreateUser()
	strangerPub, _ := stranger.PublicKey()
	if nc, err := nats.Connect(c.URLs()[0], nats.Nkey(strangerPub, stranger.Sign), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Fatal("an unregistered nkey connected")
	}
	nc, err := nats.Connect(c.URLs()[2], nats.Nkey(nkPub, nk.Sign), nats.CustomInboxPrefix(protocol.InboxPrefix("D-AIUA")))
	if err != nil {
		t.Fatalf("registered aircraft refused: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(protocol.HeartbeatSubject)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.NextMsg(10 * time.Second); err != nil {
		t.Fatalf("no heartbeat through node n3: %v", err)
	}
}

func TestServeNATSReplicasRefused(t *testing.T) {
	for name, tc := range map[string]struct {
		cfg  app.Config
		want string
	}{
		"ErrEmbedded":           {app.Config{NATSReplicas: 3}, "need an external JetStream cluster"},
		"ErrOutOfRange":         {app.Config{NATSReplicas: 6, NATSURL: "nats://127.0.0.1:1"}, "want 1 to 5"},
		"ErrNKeyEmbedded":       {app.Config{NATSNKeyFile: "ground.nk"}, "for an external NATS"},
		"ErrCalloutWithoutNKey": {app.Config{NATSCalloutKeyFile: "callout.nk", NATSURL: "nats://127.0.0.1:1"}, "needs ground's own NATS nkey"},
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

// TestServeNATSKeysBeforeClusterSetUp starts ground with both NATS key
// files on a cluster that does not know ground's nkey yet: ground is
// refused, says what the servers must list, and has made both keys, whose
// public keys the operator puts in the servers' configuration.
func TestServeNATSKeysBeforeClusterSetUp(t *testing.T) {
	dir := t.TempDir()
	other, _ := nkeys.CreateUser()
	otherPub, _ := other.PublicKey()
	issuer, _ := nkeys.CreateAccount()
	issuerPub, _ := issuer.PublicKey()
	c, err := natscluster.Start(t.Context(), natscluster.Config{Dir: filepath.Join(dir, "nats"), Logger: quiet,
		Callout: &natscluster.Callout{GroundNKey: otherPub, Issuer: issuerPub}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nkFile, calloutFile := filepath.Join(dir, "ground-nats.nk"), filepath.Join(dir, "nats-callout.nk")
	m := &app.Main{Config: app.Config{DataDir: filepath.Join(dir, "ground"), HTTPAddr: "127.0.0.1:0", NATSURL: c.URL(),
		NATSNKeyFile: nkFile, NATSCalloutKeyFile: calloutFile, Logger: quiet, BackOfficeToken: "nats-cluster-test-token"}}
	err = m.Run(t.Context())
	m.Close()
	if err == nil || !strings.Contains(err.Error(), nkFile+".pub") {
		t.Fatalf("Run: %v, want a refusal naming %s.pub", err, nkFile)
	}
	for _, f := range []string{nkFile, nkFile + ".pub", calloutFile, calloutFile + ".pub"} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("key file: %v", err)
		}
	}
}
