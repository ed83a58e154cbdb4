package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/harness"
)

// registerWorkers is how many passengers register with ground at once.
const registerWorkers = 8

// run is one simulation run.
type run struct {
	cfg   Config
	dir   string
	log   *slog.Logger
	start time.Time
	date  time.Time
	g     *harness.Ground
	// natsCluster is the external NATS of GroundWorkers, or nil.
	natsCluster *harness.NATSCluster
	acq         *clearing.SimAcquirer
	feeder      *flight
	flights     []*flight
	timings     []Timing
	phaseAt     time.Time
}

// Run flies the configured flights end to end and returns the report.
// An error means the run itself broke (a part would not start, a request
// failed for good); a broken invariant is in the report, not an error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, log: cfg.Logger, start: time.Now(), date: time.Now().UTC()}
	r.phaseAt = r.start
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.dir = cfg.Dir
	if r.dir == "" {
		d, err := os.MkdirTemp("", "airtab-sim-")
		if err != nil {
			return nil, err
		}
		r.dir = d
	}
	if !cfg.Keep {
		defer os.RemoveAll(r.dir)
	}
	defer r.closeAll()
	if err := r.fly(ctx); err != nil {
		return nil, err
	}
	rep, err := r.count(ctx)
	if err != nil {
		return nil, err
	}
	if cfg.Keep {
		rep.DataDir = r.dir
	}
	return rep, nil
}

func (r *run) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, "[%6.1fs] "+format+"\n", append([]any{time.Since(r.start).Seconds()}, args...)...)
	}
}

// mark closes a phase for the timings.
func (r *run) mark(name string) {
	now := time.Now()
	r.timings = append(r.timings, Timing{Phase: name, Seconds: now.Sub(r.phaseAt).Seconds()})
	r.phaseAt = now
}

// closeAll stops every part, the cabin servers at once: each one's Close
// drains its handheld API and waits for its replayer and other goroutines
// to end (or, for a cabin server child under Crash, for the process to shut
// down), waits that would add up aircraft by aircraft.
func (r *run) closeAll() {
	var wg sync.WaitGroup
	for _, f := range append([]*flight{r.feeder}, r.flights...) {
		if f != nil && f.cabin != nil {
			wg.Go(func() {
				for _, h := range f.hh {
					h.cl.Close()
				}
				f.cabin.Close()
			})
		}
	}
	wg.Wait()
	if r.g != nil {
		r.g.Close()
	}
	if r.natsCluster != nil {
		r.natsCluster.Close()
	}
}

// fly is the whole day: ground up, flights registered, passengers
// registered while the feeder flight flies, cabin servers at the gate,
// every flight in the air at once, every aircraft landing at once.
func (r *run) fly(ctx context.Context) error {
	if err := r.startGround(ctx); err != nil {
		return err
	}
	if err := r.registerFlights(ctx); err != nil {
		return err
	}
	r.mark("ground and flights")
	if err := r.registerAll(ctx); err != nil {
		return err
	}
	r.mark("registration and feeder flight")
	if err := r.each(ctx, (*flight).startCabin); err != nil {
		return err
	}
	if err := r.each(ctx, (*flight).registerLate); err != nil {
		return err
	}
	r.gateSummary()
	r.mark("cabin servers at the gate")
	if err := r.each(ctx, (*flight).fly); err != nil {
		return err
	}
	r.mark("flight")
	r.progress("landing: %d aircraft reconnect (satellite, then gate) and replay at once", len(r.flights))
	if err := r.each(ctx, (*flight).land); err != nil {
		return err
	}
	r.mark("landing, replay and clearing")
	var invoices uint64
	for _, f := range r.flights {
		invoices += f.final.LastSeq
	}
	r.progress("landed: %d invoices replayed, cleared and receipted; ground accepted %d close reports", invoices, len(r.flights))
	return nil
}

