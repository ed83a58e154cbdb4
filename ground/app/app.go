// Package app is the ground service program: its configuration, and the
// parts it wires together (registry, HTTP API, NATS with JetStream, the
// manifest responder, the heartbeat and clearing; on the API's listener also
// the back office at /backoffice/ and the Prometheus metrics at /metrics, see
// ops.go). cmd/ground runs it from
// the command line; the simulator and the tests run the same Main in
// process.
package app

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/keys"
	"github.com/airtab/airtab/ground/natsvc"
	"github.com/airtab/airtab/ground/opsmetrics"
	"github.com/airtab/airtab/ground/ratelimit"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/walletweb"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nkeys"
)

// Role is which parts of ground one process runs. Several processes share
// the work of one ground service only on a shared database (PostgreSQL) and
// an external NATS: the API servers and the clearing workers then scale
// and fail apart.
type Role string

// Roles.
const (
	// RoleAll runs every part in one process: the default, and the only
	// role on SQLite or with the embedded nats-server.
	RoleAll Role = "all"
	// RoleAPI runs the HTTP API (registration, back office, /metrics), the
	// manifest sync responder (a NATS queue group: API servers share the
	// requests), the manifest notices and the heartbeat. No clearing
	// consumer: invoices wait in JetStream for a clearing worker.
	RoleAPI Role = "api"
	// RoleClearing runs a clearing worker: the clearing service on the
	// shared JetStream consumer (workers split the invoices between them),
	// its retry round (one worker at a time, see store.TryLock), and on
	// the HTTP address only /metrics and /healthz.
	RoleClearing Role = "clearing"
)

// ParseRole parses a role name: all, api or clearing.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleAll, RoleAPI, RoleClearing:
		return r, nil
	case "":
		return RoleAll, nil
	}
	return "", fmt.Errorf("role %q: want all, api or clearing", s)
}

