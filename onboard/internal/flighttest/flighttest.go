// Package flighttest builds real flights for the cabin server's tests and
// benchmarks: an issuer key, an aircraft key, passengers with reference
// wallets in a temporary directory and issuer-signed credentials, crew with
// argon2id PIN hashes, a catalog, and signed manifests and deltas. Nothing
// is faked: every signature is real.
package flighttest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/sqlite"
	"github.com/airtab/airtab/protocol"
)

// Start is the default start time of a test flight.
var Start = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// Clock is a clock that moves only when told to. It is safe for concurrent
// use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// Crew member logins of every test flight.
var (
	Purser    = CrewLogin{ID: "purser1", PIN: "2468", Role: "purser"}
	Attendant = CrewLogin{ID: "fa1", PIN: "1357", Role: "attendant"}
)

// CrewLogin is a crew member's id, PIN and role.
type CrewLogin struct{ ID, PIN, Role string }

// CheapPIN are argon2id parameters cheap enough for tests. Production
// manifests use crypto.DefaultPINParams.
var CheapPIN = crypto.PINParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

// Options shape a test flight. Zero fields take the defaults noted.
type Options struct {
	// Passengers with wallets and credentials in the manifest. Default: 4.
	Passengers int
	// Seats adds passengers without wallet directories (see Seat), to
	// size the manifest like a full airliner's quickly. Default: 0.
	Seats int
	// Limit and TxCap of each credential. Default: 200.00 and 100.00 EUR.
	Limit, TxCap protocol.Money
	// Caps of the flight. Default: exposure 10 000.00 EUR, codes fresh for
	// 60 s with 30 s of skew, 5 sales per 600 s.
	Caps protocol.Caps
	// Clock of the flight, shared by wallets and the cabin server.
	// Default: a Clock at Start; RealTime uses time.Now.
	Clock    *Clock
	RealTime bool
	// PINParams hash the crew PINs. Default: CheapPIN.
	PINParams crypto.PINParams
}

// Flight is a test flight: its keys, passengers, crew, catalog and the
// manifest body that SignManifest signs. Tests may change Manifest before
// signing.
type Flight struct {
	tb       testing.TB
	Dir      string
	Now      func() time.Time
	Clock    *Clock // nil with RealTime
	ID       protocol.FlightID
	Aircraft protocol.AircraftID

	Issuer      crypto.PrivateKey
	Anchor      *crypto.TrustList // the cabin server's trust anchor: the issuer key
	AircraftKey crypto.PrivateKey

	Passengers []*Passenger
	Seats      []*Seat
	Manifest   protocol.Manifest
	Limit      protocol.Money
	TxCap      protocol.Money
	serial     uint64

	mu      sync.Mutex
	wallets int
}

// Passenger is a registered passenger: a wallet and a credential.
type Passenger struct {
	ID         protocol.ID
	Wallet     *protocol.Wallet
	Credential *protocol.SignedCredential
	flight     protocol.FlightID
	tb         testing.TB
}

