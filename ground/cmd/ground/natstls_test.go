package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/natsvc/natstest"
)

// TestMainNATSTLS runs ground with --nats-tls-cert and --nats-tls-key: its
// own in-process connection works (Run ensures the streams through it), and
// cabin servers must trust the certificate.
func TestMainNATSTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := natstest.WriteSelfSigned(t, dir)
	cfg, err := parseServeFlags([]string{"--data-dir", t.TempDir(), "--http", "127.0.0.1:0", "--nats-listen", "127.0.0.1:0",
		"--nats-tls-cert", certFile, "--nats-tls-key", keyFile}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Logger, cfg.BackOfficeToken = quiet, "nats-tls-test-token"
	m := &app.Main{Config: cfg}
	if err := m.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if !strings.HasPrefix(m.NATSURL(), "tls://") {
		t.Fatalf("NATSURL = %s, want tls://", m.NATSURL())
	}
	if _, err := nats.Connect(m.NATSURL(), nats.MaxReconnects(0)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("client without the CA: %v, want a certificate error", err)
	}
	// With the CA the handshake succeeds; without credentials authorization refuses.
	if _, err := nats.Connect(m.NATSURL(), nats.RootCAs(certFile)); err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
		t.Fatalf("client with the CA, no credentials: %v, want an authorization error", err)
	}

	t.Run("ErrExternalNATS", func(t *testing.T) {
		m := &app.Main{Config: app.Config{DataDir: t.TempDir(), HTTPAddr: "127.0.0.1:0", NATSURL: "nats://127.0.0.1:1",
			NATSTLSCert: certFile, NATSTLSKey: keyFile, BackOfficeToken: "nats-tls-test-token", Logger: quiet}}
		if err := m.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "embedded") {
			t.Fatalf("Run = %v, want an error: TLS applies to the embedded server", err)
		}
	})
}
