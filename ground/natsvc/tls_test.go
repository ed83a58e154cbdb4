package natsvc

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/airtab/airtab/ground/natsvc/natstest"
	"github.com/airtab/airtab/protocol"
)

func TestTLS(t *testing.T) {
	certFile, keyFile := natstest.WriteSelfSigned(t, t.TempDir())
	a := newAircraftKeys(t, "D-AIUA")
	auth, err := NewAuth()
	if err != nil {
		t.Fatal(err)
	}
	auth.Aircraft = []AircraftIdentity{{ID: a.id, NKey: a.pub}}
	s, err := StartServer(ServerConfig{Port: -1, StoreDir: t.TempDir(), Auth: auth, TLSCert: certFile, TLSKey: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	if got := s.ClientURL(); !strings.HasPrefix(got, "tls://") {
		t.Fatalf("ClientURL = %s, want a tls:// URL", got)
	}
	addr := s.Addr().String()
	const flight = protocol.FlightID("XX123-2026-11-21")

	// Ground connects in process, without TLS: the server waives it for
	// in-process clients. The URL must say nats://: with tls:// the client
	// would insist on a handshake and verify the certificate.
	ground, err := dial("nats://"+addr, nats.UserInfo(auth.GroundUser, auth.GroundPassword), nats.InProcessServer(s))
	if err != nil {
		t.Fatalf("ground in process: %v", err)
	}
	t.Cleanup(ground.Close)
	if _, err := ground.TLSConnectionState(); err == nil {
		t.Fatal("ground's in-process connection uses TLS, want plaintext over the in-memory pipe")
	}
	got, err := ground.SubscribeSync(protocol.AllInvoices)
	if err != nil {
		t.Fatal(err)
	}
	if err := ground.Flush(); err != nil {
		t.Fatal(err)
	}

	t.Run("OK", func(t *testing.T) {
		for _, url := range []string{"tls://" + addr, "nats://" + addr} {
			nc, err := dial(url, nats.Nkey(a.pub, a.kp.Sign), nats.RootCAs(certFile),
				nats.CustomInboxPrefix(protocol.InboxPrefix(a.id)))
			if err != nil {
				t.Fatalf("aircraft at %s with the CA: %v", url, err)
			}
			defer nc.Close()
			if !nc.TLSRequired() {
				t.Fatalf("aircraft at %s: server does not require TLS", url)
			}
			if _, err := nc.TLSConnectionState(); err != nil {
				t.Fatalf("aircraft at %s: not over TLS: %v", url, err)
			}
			if err := nc.Publish(protocol.InvoiceSubject(a.id, flight), []byte(url)); err != nil {
				t.Fatal(err)
			}
			m, err := got.NextMsg(hangGuard)
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != protocol.InvoiceSubject(a.id, flight) || string(m.Data) != url {
				t.Fatalf("ground received %q on %s, want %q on the aircraft's subject", m.Data, m.Subject, url)
			}
		}
	})
	t.Run("ErrUnknownCA", func(t *testing.T) {
		nc, err := dial("tls://"+addr, nats.Nkey(a.pub, a.kp.Sign), nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			t.Fatal("a client without the CA connected")
		}
		if !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("error %v, want a certificate verification failure", err)
		}
	})
	t.Run("ErrPlaintext", func(t *testing.T) {
		// A client that insists on plaintext: a raw socket reading INFO and
		// sending CONNECT without a handshake. nats.go itself always
		// upgrades when the server's INFO says tls_required.
		conn, err := net.DialTimeout("tcp", addr, hangGuard)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetDeadline(time.Now().Add(hangGuard)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if info := string(buf[:n]); !strings.Contains(info, `"tls_required":true`) {
			t.Fatalf("INFO %s, want tls_required", info)
		}
		// Ground's own credentials, so that only the missing TLS can refuse it.
		connect := fmt.Sprintf("CONNECT {\"verbose\":false,\"user\":%q,\"pass\":%q}\r\nPING\r\n", auth.GroundUser, auth.GroundPassword)
		if _, err := conn.Write([]byte(connect)); err != nil {
			t.Fatal(err)
		}
		var reply strings.Builder
		for {
			n, err := conn.Read(buf)
			reply.Write(buf[:n])
			if err != nil {
				break
			}
		}
		if strings.Contains(reply.String(), "PONG") {
			t.Fatalf("plaintext client got %q, want the connection refused", reply.String())
		}
	})
	t.Run("SetAircraftKeepsTLS", func(t *testing.T) {
		b := newAircraftKeys(t, "D-AIUB")
		if err := SetAircraft(s, auth, []AircraftIdentity{{ID: a.id, NKey: a.pub}, {ID: b.id, NKey: b.pub}}); err != nil {
			t.Fatal(err)
		}
		nc, err := dial("tls://"+addr, nats.Nkey(b.pub, b.kp.Sign), nats.RootCAs(certFile))
		if err != nil {
			t.Fatalf("new aircraft after reload: %v", err)
		}
		defer nc.Close()
		if _, err := nc.TLSConnectionState(); err != nil {
			t.Fatalf("after reload: not over TLS: %v", err)
		}
	})
}

func TestTLSConfigErrors(t *testing.T) {
	certFile, keyFile := natstest.WriteSelfSigned(t, t.TempDir())
	missing := filepath.Join(t.TempDir(), "missing.key")
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"ErrNoKey", certFile, "", certFile},
		{"ErrNoCert", "", keyFile, keyFile},
		{"ErrMissingKey", certFile, missing, missing},
		{"ErrKeyIsCert", certFile, certFile, certFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := StartServer(ServerConfig{Port: -1, StoreDir: t.TempDir(), TLSCert: tc.cert, TLSKey: tc.key})
			if err == nil {
				s.Shutdown()
				s.WaitForShutdown()
				t.Fatal("server started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to name %s", err, tc.want)
			}
		})
	}
}
