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
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// TestNATSURLs gives the cabin server two NATS servers' URLs, as for a
// ground cluster, stops the one it is connected to, and checks it carries
// on syncing through the other.
func TestNATSURLs(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1, RealTime: true})
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "aircraft.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	// Plain nats-servers (onboard never imports ground) that let in the
	// aircraft's nkey and a password user standing for ground, each with a
	// responder noting the cabin server's manifest and delta requests.
	requests := make(chan int, 64)
	var servers []*server.Server
	var urls []string
	for i := range 2 {
		s := startNATSServer(t, &server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			Users: []*server.User{{Username: "ground", Password: "ground-test-password"}},
			Nkeys: []*server.NkeyUser{{Nkey: pub}}})
		ground, err := nats.Connect(s.ClientURL(), nats.UserInfo("ground", "ground-test-password"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ground.Close)
		for _, subj := range []string{protocol.ManifestSubject(f.Aircraft, f.ID), protocol.DeltaSubject(f.Aircraft, f.ID)} {
			if _, err := ground.Subscribe(subj, func(m *nats.Msg) {
				select {
				case requests <- i:
				default:
				}
				// Refused at once, so no request is left waiting on a
				// stopped server: the syncer retries.
				reply := nats.NewMsg(m.Reply)
				reply.Header.Set(protocol.ErrorHeader, "unavailable test server")
				m.RespondMsg(reply)
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := ground.Flush(); err != nil {
			t.Fatal(err)
		}
		servers, urls = append(servers, s), append(urls, s.ClientURL())
	}
	m := app.NewMain()
	args := append(setup(t, f, filepath.Join(t.TempDir(), "data")),
		"--nats-url", strings.Join(urls, ","), "--nats-nkey", seedFile, "--sync-interval", "100ms", "--reconnect-wait", "50ms")
	if err := m.ParseFlags(args, io.Discard); err != nil {
		t.Fatal(err)
	}
	if err := m.Run(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	first := waitRequest(t, requests, -1)
	servers[first].Shutdown()
	servers[first].WaitForShutdown()
	got := waitRequest(t, requests, first)
	if got == first {
		t.Fatalf("requests still from server %d after it stopped", first)
	}
}

// waitRequest returns the server of the next request not from server not.
func waitRequest(t *testing.T, requests <-chan int, not int) int {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case i := <-requests:
			if i != not {
				return i
			}
		case <-deadline:
			t.Fatalf("no manifest or delta request on a server other than %d", not)
		}
	}
}
