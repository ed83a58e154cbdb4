// Package harness runs Airtab's real parts side by side on one machine: a
// ground service (embedded NATS with JetStream, SQLite, HTTP API, clearing)
// and cabin servers that reach it through the link emulator, with
// passengers' reference wallets and handheld clients. The simulator, the
// bench and the end-to-end trials all build on it.
package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	gapp "github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/registry"
	oapp "github.com/airtab/airtab/onboard/app"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
)

// GroundOptions configure StartGround. The zero value is the production
// default on a temporary directory.
type GroundOptions struct {
	Clock    func() time.Time
	Rand     io.Reader
	Scorer   registry.Scorer
	Acquirer clearing.Acquirer
	Logger   *slog.Logger
	// StreamDuplicates is the streams' duplicate window. Default: ground's
	// (2 minutes).
	StreamDuplicates time.Duration
	// NATSCluster, when set, is the JetStream cluster ground uses instead
	// of its embedded server (ground's --nats-url with every node's URL,
	// its nkey and auth callout key), and cabin servers get a link to each
	// node. The cluster is the caller's to close, after the ground.
	NATSCluster *NATSCluster
	// NATSReplicas is the streams' replica count on NATSCluster. Default:
	// the cluster's node count, at most 3.
	NATSReplicas int
	// Postgres, when set, is the URL of the PostgreSQL database ground
	// keeps registry, ledger and clearing in, instead of SQLite in Dir.
	Postgres string
	// Workers, when positive, runs clearing in that many clearing workers
	// beside Ground.Main, which then runs the API role (see workers.go).
	// Needs Postgres and NATSCluster. Default 0: clearing runs in Main.
	Workers int
	// Role is the role of Ground.Main. Default: all, or api with Workers.
	Role gapp.Role
}

// Ground is a running ground service and a back-office client for it.
type Ground struct {
	Dir       string
	Main      *gapp.Main
	API       *api.Client
	IssuerPub crypto.PublicKey
	// Workers are the clearing workers run with GroundOptions.Workers and
	// StartWorker.
	Workers []*gapp.Main
	opts    GroundOptions
}

// StartGround runs a ground service in dir on free loopback ports.
func StartGround(ctx context.Context, dir string, opts GroundOptions) (*Ground, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Ground{Dir: dir, opts: opts}
	if err := g.start(ctx); err != nil {
		return nil, err
	}
	pub, err := crypto.ReadPublicKeyFile(g.IssuerPubFile(), crypto.Issuer)
	if err != nil {
		g.Close()
		return nil, err
	}
	g.IssuerPub = pub
	return g, nil
}

// Config is the configuration the ground service runs with: its data
// directory, a free HTTP port and, once it has run, the NATS port it
// listened on, which aircraft links keep pointing at. The crash trials run
// a ground process of their own with it; the clock, random source, scorer,
// acquirer and logger are values of this process, which such a process
// replaces with its own.
func (g *Ground) Config() gapp.Config {
	natsListen := "127.0.0.1:0"
	if g.Main != nil {
		natsListen = g.Main.Config.NATSListen // keep the port: aircraft links point at it
	}
	var natsURL, nkeyFile, calloutFile string
	replicas := g.opts.NATSReplicas
	if c := g.opts.NATSCluster; c != nil {
		natsURL, nkeyFile, calloutFile = c.URL(), c.NKeyFile, c.CalloutKeyFile
		if replicas == 0 {
			replicas = min(c.Nodes(), 3)
		}
	}
	return gapp.Config{Role: g.role(), DataDir: g.Dir, Postgres: g.opts.Postgres, HTTPAddr: "127.0.0.1:0", NATSListen: natsListen,
		NATSURL: natsURL, NATSReplicas: replicas, NATSNKeyFile: nkeyFile, NATSCalloutKeyFile: calloutFile,
		HeartbeatInterval: time.Second, Clock: g.opts.Clock, Rand: g.opts.Rand, Scorer: g.opts.Scorer,
		Acquirer: g.opts.Acquirer, Logger: g.opts.Logger, StreamDuplicates: g.opts.StreamDuplicates,
		// Every simulated phone registers from 127.0.0.1: the per-address
		// limit would model a whole fleet's passengers behind one NAT.
		RateLimits: api.RateLimits{UnauthenticatedPerMinute: 1 << 30, UnauthenticatedBurst: 1 << 20}}
}