// Config configures Main. The zero value runs with the defaults below.
type Config struct {
	// Role is which parts this process runs. Default RoleAll. RoleAPI and
	// RoleClearing need a shared PostgreSQL database and NATSURL.
	Role Role
	// DataDir holds the database, keys, token and JetStream files. It is
	// created with mode 0700. Default "./airtab-ground".
	DataDir string
	// Postgres, when set, is the URL of the PostgreSQL database
	// (postgres://user:password@host:5432/airtab) that holds registry,
	// ledger and clearing instead of the SQLite file <DataDir>/ground.db.
	// Every ground process of a deployment names the same database; each
	// applies the schema migrations it lacks at start. Default: SQLite.
	Postgres string
	// HTTPAddr is the API's listen address. Port 0 picks a free port.
	// Default "127.0.0.1:8080".
	HTTPAddr string
	// NATSListen is the embedded nats-server's client address. Port 0
	// picks a free port. Default "127.0.0.1:4222".
	NATSListen string
	// NATSTLSCert and NATSTLSKey are PEM files with the embedded
	// nats-server's certificate and private key. When both are set, cabin
	// servers must connect with TLS (trusting this certificate or its CA);
	// ground's own in-process connection needs none. Only for the embedded
	// server: an error with NATSURL. Default: no TLS.
	NATSTLSCert, NATSTLSKey string
	// NATSURL, when set, connects to an external NATS server or cluster
	// (with JetStream) instead of embedding one: one URL, or several
	// separated by commas (a cluster's servers; ground connects to one and
	// fails over to the others).
	NATSURL string
	// NATSReplicas is how many JetStream servers hold each stream
	// (natsvc.Streams.Replicas): 3 on a production cluster, where losing
	// one server loses no invoice and stops nothing. More than 1 needs
	// NATSURL, an external cluster with at least that many JetStream
	// servers. An existing stream with another count is changed to it.
	// Default 1.
	NATSReplicas int
	// NATSNKeyFile is ground's own nkey seed file (a user nkey) on an
	// external NATS: ground logs in with it, as the servers' one auth
	// user (see natsvc's callout.go). Created (mode 0600, its public key
	// in NATSNKeyFile.pub) on first start. Only with NATSURL. Default:
	// none, ground connects without credentials.
	NATSNKeyFile string
	// NATSCalloutKeyFile is the auth callout's account nkey seed file.
	// When set, ground answers the external servers' authorization
	// requests (natsvc.Callout): each registered aircraft is let in by
	// its nkey, limited to its own subjects, as on the embedded server.
	// Created like NATSNKeyFile; the servers' auth_callout.issuer is its
	// public key. Needs NATSNKeyFile. Default: none.
	NATSCalloutKeyFile string
	// IssuerKeyFile is the first issuer private key file, created on first
	// start. Later keys (ground keys add, rotate) are files of their own,
	// and the set of them is <DataDir>/issuer-keys.json (ground/keys); each
	// start writes the signing key's public key to <DataDir>/issuer.pub and
	// the trusted keys with their windows to <DataDir>/issuer-trust.txt.
	// Default <DataDir>/issuer.key.
	IssuerKeyFile string
	// BackOfficeToken is the back-office bearer token (at least 16
	// bytes). Default: read from <DataDir>/backoffice.token, which is
	// created (mode 0600, 32 random bytes in hex) on first start.
	BackOfficeToken string
	// HeartbeatInterval between heartbeats. Default 5 s.
	HeartbeatInterval time.Duration
	// ShutdownTimeout bounds each step of Close. Default 15 s.
	ShutdownTimeout time.Duration
	// Clock is the registry's, the API's and the heartbeat's time.
	// Default time.Now. The simulator passes its own.
	Clock func() time.Time
	// Rand is the source of passenger and credential ids and PIN salts.
	// Default crypto/rand. The simulator passes a seeded reader.
	Rand io.Reader
	// Logger. Default: text to stderr at info level.
	Logger *slog.Logger
	// RateLimits bound each API client's calls. Default: see
	// api.RateLimits. The simulator lifts the per-address limit, since
	// all its passengers register from one loopback address, and the
	// bench turns the limits off.
	RateLimits api.RateLimits
	// Scorer gives new passengers their credit score. Default: the
	// registry's deterministic hash scorer.
	Scorer registry.Scorer
	// Acquirer captures card charges. Default: the bundled simulated
	// acquirer (clearing.SimAcquirer), which approves every card.
	Acquirer clearing.Acquirer
	// NATSOpen turns off the embedded server's authorization: any client
	// may connect with full rights. For a closed lab network only. By
	// default ground connects with a per-start password and each aircraft
	// with its registered nkey, limited to its own subjects.
	NATSOpen bool
	// StreamDuplicates is the Nats-Msg-Id duplicate window of the invoice
	// and receipt streams (natsvc.Streams.Duplicates). Default 2 minutes.
	// Exactly-once does not rest on it; tests shorten it to show that a
	// replay after the window is still posted once.
	StreamDuplicates time.Duration
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = "airtab-ground"
	}
	if c.Role == "" {
		c.Role = RoleAll
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = "127.0.0.1:8080"
	}
	if c.NATSListen == "" {
		c.NATSListen = "127.0.0.1:4222"
	}
	if c.IssuerKeyFile == "" {
		c.IssuerKeyFile = filepath.Join(c.DataDir, "issuer.key")
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 15 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
}

// Service is a long-running part that Main starts after the registry, NATS
// and the streams are up, and stops (by cancelling ctx) in Close, after the
// HTTP API and before NATS. The clearing service is one. Run returns nil
// when ctx is cancelled; any other return stops the whole process.
type Service interface {
	Run(ctx context.Context) error
}

// Deps are the parts Main has opened, handed to Main.Wire.
type Deps struct {
	// DB is the ground database (store.Open: WAL, synchronous=FULL, one
	// connection). Registry methods open their own transactions on it.
	DB        *sql.DB
	NATS      *nats.Conn
	JetStream jetstream.JetStream
	// Registry implements ground.Directory.
	Registry *registry.Registry
	// Issuer signs credentials, manifests and clearing receipts.
	Issuer crypto.PrivateKey
	// Clock is Config.Clock: pass it on so one clock rules the process.
	Clock  func() time.Time
	Logger *slog.Logger
}

// Extensions are what Main.Wire adds to the process.
type Extensions struct {
	// Funder serves the API's wallet top-ups and balances.
	Funder ground.WalletFunder
	// Charges serves the passenger's receipts (GET /v1/me/charges) and
	// retries their collections when they link a new card.
	Charges api.ChargeSource
	// Reports is mounted at /v1/reports/ behind the back-office token.
	Reports http.Handler
	// Services run until Close.
	Services []Service
}

