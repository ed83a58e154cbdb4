// Package demo keeps a whole Airtab world running for a person to click
// through: a ground service (embedded NATS with JetStream, SQLite, the
// back office), one cabin server with the crew handheld app on HTTPS, and
// registered passengers with reference wallets whose payment codes it
// writes as QR images, fresh every few seconds, to a folder it names.
//
// Its first line on stdout is one JSON object (Info) for programs and
// scripts; the lines after it say the same in words. It runs until its
// context ends (Ctrl-C) or Config.For has passed.
package demo

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/registry"
	oapp "github.com/airtab/airtab/onboard/app"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/browsertest"
	"github.com/airtab/airtab/simulator/harness"
)

// Limits of Config.
const (
	MaxPassengers = 50
	// codeRefresh is how often the sample codes are rewritten: well inside
	// the flight's code freshness (120 s by default), so the one on screen
	// always scans.
	codeRefresh = 20 * time.Second
)

// Config configures a demo world. The zero value is not valid: start from
// DefaultConfig.
type Config struct {
	// Dir holds every part's data. Default: a temporary directory,
	// removed at the end unless Keep.
	Dir  string
	Keep bool
	// Listen is the cabin server's HTTPS address, where the handheld app
	// is. Default: 127.0.0.1:8443. Use 0.0.0.0:8443 and Hosts to reach it
	// from a phone on the same network.
	Listen string
	// Hosts are extra names or IPs for the cabin server's certificate.
	Hosts []string
	// Passengers is how many registered passengers hold codes (1 to
	// MaxPassengers). Default: 4.
	Passengers int
	// Currency of the flight. Default: EUR.
	Currency protocol.Currency
	// For ends the demo after this long; 0 runs until the context ends.
	For time.Duration
	// Stdout receives the JSON line and the words; Logger the parts' logs.
	Stdout io.Writer
	Logger *slog.Logger
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Listen: "127.0.0.1:8443", Passengers: 4, Currency: "EUR", Stdout: os.Stdout}
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	if c.Passengers < 1 || c.Passengers > MaxPassengers {
		return fmt.Errorf("passengers %d outside [1, %d]", c.Passengers, MaxPassengers)
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen %q: %v", c.Listen, err)
	}
	if err := c.Currency.Validate(); err != nil {
		return err
	}
	if c.For < 0 {
		return fmt.Errorf("for %v: want 0 (until Ctrl-C) or a positive duration", c.For)
	}
	return nil
}

// Crew is a crew member's sign-in.
type Crew struct {
	ID   string `json:"id"`
	PIN  string `json:"pin"`
	Role string `json:"role,omitempty"`
}

// Info is the demo's first line on stdout: where each app is and how to
// sign in. Fields for parts a build does not have are left out, so a
// reader checks for a field rather than for a version.
type Info struct {
	// Handheld is the crew handheld app's URL on the cabin server.
	Handheld string `json:"handheld"`
	// Crew is a purser, who may also close the flight; Attendant signs in
	// as cabin crew without the purser's actions.
	Crew      Crew  `json:"crew"`
	Attendant *Crew `json:"attendant,omitempty"`
	// Flight and Aircraft are the flight the cabin server sells on.
	Flight   protocol.FlightID   `json:"flight"`
	Aircraft protocol.AircraftID `json:"aircraft"`
	// CACert is the file of the aircraft CA to install on a handheld or
	// desktop browser, and CASPKI its key's base64 SHA-256, for
	// Chromium's --ignore-certificate-errors-spki-list.
	CACert string `json:"ca_cert,omitempty"`
	CASPKI string `json:"ca_spki,omitempty"`
	// Codes is the folder of sample payment codes, passenger-N.png and
	// passenger-N.txt, rewritten with fresh codes every 20 s.
	Codes string `json:"codes"`
	// Dir holds every part's data.
	Dir string `json:"dir"`
	// Wallet is the passenger web wallet's URL.
	Wallet string `json:"wallet,omitempty"`
	// Backoffice is the back office's URL, BackofficeToken its sign-in.
	Backoffice      string `json:"backoffice,omitempty"`
	BackofficeToken string `json:"backoffice_token,omitempty"`
	// GroundMetrics and CabinMetrics are the Prometheus endpoints.
	GroundMetrics string `json:"ground_metrics,omitempty"`
	CabinMetrics  string `json:"cabin_metrics,omitempty"`
}

// The demo's crew.
var (
	purser    = api.CrewEntry{ID: "purser1", Role: "purser", PIN: "2468"}
	attendant = api.CrewEntry{ID: "fa1", Role: "attendant", PIN: "1357"}
)

// demoScore is every demo passenger's credit score: the top band, so the
// limits leave room to play.
const demoScore = 800

// world is a running demo.
type world struct {
	cfg    Config
	g      *harness.Ground
	cabin  *oapp.Main
	flight protocol.FlightID
	fresh  uint32 // the flight's code freshness, in seconds
	pax    []*harness.Passenger
	codes  string
}

