// Package app is the cabin server program: its configuration, and the
// parts it wires together (journal, cabin, handheld API, manifest sync,
// replayer). cmd/onboard runs it from the command line; the simulator and
// the tests run the same Main in process.
package app

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/httpapi"
	"github.com/airtab/airtab/onboard/metrics"
	"github.com/airtab/airtab/onboard/natslink"
	"github.com/airtab/airtab/onboard/replay"
	"github.com/airtab/airtab/onboard/sqlite"
	"github.com/airtab/airtab/onboard/web"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/cli"
)

// Config is the cabin server's configuration, from flags.
type Config struct {
	// DataDir holds the journal, the aircraft key and the TLS certificate.
	// Default: ./airtab-onboard.
	DataDir string
	// Listen is the handheld API's address. Default: 127.0.0.1:8443.
	Listen string
	// Aircraft and Flight say who this cabin server is. Required.
	Aircraft protocol.AircraftID
	Flight   protocol.FlightID
	// AircraftKeyFile holds the aircraft's signing key, created (mode
	// 0600) if missing. Default: <DataDir>/aircraft.key.
	AircraftKeyFile string
	// IssuerKeyFile is the trust anchor: a crypto trust file of the issuer
	// keys manifests, deltas and receipts must be signed with, each with its
	// window (ground writes it as issuer-trust.txt), or a public key file of
	// one key (ground's issuer.pub), trusted with no window. A manifest
	// that names a key revoked takes it out. Required.
	IssuerKeyFile string
	// ManifestFile is a signed manifest to load at start. Optional.
	ManifestFile string
	// NATSURL is ground's NATS server, to fetch the manifest and deltas
	// from while the link is up: one URL, or a ground cluster's URLs
	// separated by commas; the client connects to one of them and, when
	// it is lost, reconnects to another. Optional.
	NATSURL string
	// NATSCreds is the aircraft's NATS credentials file (JWT), for an
	// operator-managed cluster. Optional.
	NATSCreds string
	// NATSNkey is the aircraft's NATS nkey seed file: its identity on
	// ground's NATS, whose permissions let it publish only as itself. It is
	// created (mode 0600) with its public key beside it (.pub) on first
	// start. Default: <DataDir>/aircraft.nk, used unless NATSCreds is set.
	NATSNkey string
	// NATSCA is a PEM file with the certificate (or its CA's) that ground's
	// NATS server must present. When set, the connection always uses TLS,
	// whether NATSURL says tls:// or nats://, and never falls back to
	// plaintext; the file is read again on each reconnect. Default: none
	// (the system roots, and TLS only if the URL or server asks for it).
	NATSCA string
	// ReplayWindow is how many invoice publishes may await their ack at
	// once. Default: 512.
	ReplayWindow int
	// ResendAfter is how long a sent invoice waits for its clearing
	// receipt before it is sent again. Default: 2 minutes.
	ResendAfter time.Duration
	// ReceiptAckWait is how long a clearing receipt delivered over a
	// connection that then dropped waits before it is delivered again.
	// Default: 10 s.
	ReceiptAckWait time.Duration
	// ReconnectWait is how long the NATS client waits before reconnecting
	// to the server it just lost. Default: 2 s.
	ReconnectWait time.Duration
	// SyncInterval is how often to fetch manifest deltas. Default: 30 s.
	SyncInterval time.Duration
	// TLSCert and TLSKey are the API's certificate and key, issued by the
	// aircraft CA (ECDSA P-256) if neither exists. Default:
	// <DataDir>/tls.crt and <DataDir>/tls.key.
	TLSCert, TLSKey string
	// TLSCA and TLSCAKey are the aircraft CA that issues the API's
	// certificate, created on first start; the airline installs TLSCA on
	// its handhelds so their browsers trust the cabin server. Default:
	// <DataDir>/ca.crt and <DataDir>/ca.key.
	TLSCA, TLSCAKey string
	// TLSHosts are the names and IP addresses handhelds use to reach the
	// cabin server (e.g. cabin.airtab.aero, 10.10.0.1), put in a new
	// certificate besides the listen address, localhost and the loopback
	// addresses. Default: none.
	TLSHosts []string
	// SessionTTL is how long a crew session lasts. Default: 12 h.
	SessionTTL time.Duration
	// ShutdownTimeout bounds the graceful drain on SIGINT or SIGTERM.
	// Default: 15 s.
	ShutdownTimeout time.Duration
	// LogFormat is "text" or "json"; LogLevel the least level logged.
	LogFormat string
	LogLevel  slog.Level
	// MemoryLimitMiB is the Go runtime's soft memory limit
	// (debug.SetMemoryLimit), unless GOMEMLIMIT is set: it makes the
	// collector return a crew sign-in's argon2id memory (19 MiB with the
	// default PIN parameters) promptly, so the whole server stays under the
	// 64 MiB budget. SQLite's page cache (at most 6 MiB) is outside it.
	// Default: 40; 0 for none.
	MemoryLimitMiB int
	// CPUProfile, when set, is a file to write a CPU profile of the whole
	// cabin server to, from Run until Close (go tool pprof reads it): what
	// the bench's --cabin-cpuprofile uses to show where a sale's time goes.
	// Default: none.
	CPUProfile string
}