// Main is the ground process: Run starts every part, Close stops them in
// order. Tests run it exactly as the command does.
type Main struct {
	Config Config
	// Wire, when set, builds the parts made elsewhere (clearing, ledger,
	// reports) from Main's; Run calls it once, after NATS and the streams
	// are up and before the API starts.
	Wire func(ctx context.Context, d Deps) (Extensions, error)

	log       *slog.Logger
	auth      *natsvc.Auth
	clearing  *clearing.Service
	metrics   *opsmetrics.Metrics
	lock      *os.File // the data directory's lock, held while running
	up        bool     // Run succeeded: Close logs the stop
	db        *sql.DB
	readDB    *sql.DB // SQLite: a read-only handle for clearing's lookups (openReadDB); nil on PostgreSQL
	reg       *registry.Registry
	ns        *server.Server
	nc        *nats.Conn
	ncClosed  chan struct{}
	natsURL   string
	responder *natsvc.Responder
	callout   *natsvc.Callout
	notifier  *natsvc.Notifier
	heartbeat *natsvc.Heartbeat
	httpSrv   *http.Server
	httpAddr  string
	svcCancel context.CancelFunc
	svcWG     sync.WaitGroup
	serveWG   sync.WaitGroup

	failOnce sync.Once
	failed   chan struct{}
	failErr  error
	closeMu  sync.Mutex
	closed   bool

	authMu     sync.Mutex  // serializes reloads of auth; guards the two below
	nkeyTimer  *time.Timer // reloads auth when the next retiring nkey's grace ends
	authClosed bool        // Close began: no more reloads
}

