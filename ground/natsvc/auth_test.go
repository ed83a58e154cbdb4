package natsvc

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/airtab/airtab/protocol"
)

type aircraftKeys struct {
	id   protocol.AircraftID
	kp   nkeys.KeyPair
	pub  string
	errs chan error
}

func newAircraftKeys(t *testing.T, id protocol.AircraftID) *aircraftKeys {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return &aircraftKeys{id: id, kp: kp, pub: pub, errs: make(chan error, 16)}
}

// connect dials s as the aircraft, signing the server's nonce with its nkey.
func (a *aircraftKeys) connect(t *testing.T, s *server.Server) (*nats.Conn, error) {
	t.Helper()
	nc, err := dial(s.ClientURL(),
		nats.Nkey(a.pub, a.kp.Sign),
		nats.CustomInboxPrefix(protocol.InboxPrefix(a.id)),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { a.errs <- err }),
	)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

func startAuthServer(t *testing.T, auth *Auth) *server.Server {
	t.Helper()
	s, err := StartServer(ServerConfig{Port: -1, StoreDir: t.TempDir(), Auth: auth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func TestAircraftCannotPublishAsAnother(t *testing.T) {
	a, b := newAircraftKeys(t, "D-AIUA"), newAircraftKeys(t, "D-AIUB")
	auth, err := NewAuth()
	if err != nil {
		t.Fatal(err)
	}
	auth.Aircraft = []AircraftIdentity{{ID: a.id, NKey: a.pub}, {ID: b.id, NKey: b.pub}}
	s := startAuthServer(t, auth)

	if _, err := dial(s.ClientURL()); err == nil {
		t.Fatal("a client with no credentials connected")
	}
	ground, err := dial(s.ClientURL(), nats.UserInfo(auth.GroundUser, auth.GroundPassword))
	if err != nil {
		t.Fatalf("ground: %v", err)
	}
	defer ground.Close()
	got, err := ground.SubscribeSync(protocol.AllInvoices)
	if err != nil {
		t.Fatal(err)
	}
	if err := ground.Flush(); err != nil {
		t.Fatal(err)
	}

	ncA, err := a.connect(t, s)
	if err != nil {
		t.Fatalf("aircraft A: %v", err)
	}
	const flight = protocol.FlightID("XX123-2026-11-21")
	// A publishes as B: the server refuses, and ground never sees it.
	if err := ncA.Publish(protocol.InvoiceSubject(b.id, flight), []byte("forged")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.errs:
		if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("A publishing as B: error %v, want a permissions violation", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("A publishing as B: no permissions violation reported")
	}
	// A publishes as itself: ground receives it, and nothing else before it.
	if err := ncA.Publish(protocol.InvoiceSubject(a.id, flight), []byte("own")); err != nil {
		t.Fatal(err)
	}
	m, err := got.NextMsg(hangGuard)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != protocol.InvoiceSubject(a.id, flight) || string(m.Data) != "own" {
		t.Fatalf("ground received %q on %s, want A's own invoice", m.Data, m.Subject)
	}
	// A may not read B's replies or another inbox.
	if _, err := ncA.Subscribe(protocol.InboxPrefix(b.id)+".>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-a.errs:
		if !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			t.Fatalf("A subscribing to B's inbox: error %v, want a permissions violation", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("A subscribing to B's inbox: no permissions violation reported")
	}
}

func TestSetAircraftAtRuntime(t *testing.T) {
	auth, err := NewAuth()
	if err != nil {
		t.Fatal(err)
	}
	s := startAuthServer(t, auth)
	c := newAircraftKeys(t, "D-AIUC")
	if _, err := c.connect(t, s); err == nil {
		t.Fatal("an unregistered aircraft connected")
	}
	if err := SetAircraft(s, auth, []AircraftIdentity{{ID: c.id, NKey: c.pub}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.connect(t, s); err != nil {
		t.Fatalf("after registration: %v", err)
	}
	ground, err := dial(s.ClientURL(), nats.UserInfo(auth.GroundUser, auth.GroundPassword))
	if err != nil {
		t.Fatalf("ground after reload: %v", err)
	}
	ground.Close()
	if err := SetAircraft(s, auth, []AircraftIdentity{{ID: "bad id", NKey: c.pub}}); err == nil {
		t.Fatal("an invalid aircraft id was accepted")
	}
}
