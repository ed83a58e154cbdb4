package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	gapp "github.com/airtab/airtab/ground/app"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/harness"
)

// The bench's flights: one per section, each flown by its own aircraft, so
// that one section's journal and replay never touch another's.
const (
	flightAuthorize = iota
	flightClearing
	flightMemory
	nFlights
)

var flightNames = [nFlights]string{"authorize", "clearing", "memory"}

// world is the ground service and what is registered with it: the bench's
// aircraft, flights, crew and passengers.
type world struct {
	opts *Options
	dir  string
	g    *harness.Ground
	// clearer is ground's clearing service, built by Wire but not run: the
	// clearing section starts it once the stream is full.
	clearer *clearing.Service
	js      jetstream.JetStream
	// issuer is ground's signing key, for the clearing workers section's
	// services.
	issuer crypto.PrivateKey

	aircraft [nFlights]*harness.Aircraft
	flights  [nFlights]api.FlightView
	crew     [nFlights][]crewMember
	pax      []*harness.Passenger
	rng      *rand.Rand // baskets; not safe for concurrent use
}

type crewMember struct{ id, pin string }

// highScore gives every passenger a score in the top band (750 to 850:
// 600.00 EUR per flight, 250.00 per sale), so the bench measures throughput
// and not declines.
type highScore struct{}

func (highScore) Score(context.Context, registry.Applicant) (int, error) { return 800, nil }

// catalog is what every bench flight sells; basket picks from it.
var catalog = []protocol.CatalogItem{
	{SKU: "COFFEE", Name: "Coffee", Price: protocol.M(150, "EUR"), Category: "drink"},
	{SKU: "WATER", Name: "Water", Price: protocol.M(50, "EUR"), Category: "drink"},
	{SKU: "CHOC", Name: "Chocolate", Price: protocol.M(120, "EUR"), Category: "snack"},
}

// benchCaps lift the velocity rule and the aircraft exposure cap out of the
// way (1 000 sales per passenger per second, 10 million EUR) and keep codes
// fresh for an hour, so codes made before the clock starts stay good. The
// per-passenger limit and per-sale cap still apply.
func benchCaps() *api.Caps {
	exposure := protocol.M(1_000_000_000, "EUR")
	return &api.Caps{AircraftExposure: &exposure, CodeFreshSeconds: 3600, VelocityCount: 1000, VelocityWindowSeconds: 1}
}

// cheapPIN is the argon2id cost for the authorize and clearing flights'
// crew: 64 handhelds signing in with the production cost would take
// seconds of setup and a gigabyte at once, and sign-in is not measured.
// The memory flight's crew keeps the production cost.
var cheapPIN = crypto.PINParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}

// newWorld starts ground in dir and registers the aircraft, flights, crew
// and passengers.
func newWorld(ctx context.Context, dir string, opts *Options) (*world, error) {
	w := &world{opts: opts, dir: dir, rng: rand.New(rand.NewPCG(opts.Seed, 1))}
	start := time.Now()
	if err := w.startGround(ctx); err != nil {
		return nil, err
	}
	progress(opts.Progress, "ground up in %.1f s", time.Since(start).Seconds())
	if err := w.registerFlights(ctx); err != nil {
		w.close()
		return nil, err
	}
	start = time.Now()
	if err := w.registerPassengers(ctx); err != nil {
		w.close()
		return nil, err
	}
	progress(opts.Progress, "%d passengers registered with wallets and %d credentials each in %.1f s",
		len(w.pax), nFlights, time.Since(start).Seconds())
	return w, nil
}