// Run opens the data directory, the issuer key, the database and NATS,
// ensures the JetStream streams, calls Wire, and starts the sync responder,
// the heartbeat, the services and the HTTP API. It returns once all are
// running; on an error it closes what it opened. Stop with Close.
func (m *Main) Run(ctx context.Context) (err error) {
	m.Config.setDefaults()
	cfg := m.Config
	m.log = cfg.Logger
	m.failed = make(chan struct{})
	defer func() {
		if err != nil {
			m.Close()
		}
	}()
	if _, err := ParseRole(string(cfg.Role)); err != nil {
		return err
	}
	if cfg.Role != RoleAll && cfg.NATSURL == "" {
		return fmt.Errorf("role %s needs an external NATS (--nats-url) shared by every ground process: the embedded nats-server lives and dies with one process; run --role all for a single process", cfg.Role)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := m.openDB(ctx); err != nil {
		return err
	}
	keySet, err := m.loadIssuer()
	if err != nil {
		return err
	}
	issuer := keySet.Signer()
	token, err := m.backOfficeToken()
	if err != nil {
		return err
	}
	if m.reg, err = registry.New(ctx, m.db, registry.Config{Issuer: issuer, Trust: keySet.Trusted(), RevokedIssuers: keySet.Revoked(), Clock: cfg.Clock, Rand: cfg.Rand, Logger: m.log,
		Scorer: cfg.Scorer, OnAircraft: m.reloadNATSAuth, ReadDB: m.readDB}); err != nil {
		return err
	}
	js, err := m.startNATS(ctx)
	if err != nil {
		return err
	}
	if err := natsvc.EnsureStreams(ctx, js, natsvc.Streams{Duplicates: cfg.StreamDuplicates, Replicas: cfg.NATSReplicas, Logger: m.log}); err != nil {
		return err
	}
	m.metrics = opsmetrics.New(opsmetrics.Config{DB: m.db, JS: js, Logger: m.log})
	var ext Extensions
	if m.Wire == nil {
		m.Wire = m.wireClearing
	}
	if m.Wire != nil {
		deps := Deps{DB: m.db, NATS: m.nc, JetStream: js, Registry: m.reg, Issuer: issuer, Clock: cfg.Clock, Logger: m.log}
		if ext, err = m.Wire(ctx, deps); err != nil {
			return fmt.Errorf("wire services: %w", err)
		}
	}
	// Every role sends manifest notices: a clearing worker marking a
	// passenger in arrears changes the flight's deny list too.
	m.notifier = &natsvc.Notifier{Conn: m.nc, Logger: m.log}
	m.reg.SetNotifier(m.notifier.Notify)
	if cfg.Role != RoleClearing {
		if m.responder, err = natsvc.StartResponder(ctx, natsvc.ResponderConfig{Conn: m.nc, Source: m.reg, Logger: m.log}); err != nil {
			return err
		}
		if m.heartbeat, err = natsvc.StartHeartbeat(natsvc.HeartbeatConfig{Conn: m.nc, Interval: cfg.HeartbeatInterval, Clock: cfg.Clock, Logger: m.log}); err != nil {
			return err
		}
	}
	m.startServices(ext.Services)
	if cfg.Role == RoleClearing {
		err = m.startWorkerHTTP()
	} else {
		err = m.startHTTP(api.Config{Registry: m.reg, Funder: ext.Funder, Charges: ext.Charges, Reports: ext.Reports, Wallet: walletweb.New(), BackOfficeToken: token, Clock: cfg.Clock, Logger: m.log, RateLimits: cfg.RateLimits})
	}
	if err != nil {
		return err
	}
	m.up = true
	attrs := []any{"role", cfg.Role, "http", m.httpAddr, "nats", m.natsURL, "data", cfg.DataDir,
		"issuer", issuer.ID(), "services", len(ext.Services)}
	if cfg.Role != RoleClearing { // a worker serves only /metrics and /healthz
		attrs = append(attrs, "backoffice", "http://"+m.httpAddr+"/backoffice/")
	}
	m.log.Info("ground service up", append(attrs, "metrics", "http://"+m.httpAddr+"/metrics")...)
	return nil
}

// HTTPAddr is the API's address once Run has returned ("127.0.0.1:8080").
func (m *Main) HTTPAddr() string { return m.httpAddr }

// NATSURL is the NATS URL cabin servers connect to once Run has returned.
func (m *Main) NATSURL() string { return m.natsURL }

// Registry is the registry once Run has returned.
func (m *Main) Registry() *registry.Registry { return m.reg }

// Done is closed when a part fails on its own (the HTTP server, a service);
// Err then says why. The process should Close and exit.
func (m *Main) Done() <-chan struct{} { return m.failed }

// Err is the failure that closed Done, or nil.
func (m *Main) Err() error {
	select {
	case <-m.failed:
		return m.failErr
	default:
		return nil
	}
}

func (m *Main) fail(err error) {
	m.failOnce.Do(func() {
		m.failErr = err
		m.log.Error("ground service failed", "err", err)
		close(m.failed)
	})
}

// loadIssuer opens the issuer key set (ground/keys), making it from the
// issuer key file on first start, which rewrites issuer.pub and
// issuer-trust.txt beside it for cabin servers.
func (m *Main) loadIssuer() (*keys.Set, error) {
	now := m.Config.Clock()
	s, created, err := keys.Open(m.Config.DataDir, m.Config.IssuerKeyFile, now, nil)
	if err != nil {
		return nil, err
	}
	if created {
		m.log.Info("issuer key set created", "set", filepath.Join(m.Config.DataDir, keys.SetFile),
			"public", filepath.Join(m.Config.DataDir, keys.PubFile), "id", s.Active)
	}
	for _, k := range s.List(now) {
		m.log.Info("issuer key", "id", k.ID, "status", k.Status, "not_before", k.NotBefore, "not_after", k.NotAfter)
	}
	return s, nil
}

// backOfficeToken returns the configured token, or the one in the data
// directory's token file, creating the file on first start. The token itself
// is never logged.
func (m *Main) backOfficeToken() (string, error) {
	if t := m.Config.BackOfficeToken; t != "" {
		if len(t) < api.MinTokenLen {
			return "", fmt.Errorf("back-office token: %d bytes, want at least %d", len(t), api.MinTokenLen)
		}
		return t, nil
	}
	path := filepath.Join(m.Config.DataDir, "backoffice.token")
	b, err := os.ReadFile(path)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if len(t) < api.MinTokenLen {
			return "", fmt.Errorf("back-office token file %s: %d bytes, want at least %d", path, len(t), api.MinTokenLen)
		}
		return t, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("back-office token: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	t := hex.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Another ground process sharing the directory made it first
		// (roles other than all take no directory lock).
		return m.backOfficeToken()
	}
	if err != nil {
		return "", fmt.Errorf("back-office token: %w", err)
	}
	_, werr := f.WriteString(t + "\n")
	if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
		return "", fmt.Errorf("back-office token: write %s: %w", path, err)
	}
	m.log.Info("back-office token created", "file", path)
	return t, nil
}

