package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/harness"
)

// flight is one aircraft's flight: its plan, its parts and what they did.
type flight struct {
	run      *run
	idx      int
	feeder   bool // the earlier flight that puts passengers in arrears
	number   string
	id       protocol.FlightID
	aircraft *harness.Aircraft
	catalog  []protocol.CatalogItem
	caps     api.Caps
	pax      []*passenger
	rng      *rand.Rand // the orchestrator's choices: outage windows, crash points

	cabinMu sync.Mutex // keeps status reads off a cabin server being restarted
	cabin   *harness.Cabin
	hh      []*handheld

	fraud *fraudLog
	// guests are passengers of another flight opted in to this one too
	// (the cross-flight counter reuse), and connected is closed once
	// their sales on this flight are made: the purser waits for it before
	// closing the flight.
	guests      []*passenger
	connected   chan struct{}
	connectOnce sync.Once
	served      atomic.Int64 // answered requests, for crash points
	crashes     atomic.Int64
	// unknownAfterIssue counts sales declined unknown_credential for a
	// passenger whose credential ground issued while the link was up.
	unknownAfterIssue atomic.Int64
	// crashErr is set when a restart failed: the cabin server is gone.
	crashErr atomic.Pointer[error]
	outages  int
	closed   *onboard.CloseReport
	final    onboard.Status
	sample   string // a payment code, for the terminal and --qr-out

	landed time.Duration // landing to every invoice cleared
}

// progress prints a flight's line when few flights fly; a fleet reports
// per phase instead.
func (f *flight) progress(format string, args ...any) {
	if f.feeder || f.run.cfg.Flights <= 3 {
		f.run.progress("%s: "+format, append([]any{f.number}, args...)...)
	}
}

// status reads the cabin server's status: the cabin server's own answer,
// from its core in process or over its handheld API from a child process.
func (f *flight) status(ctx context.Context) (onboard.Status, error) {
	f.cabinMu.Lock()
	defer f.cabinMu.Unlock()
	return f.cabin.Status(ctx)
}

// crash ends the cabin server as a crash would and starts it again on its
// data directory, and waits until it can sell again. With --crash the cabin
// server is a child process and is killed with SIGKILL: whatever it had not
// committed is lost, and the handhelds' requests in flight break off.
func (f *flight) crash(ctx context.Context) error {
	f.cabinMu.Lock()
	defer f.cabinMu.Unlock()
	if err := f.cabin.Kill(ctx); err != nil {
		return fmt.Errorf("%s: kill and restart cabin server: %w", f.number, err)
	}
	f.crashes.Add(1)
	st, err := f.cabin.Status(ctx)
	if err != nil || st.Closed {
		return err
	}
	return f.cabin.WaitSalesOpen(ctx)
}

// code makes a fresh payment code from p's wallet: compact, or, for half
// the late registrants, with the credential inside, as an app does that
// cannot tell whether the aircraft has it; the other half count on ground's
// manifest change notice having brought it on board.
func (f *flight) code(p *passenger) (string, error) {
	return p.reg.Wallet.PaymentCode(f.id, p.kind == paxLate && p.seat%2 == 0)
}

// sell sells lines to p on h; the handheld records the answer.
func (f *flight) sell(ctx context.Context, h *handheld, p *passenger, code string, lines []onboard.Line) (onboard.Decision, error) {
	d, err := h.sell(ctx, code, lines)
	f.served.Add(1)
	if err != nil {
		return d, fmt.Errorf("%s seat %d: %w", f.number, p.seat, err)
	}
	if d.Decline != nil && d.Decline.Reason == protocol.ReasonUnknownCredential && p.issuedLinkUp {
		f.unknownAfterIssue.Add(1)
	}
	return d, nil
}

// startCabin starts the cabin server at the gate, signs the crew in, and
// waits until the manifest it fetched carries every passenger in arrears.
func (f *flight) startCabin(ctx context.Context) error {
	r := f.run
	// With --crash the main flights' cabin servers run as child processes,
	// which can be killed; the feeder flight never crashes and stays in
	// process. A child draws its keys and tokens from crypto/rand rather
	// than the seed: none of them is counted. The harness reads a child's
	// status as the purser, on a handheld of its own.
	purser := crew(1)[0]
	c, err := harness.StartCabin(ctx, r.g, f.aircraft, f.id, harness.CabinOptions{
		Rand: newReader(r.cfg.Seed, "cabin", f.idx), Logger: r.log,
		ResendAfter: 5 * time.Second, ReconnectWait: 250 * time.Millisecond,
		// The production poll interval: what reaches the cabin sooner came
		// by ground's manifest change notice.
		SyncInterval: 30 * time.Second,
		Process:      r.cfg.Crash && !f.feeder, StatusCrew: purser.ID, StatusPIN: purser.PIN,
	})
	if err != nil {
		return err
	}
	f.cabin = c
	for k := range max(1, r.cfg.Handhelds) {
		crew, pin := fmt.Sprintf("a%d", k+1), fmt.Sprintf("%04d", 1000+k)
		if k == 0 {
			crew = "p1"
		}
		if f.feeder && k > 0 {
			break
		}
		h, err := newHandheld(ctx, c, fmt.Sprintf("hh-%d", k+1), crew, pin, newReader(r.cfg.Seed, fmt.Sprintf("invoices-%d", f.idx), k))
		if err != nil {
			return err
		}
		f.hh = append(f.hh, h)
	}
	return f.waitDeny(ctx)
}