// each runs do for every main flight at once.
func (r *run) each(ctx context.Context, do func(*flight, context.Context) error) error {
	var wg sync.WaitGroup
	errs := make([]error, len(r.flights))
	for i, f := range r.flights {
		wg.Go(func() { errs[i] = do(f, ctx) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (r *run) startGround(ctx context.Context) error {
	scores := map[string]int{}
	for fi := range r.cfg.Flights {
		for _, p := range planPassengers(r.cfg, fi, r.date.Year()) {
			scores[p.ref] = p.score
		}
	}
	r.acq = clearing.NewSimAcquirer(clearing.SimConfig{Seed: r.cfg.Seed, DeclinePercent: int(r.cfg.DeclineRate*100 + 0.5)})
	opts := harness.GroundOptions{
		Rand:   &lockedReader{r: newReader(r.cfg.Seed, "ground", 0)},
		Scorer: registry.StaticScorer{ByRef: scores, Next: registry.HashScorer{}}, Acquirer: r.acq, Logger: r.log,
		Postgres: r.cfg.Postgres,
	}
	if err := r.startWorkersCluster(ctx, &opts); err != nil {
		return err
	}
	g, err := harness.StartGround(ctx, filepath.Join(r.dir, "ground"), opts)
	if err != nil {
		return err
	}
	r.g = g
	r.progress("ground up: %s", r.groundSummary())
	return nil
}

// startWorkersCluster starts, for GroundWorkers, the external NATS that
// several ground processes share: a three-node in-process cluster with R3
// streams; or, for NATSCluster, a cluster of that many nodes. closeAll
// stops it after ground.
func (r *run) startWorkersCluster(ctx context.Context, opts *harness.GroundOptions) error {
	nodes := r.cfg.NATSCluster
	if nodes == 0 && r.cfg.GroundWorkers > 0 {
		nodes = 3
	}
	if nodes == 0 {
		return nil
	}
	cl, err := harness.StartNATSCluster(ctx, filepath.Join(r.dir, "nats-cluster"), nodes, r.log)
	if err != nil {
		return err
	}
	r.natsCluster = cl
	opts.NATSCluster, opts.Workers = cl, r.cfg.GroundWorkers
	return nil
}

// groundSummary says how ground runs, for the progress line.
func (r *run) groundSummary() string {
	db := "SQLite in " + r.g.Dir
	if r.cfg.Postgres != "" {
		db = "PostgreSQL"
	}
	if r.cfg.GroundWorkers > 0 {
		return fmt.Sprintf("an API process and %d clearing workers on one JetStream consumer, on %s and a 3-node NATS cluster (%s)",
			r.cfg.GroundWorkers, db, strings.Join(r.g.NATSAddrs(), ", "))
	}
	if c := r.g.NATSCluster(); c != nil {
		return fmt.Sprintf("a %d-node NATS cluster with R%d streams (%s), %s", c.Nodes(), min(c.Nodes(), 3), strings.Join(r.g.NATSAddrs(), ", "), db)
	}
	return fmt.Sprintf("embedded NATS with JetStream on %s, %s", r.g.NATSAddr(), db)
}

// registerFlights registers the aircraft and flights: the feeder flight
// and the main flights, each with its catalog, caps and crew.
func (r *run) registerFlights(ctx context.Context) error {
	mk := func(idx int, number string, tail protocol.AircraftID, feeder bool) (*flight, error) {
		f := &flight{run: r, idx: idx, feeder: feeder, catalog: catalog(r.cfg.Currency), fraud: newFraudLog(),
			rng: newRand(r.cfg.Seed, "flight", idx)}
		a, err := r.g.RegisterAircraft(ctx, tail, filepath.Join(r.dir, "aircraft", string(tail)), newReader(r.cfg.Seed, "aircraft", idx))
		if err != nil {
			return nil, err
		}
		exposure := protocol.M(price(100_000, r.cfg.Currency)*int64(r.cfg.Passengers), r.cfg.Currency) // never binding: totals must not depend on order
		fv, err := r.g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XS", Number: number, Date: r.date.Format(time.DateOnly),
			Aircraft: a.ID, Currency: r.cfg.Currency, Catalog: f.catalog, Caps: &api.Caps{AircraftExposure: &exposure}})
		if err != nil {
			return nil, fmt.Errorf("register flight %s: %w", number, err)
		}
		handhelds := r.cfg.Handhelds
		if feeder {
			handhelds = 1
		}
		if _, err := r.g.API.SetCrew(ctx, fv.ID, crew(handhelds)); err != nil {
			return nil, err
		}
		f.id, f.aircraft, f.caps, f.number = fv.ID, a, fv.Caps, "XS"+number
		return f, nil
	}
	var err error
	if r.feeder, err = mk(1000, "90", "D-AFDR", true); err != nil {
		return err
	}
	for i := range r.cfg.Flights {
		f, err := mk(i, fmt.Sprint(100+i), tailMark(i), false)
		if err != nil {
			return err
		}
		f.pax = planPassengers(r.cfg, i, r.date.Year())
		if r.cfg.Fraud {
			assignFraud(newRand(r.cfg.Seed, "fraud-victims", i), f.pax)
		}
		r.flights = append(r.flights, f)
	}
	if r.cfg.Fraud && len(r.flights) >= 2 {
		assignConnection(r.flights[0], r.flights[1])
	}
	flights := fmt.Sprintf("%d flights", len(r.flights))
	if len(r.flights) == 1 {
		flights = "1 flight"
	}
	r.progress("registered %d aircraft and %s in %s, plus feeder flight %s", len(r.flights), flights, r.cfg.Currency, r.feeder.id)
	return nil
}

// tailMark names the i-th aircraft of the fleet, D-AIAA, D-AIAB, ...
func tailMark(i int) protocol.AircraftID {
	return protocol.AircraftID(fmt.Sprintf("D-A%c%c%c", 'I'+byte(i/676%18), 'A'+byte(i/26%26), 'A'+byte(i%26)))
}

// register opens p's wallet and registers p with ground for flight f.
func (r *run) register(ctx context.Context, f *flight, p *passenger) error {
	opts := protocol.WalletOptions{Rand: newReader(r.cfg.Seed, "wallet-"+p.ref, 0), Clock: p.clock}
	hp, err := r.g.RegisterPassenger(ctx, r.walletDir(f, p), p.ref, p.funding, protocol.M(p.topUp, r.cfg.Currency), f.id, opts)
	if err != nil {
		return err
	}
	p.reg = hp
	if !hp.Eligible {
		return nil
	}
	// Before the cabin server starts, its first sync brings the credential;
	// after, the link is up at the gate and ground's notice does.
	p.issuedLinkUp = f.cabin == nil || f.cabin.Links.State() == linkemu.Up
	if p.connection != nil {
		return r.connect(ctx, f, p, opts)
	}
	// Passengers in arrears flew the feeder flight; some victims of the
	// wrong-flight attack hold a credential for it too.
	if p.kind == paxArrears || p.fraud == fraudWrongFlight {
		cred, err := r.g.API.OptIn(ctx, hp.Wallet, r.feeder.id)
		if err != nil {
			return fmt.Errorf("%s opt in to the feeder flight: %w", p.ref, err)
		}
		if _, err := hp.Wallet.AddCredential(cred.COSE, nil); err != nil {
			return err
		}
	}
	return nil
}

// registerAll registers the passengers who will be in arrears, and those
// who opt in to the feeder flight too (the wrong-flight attack's victims:
// ground refuses an opt-in once the feeder flight is closed), flies the
// feeder flight with the first while everyone else registers, and waits
// until ground holds the feeder flight's passengers in arrears.
func (r *run) registerAll(ctx context.Context) error {
	var first, rest []func() error
	for _, f := range r.flights {
		for _, p := range f.pax {
			switch {
			case p.kind == paxArrears:
				first = append(first, func() error { return r.register(ctx, f, p) })
				r.feeder.pax = append(r.feeder.pax, p)
			case p.fraud == fraudWrongFlight && (p.kind == paxRegular || p.kind == paxRefused):
				first = append(first, func() error { return r.register(ctx, f, p) })
			case p.kind == paxRegular, p.kind == paxRefused:
				rest = append(rest, func() error { return r.register(ctx, f, p) })
			}
		}
	}
	if err := parallel(registerWorkers, first); err != nil {
		return err
	}
	var wg sync.WaitGroup
	var feederErr error
	wg.Go(func() { feederErr = r.flyFeeder(ctx) })
	err := parallel(registerWorkers, rest)
	wg.Wait()
	if err != nil {
		return err
	}
	if feederErr != nil {
		return fmt.Errorf("feeder flight: %w", feederErr)
	}
	for _, f := range r.flights {
		reg, refused := 0, 0
		for _, p := range f.pax {
			if p.reg != nil {
				reg++
				if !p.reg.Eligible {
					refused++
				}
			}
		}
		f.progress("%d of %d passengers registered before the manifest sync, %d refused (credit score below %d)",
			reg, len(f.pax), refused, registry.EligibleScore)
	}
	return nil
}

// flyFeeder flies the earlier, short flight on which the passengers who
// will be in arrears buy something with a card the acquirer declines:
// ground puts their invoices in collections and them in arrears, so the
// main flights' manifests deny them.
func (r *run) flyFeeder(ctx context.Context) error {
	f := r.feeder
	if err := f.startCabin(ctx); err != nil {
		return err
	}
	f.cabin.Links.SetState(linkemu.Down)
	h := f.hh[0]
	for _, p := range f.pax {
		code, err := p.reg.Wallet.PaymentCode(f.id, false)
		if err != nil {
			return err
		}
		if _, err := f.sell(ctx, h, p, code, []onboard.Line{{SKU: "sandwich", Quantity: 1}, {SKU: "beer", Quantity: 1}}); err != nil {
			return err
		}
	}
	rep, err := h.cl.CloseFlight(ctx)
	if err != nil {
		return err
	}
	f.closed = rep
	f.cabin.Links.SetState(linkemu.Up)
	if err := f.waitCleared(ctx, true); err != nil {
		return err
	}
	open := map[protocol.ID]bool{}
	if err := harness.Poll(ctx, time.Minute, "feeder passengers in arrears", func() (bool, error) {
		list, err := r.g.API.Arrears(ctx, maxArrears)
		if err != nil {
			return false, err
		}
		for _, a := range list.Arrears {
			open[a.Passenger] = true
		}
		for _, p := range f.pax {
			if !open[p.reg.Account.Passenger] {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return err
	}
	f.progress("feeder flight %s landed: %d sales, charges declined on the ground, %d passengers in arrears", f.id, rep.Sales, len(f.pax))
	return nil
}

// gateSummary prints what each cabin server holds before departure.
func (r *run) gateSummary() {
	for _, f := range r.flights {
		st, err := f.status(context.Background())
		if err != nil || st.Manifest == nil {
			continue
		}
		late := 0
		for _, p := range f.pax {
			if p.kind == paxLate && p.eligible() {
				late++
			}
		}
		f.progress("at the gate: manifest serial %d with %d credentials, %d deny entries; %d late registrations pay with the credential in the code",
			st.Manifest.Serial, st.Manifest.Credentials, st.Manifest.DenyEntries, late)
	}
	if len(r.flights) > 3 {
		r.progress("%d cabin servers at the gate with verified manifests", len(r.flights))
	}
}

// parallel runs jobs on n workers and returns the first error.
func parallel(n int, jobs []func() error) error {
	ch := make(chan func() error)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for range n {
		wg.Go(func() {
			for job := range ch {
				if err := job(); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for _, j := range jobs {
		ch <- j
	}
	close(ch)
	wg.Wait()
	return first
}

var _ io.Reader = (*lockedReader)(nil)

// connect opts p in to their connecting flight too, and copies their
// wallet: the copy hands out the same counters (the cross-flight attack).
func (r *run) connect(ctx context.Context, f *flight, p *passenger, opts protocol.WalletOptions) error {
	cred, err := r.g.API.OptIn(ctx, p.reg.Wallet, p.connection.id)
	if err != nil {
		return fmt.Errorf("%s opt in to the connection %s: %w", p.ref, p.connection.id, err)
	}
	if _, err := p.reg.Wallet.AddCredential(cred.COSE, nil); err != nil {
		return err
	}
	dir := r.walletDir(f, p) + "-copy"
	if err := copyDir(r.walletDir(f, p), dir); err != nil {
		return fmt.Errorf("copy %s's wallet: %w", p.ref, err)
	}
	opts.Rand = newReader(r.cfg.Seed, "wallet-copy-"+p.ref, 0)
	p.clone, err = protocol.OpenWallet(dir, opts)
	return err
}

// copyDir copies a wallet directory (files 0600, directories 0700).
func copyDir(from, to string) error {
	return filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
}
