// Package natsvc is the ground's NATS side, apart from clearing: the
// embedded nats-server with JetStream, the JetStream streams aircraft publish
// into and read receipts from, the request/reply responder that serves flight
// manifests and manifest deltas to cabin servers, and the heartbeat.
//
//	server.go     StartServer: the embedded nats-server (JetStream, file storage)
//	streams.go    EnsureStreams: AIRTAB_INVOICES and AIRTAB_RECEIPTS
//	responder.go  Responder: manifest and delta requests → the registry
//	heartbeat.go  Heartbeat: ground's clock on airtab.v1.heartbeat
//	callout.go    Callout: an external cluster's auth callout, aircraft by registered nkey
//	natscluster/  an in-process JetStream cluster for tests and the simulator
package natsvc

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures the embedded nats-server.
type ServerConfig struct {
	// Host is the listen address. Default "127.0.0.1".
	Host string
	// Port is the client port. 0 means 4222, the NATS default; -1 picks a
	// free port (tests).
	Port int
	// StoreDir is where JetStream keeps its files. Required.
	StoreDir string
	// MaxPayload is the largest message, in bytes. Default 1 MiB, the NATS
	// default: manifests and delta batches are capped below it.
	MaxPayload int32
	// ReadyTimeout bounds the wait for the server to accept connections.
	// Default 10 s.
	ReadyTimeout time.Duration
	// Auth, when set, turns on authorization: ground's user and the
	// registered aircraft's nkeys (see Auth). Without it any client may
	// connect with full rights: for tests and a closed lab network only.
	Auth *Auth
	// TLSCert and TLSKey are PEM files with the server's certificate and
	// private key. When both are set, every client over the network must
	// connect with TLS (a plaintext client is refused); in-process clients
	// (nats.InProcessServer) need no TLS, since nothing crosses a wire.
	// Setting only one is an error. Default: no TLS.
	TLSCert, TLSKey string
	// Logger receives the server's log lines: notices (its start-up banner
	// among them), debug and trace at Debug; warnings at Warn; errors and
	// fatal errors at Error, except refused logins: at Warn (at Info for a
	// connection an authorization reload closed before it logged in), once
	// per RefusalLogInterval for each nkey (see refusals.go). Default:
	// slog.Default().
	Logger *slog.Logger
	// RefusalLogInterval is how often a refused login is logged again for
	// the same nkey. Default DefaultRefusalLogInterval (1 minute).
	RefusalLogInterval time.Duration
	// Clock is the time the refused-login interval is measured on.
	// Default time.Now.
	Clock func() time.Time
	// SyncInterval is how often JetStream fsyncs its file store. 0, the
	// default, fsyncs every write before the server acknowledges it
	// (nats-server's sync_interval "always"): an invoice JetStream
	// acknowledged to an aircraft, and a receipt clearing published, then
	// survive ground losing power, as the ledger's commits do. A positive
	// interval is nats-server's own behaviour (its default is 2 minutes):
	// a power cut loses what was written since the last sync, which the
	// aircraft then sends again; for comparisons only. Even syncing every
	// write, nats-server fsyncs the directory of a new block file (one
	// every 8 MB of a stream) or consumer only rarely, so a cut just after
	// one is made can lose it; the aircraft recovers from that (a consumer
	// made again, invoices resent once the receipts stop; onboard/replay).
	// Measured cost: BenchmarkClearingJetStream.
	SyncInterval time.Duration
}