// crew is the flight's crew: a purser and an attendant per further
// handheld.
func crew(handhelds int) []api.CrewEntry {
	out := []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "1000"}}
	for k := 1; k < handhelds; k++ {
		out = append(out, api.CrewEntry{ID: fmt.Sprintf("a%d", k+1), Role: "attendant", PIN: fmt.Sprintf("%04d", 1000+k)})
	}
	return out
}

// waitDeny waits until the cabin server's manifest denies the flight's
// passengers that ground holds in arrears, counted from ground: at least
// that many entries, as a revocation on a flight already flying (of a
// passenger holding a credential for this one too) reaches this cabin at
// once by ground's notice.
func (f *flight) waitDeny(ctx context.Context) error {
	want, err := f.inArrears(ctx)
	if err != nil {
		return err
	}
	var last onboard.Status
	err = harness.Poll(ctx, 30*time.Second, f.number+" deny list on board", func() (bool, error) {
		st, err := f.status(ctx)
		last = st
		return err == nil && st.Manifest != nil && st.Manifest.DenyEntries >= len(want), err
	})
	if err != nil && last.Manifest != nil {
		return fmt.Errorf("%w (%d deny entries on board, manifest serial %d delta %d; %d passengers in arrears)",
			err, last.Manifest.DenyEntries, last.Manifest.Serial, last.Manifest.DeltaSeq, len(want))
	}
	return err
}

// maxArrears is the most open arrears the back-office API lists at once.
const maxArrears = 1000

// inArrears returns the flight's passengers (by credential holder) with
// open arrears on ground.
func (f *flight) inArrears(ctx context.Context) (map[protocol.ID]bool, error) {
	list, err := f.run.g.API.Arrears(ctx, maxArrears)
	if err != nil {
		return nil, err
	}
	if list.Truncated {
		return nil, fmt.Errorf("more than %d passengers in arrears: the simulator cannot tell who", maxArrears)
	}
	open := map[protocol.ID]bool{}
	for _, a := range list.Arrears {
		open[a.Passenger] = true
	}
	out := map[protocol.ID]bool{}
	for _, p := range f.pax {
		if p.reg == nil {
			continue
		}
		if _, ok := p.reg.Wallet.Credential(f.id); ok && open[p.reg.Account.Passenger] {
			out[p.reg.Account.Passenger] = true
		}
	}
	return out, nil
}

// registerLate registers the passengers who sign up at the gate, after
// the cabin server fetched its manifest.
func (f *flight) registerLate(ctx context.Context) error {
	for _, p := range f.pax {
		if p.kind == paxLate {
			if err := f.run.register(ctx, f, p); err != nil {
				return err
			}
		}
	}
	return f.waitBoarded(ctx)
}

// waitBoarded waits, as the gate's boarding time does, until the cabin
// server holds every credential issued for the flight, so the flight
// departs with the late registrants on board. A slow push shows in the
// count of unknown_credential declines, not here: after the bound the
// flight departs anyway.
func (f *flight) waitBoarded(ctx context.Context) error {
	want := 0
	for _, p := range f.pax {
		if p.reg != nil && p.reg.Eligible {
			want++
		}
	}
	err := harness.Poll(ctx, 20*time.Second, f.number+" late registrants on board", func() (bool, error) {
		st, err := f.cabin.Status(ctx)
		return err == nil && st.Manifest != nil && st.Manifest.Credentials >= want, err
	})
	if err != nil && ctx.Err() == nil {
		f.progress("departing before every credential reached the cabin: %v", err)
		return nil
	}
	return err
}