// Main is the cabin server program: its configuration and the parts it
// wires together. Run starts them; Close stops them in order.
type Main struct {
	Config Config
	Logger *slog.Logger
	// Clock gives the time. Default: time.Now.
	Clock onboard.Clock
	// Rand is the source of keys, certificates, session tokens and order
	// ids. Default: crypto/rand.
	Rand io.Reader

	lock    *os.File // the data directory's lock, held while running
	profile *os.File // Config.CPUProfile, while profiling
	journal *sqlite.Journal
	cabin   *onboard.Cabin
	server  *http.Server
	ln      net.Listener
	nc      *nats.Conn
	anchor  *crypto.TrustList
	replay  *replay.Replayer
	metrics *metrics.Metrics

	// connErrs holds the NATS dial errors, for the status's link state.
	connErrs replay.ConnectErrors
	// dialLogged: a dial error was logged since the link was last up, so
	// the retries every ReconnectWait log at debug only.
	dialLogged atomic.Bool
	// authLogged: a refused login was logged since the link was last up.
	authLogged atomic.Bool
	// upAfter is connErrs.Noted() when the NATS connection was last
	// established: the dial errors noted since are the current outage's.
	upAfter atomic.Uint64

	cancel   context.CancelFunc // stops the background goroutines
	stopping atomic.Bool        // Close is closing the NATS connection
	wg       sync.WaitGroup
	fp       string
	caPEM    []byte // the aircraft CA that issued the API's certificate
	closed   sync.Once
}

// NewMain returns a Main with the default configuration.
func NewMain() *Main {
	return &Main{
		Config: Config{
			DataDir:         "airtab-onboard",
			Listen:          "127.0.0.1:8443",
			SyncInterval:    30 * time.Second,
			SessionTTL:      12 * time.Hour,
			ShutdownTimeout: 15 * time.Second,
			LogFormat:       "text",
			MemoryLimitMiB:  40,
		},
		Logger: slog.New(slog.DiscardHandler),
		Clock:  time.Now,
	}
}