// startGround runs the ground service as harness.StartGround does, except
// that the clearing service is built but not started (its Run is the
// clearing section's to call).
func (w *world) startGround(ctx context.Context) error {
	gdir := filepath.Join(w.dir, "ground")
	m := &gapp.Main{Config: gapp.Config{DataDir: gdir, Postgres: w.opts.Postgres, HTTPAddr: "127.0.0.1:0", NATSListen: "127.0.0.1:0",
		HeartbeatInterval: time.Second, Scorer: highScore{}, Logger: w.opts.Logger,
		RateLimits: api.RateLimits{Off: true}}} // the bench drives the API flat out
	m.Wire = func(ctx context.Context, d gapp.Deps) (gapp.Extensions, error) {
		svc, err := clearing.New(ctx, clearing.Config{DB: d.DB, JS: d.JetStream, Directory: d.Registry, IssuerKey: d.Issuer,
			Acquirer: clearing.NewSimAcquirer(clearing.SimConfig{Clock: d.Clock}), Clock: d.Clock, Logger: d.Logger})
		if err != nil {
			return gapp.Extensions{}, err
		}
		w.clearer, w.js, w.issuer = svc, d.JetStream, d.Issuer
		return gapp.Extensions{Funder: svc, Reports: svc.Reports().Handler()}, nil
	}
	if err := m.Run(ctx); err != nil {
		return fmt.Errorf("start ground: %w", err)
	}
	token, err := os.ReadFile(filepath.Join(gdir, "backoffice.token"))
	if err != nil {
		m.Close()
		return err
	}
	w.g = &harness.Ground{Dir: gdir, Main: m,
		API: &api.Client{BaseURL: "http://" + m.HTTPAddr(), Token: strings.TrimSpace(string(token))}}
	if w.g.IssuerPub, err = crypto.ReadPublicKeyFile(w.g.IssuerPubFile(), crypto.Issuer); err != nil {
		m.Close()
		return err
	}
	return nil
}

// registerFlights registers an aircraft, a flight and crew per section.
func (w *world) registerFlights(ctx context.Context) error {
	date := time.Now().UTC().Format(time.DateOnly)
	for i := range nFlights {
		a, err := w.g.RegisterAircraft(ctx, protocol.AircraftID(fmt.Sprintf("D-ABN%c", 'A'+i)),
			filepath.Join(w.dir, "cabin-"+flightNames[i]), nil)
		if err != nil {
			return err
		}
		w.aircraft[i] = a
		req := api.FlightRequest{Carrier: "XX", Number: fmt.Sprint(901 + i), Date: date, Aircraft: a.ID,
			Currency: "EUR", Catalog: catalog, Caps: benchCaps()}
		if i == flightMemory {
			req.Caps = nil // a real flight's default caps: codes fresh for 120 s, 6 sales per 10 minutes
		}
		if w.flights[i], err = w.g.API.RegisterFlight(ctx, req); err != nil {
			return fmt.Errorf("register %s flight: %w", flightNames[i], err)
		}
		if err := w.setCrew(ctx, i); err != nil {
			return err
		}
	}
	return nil
}

// setCrew gives the authorize flight one attendant per four handhelds (the
// cabin server allows five sign-ins per crew member per minute), the
// clearing flight one, and the memory flight a purser whose PIN ground
// hashes with the production argon2id cost.
func (w *world) setCrew(ctx context.Context, i int) error {
	n := 1
	if i == flightAuthorize {
		n = (w.opts.Clients + 3) / 4
	}
	var entries []api.CrewEntry
	for k := range n {
		m := crewMember{id: fmt.Sprintf("fa%02d", k+1), pin: fmt.Sprintf("%04d", 1000+k)}
		e := api.CrewEntry{ID: m.id, Role: "attendant"}
		if i == flightMemory {
			e.Role, e.PIN = "purser", m.pin
		} else {
			h, err := crypto.HashPIN(m.pin, cheapPIN, nil)
			if err != nil {
				return err
			}
			e.PINHash = h
		}
		entries = append(entries, e)
		w.crew[i] = append(w.crew[i], m)
	}
	if _, err := w.g.API.SetCrew(ctx, w.flights[i].ID, entries); err != nil {
		return fmt.Errorf("%s flight crew: %w", flightNames[i], err)
	}
	return nil
}