func (g *Ground) start(ctx context.Context) error {
	m := &gapp.Main{Config: g.Config()}
	if err := m.Run(ctx); err != nil {
		return fmt.Errorf("start ground: %w", err)
	}
	if _, port, err := net.SplitHostPort(strings.TrimPrefix(m.NATSURL(), "nats://")); err == nil && g.opts.NATSCluster == nil {
		m.Config.NATSListen = "127.0.0.1:" + port
	}
	token, err := os.ReadFile(filepath.Join(g.Dir, "backoffice.token"))
	if err != nil {
		m.Close()
		return err
	}
	g.Main = m
	g.API = &api.Client{BaseURL: "http://" + m.HTTPAddr(), Token: strings.TrimSpace(string(token)), Clock: g.opts.Clock}
	if err := g.startWorkers(ctx); err != nil {
		g.closeWorkers()
		m.Close()
		return err
	}
	return nil
}

// Restart stops the ground service and starts it again on the same data
// directory and NATS port, as after a crash of the clearing process.
func (g *Ground) Restart(ctx context.Context) error {
	if err := errors.Join(g.closeWorkers(), g.Main.Close()); err != nil {
		return fmt.Errorf("stop ground: %w", err)
	}
	return g.start(ctx)
}

// Start starts the ground service again after Close, on the same data
// directory and NATS port. In between, another process may have run ground
// on the directory (the crash trials run it as a child process and kill
// it), provided that process has exited: two cannot share the database,
// the JetStream files or the port.
func (g *Ground) Start(ctx context.Context) error { return g.start(ctx) }

// NATSAddr is the host:port of ground's NATS server; on a cluster, of
// its first node.
func (g *Ground) NATSAddr() string { return g.NATSAddrs()[0] }

// NATSAddrs are the host:port of each of ground's NATS servers: the
// embedded one, or every node of GroundOptions.NATSCluster.
func (g *Ground) NATSAddrs() []string {
	if c := g.opts.NATSCluster; c != nil {
		return c.Addrs()
	}
	return []string{strings.TrimPrefix(g.Main.NATSURL(), "nats://")}
}

// NATSCluster is the cluster ground runs on, or nil for its embedded
// server.
func (g *Ground) NATSCluster() *NATSCluster { return g.opts.NATSCluster }

// IssuerPubFile is the issuer public key file cabin servers trust.
func (g *Ground) IssuerPubFile() string { return filepath.Join(g.Dir, "issuer.pub") }

// IssuerTrustFile is the issuer trust file (every trusted key with its
// window, ground/keys) that cabin servers trust through a key rotation.
func (g *Ground) IssuerTrustFile() string { return filepath.Join(g.Dir, "issuer-trust.txt") }

// Close stops the ground service.
func (g *Ground) Close() error {
	if g.Main == nil {
		return nil
	}
	return errors.Join(g.closeWorkers(), g.Main.Close())
}

// Aircraft is a registered aircraft: its signing key and its NATS nkey,
// both in files in its cabin server's data directory.
type Aircraft struct {
	ID      protocol.AircraftID
	Dir     string // the cabin server's data directory
	Key     crypto.PrivateKey
	NKeyPub string
}

// KeyFile is the aircraft signing key file, where the cabin server looks
// for it.
func (a *Aircraft) KeyFile() string { return filepath.Join(a.Dir, "aircraft.key") }

// NKeyFile is the aircraft's NATS nkey seed file.
func (a *Aircraft) NKeyFile() string { return filepath.Join(a.Dir, "aircraft.nk") }