// Run builds the world, prints Info and the words, keeps the sample codes
// fresh, and returns when ctx ends or cfg.For has passed.
func Run(ctx context.Context, cfg Config) (err error) {
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if cfg.Dir == "" {
		if cfg.Dir, err = os.MkdirTemp("", "airtab-demo-*"); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		if !cfg.Keep {
			defer os.RemoveAll(cfg.Dir)
		}
	}
	w := &world{cfg: cfg, codes: filepath.Join(cfg.Dir, "codes")}
	defer w.close()
	if err := w.build(ctx); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	info, err := w.info()
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := json.NewEncoder(cfg.Stdout).Encode(info); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	w.explain(info)
	if cfg.For > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.For)
		defer cancel()
	}
	tick := time.NewTicker(codeRefresh)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(cfg.Stdout, "Stopping the demo.")
			return nil
		case <-tick.C:
			if err := w.writeCodes(); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
		}
	}
}

func (w *world) build(ctx context.Context) error {
	cfg := w.cfg
	scores := map[string]int{}
	for i := range cfg.Passengers {
		scores[passengerRef(i)] = demoScore
	}
	g, err := harness.StartGround(ctx, filepath.Join(cfg.Dir, "ground"), harness.GroundOptions{
		Scorer: registry.StaticScorer{ByRef: scores, Next: registry.HashScorer{}}, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	w.g = g
	a, err := g.RegisterAircraft(ctx, "D-AIDM", filepath.Join(cfg.Dir, "cabin"), nil)
	if err != nil {
		return err
	}
	fv, err := g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XS", Number: "100", Date: time.Now().UTC().Format(time.DateOnly),
		Aircraft: a.ID, Currency: cfg.Currency, Catalog: Catalog(cfg.Currency)})
	if err != nil {
		return fmt.Errorf("register flight: %w", err)
	}
	if _, err := g.API.SetCrew(ctx, fv.ID, []api.CrewEntry{purser, attendant}); err != nil {
		return fmt.Errorf("set crew: %w", err)
	}
	w.flight, w.fresh = fv.ID, fv.Caps.CodeFreshSeconds
	for i := range cfg.Passengers {
		top := protocol.M(30000*pow10(cfg.Currency)/100, cfg.Currency)
		p, err := g.RegisterPassenger(ctx, filepath.Join(cfg.Dir, "wallets", passengerRef(i)), passengerRef(i),
			ground.FundingSource{Kind: ground.FundingWallet}, top, fv.ID, protocol.WalletOptions{})
		if err != nil {
			return err
		}
		if !p.Eligible {
			return fmt.Errorf("passenger %s not eligible", p.Ref)
		}
		w.pax = append(w.pax, p)
	}
	m := oapp.NewMain()
	m.Config.DataDir = a.Dir
	m.Config.Listen = cfg.Listen
	m.Config.TLSHosts = cfg.Hosts
	m.Config.Aircraft, m.Config.Flight = a.ID, fv.ID
	m.Config.IssuerKeyFile = g.IssuerPubFile()
	m.Config.NATSURL = "nats://" + g.NATSAddr()
	m.Config.NATSNkey = a.NKeyFile()
	m.Config.SyncInterval = 5 * time.Second
	m.Config.MemoryLimitMiB = 0 // in-process: leave this program's limit alone
	m.Logger = cfg.Logger
	if err := m.Run(ctx); err != nil {
		m.Close()
		return fmt.Errorf("start cabin server: %w", err)
	}
	w.cabin = m
	if err := harness.Poll(ctx, 30*time.Second, "cabin server sales open", func() (bool, error) {
		st, err := m.Cabin().Status(ctx)
		return err == nil && st.SalesOpen, err
	}); err != nil {
		return err
	}
	return w.writeCodes()
}

func passengerRef(i int) string { return fmt.Sprintf("passenger-%d", i+1) }

// pow10 is 10^exponent of c: 100 for EUR, 1 for JPY.
func pow10(c protocol.Currency) int64 {
	e, _ := c.Exponent()
	p := int64(1)
	for range e {
		p *= 10
	}
	return p
}

// Catalog is the demo flight's catalog in currency c, priced as in euros.
func Catalog(c protocol.Currency) []protocol.CatalogItem {
	items := []struct {
		sku, name, cat string
		cents          int64
	}{
		{"coffee", "Coffee", "drink", 350},
		{"tea", "Tea", "drink", 300},
		{"water", "Still water 50 cl", "drink", 250},
		{"beer", "Beer 33 cl", "drink", 550},
		{"wine", "Red wine 18.7 cl", "drink", 690},
		{"sandwich", "Ham and cheese sandwich", "meal", 790},
		{"hot-meal", "Chicken curry with rice", "meal", 1250},
		{"snack-box", "Snack box", "meal", 550},
		{"chocolates", "Chocolate pralines", "duty-free", 1490},
		{"perfume", "Eau de parfum 50 ml", "duty-free", 6800},
		{"watch", "Pilot's watch", "duty-free", 14900},
	}
	out := make([]protocol.CatalogItem, 0, len(items))
	for _, it := range items {
		out = append(out, protocol.CatalogItem{SKU: it.sku, Name: it.name, Category: it.cat,
			Price: protocol.M(it.cents*pow10(c)/100, c)})
	}
	return out
}