// Catalog items of every test flight, in EUR.
var Catalog = []protocol.CatalogItem{
	{SKU: "COFFEE", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"},
	{SKU: "SANDWICH", Name: "Sandwich", Price: protocol.M(850, "EUR"), Category: "meal"},
	{SKU: "PERFUME", Name: "Perfume 50 ml", Price: protocol.M(6500, "EUR"), Category: "duty-free"},
	{SKU: "WATCH", Name: "Watch", Price: protocol.M(15000, "EUR"), Category: "duty-free"},
	{SKU: "WATER", Name: "Water", Price: protocol.M(0, "EUR"), Category: "drink"},
	{SKU: "GOLD", Name: "Gold bar", Price: protocol.M(protocol.MaxMinor, "EUR"), Category: "duty-free"},
}

// New builds a flight with opts.
func New(tb testing.TB, opts Options) *Flight {
	tb.Helper()
	if opts.Passengers == 0 {
		opts.Passengers = 4
	}
	if opts.Limit == (protocol.Money{}) {
		opts.Limit = protocol.M(20000, "EUR")
	}
	if opts.TxCap == (protocol.Money{}) {
		opts.TxCap = protocol.M(10000, "EUR")
	}
	if opts.Caps == (protocol.Caps{}) {
		opts.Caps = protocol.Caps{AircraftExposure: protocol.M(1_000_000, "EUR"), CodeFreshSeconds: 60,
			ClockSkewSeconds: 30, VelocityCount: 5, VelocityWindowSeconds: 600}
	}
	f := &Flight{tb: tb, Dir: tb.TempDir(), Aircraft: "D-AIUA", Limit: opts.Limit, TxCap: opts.TxCap}
	switch {
	case opts.RealTime:
		f.Now = func() time.Time { return time.Now().Truncate(time.Second) }
	case opts.Clock != nil:
		f.Clock, f.Now = opts.Clock, opts.Clock.Now
	default:
		f.Clock = NewClock(Start)
		f.Now = f.Clock.Now
	}
	start := f.Now()
	var err error
	if f.ID, err = protocol.NewFlightID("XX", "123", start); err != nil {
		tb.Fatal(err)
	}
	f.Issuer = must(crypto.GenerateKey(crypto.Issuer, nil))
	f.AircraftKey = must(crypto.GenerateKey(crypto.Aircraft, nil))
	f.Anchor = must(crypto.NewTrustList(crypto.TrustedKey{Key: f.Issuer.Public(),
		NotBefore: start.Add(-365 * 24 * time.Hour), NotAfter: start.Add(365 * 24 * time.Hour)}))
	f.Manifest = protocol.Manifest{
		Version: protocol.Version, Flight: f.ID, Aircraft: f.Aircraft,
		AircraftKey: protocol.AircraftKey{PublicKey: f.AircraftKey.Public()},
		IssuedAt:    start.Add(-time.Hour), ExpiresAt: start.Add(24 * time.Hour), Currency: "EUR",
		Trust: []protocol.TrustEntry{protocol.TrustEntryFor(crypto.TrustedKey{Key: f.Issuer.Public(),
			NotBefore: start.Add(-30 * 24 * time.Hour), NotAfter: start.Add(365 * 24 * time.Hour)})},
		Crew:    []protocol.CrewMember{crewMember(Purser, opts.PINParams), crewMember(Attendant, opts.PINParams)},
		Catalog: Catalog,
		Caps:    opts.Caps,
	}
	for range opts.Passengers {
		f.Passengers = append(f.Passengers, f.NewPassenger(true))
	}
	for range opts.Seats {
		dev := must(crypto.GenerateKey(crypto.Device, nil))
		st := &Seat{key: dev, now: f.Now, Credential: f.SignCredential(dev.Public(), protocol.NewID(nil), nil)}
		f.Seats = append(f.Seats, st)
		f.Manifest.Credentials = append(f.Manifest.Credentials, st.Credential.Raw)
	}
	return f
}

func crewMember(l CrewLogin, params crypto.PINParams) protocol.CrewMember {
	if params == (crypto.PINParams{}) {
		params = CheapPIN
	}
	return protocol.CrewMember{ID: l.ID, Role: l.Role, PINHash: must(crypto.HashPIN(l.PIN, params, nil))}
}

// must returns v, or panics on err: the helpers fail only when the test
// environment is broken (no randomness, no temporary directory).
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("flighttest: %v", err))
	}
	return v
}

// SignCredential issues a credential for device on this flight, signed by
// the issuer; mut, if not nil, changes it before signing.
func (f *Flight) SignCredential(device crypto.PublicKey, passenger protocol.ID, mut func(*protocol.Credential)) *protocol.SignedCredential {
	return f.signCredential(f.Issuer, device, passenger, mut)
}

func (f *Flight) signCredential(issuer crypto.PrivateKey, device crypto.PublicKey, passenger protocol.ID, mut func(*protocol.Credential)) *protocol.SignedCredential {
	now := f.Now()
	c := protocol.Credential{
		Version: protocol.Version, ID: protocol.NewID(nil), Passenger: passenger,
		Device: protocol.DeviceKey{PublicKey: device}, Flight: f.ID,
		Limit: f.Limit, TxCap: f.TxCap,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
	}
	if mut != nil {
		mut(&c)
	}
	return must(protocol.Sign(c, issuer, nil))
}

// NewPassenger registers a passenger: a wallet in a temporary directory and
// a credential stored in it. With inManifest the credential is added to the
// manifest body; otherwise the passenger is a late registrant who must pay
// with a full code until a delta brings the credential.
func (f *Flight) NewPassenger(inManifest bool) *Passenger {
	return f.NewPassengerWith(PassengerOptions{InManifest: inManifest})
}

// PassengerOptions shape a passenger for NewPassengerWith.
type PassengerOptions struct {
	// InManifest adds the credential to the manifest body.
	InManifest bool
	// Issuer signs the credential. Default: the flight's issuer.
	Issuer crypto.PrivateKey
	// Mutate, if not nil, changes the credential before it is signed.
	Mutate func(*protocol.Credential)
}

// NewPassengerWith is NewPassenger with options.
func (f *Flight) NewPassengerWith(opts PassengerOptions) *Passenger {
	f.tb.Helper()
	dir := filepath.Join(f.Dir, fmt.Sprintf("wallet-%d", f.nextWallet()))
	w := must(protocol.OpenWallet(dir, protocol.WalletOptions{Clock: f.Now}))
	p := &Passenger{ID: protocol.NewID(nil), Wallet: w, tb: f.tb}
	issuer := f.Issuer
	if !opts.Issuer.IsZero() {
		issuer = opts.Issuer
	}
	p.Credential = f.signCredential(issuer, w.DeviceKey(), p.ID, opts.Mutate)
	p.flight = p.Credential.Body.Flight
	if _, err := w.AddCredential(p.Credential.Raw, nil); err != nil {
		f.tb.Fatal(err)
	}
	if opts.InManifest {
		f.Manifest.Credentials = append(f.Manifest.Credentials, p.Credential.Raw)
	}
	return p
}