// fly runs the flight from departure to close: service rounds, fraud,
// outages and crashes, voids, and the purser closing the flight.
func (f *flight) fly(ctx context.Context) error {
	defer f.releaseConnections()
	f.cabin.Links.SetState(linkemu.Down)
	f.progress("departed; link down in cruise")
	stopCrash := f.startCrashes(ctx)
	defer stopCrash()
	if err := f.phase(ctx, "round 1 (meals and drinks)", func(ctx context.Context, h *handheld, p *passenger) error {
		return f.serve(ctx, h, p, 0)
	}); err != nil {
		return err
	}
	if f.run.cfg.Fraud {
		if err := f.phase(ctx, "fraud attempts", func(ctx context.Context, h *handheld, p *passenger) error {
			if p.fraud == fraudNone || !(p.eligible() || p.kind == paxArrears) {
				return nil
			}
			return f.attack(ctx, p, h, f.hh[(p.handheld+1)%len(f.hh)])
		}); err != nil {
			return err
		}
	}
	if f.run.cfg.Outages {
		if err := f.flakyLink(ctx); err != nil {
			return err
		}
	}
	if err := f.phase(ctx, "round 2 (drinks and duty-free)", func(ctx context.Context, h *handheld, p *passenger) error {
		return f.serve(ctx, h, p, 1)
	}); err != nil {
		return err
	}
	if err := f.phase(ctx, "voids", f.voidSale); err != nil {
		return err
	}
	stopCrash()
	if f.connected != nil {
		select { // the connecting passenger's sale on this aircraft comes first
		case <-f.connected:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var rep *onboard.CloseReport
	purser := f.hh[0]
	if err := purser.retry(ctx, "close flight", func() (err error) { rep, err = purser.cl.CloseFlight(ctx); return err }); err != nil {
		return fmt.Errorf("%s: %w", f.number, err)
	}
	f.closed = rep
	f.progress("closed by the purser: %d sales, %d voids, last seq %d", rep.Sales, rep.Voids, rep.LastSeq)
	return nil
}

// phase runs do for every passenger, each handheld working through its
// section in seat order, all handhelds at once.
func (f *flight) phase(ctx context.Context, name string, do func(context.Context, *handheld, *passenger) error) error {
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var wg sync.WaitGroup
	for k, h := range f.hh {
		wg.Go(func() {
			for _, p := range f.pax {
				if p.handheld%len(f.hh) == k && p.kind != paxNone {
					if err := do(pctx, h, p); err != nil {
						cancel(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(pctx); err != nil {
		return err
	}
	if err := f.crashErr.Load(); err != nil {
		return *err
	}
	f.progress("%s done: %d answers so far", name, f.served.Load())
	return nil
}

// serve offers p the round's basket. A passenger without a credential has
// no code to show: refused at registration, nothing reaches a handheld.
func (f *flight) serve(ctx context.Context, h *handheld, p *passenger, round int) error {
	lines := p.baskets[round]
	if lines == nil || !(p.eligible() || p.kind == paxArrears && p.reg != nil) {
		return nil
	}
	code, err := f.code(p)
	if err != nil {
		return err
	}
	if h == f.hh[0] && round == 0 && f.sample == "" { // only hh-1 writes it
		f.sample = code
	}
	_, err = f.sell(ctx, h, p, code, lines)
	return err
}

// voidSale voids p's round-1 sale when the plan says the crew does.
func (f *flight) voidSale(ctx context.Context, h *handheld, p *passenger) error {
	if !p.void || !p.eligible() {
		return nil
	}
	approvals, _, _ := h.record()
	for _, s := range approvals {
		if s.Passenger == p.reg.Account.Passenger {
			return h.void(ctx, s.InvoiceID)
		}
	}
	return nil // the sale was declined: nothing to void
}

// flakyLink is the outage pattern of --outages between the rounds: brief
// up periods over a poor satellite link, with connection resets and black
// holes, so replays start and break off; then a steady minute over a
// ground station that lets the replay catch up and the deny list refresh
// (the deny list then holds whoever's charge ground declined, which round
// 2 must respect whatever the timing was).
func (f *flight) flakyLink(ctx context.Context) error {
	l := f.cabin.Links
	n := 2 + f.rng.IntN(3)
	for i := range n {
		// Long enough to reconnect (about a second) and send part of the
		// backlog at satellite speed before the link drops again.
		up := time.Duration(2000+f.rng.IntN(1500)) * time.Millisecond
		switch mode := f.rng.IntN(3); {
		case i == 0 || mode == 0:
			l.SetConfig(linkemu.Config{Latency: 250 * time.Millisecond, BitsPerSecond: 256_000, ResetEveryBytes: int64(32_768 + f.rng.IntN(65_536))})
			l.SetState(linkemu.Up)
		case mode == 1:
			l.SetConfig(linkemu.Config{Latency: 300 * time.Millisecond, BitsPerSecond: 128_000})
			l.SetState(linkemu.Up)
		default:
			l.SetState(linkemu.Blackhole)
			up /= 2
		}
		if err := sleep(ctx, up); err != nil {
			return err
		}
		l.SetState(linkemu.Down)
		f.outages++
		if err := sleep(ctx, time.Duration(100+f.rng.IntN(400))*time.Millisecond); err != nil {
			return err
		}
	}
	st, _ := f.status(ctx)
	f.progress("flaky link: %d brief windows; %d invoices reached ground mid-flight, %d of them with a clearing receipt back",
		n, st.Invoices.Sent+st.Invoices.Cleared, st.Invoices.Cleared)
	l.SetConfig(linkemu.Config{Latency: 40 * time.Millisecond})
	l.SetState(linkemu.Up)
	if err := f.waitCleared(ctx, false); err != nil {
		return err
	}
	if err := f.waitArrearsMarked(ctx); err != nil {
		return err
	}
	if err := f.waitDeny(ctx); err != nil {
		return err
	}
	l.SetState(linkemu.Down)
	st, _ = f.status(ctx)
	f.progress("ground-station window: %d invoices cleared, deny list now %d", st.Invoices.Cleared, st.Manifest.DenyEntries)
	return nil
}

// waitCleared waits until every journaled invoice holds a clearing
// receipt (and, when closeToo, ground accepted the close report).
func (f *flight) waitCleared(ctx context.Context, closeToo bool) error {
	return harness.Poll(ctx, 3*time.Minute, f.number+" every invoice cleared", func() (bool, error) {
		st, err := f.status(ctx)
		if err != nil {
			return false, nil // restarting
		}
		done := st.Invoices.Pending == 0 && st.Invoices.Sent == 0 && st.Invoices.Cleared == int64(st.LastSeq)
		if closeToo {
			done = done && st.Replay != nil && st.Replay.CloseAccepted
		}
		if done {
			f.final = st
		}
		return done, nil
	})
}

// waitArrearsMarked waits until ground has put in arrears every passenger
// of this flight with a sale in collections.
func (f *flight) waitArrearsMarked(ctx context.Context) error {
	return harness.Poll(ctx, time.Minute, f.number+" arrears marked", func() (bool, error) {
		rep, err := f.run.g.Main.Clearing().Reports().Flight(ctx, f.id)
		if errors.Is(err, clearing.ErrNoData) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		open, err := f.inArrears(ctx)
		if err != nil {
			return false, err
		}
		for _, l := range rep.Invoices {
			if l.Status == clearing.StatusCollections && !open[l.Passenger] {
				return false, nil
			}
		}
		return true, nil
	})
}

// land brings the link back, first at satellite speed on approach, then at
// the gate, and waits until every invoice is cleared and ground accepted
// the close report. With --crash the cabin server is killed and restarted
// once while it replays.
func (f *flight) land(ctx context.Context) error {
	start := time.Now()
	l := f.cabin.Links
	l.SetConfig(linkemu.Config{Latency: 300 * time.Millisecond, BitsPerSecond: 2_000_000})
	l.SetState(linkemu.Up)
	if f.run.cfg.Crash {
		var cleared int64
		_ = harness.Poll(ctx, 10*time.Second, "replay under way", func() (bool, error) {
			st, err := f.status(ctx)
			cleared = st.Invoices.Cleared
			return err == nil && cleared > 0, nil
		})
		if err := f.crash(ctx); err != nil {
			return err
		}
		f.progress("cabin server killed (SIGKILL) and restarted during the replay, %d invoices cleared before", cleared)
	} else if err := sleep(ctx, time.Second); err != nil {
		return err
	}
	l.SetConfig(linkemu.Config{}) // at the gate
	if err := f.waitCleared(ctx, true); err != nil {
		return err
	}
	f.landed = time.Since(start)
	return nil
}

// startCrashes kills and restarts the cabin server at seeded points of the
// service (counted in answered requests) with --crash. The returned func
// stops it.
func (f *flight) startCrashes(ctx context.Context) func() {
	if !f.run.cfg.Crash {
		return func() {}
	}
	planned := 0
	for _, p := range f.pax {
		for _, b := range p.baskets {
			if b != nil && p.kind != paxNone && p.kind != paxRefused {
				planned++
			}
		}
	}
	points := []int64{int64(1 + f.rng.IntN(max(1, planned/2))), int64(planned/2 + f.rng.IntN(max(1, planned/3)))}
	slices.Sort(points)
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, pt := range points {
			for f.served.Load() < pt {
				if sleep(cctx, 5*time.Millisecond) != nil {
					return
				}
			}
			// The restart itself runs to the end even when the service
			// stops meanwhile: a half-restarted cabin server would be gone.
			if err := f.crash(ctx); err != nil {
				f.crashErr.Store(&err)
				return
			}
			f.progress("cabin server killed (SIGKILL) and restarted after %d answers", f.served.Load())
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { cancel(); <-done }) }
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// walletDir is where a passenger's wallet lives.
func (r *run) walletDir(f *flight, p *passenger) string {
	return filepath.Join(r.dir, "wallets", p.ref)
}