// startNATS starts the embedded server, or connects to NATSURL.
func (m *Main) startNATS(ctx context.Context) (jetstream.JetStream, error) {
	cfg := m.Config
	m.ncClosed = make(chan struct{})
	opts := []nats.Option{
		nats.Name("airtab-ground"),
		nats.MaxReconnects(-1),
		nats.ClosedHandler(func(*nats.Conn) { close(m.ncClosed) }),
	}
	m.natsURL = cfg.NATSURL
	if cfg.NATSURL != "" && (cfg.NATSTLSCert != "" || cfg.NATSTLSKey != "") {
		return nil, errors.New("NATS TLS certificate and key apply to the embedded server, not to an external one at the NATS URL")
	}
	if cfg.NATSReplicas < 0 || cfg.NATSReplicas > natsvc.MaxReplicas {
		return nil, fmt.Errorf("NATS stream replicas %d: want 1 to %d", cfg.NATSReplicas, natsvc.MaxReplicas)
	}
	if cfg.NATSURL == "" && cfg.NATSReplicas > 1 {
		return nil, fmt.Errorf("NATS stream replicas %d need an external JetStream cluster (a NATS URL): the embedded server is a single node", cfg.NATSReplicas)
	}
	if cfg.NATSURL == "" && (cfg.NATSNKeyFile != "" || cfg.NATSCalloutKeyFile != "") {
		return nil, errors.New("the NATS nkey and auth callout key files are for an external NATS (a NATS URL); the embedded server makes its own authorization")
	}
	if cfg.NATSCalloutKeyFile != "" && cfg.NATSNKeyFile == "" {
		return nil, errors.New("the NATS auth callout needs ground's own NATS nkey file: ground must log in as the servers' auth user to answer them")
	}
	if cfg.NATSNKeyFile != "" {
		kp, err := m.natsKey(cfg.NATSNKeyFile, nkeys.PrefixByteUser, "ground NATS nkey created: list its public key in every server's authorization users and auth_callout auth_users")
		if err != nil {
			return nil, err
		}
		pub, _ := kp.PublicKey()
		opts = append(opts, nats.Nkey(pub, kp.Sign))
	}
	// Both keys exist before the first connect: a cluster not yet set up
	// for them refuses ground, and the operator needs both public keys to
	// set it up.
	var calloutIssuer nkeys.KeyPair
	if cfg.NATSCalloutKeyFile != "" {
		var err error
		if calloutIssuer, err = m.natsKey(cfg.NATSCalloutKeyFile, nkeys.PrefixByteAccount, "NATS auth callout key created: set every server's auth_callout issuer to its public key"); err != nil {
			return nil, err
		}
	}
	if cfg.NATSURL == "" {
		host, port, err := splitListen(cfg.NATSListen)
		if err != nil {
			return nil, err
		}
		if !cfg.NATSOpen {
			if m.auth, err = m.natsAuth(ctx); err != nil {
				return nil, err
			}
			opts = append(opts, nats.UserInfo(m.auth.GroundUser, m.auth.GroundPassword))
		}
		m.ns, err = natsvc.StartServer(natsvc.ServerConfig{Host: host, Port: port, StoreDir: filepath.Join(cfg.DataDir, "nats"),
			Auth: m.auth, TLSCert: cfg.NATSTLSCert, TLSKey: cfg.NATSTLSKey, Logger: m.log})
		if err != nil {
			return nil, err
		}
		m.natsURL = m.ns.ClientURL() // tls:// when TLS is on
		opts = append(opts, nats.InProcessServer(m.ns))
	}
	nc, err := nats.Connect(m.connectURL(), opts...)
	if err != nil {
		if cfg.NATSNKeyFile != "" {
			// An nkey the servers do not list goes to their auth callout,
			// which nobody answers yet: a timeout, not a refusal.
			return nil, fmt.Errorf("connect to NATS at %s: %w (if the servers are up: every server's authorization must list ground's nkey, the public key in %s.pub, as a user and an auth_callout auth_user)",
				m.natsURL, err, cfg.NATSNKeyFile)
		}
		return nil, fmt.Errorf("connect to NATS at %s: %w", m.natsURL, err)
	}
	m.nc = nc
	if calloutIssuer != nil {
		if m.callout, err = natsvc.StartCallout(natsvc.CalloutConfig{Conn: nc, Issuer: calloutIssuer, Identities: m.reg.NATSIdentities,
			Retiring: m.retiringNATSIdentities, Clock: cfg.Clock, Logger: m.log}); err != nil {
			return nil, err
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	return js, nil
}

// natsKey loads the nkey seed in file, or creates it and logs created with
// the file and public key.
func (m *Main) natsKey(file string, kind nkeys.PrefixByte, created string) (nkeys.KeyPair, error) {
	kp, made, err := natsvc.LoadOrCreateNKey(file, kind)
	if err != nil {
		return nil, err
	}
	if made {
		pub, _ := kp.PublicKey()
		m.log.Warn(created, "file", file, "public", pub)
	}
	return kp, nil
}

// connectURL is the URL ground's own connection dials. In process it is
// nats://: the server waives TLS for in-process clients (nothing crosses a
// wire), while a tls:// URL would make the client insist on a handshake and
// verify the certificate against the listen address, which fails for a
// certificate issued to a host name or a 0.0.0.0 listen.
func (m *Main) connectURL() string {
	if m.ns == nil {
		return m.natsURL
	}
	return "nats://" + m.ns.Addr().String()
}

// natsAuth builds the embedded server's authorization from the registered
// aircraft.
func (m *Main) natsAuth(ctx context.Context) (*natsvc.Auth, error) {
	auth, err := natsvc.NewAuth()
	if err != nil {
		return nil, err
	}
	ids, err := m.reg.NATSIdentities(ctx)
	if err != nil {
		return nil, err
	}
	for id, nkey := range ids {
		auth.Aircraft = append(auth.Aircraft, natsvc.AircraftIdentity{ID: id, NKey: nkey})
	}
	// After a plain key rotation the old box logs in with its old nkey
	// until its grace ends (registry.RetiringNKeys), to upload what it
	// signed before; the reload then shuts it out.
	old, err := m.reg.RetiringNKeys(ctx, m.Config.Clock())
	if err != nil {
		return nil, err
	}
	for _, k := range old {
		auth.Aircraft = append(auth.Aircraft, natsvc.AircraftIdentity{ID: k.Aircraft, NKey: k.NKey})
	}
	if m.nkeyTimer != nil {
		m.nkeyTimer.Stop()
		m.nkeyTimer = nil
	}
	if len(old) > 0 {
		m.nkeyTimer = time.AfterFunc(old[0].Until.Sub(m.Config.Clock())+time.Second, func() { m.reloadNATSAuth(context.Background()) })
	}
	return auth, nil
}

// retiringNATSIdentities are the nkeys a plain key rotation replaced that
// may still log in at now (registry.RetiringNKeys): the auth callout lets
// them in as the embedded server does.
func (m *Main) retiringNATSIdentities(ctx context.Context, now time.Time) ([]natsvc.RetiringIdentity, error) {
	old, err := m.reg.RetiringNKeys(ctx, now)
	if err != nil {
		return nil, err
	}
	out := make([]natsvc.RetiringIdentity, len(old))
	for i, k := range old {
		out[i] = natsvc.RetiringIdentity{Aircraft: k.Aircraft, NKey: k.NKey, Until: k.Until}
	}
	return out, nil
}

// reloadNATSAuth lets newly registered aircraft into the embedded server,
// re-keyed ones with their new nkey, and shuts out nkeys whose grace ended.
func (m *Main) reloadNATSAuth(ctx context.Context) {
	m.authMu.Lock()
	defer m.authMu.Unlock()
	if m.auth == nil || m.ns == nil || m.authClosed {
		return
	}
	next, err := m.natsAuth(ctx)
	if err == nil {
		err = natsvc.SetAircraft(m.ns, m.auth, next.Aircraft)
	}
	if err != nil {
		m.log.Error("NATS authorization not updated: the new aircraft cannot connect until a restart", "err", err)
		return
	}
	m.log.Info("NATS authorization updated", "aircraft", len(next.Aircraft))
}

// wireClearing is the default Wire: the clearing service over the ground
// database and JetStream, with the configured acquirer. It is also the
// wallet funder and the reports handler.
func (m *Main) wireClearing(ctx context.Context, d Deps) (Extensions, error) {
	acq := m.Config.Acquirer
	if acq == nil {
		acq = clearing.NewSimAcquirer(clearing.SimConfig{Clock: d.Clock})
	}
	svc, err := clearing.New(ctx, clearing.Config{DB: d.DB, JS: d.JetStream, Directory: d.Registry,
		IssuerKey: d.Issuer, Acquirer: acq, Clock: d.Clock, Logger: d.Logger, Observer: m.metrics})
	if err != nil {
		return Extensions{}, err
	}
	m.clearing = svc
	d.Registry.SetFlightClosed(clearing.FlightClosed) // a closed flight takes no new wallet hold
	ext := Extensions{Funder: svc, Charges: svc, Reports: svc.Reports().Handler()}
	if m.Config.Role != RoleAPI {
		// An API server still uses the service's database side (wallet
		// top-ups, receipts, reports, disputes) but does not consume.
		ext.Services = []Service{svc}
	}
	return ext, nil
}

// Clearing returns the clearing service once Run has returned, when the
// default wiring is in use.
func (m *Main) Clearing() *clearing.Service { return m.clearing }

// NATS returns ground's own NATS connection once Run has returned. It has
// ground's full rights: for tests and tools in the same process.
func (m *Main) NATS() *nats.Conn { return m.nc }

// DB returns the ground database once Run has returned.
func (m *Main) DB() *sql.DB { return m.db }

// splitListen parses host:port; port 0 asks nats-server for a free port.
func splitListen(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("NATS listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("NATS listen address %q: bad port", addr)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	}
	return host, port, nil
}

func (m *Main) startServices(svcs []Service) {
	ctx, cancel := context.WithCancel(context.Background())
	m.svcCancel = cancel
	for _, s := range svcs {
		m.svcWG.Go(func() {
			if err := s.Run(ctx); err != nil && ctx.Err() == nil {
				m.fail(fmt.Errorf("service %T: %w", s, err))
			}
		})
	}
}

// openDB opens the ground database and takes the data directory's lock
// when the directory holds something only one process may write.
//
// With SQLite (the database is a file in the directory) or the embedded
// nats-server (its JetStream files are there) it does: a second ground
// service on the directory is refused (store.LockDir), and roles other
// than all are refused, since several processes cannot share either. On a
// shared PostgreSQL with an external NATS nothing in the directory is
// written after the first start but the issuer's public files, replaced
// atomically with the same content by every process, so the lock is
// shared (store.LockDirShared): the API servers and clearing workers of
// one machine may share the directory for their keys, and a "ground keys"
// change, which takes the lock alone, is refused while any runs. What
// needs one writer on the shared database
// has a PostgreSQL advisory lock instead (see ground/store/writelock.go:
// one lock every write transaction takes, which covers manifest serials,
// sales against the limits and the ledger; store.TryLock for clearing's
// retry round with the hold sweep).
//
// The database is opened before the lock is taken: opening a SQLite file
// another ground service uses changes nothing in it (the WAL setting is
// already made), and the lock then refuses this one.
func (m *Main) openDB(ctx context.Context) (err error) {
	cfg := m.Config
	dsn := filepath.Join(cfg.DataDir, "ground.db")
	if cfg.Postgres != "" {
		if !store.IsPostgresURL(cfg.Postgres) {
			return fmt.Errorf("PostgreSQL URL %q: want postgres://user:password@host:port/database", cfg.Postgres)
		}
		dsn = cfg.Postgres
	}
	// Refused before opening, so a refused start leaves no ground.db behind.
	if cfg.Role != RoleAll && cfg.Postgres == "" {
		return fmt.Errorf("role %s needs a database shared by every ground process (PostgreSQL, --postgres URL): SQLite is a file of one process's data directory; run --role all for a single process", cfg.Role)
	}
	if m.db, err = store.Open(ctx, dsn); err != nil {
		return err
	}
	shared := store.IsPostgres(m.db)
	lock := store.LockDir
	if shared && cfg.NATSURL != "" {
		lock = store.LockDirShared
	}
	if m.lock, err = lock(cfg.DataDir); err != nil || shared {
		return err
	}
	m.readDB, err = openReadDB(ctx, dsn)
	return err
}

// startWorkerHTTP serves a clearing worker's /metrics and /healthz.
func (m *Main) startWorkerHTTP() error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	return m.listenHTTP(mux)
}

// startHTTP serves the API with the back office and /metrics beside it
// (withOps). The API's bearer token and the back office's sign-in form
// take the same token, so one limit on wrong tokens holds for both: a guess
// through either counts against the same allowance per address and in all,
// counted on /metrics as airtab_ground_backoffice_signins_total{door}.
func (m *Main) startHTTP(cfg api.Config) error {
	signIns, err := ratelimit.NewSignInLimit(ratelimit.SignInConfig{Metrics: m.metrics.Registry()})
	if err != nil {
		return err
	}
	cfg.SignIns = signIns
	a, err := api.New(cfg)
	if err != nil {
		return err
	}
	h, err := m.withOps(a, cfg.BackOfficeToken, signIns)
	if err != nil {
		return err
	}
	return m.listenHTTP(h)
}

// listenHTTP serves h on Config.HTTPAddr until Close.
func (m *Main) listenHTTP(h http.Handler) error {
	ln, err := net.Listen("tcp", m.Config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP listen: %w", err)
	}
	m.httpAddr = ln.Addr().String()
	m.httpSrv = &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
	}
	m.serveWG.Go(func() {
		if err := m.httpSrv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			m.fail(fmt.Errorf("HTTP server: %w", err))
		}
	})
	return nil
}