// ParseFlags sets the configuration from command-line arguments.
func (m *Main) ParseFlags(args []string, output io.Writer) error {
	c := &m.Config
	fs := flag.NewFlagSet("onboard", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usage: onboard --aircraft ID --flight ID --issuer-key FILE [flags]

Runs the Airtab cabin server: offline authorization against the cached flight
manifest, a durable SQLite invoice journal, and the handheld API over TLS.

Flags:
`)
		fs.PrintDefaults()
	}
	var aircraft, flight, level string
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "`directory` for the journal, the aircraft key and the TLS certificate (created, mode 0700)")
	fs.StringVar(&c.Listen, "listen", c.Listen, "`address` of the handheld API (HTTPS)")
	fs.StringVar(&aircraft, "aircraft", "", "aircraft registration `mark`, for example D-AIUA (required)")
	fs.StringVar(&flight, "flight", "", "flight `id`, for example XX123-2026-11-21 (required)")
	fs.StringVar(&c.AircraftKeyFile, "aircraft-key", "", "aircraft signing key `file`, created if missing (default <data-dir>/aircraft.key)")
	fs.StringVar(&c.IssuerKeyFile, "issuer-key", "", "issuer trust anchor `file`: ground's issuer.pub (one key), or its issuer-trust.txt (the keys of a rotation, each with its window); manifests, deltas and receipts must be signed by one of them (required)")
	fs.StringVar(&c.ManifestFile, "manifest-file", "", "signed flight manifest `file` to load at start")
	fs.StringVar(&c.NATSURL, "nats-url", "", "ground NATS `URL`, or a ground cluster's URLs separated by commas (the client connects to one and fails over to the others): fetch the manifest and its deltas, replay invoices and take clearing receipts while the link is up")
	fs.StringVar(&c.NATSCreds, "nats-creds", "", "aircraft NATS credentials `file` (JWT, for an operator-managed cluster)")
	fs.StringVar(&c.NATSNkey, "nats-nkey", "", "aircraft NATS nkey seed `file`, created if missing: the aircraft's identity on ground's NATS (default <data-dir>/aircraft.nk)")
	fs.StringVar(&c.NATSCA, "nats-ca", "", "PEM `file` with ground NATS's certificate or its CA: connect to ground over TLS only, trusting it (ground serve --nats-tls-cert)")
	fs.IntVar(&c.ReplayWindow, "replay-window", 512, "invoice publishes awaiting their ack at once while replaying")
	fs.DurationVar(&c.ResendAfter, "resend-after", 2*time.Minute, "resend an invoice when its clearing receipt has not come after this long")
	fs.DurationVar(&c.ReceiptAckWait, "receipt-ack-wait", 10*time.Second, "deliver a clearing receipt again after this long when the link dropped before this server acknowledged it")
	fs.DurationVar(&c.ReconnectWait, "reconnect-wait", cmp.Or(c.ReconnectWait, 2*time.Second), "wait this long before reconnecting to ground's NATS after losing it")
	fs.DurationVar(&c.SyncInterval, "sync-interval", c.SyncInterval, "how often to fetch manifest deltas over NATS")
	fs.StringVar(&c.TLSCert, "tls-cert", "", "TLS certificate `file` (default <data-dir>/tls.crt; if it and its key are missing, issued by the aircraft CA (--tls-ca) for the listen address and --tls-host names)")
	fs.StringVar(&c.TLSKey, "tls-key", "", "TLS key `file` (default <data-dir>/tls.key)")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "aircraft CA certificate `file` to install on handhelds (default <data-dir>/ca.crt, generated if missing)")
	fs.StringVar(&c.TLSCAKey, "tls-ca-key", "", "aircraft CA key `file` (default <data-dir>/ca.key)")
	fs.Func("tls-host", "`name or IP` handhelds use to reach this server, for a new TLS certificate (repeatable, or comma-separated)", func(v string) error {
		for _, h := range strings.Split(v, ",") {
			if h = strings.TrimSpace(h); h != "" {
				c.TLSHosts = append(c.TLSHosts, h)
			}
		}
		return nil
	})
	fs.DurationVar(&c.SessionTTL, "session-ttl", c.SessionTTL, "how long a crew session lasts")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long to drain requests on SIGINT or SIGTERM")
	fs.StringVar(&c.LogFormat, "log-format", c.LogFormat, "log `format`: text or json")
	fs.StringVar(&level, "log-level", "info", "least log `level`: debug, info, warn or error")
	fs.IntVar(&c.MemoryLimitMiB, "memory-limit-mib", c.MemoryLimitMiB, "soft memory limit of the Go runtime in `MiB` (ignored when GOMEMLIMIT is set; 0 for none)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write a CPU profile of the cabin server to this `file` until shutdown (go tool pprof reads it)")
	// cli.ParseFlags is fs.Parse with errors that say the form a value
	// wants ("--sync-interval 5": want a duration with a unit).
	if err := cli.ParseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.Aircraft, c.Flight = protocol.AircraftID(aircraft), protocol.FlightID(flight)
	if err := c.LogLevel.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	return c.check()
}

func (c *Config) check() error {
	switch {
	case c.Aircraft == "" || c.Flight == "":
		return errors.New("--aircraft and --flight are required")
	case c.IssuerKeyFile == "":
		return errors.New("--issuer-key is required: the issuer public key manifests must be signed with")
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("--log-format %q: want text or json", c.LogFormat)
	}
	if err := c.Aircraft.Validate(); err != nil {
		return fmt.Errorf("--aircraft: %w", err)
	}
	if err := c.Flight.Validate(); err != nil {
		return fmt.Errorf("--flight: %w", err)
	}
	return nil
}

func (c *Config) path(set, name string) string {
	if set != "" {
		return set
	}
	return filepath.Join(c.DataDir, name)
}

// Run starts the cabin server: it opens the journal and the cabin, loads the
// manifest file, starts the handheld API and the manifest sync, and returns
// once the API is listening.
func (m *Main) Run(ctx context.Context) (err error) {
	defer func() {
		if err != nil {
			m.Close() // whatever Run opened, the data directory's lock too
		}
	}()
	c := &m.Config
	if c.MemoryLimitMiB > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(int64(c.MemoryLimitMiB) << 20)
	}
	if err := m.startCPUProfile(); err != nil {
		return err
	}
	// The trust anchor first: a mistyped path must not leave a new data
	// directory and aircraft key behind.
	anchor, err := crypto.ReadTrustFile(c.IssuerKeyFile, crypto.Issuer)
	if err != nil {
		return fmt.Errorf("issuer trust anchor: %w", err)
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if m.lock, err = lockDataDir(c.DataDir); err != nil {
		return err
	}
	key, err := m.aircraftKey()
	if err != nil {
		return err
	}
	m.anchor = anchor
	journalPath := filepath.Join(c.DataDir, "journal-"+string(c.Flight)+".db")
	if m.journal, err = sqlite.Open(ctx, journalPath, c.Flight, c.Aircraft); err != nil {
		return err
	}
	m.metrics = metrics.New(m.Logger)
	m.cabin, err = onboard.Open(ctx, onboard.Config{Flight: c.Flight, Aircraft: c.Aircraft, AircraftKey: key,
		Issuer: anchor, Journal: m.metrics.Journal(m.journal), Clock: m.Clock, Rand: m.Rand, Logger: m.Logger,
		Observer: m.metrics})
	if err != nil {
		return err
	}
	m.metrics.Attach(m.cabin)
	if err := m.loadManifestFile(ctx); err != nil {
		return err
	}
	if err := m.serve(); err != nil {
		return err
	}
	bg, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	if err := m.startSync(bg); err != nil {
		return err
	}
	st, err := m.cabin.Status(ctx)
	if err != nil {
		return err
	}
	m.Logger.Info("cabin server listening", "addr", m.Addr(), "fingerprint", m.fp,
		"flight", c.Flight, "aircraft", c.Aircraft, "journal", journalPath,
		"sales_open", st.SalesOpen, "last_seq", st.LastSeq, "closed", st.Closed)
	if st.SalesOff != nil {
		m.Logger.Warn("sales are off", "reason", st.SalesOff.Name, "message", st.SalesOff.Message)
	}
	return nil
}

// startCPUProfile starts the CPU profile of Config.CPUProfile, if set;
// Close stops it.
func (m *Main) startCPUProfile() error {
	if m.Config.CPUProfile == "" {
		return nil
	}
	f, err := os.Create(m.Config.CPUProfile)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile %s: %w", m.Config.CPUProfile, err)
	}
	m.profile = f
	return nil
}

// aircraftKey loads the aircraft's signing key, creating it on first start,
// and writes its public key beside it for ground to register.
func (m *Main) aircraftKey() (crypto.PrivateKey, error) {
	path := m.Config.path(m.Config.AircraftKeyFile, "aircraft.key")
	key, created, err := crypto.LoadOrCreateKeyFile(path, crypto.Aircraft, m.Rand)
	if err != nil {
		return key, fmt.Errorf("aircraft key: %w", err)
	}
	if err := crypto.WritePublicKeyFile(strings.TrimSuffix(path, ".key")+".pub", key.Public()); err != nil {
		return key, fmt.Errorf("aircraft public key: %w", err)
	}
	if created {
		m.Logger.Warn("aircraft key created: register its public key with ground", "file", path, "public_key", key.Public().String())
	}
	return key, nil
}

// natsNkey returns the aircraft's nkey seed file, creating it with its
// public key beside it on first start.
func (m *Main) natsNkey() (string, error) {
	path := m.Config.path(m.Config.NATSNkey, "aircraft.nk")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("nats nkey: %w", err)
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", fmt.Errorf("nats nkey: %w", err)
	}
	seed, _ := kp.Seed()
	pub, _ := kp.PublicKey()
	if err := os.WriteFile(path, append(seed, '\n'), 0o600); err != nil {
		return "", fmt.Errorf("nats nkey: %w", err)
	}
	if err := os.WriteFile(path+".pub", []byte(pub+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("nats nkey: %w", err)
	}
	m.Logger.Warn("aircraft NATS nkey created: register its public key with ground", "file", path, "nkey", pub)
	return path, nil
}

// loadManifestFile loads --manifest-file, unless a newer manifest (say, one
// fetched over NATS before a restart) is already in use.
func (m *Main) loadManifestFile(ctx context.Context) error {
	if m.Config.ManifestFile == "" {
		return nil
	}
	raw, err := readFileMax(m.Config.ManifestFile, protocol.MaxManifestSize)
	if err != nil {
		return fmt.Errorf("manifest file: %w", err)
	}
	if s, err := protocol.ParseManifest(raw); err == nil {
		if cur := m.cabin.Manifest(); cur != nil && cur.Serial() > s.Body.Serial {
			m.Logger.Warn("manifest file is older than the manifest in use; keeping the newer",
				"file_serial", s.Body.Serial, "serial", cur.Serial())
			return nil
		}
	}
	if err := m.cabin.LoadManifest(ctx, raw); err != nil {
		return fmt.Errorf("manifest file %s: %w", m.Config.ManifestFile, err)
	}
	return nil
}

func readFileMax(path string, maxBytes int) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(maxBytes)+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBytes {
		return nil, fmt.Errorf("%s: over the limit of %d bytes", path, maxBytes)
	}
	return b, nil
}

// serve starts the handheld API over TLS.
func (m *Main) serve() error {
	c := &m.Config
	host, _, _ := net.SplitHostPort(c.Listen)
	hosts := append([]string{host}, c.TLSHosts...)
	caFile := c.path(c.TLSCA, "ca.crt")
	ca, caCreated, err := httpapi.LoadOrCreateCA(caFile, c.path(c.TLSCAKey, "ca.key"), string(c.Aircraft), hosts, m.Clock(), m.Rand)
	if err != nil {
		return err
	}
	if caCreated {
		m.Logger.Warn("aircraft CA created: install it on every handheld so the crew app opens without a warning", "file", caFile)
	}
	cert, created, err := httpapi.LoadOrCreateCertificateFrom(ca, c.path(c.TLSCert, "tls.crt"), c.path(c.TLSKey, "tls.key"),
		hosts, m.Clock(), m.Rand)
	if err != nil {
		return err
	}
	m.fp = httpapi.Fingerprint(cert)
	if created {
		m.Logger.Warn("TLS certificate created: Go clients pin its fingerprint", "fingerprint", m.fp)
	}
	if ca.Issued(cert) {
		m.caPEM = ca.PEM
	}
	app := web.New(web.Config{CACert: m.caPEM, Logger: m.Logger})
	api := httpapi.New(httpapi.Config{Cabin: m.cabin, Clock: m.Clock, Rand: m.Rand, Logger: m.Logger, SessionTTL: c.SessionTTL, App: app})
	m.server = api.HTTPServer(cert)
	m.server.Handler = m.metrics.Wrap(m.server.Handler, httpapi.PathSales) // GET /metrics, and the sale latency
	if m.ln, err = net.Listen("tcp", c.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	m.wg.Go(func() {
		if err := m.server.ServeTLS(m.ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.Logger.Error("handheld API stopped", "err", err)
		}
	})
	return nil
}

// startSync connects to ground's NATS, if configured, and keeps the
// manifest up to date in the background. The connection retries for as
// long as the server runs: in the air the link is down.
func (m *Main) startSync(ctx context.Context) error {
	c := &m.Config
	if c.NATSURL == "" {
		return nil
	}
	opts := []nats.Option{
		nats.Name("airtab-onboard " + string(c.Aircraft)),
		nats.CustomInboxPrefix(protocol.InboxPrefix(c.Aircraft)),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(cmp.Or(c.ReconnectWait, 2*time.Second)),
		// No reconnect buffer: a publish while the link is down fails at
		// once instead of going out first on the next connection, ahead of
		// earlier invoices lost in transit (replay.Run requires it).
		nats.ReconnectBufSize(-1),
		// Notice a link that went silent in seconds, not the default minutes.
		nats.PingInterval(5 * time.Second),
		nats.MaxPingsOutstanding(3),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			m.connErrs.Note(err, m.Clock())
			if err != nil {
				m.Logger.Info("NATS link lost", "err", err)
			}
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			m.connErrs.Note(err, m.Clock())
			if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(fmt.Sprint(err)), "authorization") {
				// Once per outage: the retries every ReconnectWait say
				// nothing new.
				if !m.authLogged.CompareAndSwap(false, true) {
					m.Logger.Debug("NATS refused this aircraft's login again; will retry", "err", err)
					return
				}
				m.Logger.Warn("NATS refused this aircraft's login: ground does not know its nkey (register the aircraft: PUT /v1/aircraft/"+string(c.Aircraft)+
					" on ground's API with aircraft.pub and aircraft.nk.pub), or ground has just reloaded its NATS authorization after a registration, "+
					"and the next retry logs in; retrying", "err", err, "every", cmp.Or(c.ReconnectWait, 2*time.Second))
				return
			}
			if errors.Is(err, nats.ErrNkeysNotSupported) {
				// The server sent no nonce to sign. Ground's embedded NATS
				// asks for nkeys only once it knows one, so there this
				// means no aircraft is registered yet.
				m.Logger.Warn("NATS server asks for no nkey, so it cannot take this aircraft's: if it is ground's embedded NATS, "+
					"ground does not know this aircraft yet: register it (PUT /v1/aircraft/"+string(c.Aircraft)+
					" on ground's API with aircraft.pub and aircraft.nk.pub; this server connects once it is); if it is an external NATS server, "+
					"give the servers ground's auth callout (README, NATS identities and an external NATS server) or start the cabin server with --nats-creds", "err", err)
				return
			}
			if errors.Is(err, nats.ErrNoServers) || !m.dialLogged.CompareAndSwap(false, true) {
				m.Logger.Debug("NATS connect failed; will retry", "err", err)
				return
			}
			m.Logger.Info("link down: cannot connect to ground's NATS; retrying", "err", err, "every", cmp.Or(c.ReconnectWait, 2*time.Second))
		}),
		// nats.go gives up after the same authorization error twice in a
		// row; an aircraft whose nkey ground registers later (or re-keys)
		// must go on trying, as on any other refusal.
		nats.IgnoreAuthErrorAbort(),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if m.stopping.Load() {
				return
			}
			m.Logger.Error("NATS connection closed for good: no manifest sync or replay until the cabin server restarts", "last_error", nc.LastError())
		}),
		nats.ConnectHandler(func(nc *nats.Conn) {
			m.linkBack()
			m.Logger.Info("NATS connected to ground", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			m.linkBack()
			m.Logger.Info("NATS link back", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			m.Logger.Warn("NATS error (an authorization error means ground has not registered this aircraft's nkey)", "err", err)
		}),
	}
	if c.NATSCreds != "" {
		opts = append(opts, nats.UserCredentials(c.NATSCreds))
	}
	if c.NATSCreds == "" {
		seedFile, err := m.natsNkey()
		if err != nil {
			return err
		}
		o, err := nats.NkeyOptionFromSeed(seedFile)
		if err != nil {
			return fmt.Errorf("nats nkey: %w", err)
		}
		opts = append(opts, o)
	}
	if c.NATSCA != "" {
		// RootCAs also sets Secure: no plaintext fallback. Its errors name the file.
		opts = append(opts, nats.RootCAs(c.NATSCA))
	}
	nc, err := nats.Connect(c.NATSURL, opts...)
	if err != nil {
		return fmt.Errorf("nats: %w", err)
	}
	m.nc = nc
	s := &natslink.Syncer{Conn: nc, Cabin: m.cabin, Interval: c.SyncInterval, Logger: m.Logger,
		DialError: m.dialError}
	m.wg.Go(func() { s.Run(ctx) })
	return m.startReplay(ctx, nc)
}

// linkBack notes that the NATS connection is (re)established: the next
// dial error is news again, and the earlier ones are not.
func (m *Main) linkBack() {
	m.upAfter.Store(m.connErrs.Noted())
	m.dialLogged.Store(false)
	m.authLogged.Store(false)
}

// dialError is the latest NATS dial error noted since the connection was
// last up, or nil. It goes by the order errors were noted in, not by
// their times: the cabin's clock may be a simulated one, or step back
// when the box sets its time.
func (m *Main) dialError() error {
	return m.connErrs.LastSince(m.upAfter.Load())
}

// startReplay runs the replayer on nc: invoices out, receipts in, and the
// link state and progress into the cabin's status.
func (m *Main) startReplay(ctx context.Context, nc *nats.Conn) error {
	c := &m.Config
	if err := replay.CheckConn(nc); err != nil {
		return err
	}
	// Down until ground's first heartbeat: "unknown" is for a cabin server
	// with no link configured at all.
	m.cabin.SetLinkState(onboard.LinkDown)
	rp, err := replay.New(replay.Config{
		Aircraft: c.Aircraft, Flight: c.Flight, Journal: m.journal, Trust: m.anchor,
		Window: c.ReplayWindow, ResendAfter: c.ResendAfter, ReceiptAckWait: c.ReceiptAckWait, Clock: m.Clock, Log: m.Logger,
		ConnectErrors: &m.connErrs,
		OnLink: func(up bool) {
			if up {
				m.cabin.SetLinkState(onboard.LinkUp)
			} else {
				m.cabin.SetLinkState(onboard.LinkDown)
			}
		},
	})
	if err != nil {
		return err
	}
	m.replay = rp
	m.cabin.SetReplayProgress(func() onboard.ReplayProgress {
		s := rp.Status()
		p := onboard.ReplayProgress{LastHeartbeat: s.LastHeartbeat, SentThisLink: s.SentThisLink,
			RatePerSecond: s.RatePerSecond, ETASeconds: s.ETASeconds, ReceiptsApplied: s.ReceiptsApplied,
			ReceiptsRejected: s.ReceiptsBad, CloseAccepted: s.CloseAccepted, LastError: s.LastError}
		if s.CloseRejected != nil {
			p.CloseRejected, p.CloseRejectedAt = s.CloseRejected.Reason, s.CloseRejected.At
		}
		return p
	})
	m.wg.Go(func() {
		if err := rp.Run(ctx, nc); err != nil {
			m.Logger.Error("replayer stopped", "err", err)
		}
	})
	return nil
}

// Addr returns the handheld API's address, once Run has returned.
func (m *Main) Addr() string {
	if m.ln == nil {
		return ""
	}
	return m.ln.Addr().String()
}

// Fingerprint returns the SHA-256 fingerprint of the API's certificate.
func (m *Main) Fingerprint() string { return m.fp }

// CACert returns the aircraft CA's certificate in PEM, which issued the
// API's certificate, or nil when the certificate on disk has another
// issuer.
func (m *Main) CACert() []byte { return m.caPEM }

// Replayer returns the replayer, once Run has returned with a NATS URL set.
func (m *Main) Replayer() *replay.Replayer { return m.replay }

// Metrics returns the cabin server's metrics, once Run has returned.
func (m *Main) Metrics() *metrics.Metrics { return m.metrics }

// Journal returns the invoice journal, once Run has returned.
func (m *Main) Journal() *sqlite.Journal { return m.journal }

// Cabin returns the cabin server's core, once Run has returned.
func (m *Main) Cabin() *onboard.Cabin { return m.cabin }

// Close stops the cabin server gracefully: the API stops taking requests
// and drains those in flight (each waits for its commit), the manifest sync
// stops, the writer finishes its queue, and the journal closes.
func (m *Main) Close() error {
	var errs []error
	m.closed.Do(func() {
		if m.server != nil {
			ctx, cancel := context.WithTimeout(context.Background(), m.Config.ShutdownTimeout)
			if err := m.server.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("drain handheld API: %w", err))
			}
			cancel()
		}
		if m.cancel != nil {
			m.cancel()
		}
		m.wg.Wait()
		if m.nc != nil {
			m.stopping.Store(true)
			m.nc.Close()
		}
		if m.cabin != nil {
			errs = append(errs, m.cabin.Close())
		}
		if m.journal != nil {
			errs = append(errs, m.journal.Close())
		}
		if m.lock != nil {
			m.lock.Close() // releases the data directory
		}
		if m.profile != nil {
			pprof.StopCPUProfile()
			errs = append(errs, m.profile.Close())
		}
	})
	return errors.Join(errs...)
}