// RegisterAircraft makes an aircraft's keys in dir and registers it with
// ground.
func (g *Ground) RegisterAircraft(ctx context.Context, id protocol.AircraftID, dir string, rnd io.Reader) (*Aircraft, error) {
	a, err := NewAircraft(id, dir, rnd)
	if err != nil {
		return nil, err
	}
	if err := g.Register(ctx, a); err != nil {
		return nil, err
	}
	return a, nil
}

// NewAircraft makes an aircraft's signing key and NATS nkey in dir, where
// its cabin server finds them, without registering it.
func NewAircraft(id protocol.AircraftID, dir string, rnd io.Reader) (*Aircraft, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	a := &Aircraft{ID: id, Dir: dir}
	var err error
	if a.Key, _, err = crypto.LoadOrCreateKeyFile(a.KeyFile(), crypto.Aircraft, rnd); err != nil {
		return nil, err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, err
	}
	seed, _ := kp.Seed()
	if a.NKeyPub, err = kp.PublicKey(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(a.NKeyFile(), seed, 0o600); err != nil {
		return nil, err
	}
	return a, nil
}

// Register registers aircraft a (its signing key and nkey) with ground.
func (g *Ground) Register(ctx context.Context, a *Aircraft) error {
	if _, err := g.API.RegisterAircraft(ctx, a.ID, a.Key.Public(), a.NKeyPub); err != nil {
		return fmt.Errorf("register aircraft %s: %w", a.ID, err)
	}
	return nil
}

// Passenger is a registered passenger with a reference wallet.
type Passenger struct {
	Ref      string
	Wallet   *protocol.Wallet
	Account  api.Account
	Eligible bool
}

// RegisterPassenger opens a wallet in dir, registers the passenger with
// funding (and a wallet top-up when topUp is positive), and opts in to the
// flight when the score allows. An ineligible passenger is returned with
// Eligible false and no credential: that is the refusal a real app shows.
func (g *Ground) RegisterPassenger(ctx context.Context, dir, ref string, funding ground.FundingSource, topUp protocol.Money,
	f protocol.FlightID, opts protocol.WalletOptions) (*Passenger, error) {
	w, err := protocol.OpenWallet(dir, opts)
	if err != nil {
		return nil, err
	}
	p := &Passenger{Ref: ref, Wallet: w}
	if p.Account, err = g.API.CreatePassenger(ctx, w, ref); err != nil {
		return nil, fmt.Errorf("passenger %s: %w", ref, err)
	}
	if _, err := g.API.SetFunding(ctx, w, funding); err != nil {
		return nil, fmt.Errorf("passenger %s funding: %w", ref, err)
	}
	if topUp.Minor > 0 {
		if _, err := g.API.TopUp(ctx, w, topUp, protocol.NewID(opts.Rand)); err != nil {
			return nil, fmt.Errorf("passenger %s top-up: %w", ref, err)
		}
	}
	cred, err := g.API.OptIn(ctx, w, f)
	var apiErr *registry.Error
	if errors.As(err, &apiErr) && apiErr.Code == registry.CodeIneligible {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("passenger %s opt-in: %w", ref, err)
	}
	if _, err := w.AddCredential(cred.COSE, nil); err != nil {
		return nil, err
	}
	p.Eligible = true
	return p, nil
}

// CabinOptions configure StartCabin.
type CabinOptions struct {
	Link         linkemu.Config
	Clock        func() time.Time
	Rand         io.Reader
	ReplayWindow int
	ResendAfter  time.Duration
	Logger       *slog.Logger
	// ReconnectWait is the NATS client's wait before reconnecting to the
	// server it lost. Default: the cabin server's (2 s).
	ReconnectWait time.Duration
	// ReceiptAckWait is how long a receipt delivered over a dropped
	// connection waits to be delivered again. Default: the cabin server's.
	ReceiptAckWait time.Duration
	// SyncInterval is the cabin server's manifest poll interval. Default:
	// 2 s, so trials see ground's changes soon even without notices; the
	// push tests set it to hours, so only a notice can explain a prompt
	// change.
	SyncInterval time.Duration
	// Process runs the cabin server as a child process (see
	// StartCabinProcess) instead of in this one, so that Kill can end it
	// with SIGKILL. The child keeps the system clock (Clock must be nil)
	// and crypto/rand (Rand is not used), and its log goes to Logger.
	Process bool
	// Executable is the program run as the child; its main (or TestMain)
	// must call RunCabinChild when CabinChildEnv is "1". Default: this
	// program (os.Executable).
	Executable string
	// IssuerKeyFile is the cabin server's trust anchor file. Default:
	// ground's issuer.pub (Ground.IssuerPubFile); the key rotation trials
	// give Ground.IssuerTrustFile.
	IssuerKeyFile string
	// StatusCrew and StatusPIN are the crew member the harness signs in as,
	// on a handheld of its own, to read a child's status: its API serves
	// the status to signed-in crew only. Required with Process.
	StatusCrew, StatusPIN string
}

// Cabin is a running cabin server whose NATS traffic to ground crosses the
// link emulator.
type Cabin struct {
	// Main is the cabin server in this process; nil when it runs as a
	// child process (CabinOptions.Process).
	Main *oapp.Main
	// Link is the link to ground's (first) NATS server; Links holds one
	// link per server of ground's cluster, Link first, and the cabin
	// server is given all their URLs. Links.SetState sets them all.
	Link     *linkemu.Link
	Links    LinkGroup
	Aircraft *Aircraft
	Flight   protocol.FlightID
	ground   *Ground
	opts     CabinOptions
	child    *cabinChild // set when the cabin server runs as a child process
}

// StartCabin runs aircraft a's cabin server for flight f, linked to ground
// through a new link emulator, and waits until it holds a verified
// manifest.
func StartCabin(ctx context.Context, g *Ground, a *Aircraft, f protocol.FlightID, opts CabinOptions) (*Cabin, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Cabin{Aircraft: a, Flight: f, ground: g, opts: opts}
	for _, addr := range g.NATSAddrs() {
		link, err := linkemu.Listen("127.0.0.1:0", addr, opts.Link, opts.Logger)
		if err != nil {
			c.closeLinks()
			return nil, err
		}
		c.Links = append(c.Links, link)
	}
	c.Link = c.Links[0]
	if err := c.start(ctx); err != nil {
		c.closeLinks()
		return nil, err
	}
	if err := c.WaitSalesOpen(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (c *Cabin) start(ctx context.Context) error {
	if c.opts.Process {
		return c.startProcess(ctx)
	}
	m := oapp.NewMain()
	m.Config.DataDir = c.Aircraft.Dir
	m.Config.Listen = "127.0.0.1:0"
	if c.Main != nil && c.Main.Addr() != "" {
		// A restart keeps the handheld API's address, as a real cabin
		// server's does: signed-in handhelds reconnect to it.
		m.Config.Listen = c.Main.Addr()
	}
	m.Config.Aircraft, m.Config.Flight = c.Aircraft.ID, c.Flight
	m.Config.IssuerKeyFile = c.ground.IssuerPubFile()
	if c.opts.IssuerKeyFile != "" {
		m.Config.IssuerKeyFile = c.opts.IssuerKeyFile
	}
	m.Config.NATSURL = c.NATSURL()
	m.Config.NATSNkey = c.Aircraft.NKeyFile()
	m.Config.SyncInterval = syncInterval(c.opts)
	m.Config.MemoryLimitMiB = 0 // in-process: leave the host program's limit alone
	if c.opts.ReplayWindow > 0 {
		m.Config.ReplayWindow = c.opts.ReplayWindow
	}
	if c.opts.ResendAfter > 0 {
		m.Config.ResendAfter = c.opts.ResendAfter
	}
	m.Config.ReconnectWait = c.opts.ReconnectWait
	m.Config.ReceiptAckWait = c.opts.ReceiptAckWait
	if c.opts.Clock != nil {
		m.Clock = c.opts.Clock
	}
	m.Rand = c.opts.Rand
	m.Logger = c.opts.Logger
	if err := m.Run(ctx); err != nil {
		m.Close()
		return fmt.Errorf("start cabin server %s: %w", c.Aircraft.ID, err)
	}
	c.Main = m
	return nil
}

// NATSURL is the cabin server's NATS URL: its links' URLs, separated by
// commas.
func (c *Cabin) NATSURL() string {
	urls := make([]string, len(c.Links))
	for i, l := range c.Links {
		urls[i] = l.URL()
	}
	return strings.Join(urls, ",")
}

// LinkGroup is a cabin's links, one per ground NATS server, handled as the
// aircraft's one radio link: they go up, down or into a black hole together.
type LinkGroup []*linkemu.Link

// SetState brings every link up, down or into a black hole.
func (g LinkGroup) SetState(s linkemu.State) {
	for _, l := range g {
		l.SetState(s)
	}
}

// SetConfig shapes every link.
func (g LinkGroup) SetConfig(cfg linkemu.Config) {
	for _, l := range g {
		l.SetConfig(cfg)
	}
}

// State is the links' state (the first's: they change together).
func (g LinkGroup) State() linkemu.State { return g[0].State() }

// SetLinkState brings every link of the cabin up, down or into a black
// hole (Links.SetState).
func (c *Cabin) SetLinkState(s linkemu.State) { c.Links.SetState(s) }

// SetLinkConfig shapes every link of the cabin (Links.SetConfig).
func (c *Cabin) SetLinkConfig(cfg linkemu.Config) { c.Links.SetConfig(cfg) }

func (c *Cabin) closeLinks() error {
	var errs []error
	for _, l := range c.Links {
		errs = append(errs, l.Close())
	}
	return errors.Join(errs...)
}

// syncInterval is the cabin server's manifest poll interval under opts.
func syncInterval(opts CabinOptions) time.Duration {
	if opts.SyncInterval > 0 {
		return opts.SyncInterval
	}
	return 2 * time.Second
}

// Restart stops the cabin server gracefully and starts it again on the same
// data directory.
func (c *Cabin) Restart(ctx context.Context) error {
	if c.child != nil {
		if err := c.child.proc.Stop(); err != nil {
			return err
		}
		return c.start(ctx)
	}
	if err := c.Main.Close(); err != nil {
		return err
	}
	return c.start(ctx)
}

// WaitSalesOpen waits until the cabin server holds a verified, unexpired
// manifest.
func (c *Cabin) WaitSalesOpen(ctx context.Context) error {
	if c.child != nil {
		if err := c.child.waitManifest(ctx); err != nil {
			return err
		}
	}
	return Poll(ctx, 30*time.Second, "cabin server sales open", func() (bool, error) {
		st, err := c.Status(ctx)
		return err == nil && st.SalesOpen, err
	})
}

// Handheld signs a crew member in on a new handheld client.
func (c *Cabin) Handheld(ctx context.Context, id, crew, pin string) (*client.Client, error) {
	cl, err := client.New(client.Config{URL: "https://" + c.Addr(), Fingerprint: c.Fingerprint(), Handheld: id, MaxConns: 8})
	if err != nil {
		return nil, err
	}
	if _, err := cl.SignIn(ctx, crew, pin); err != nil {
		return nil, fmt.Errorf("handheld %s sign-in: %w", id, err)
	}
	return cl, nil
}

// Close stops the cabin server and its link.
func (c *Cabin) Close() error {
	var err error
	if c.Main != nil {
		err = c.Main.Close()
	}
	if c.child != nil {
		err = c.child.close()
	}
	return errors.Join(err, c.closeLinks())
}

// Poll calls cond until it reports true, fails, or the timeout passes.
func Poll(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not within %v", what, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}