// registerPassengers registers opts.Passengers passengers, half paying by
// wallet balance (topped up) and half by card, each opted in to every bench
// flight, four at a time.
func (w *world) registerPassengers(ctx context.Context) error {
	w.pax = make([]*harness.Passenger, w.opts.Passengers)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for k := range errs {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(w.pax) || ctx.Err() != nil {
					return
				}
				if w.pax[i], errs[k] = w.registerPassenger(ctx, i); errs[k] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (w *world) registerPassenger(ctx context.Context, i int) (*harness.Passenger, error) {
	ref := fmt.Sprintf("bench-%04d", i)
	funding := ground.FundingSource{Kind: ground.FundingWallet}
	// The top band's whole limit for each bench flight: a prepaid
	// credential holds its limit, so each flight needs its own.
	topUp := protocol.M(600_00*int64(len(w.flights)), "EUR")
	if i%2 == 1 {
		funding = ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: fmt.Sprintf("tok_bench_%d", i),
			Last4: "4242", ExpMonth: 12, ExpYear: time.Now().Year() + 2}
		topUp = protocol.Money{}
	}
	p, err := w.g.RegisterPassenger(ctx, filepath.Join(w.dir, "wallets", ref), ref, funding, topUp,
		w.flights[0].ID, protocol.WalletOptions{Rand: seeded(w.opts.Seed, uint64(i))})
	if err != nil {
		return nil, err
	}
	if !p.Eligible {
		return nil, fmt.Errorf("passenger %s is not eligible with score %d", ref, p.Account.Score)
	}
	for _, f := range w.flights[1:] {
		cred, err := w.g.API.OptIn(ctx, p.Wallet, f.ID)
		if err != nil {
			return nil, fmt.Errorf("passenger %s opt-in to %s: %w", ref, f.ID, err)
		}
		if _, err := p.Wallet.AddCredential(cred.COSE, nil); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// seeded returns a random stream for passenger i of the run with seed.
func seeded(seed, i uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	binary.LittleEndian.PutUint64(s[8:], i)
	copy(s[16:], "airtab-bench/v1")
	return rand.NewChaCha8(s)
}

// basket returns a small basket, at most 4.50 EUR: the per-passenger limit
// of 600.00 EUR allows over a hundred of them.
func (w *world) basket() []onboard.Line {
	switch w.rng.IntN(3) {
	case 0:
		return []onboard.Line{{SKU: "COFFEE", Quantity: 1}}
	case 1:
		return []onboard.Line{{SKU: "COFFEE", Quantity: 1}, {SKU: "WATER", Quantity: 1}}
	default:
		return []onboard.Line{{SKU: "CHOC", Quantity: 2}, {SKU: "COFFEE", Quantity: 1}, {SKU: "WATER", Quantity: 1}}
	}
}

// codes makes n compact payment codes for flight f, code k from passenger
// k mod len(pax), on all cores. Each wallet makes its codes in order, so
// counters only grow per passenger.
func (w *world) codes(ctx context.Context, f protocol.FlightID, n int) ([]string, error) {
	out := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, max(1, min(len(w.pax), 8)))
	for k := range errs {
		wg.Go(func() {
			for {
				p := int(next.Add(1) - 1)
				if p >= len(w.pax) || ctx.Err() != nil {
					return
				}
				for i := p; i < n; i += len(w.pax) {
					if out[i], errs[k] = w.pax[p].Wallet.PaymentCode(f, false); errs[k] != nil {
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, ctx.Err()
}

// qr measures the QR version of a real compact payment code and, for
// information, of the full form.
func (w *world) qr() (QRResult, error) {
	f := w.flights[flightAuthorize].ID
	compact, err := w.pax[0].Wallet.PaymentCode(f, false)
	if err != nil {
		return QRResult{}, err
	}
	full, err := w.pax[0].Wallet.PaymentCode(f, true)
	if err != nil {
		return QRResult{}, err
	}
	r := QRResult{ECC: protocol.QRLevel, Chars: len(compact), FullChars: len(full)}
	if r.Version, err = protocol.QRVersion(compact); err != nil {
		return r, err
	}
	if r.FullVersion, err = protocol.QRVersion(full); err != nil {
		return r, err
	}
	return r, nil
}

func (w *world) close() {
	if w.g != nil {
		w.g.Close()
	}
}