func (f *Flight) nextWallet() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wallets++
	return f.wallets
}

// SignManifest signs the manifest body under the next serial, after mut (if
// not nil) has changed a copy of it, and returns the signed bytes.
func (f *Flight) SignManifest(mut func(*protocol.Manifest)) []byte {
	f.tb.Helper()
	f.serial++
	m := f.Manifest
	m.Serial = f.serial
	if mut != nil {
		mut(&m)
	}
	return must(protocol.Sign(m, f.Issuer, nil)).Raw
}

// Serial returns the serial of the last manifest signed.
func (f *Flight) Serial() uint64 { return f.serial }

// SignDelta signs a delta of the last manifest signed with sequence number
// seq, after mut (if not nil) has filled it in.
func (f *Flight) SignDelta(seq uint64, mut func(*protocol.ManifestDelta)) []byte {
	f.tb.Helper()
	now := f.Now()
	d := protocol.ManifestDelta{Version: protocol.Version, Flight: f.ID, Aircraft: f.Aircraft,
		BaseSerial: f.serial, Seq: seq, IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(24 * time.Hour)}
	if mut != nil {
		mut(&d)
	}
	return must(protocol.Sign(d, f.Issuer, nil)).Raw
}

// Seat is a passenger whose device key lives in memory rather than in a
// wallet directory: it signs payment codes exactly as protocol.Wallet does
// (same message, same key purpose, the credential id as external_aad) but
// keeps its counter in memory. For tests that need hundreds of passengers.
type Seat struct {
	Credential *protocol.SignedCredential
	key        crypto.PrivateKey
	now        func() time.Time
	counter    atomic.Uint64
}

// Code returns a fresh compact payment code of the seat's passenger.
func (s *Seat) Code() string {
	pc := protocol.PaymentCode{Counter: s.counter.Add(1), Time: s.now().Truncate(time.Second)}
	signed := must(protocol.Sign(pc, s.key, s.Credential.Body.ID[:]))
	return protocol.QRText(protocol.PrefixPaymentCode, signed.Raw)
}

// Code returns a fresh compact payment code of the passenger.
func (p *Passenger) Code() string {
	p.tb.Helper()
	return must(p.Wallet.PaymentCode(p.flight, false))
}

// FullCode returns a fresh full-form payment code, carrying the credential.
func (p *Passenger) FullCode() string {
	p.tb.Helper()
	return must(p.Wallet.PaymentCode(p.flight, true))
}

// Consent returns the passenger's consent to the order in orderText.
func (p *Passenger) Consent(orderText string) string {
	p.tb.Helper()
	text, _, err := p.Wallet.Consent(orderText, false)
	if err != nil {
		p.tb.Fatal(err)
	}
	return text
}

// Config returns a cabin configuration for the flight on journal j.
func (f *Flight) Config(j onboard.Journal) onboard.Config {
	return onboard.Config{Flight: f.ID, Aircraft: f.Aircraft, AircraftKey: f.AircraftKey,
		Issuer: f.Anchor, Journal: j, Clock: f.Now}
}

// JournalPath is where OpenCabin keeps the flight's journal.
func (f *Flight) JournalPath() string { return filepath.Join(f.Dir, "journal.db") }

// OpenJournal opens the flight's SQLite journal; the test closes it at its
// end.
func (f *Flight) OpenJournal() *sqlite.Journal {
	f.tb.Helper()
	j, err := sqlite.Open(context.Background(), f.JournalPath(), f.ID, f.Aircraft)
	if err != nil {
		f.tb.Fatal(err)
	}
	return j
}

// OpenCabin opens a cabin server for the flight on its SQLite journal, with
// mut (if not nil) applied to the configuration, and loads manifest when it
// is not nil. Both are closed at the end of the test.
func (f *Flight) OpenCabin(manifest []byte, mut func(*onboard.Config)) (*onboard.Cabin, *sqlite.Journal) {
	f.tb.Helper()
	j := f.OpenJournal()
	cfg := f.Config(j)
	if mut != nil {
		mut(&cfg)
	}
	c, err := onboard.Open(context.Background(), cfg)
	if err != nil {
		j.Close()
		f.tb.Fatal(err)
	}
	f.tb.Cleanup(func() {
		c.Close()
		j.Close()
	})
	if manifest != nil {
		if err := c.LoadManifest(context.Background(), manifest); err != nil {
			f.tb.Fatal(err)
		}
	}
	return c, j
}

// Basket is a shorthand for a basket of lines: Basket("COFFEE", 2,
// "SANDWICH", 1).
func Basket(args ...any) []onboard.Line {
	var out []onboard.Line
	for i := 0; i+1 < len(args); i += 2 {
		out = append(out, onboard.Line{SKU: args[i].(string), Quantity: int64(args[i+1].(int))})
	}
	return out
}
