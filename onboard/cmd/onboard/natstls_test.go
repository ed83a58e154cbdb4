package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/airtab/airtab/onboard/app"
	"github.com/airtab/airtab/onboard/httpapi"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// TestNATSCA runs a cabin server against a NATS server that requires TLS,
// trusting the server's self-signed certificate with --nats-ca.
func TestNATSCA(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "nats.crt"), filepath.Join(dir, "nats.key")
	if _, _, err := httpapi.LoadOrCreateCertificate(certFile, keyFile, nil, time.Now(), nil); err != nil {
		t.Fatal(err)
	}
	f := ft.New(t, ft.Options{Passengers: 1, RealTime: true})
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(dir, "aircraft.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	// A plain nats-server (not ground's code: onboard never imports ground)
	// that requires TLS, a password for "ground" and the aircraft's nkey.
	tlsCfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	s := startNATSServer(t, &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TLS: true, TLSConfig: tlsCfg, TLSCert: certFile, TLSKey: keyFile,
		Users: []*server.User{{Username: "ground", Password: "ground-test-password"}},
		Nkeys: []*server.NkeyUser{{Nkey: pub}}})
	ground, err := nats.Connect(s.ClientURL(), nats.RootCAs(certFile), nats.UserInfo("ground", "ground-test-password"))
	if err != nil {
		t.Fatal(err)
	}
	defer ground.Close()
	requests := make(chan string, 16)
	for _, subj := range []string{protocol.ManifestSubject(f.Aircraft, f.ID), protocol.DeltaSubject(f.Aircraft, f.ID)} {
		if _, err := ground.Subscribe(subj, func(m *nats.Msg) {
			select {
			case requests <- m.Subject:
			default:
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ground.Flush(); err != nil {
		t.Fatal(err)
	}
	run := func(t *testing.T, ca string) (*app.Main, error) {
		m := app.NewMain()
		args := append(setup(t, f, filepath.Join(t.TempDir(), "data")),
			"--nats-url", s.ClientURL(), "--nats-nkey", seedFile, "--nats-ca", ca, "--sync-interval", "100ms")
		if err := m.ParseFlags(args, io.Discard); err != nil {
			t.Fatal(err)
		}
		err := m.Run(ctx)
		t.Cleanup(func() { m.Close() })
		return m, err
	}

	t.Run("OK", func(t *testing.T) {
		if _, err := run(t, certFile); err != nil {
			t.Fatal(err)
		}
		select {
		case <-requests:
		case <-time.After(10 * time.Second):
			t.Fatal("no manifest or delta request from the cabin server over TLS")
		}
	})
	t.Run("ErrBadCAFile", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "missing-ca.pem")
		if _, err := run(t, bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Fatalf("Run = %v, want an error naming %s", err, bad)
		}
	})
}