// StartServer starts an in-process nats-server with JetStream on file
// storage in cfg.StoreDir and waits until it accepts connections. Stop it
// with Shutdown and WaitForShutdown. Clients in the same process connect
// with nats.InProcessServer(s); others at s.ClientURL().
func StartServer(cfg ServerConfig) (*server.Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("natsvc: ServerConfig.StoreDir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = 1 << 20
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	opts := &server.Options{
		ServerName: "airtab-ground",
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.StoreDir,
		MaxPayload: cfg.MaxPayload,
		NoSigs:     true, // the ground process owns signal handling
	}
	applySync(opts, cfg.SyncInterval)
	if cfg.Auth != nil {
		if err := cfg.Auth.apply(opts); err != nil {
			return nil, err
		}
	}
	if err := applyTLS(opts, cfg.TLSCert, cfg.TLSKey); err != nil {
		return nil, err
	}
	if cfg.Auth != nil {
		cfg.Auth.base = opts.Clone()
	}
	if cfg.Port > 0 {
		// nats-server reports a port in use only in its log and then never
		// becomes ready; find out first, to say so.
		ln, err := net.Listen("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
		if err != nil {
			return nil, fmt.Errorf("natsvc: %w", err)
		}
		ln.Close()
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("natsvc: new server: %w", err)
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	log := cfg.Logger.With("component", "nats-server")
	refused := newRefusals(log, cfg.RefusalLogInterval, cfg.Clock)
	refused.clientName = func(cid uint64) string {
		cz, err := s.Connz(&server.ConnzOptions{CID: cid, State: server.ConnOpen})
		if err != nil || len(cz.Conns) == 0 {
			return ""
		}
		return cz.Conns[0].Name
	}
	if cfg.Auth != nil {
		refused.setKnown(cfg.Auth.Aircraft)
		cfg.Auth.refusals = refused
	}
	s.SetLoggerV2(slogAdapter{l: log, refused: refused}, false, false, false)
	s.Start()
	if !s.ReadyForConnections(cfg.ReadyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("natsvc: nats-server on %s:%d not ready within %s", cfg.Host, cfg.Port, cfg.ReadyTimeout)
	}
	if !s.JetStreamEnabled() {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, errors.New("natsvc: nats-server started without JetStream")
	}
	return s, nil
}

// applySync sets how often JetStream fsyncs (see ServerConfig.SyncInterval).
func applySync(opts *server.Options, interval time.Duration) {
	if interval > 0 {
		opts.SyncInterval = interval
		return
	}
	opts.SyncAlways = true
}

// applyTLS makes opts require TLS from clients, with the certificate and
// key in certFile and keyFile, when both are set.
func applyTLS(opts *server.Options, certFile, keyFile string) error {
	switch {
	case certFile == "" && keyFile == "":
		return nil
	case keyFile == "":
		return fmt.Errorf("natsvc: TLS certificate %s given without its key file", certFile)
	case certFile == "":
		return fmt.Errorf("natsvc: TLS key %s given without its certificate file", keyFile)
	}
	// Read each file first so the error names the one that is missing or
	// unreadable; GenTLSConfig's own error names neither.
	for _, f := range []string{certFile, keyFile} {
		if _, err := os.ReadFile(f); err != nil {
			return fmt.Errorf("natsvc: TLS: %w", err)
		}
	}
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: certFile, KeyFile: keyFile})
	if err != nil {
		return fmt.Errorf("natsvc: TLS certificate %s, key %s: %w", certFile, keyFile, err)
	}
	opts.TLSConfig = tc
	opts.TLS = true
	opts.TLSCert, opts.TLSKey = certFile, keyFile
	return nil
}

// slogAdapter routes nats-server's logger to slog.
type slogAdapter struct {
	l       *slog.Logger
	refused *refusals // refused logins; nil: logged as errors
}

// Noticef logs at Debug: nats-server's notices are its start-up banner
// and routine events; "ground service up" says what matters.
func (a slogAdapter) Noticef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }

// Warnf logs at Warn.
func (a slogAdapter) Warnf(format string, v ...any) { a.l.Warn(fmt.Sprintf(format, v...)) }

// Fatalf logs at Error. nats-server returns after a fatal error (its own
// logger would exit); StartServer then reports the server not ready.
func (a slogAdapter) Fatalf(format string, v ...any) { a.l.Error(fmt.Sprintf(format, v...)) }

// Errorf logs at Error, but a refused login at Warn and rate-limited.
func (a slogAdapter) Errorf(format string, v ...any) {
	line := fmt.Sprintf(format, v...)
	if a.refused != nil && a.refused.note(line) {
		return
	}
	a.l.Error(line)
}

// Debugf logs at Debug.
func (a slogAdapter) Debugf(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }

// Tracef logs at Debug.
func (a slogAdapter) Tracef(format string, v ...any) { a.l.Debug(fmt.Sprintf(format, v...)) }
