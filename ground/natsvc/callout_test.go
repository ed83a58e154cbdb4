package natsvc

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/airtab/airtab/ground/natsvc/natscluster"
	"github.com/airtab/airtab/protocol"
)

// calloutCluster is a three-node cluster authorized by ground's auth
// callout, ground connected to it with its nkey and answering, and the
// registered aircraft D-AIUA's nkey.
type calloutCluster struct {
	c        *natscluster.Cluster
	ground   *nats.Conn
	groundKP nkeys.KeyPair // ground's login
	aircraft nkeys.KeyPair // D-AIUA's, registered
	log      *syncBuffer   // the callout's log
}

func startCalloutCluster(t *testing.T) *calloutCluster {
	t.Helper()
	dir := t.TempDir()
	groundKey, _, err := LoadOrCreateNKey(filepath.Join(dir, "ground.nk"), nkeys.PrefixByteUser)
	if err != nil {
		t.Fatal(err)
	}
	issuer, _, err := LoadOrCreateNKey(filepath.Join(dir, "callout.nk"), nkeys.PrefixByteAccount)
	if err != nil {
		t.Fatal(err)
	}
	c, err := natscluster.Start(t.Context(), natscluster.Config{Dir: dir, Logger: quiet,
		Callout: &natscluster.Callout{GroundNKey: mustPublic(groundKey), Issuer: mustPublic(issuer)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	nc, err := nats.Connect(c.URL(), nats.Nkey(mustPublic(groundKey), groundKey.Sign))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	aircraft, _ := nkeys.CreateUser()
	ids := func(context.Context) (map[protocol.AircraftID]string, error) {
		return map[protocol.AircraftID]string{"D-AIUA": mustPublic(aircraft)}, nil
	}
	log := &syncBuffer{}
	co, err := StartCallout(CalloutConfig{Conn: nc, Issuer: issuer, Identities: ids, Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(co.Stop)
	return &calloutCluster{c: c, ground: nc, groundKP: groundKey, aircraft: aircraft, log: log}
}

func TestCalloutLetsInRegisteredAircraft(t *testing.T) {
	cc := startCalloutCluster(t)
	for i, url := range cc.c.URLs() {
		t.Run(cc.c.NodeName(i), func(t *testing.T) {
			errs := make(chan error, 8)
			nc, err := nats.Connect(url, nats.Nkey(mustPublic(cc.aircraft), cc.aircraft.Sign),
				nats.CustomInboxPrefix(protocol.InboxPrefix("D-AIUA")),
				nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
			if err != nil {
				t.Fatalf("registered aircraft refused: %v", err)
			}
			defer nc.Close()
			// Its own subject reaches ground; another aircraft's is refused.
			// Ground listens on the same node, so the subscription is known
			// there once flushed (interest reaches other nodes later).
			local, err := nats.Connect(url, nats.Nkey(mustPublic(cc.groundKP), cc.groundKP.Sign))
			if err != nil {
				t.Fatal(err)
			}
			defer local.Close()
			sub, err := local.SubscribeSync(protocol.InvoiceSubject("D-AIUA", "XX123-2026-11-21"))
			if err != nil {
				t.Fatal(err)
			}
			if err := local.Flush(); err != nil {
				t.Fatal(err)
			}
			if err := nc.Publish(protocol.InvoiceSubject("D-AIUB", "XX123-2026-11-21"), []byte("forged")); err != nil {
				t.Fatal(err)
			}
			if err := nc.Publish(protocol.InvoiceSubject("D-AIUA", "XX123-2026-11-21"), []byte("own")); err != nil {
				t.Fatal(err)
			}
			if err := nc.Flush(); err != nil {
				t.Fatal(err)
			}
			if m, err := sub.NextMsg(10 * time.Second); err != nil || string(m.Data) != "own" {
				t.Fatalf("own invoice subject: %v %v", m, err)
			}
			select {
			case err := <-errs:
				if !errors.Is(err, nats.ErrPermissionViolation) && !strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
					t.Fatalf("async error %v, want a permissions violation", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("publishing as another aircraft raised no permissions violation")
			}
		})
	}
}

func TestCalloutRefuses(t *testing.T) {
	cc := startCalloutCluster(t)
	stranger, _ := nkeys.CreateUser()
	for name, tc := range map[string]struct {
		opt    nats.Option
		reason string // in the callout's log
	}{
		"ErrUnregisteredNKey": {nats.Nkey(mustPublic(stranger), stranger.Sign), "is not registered to an aircraft"},
		"ErrWrongSignature":   {nats.Nkey(mustPublic(cc.aircraft), stranger.Sign), "signature over the nonce does not verify"},
		"ErrNoNKey":           {nats.UserInfo("D-AIUA", "password"), "no nkey"},
	} {
		t.Run(name, func(t *testing.T) {
			nc, err := nats.Connect(cc.c.URLs()[1], tc.opt, nats.MaxReconnects(0))
			if err == nil {
				nc.Close()
				t.Fatal("connected")
			}
			if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
				t.Fatalf("err = %v, want an authorization violation", err)
			}
			if !strings.Contains(cc.log.String(), tc.reason) {
				t.Fatalf("callout log does not say %q:\n%s", tc.reason, cc.log.String())
			}
		})
	}
}

func TestStartCalloutRefusesUserKeyAsIssuer(t *testing.T) {
	u, _ := nkeys.CreateUser()
	_, err := StartCallout(CalloutConfig{Conn: &nats.Conn{}, Issuer: u, Identities: func(context.Context) (map[protocol.AircraftID]string, error) { return nil, nil }})
	if err == nil || !strings.Contains(err.Error(), "not an account nkey") {
		t.Fatalf("err = %v, want the issuer kind named", err)
	}
}

func TestLoadOrCreateNKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "k.nk")
	kp, created, err := LoadOrCreateNKey(file, nkeys.PrefixByteAccount)
	if err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	again, created, err := LoadOrCreateNKey(file, nkeys.PrefixByteAccount)
	if err != nil || created || mustPublic(again) != mustPublic(kp) {
		t.Fatalf("load: created %v, err %v, same key %v", created, err, mustPublic(again) == mustPublic(kp))
	}
	if _, _, err := LoadOrCreateNKey(file, nkeys.PrefixByteUser); err == nil || !strings.Contains(err.Error(), "want a") {
		t.Fatalf("wrong kind: err = %v, want a refusal naming the kind", err)
	}
}