// Close stops everything Run started, in order: the HTTP API (in-flight
// requests finish), the sync responder and heartbeat, the services (the
// clearing consumer finishes its batch), the NATS connection (drained), the
// embedded nats-server, and the database. It is safe to call more than once.
func (m *Main) Close() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.authMu.Lock()
	m.authClosed = true
	if m.nkeyTimer != nil {
		m.nkeyTimer.Stop()
	}
	m.authMu.Unlock()
	timeout := m.Config.ShutdownTimeout
	var errs []error
	if m.httpSrv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if err := m.httpSrv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("HTTP shutdown: %w", err))
		}
		cancel()
		m.serveWG.Wait()
	}
	if m.responder != nil {
		m.responder.Stop()
	}
	if m.callout != nil {
		m.callout.Stop()
	}
	if m.notifier != nil {
		m.notifier.Stop()
	}
	if m.heartbeat != nil {
		m.heartbeat.Stop()
	}
	stuck := false
	if m.svcCancel != nil {
		m.svcCancel()
		if !waitTimeout(&m.svcWG, timeout) {
			stuck = true
			errs = append(errs, fmt.Errorf("services did not stop within %s", timeout))
		}
	}
	if m.nc != nil {
		errs = append(errs, m.closeNATS(timeout))
	}
	if m.ns != nil {
		m.ns.Shutdown()
		m.ns.WaitForShutdown()
	}
	if m.readDB != nil {
		if err := m.readDB.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		}
	}
	if m.db != nil {
		if err := m.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close database: %w", err))
		}
	}
	if m.lock != nil && !stuck {
		// Released only when every service stopped: one still running
		// would share the directory with the next ground started on it.
		m.lock.Close()
	}
	if m.log != nil && m.up {
		m.log.Info("ground service stopped")
	}
	return errors.Join(errs...)
}

// closeNATS drains the connection (pending publishes are flushed) and waits
// for it to close.
func (m *Main) closeNATS(timeout time.Duration) error {
	if err := m.nc.Drain(); err != nil && !errors.Is(err, nats.ErrConnectionClosed) {
		m.nc.Close()
		return fmt.Errorf("drain NATS: %w", err)
	}
	select {
	case <-m.ncClosed:
		return nil
	case <-time.After(timeout):
		m.nc.Close()
		return fmt.Errorf("NATS connection did not drain within %s", timeout)
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}