// writeCodes writes a fresh payment code of each passenger as
// passenger-N.png and passenger-N.txt, each through a rename so a viewer
// never sees half a file.
func (w *world) writeCodes() error {
	if err := os.MkdirAll(w.codes, 0o755); err != nil {
		return err
	}
	for _, p := range w.pax {
		code, err := p.Wallet.PaymentCode(w.flight, false)
		if err != nil {
			return fmt.Errorf("payment code of %s: %w", p.Ref, err)
		}
		png, _, err := protocol.RenderQR(code, 480)
		if err != nil {
			return err
		}
		if err := writeAtomic(filepath.Join(w.codes, p.Ref+".png"), png); err != nil {
			return err
		}
		if err := writeAtomic(filepath.Join(w.codes, p.Ref+".txt"), []byte(code+"\n")); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func (w *world) info() (Info, error) {
	addr := w.cabin.Addr()
	host, port, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	base := "https://" + net.JoinHostPort(host, port)
	info := Info{
		Handheld:  base + "/",
		Crew:      Crew{ID: purser.ID, PIN: purser.PIN, Role: purser.Role},
		Attendant: &Crew{ID: attendant.ID, PIN: attendant.PIN, Role: attendant.Role},
		Flight:    w.flight, Aircraft: w.cabin.Config.Aircraft,
		Codes: w.codes, Dir: w.cfg.Dir,
		CabinMetrics: base + "/metrics",
	}
	if ca := w.cabin.CACert(); ca != nil {
		info.CACert = filepath.Join(w.cabin.Config.DataDir, "ca.crt")
		block, _ := pem.Decode(ca)
		if block == nil {
			return info, errors.New("aircraft CA certificate is not PEM")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return info, fmt.Errorf("aircraft CA certificate: %w", err)
		}
		info.CASPKI = browsertest.SPKIHash(cert)
	}
	groundURL := "http://" + w.g.Main.HTTPAddr()
	info.Backoffice = groundURL + "/backoffice/"
	info.Wallet = groundURL + "/wallet/"
	info.BackofficeToken = w.g.API.Token
	info.GroundMetrics = groundURL + "/metrics"
	return info, nil
}

// explain says in words what to open and what to show the camera.
func (w *world) explain(info Info) {
	out := w.cfg.Stdout
	p := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	p("Airtab demo: ground, cabin server of %s on flight %s, %d passengers with wallets.", info.Aircraft, info.Flight, len(w.pax))
	p("Crew handheld app: open %s", info.Handheld)
	p("  sign in as purser %s with PIN %s (may close the flight), or as attendant %s with PIN %s.", info.Crew.ID, info.Crew.PIN, info.Attendant.ID, info.Attendant.PIN)
	if info.CACert != "" {
		p("  the browser trusts the cabin server once the aircraft CA %s is installed", info.CACert)
		p("  (Chrome: Settings > Privacy and security > Security > Manage certificates > Authorities > Import);")
		p("  or for a quick look start Chromium with --ignore-certificate-errors-spki-list=%s", info.CASPKI)
	}
	p("Sample payment codes: %s", info.Codes)
	p("  passenger-N.png to show to the camera, passenger-N.txt to paste into the code field; fresh every %v (a code is fresh for %d s and scans once).", codeRefresh, w.fresh)
	if info.Backoffice != "" {
		p("Back office: %s (token %s)", info.Backoffice, info.BackofficeToken)
	}
	if info.Wallet != "" {
		p("Passenger wallet: %s", info.Wallet)
		p("  register, top up and opt in to %s there; it needs a secure context (this machine's loopback, or HTTPS in front of ground).", info.Flight)
	}
	p("Metrics: ground %s, cabin server %s", info.GroundMetrics, info.CabinMetrics)
	if w.cfg.For > 0 {
		p("Running for %v; Ctrl-C stops it sooner.", w.cfg.For)
	} else {
		p("Running until Ctrl-C.")
	}
}

func (w *world) close() {
	if w.cabin != nil {
		if err := w.cabin.Close(); err != nil {
			w.cfg.Logger.Warn("close cabin server", "err", err)
		}
	}
	if w.g != nil {
		if err := w.g.Close(); err != nil && !strings.Contains(err.Error(), "closed") {
			w.cfg.Logger.Warn("close ground", "err", err)
		}
	}
}
