package harness

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/onboard/sqlite"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/lossyfs"
)

// The power-loss trials: a SIGKILL leaves every written page in the page
// cache, so the kill trials prove nothing about fsync. Here the data
// directory sits on lossyfs, which drops whatever was not fsynced when the
// power is cut (see that package for its rules), and the process is killed
// at the same instant.
const (
	powerLossSeedEnv   = "AIRTAB_POWERLOSS_SEED"   // replays a trial set's cut points and tears
	powerLossTrialsEnv = "AIRTAB_POWERLOSS_TRIALS" // trials per set (the most, for ground); default 20
)

// powerLossSeed is the seed of a trial set: AIRTAB_POWERLOSS_SEED, or the
// clock.
func powerLossSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(powerLossSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: want an unsigned decimal integer: %v", powerLossSeedEnv, s, err)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, powerLossSeedEnv, seed)
	return seed
}

// powerLossTrials is the number of trials in a set.
func powerLossTrials(t *testing.T) int {
	t.Helper()
	s := os.Getenv(powerLossTrialsEnv)
	if s == "" {
		return 20
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 1000 {
		t.Fatalf("%s=%q: want a number of trials from 1 to 1000", powerLossTrialsEnv, s)
	}
	return n
}

// lossyDirs makes a backing directory and a mount point for a lossy
// filesystem under dir.
func lossyDirs(t *testing.T, dir, name string) (backing, mnt string) {
	t.Helper()
	backing, mnt = filepath.Join(dir, name+"-disk"), filepath.Join(dir, name)
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return backing, mnt
}

// Load of the cabin power-loss trials: handheld clients, and goroutines
// selling on them at once (one per passenger, each passenger's sales in
// order).
const (
	powerLossHandhelds  = 4
	powerLossPassengers = 16
)

// TestPowerLossCabin cuts the cabin server's power again and again under
// handheld load. The cabin server runs as a child process with its data
// directory (journal, keys, certificate) on a lossy filesystem and a real
// ground behind the link; sixteen goroutines sell coffees on four signed-in
// handhelds. Each trial draws from the seed a number of approvals after
// which the power goes, and whether the last unsynced write of each file
// is torn: the filesystem stops persisting, the child is killed, the
// filesystem is unmounted (dropping what was not fsynced), mounted again
// and the cabin server restarted on it. Every approval a handheld received
// in the trial must then be in the journal with its sequence number and
// total. After the last trial the flight is closed and replayed: the
// journal's sequence numbers run 1, 2, 3, … with each invoice's Prev the
// hash of the one before, every approval any handheld received is among
// them, and ground has posted and charged every invoice of the journal
// exactly once, with the flight reconciled. Set AIRTAB_POWERLOSS_SEED to
// replay a set's cut points and tears (the timing around them varies), and
// AIRTAB_POWERLOSS_TRIALS for more or fewer trials.
//
// The aircraft's keys are provisioned, and the disk flushed, before its
// first start; the first trial's cut falls in the cabin server's first
// boot, after it created its CA and certificate (onboard/httpapi fsyncs
// their directory, so the restarted server presents the same certificate).
func TestPowerLossCabin(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a FUSE filesystem and runs a cabin server child")
	}
	seed := powerLossSeed(t)
	trials := powerLossTrials(t)
	rng := rand.New(rand.NewPCG(seed, 15))
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	dir := t.TempDir()
	backing, mnt := lossyDirs(t, dir, "cabin-data")
	fsys := lossyfs.MountForTest(t, backing, mnt)

	tr := &trial{t: t, ctx: ctx, dir: dir, approved: map[protocol.ID]int64{}}
	var err error
	tr.g, err = StartGround(ctx, filepath.Join(dir, "ground"), GroundOptions{Scorer: fixedScore(800), Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.g.Close() })
	// The aircraft's directory on the lossy filesystem; the passengers'
	// wallets (their phones) beside it.
	tr.dir = mnt
	tr.a, tr.flight = tr.registerFlight("D-AIPL", "815")
	tr.dir = dir
	fsys.Sync() // provisioned: the keys are on the disk
	for i := range powerLossPassengers {
		tr.pax = append(tr.pax, tr.passenger(fmt.Sprintf("pax-%d", i), i%2 == 1))
	}
	tr.c, err = StartCabin(ctx, tr.g, tr.a, tr.flight, CabinOptions{Process: true, StatusCrew: "p1", StatusPIN: "2468",
		ReconnectWait: 50 * time.Millisecond, ReceiptAckWait: time.Second, ResendAfter: 5 * time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.c.Close() })
	hhs := make([]*client.Client, powerLossHandhelds)
	for i := range hhs {
		if hhs[i], err = client.New(client.Config{URL: "https://" + tr.c.Addr(), Fingerprint: tr.c.Fingerprint(),
			Handheld: fmt.Sprintf("hh-%d", i+1), MaxConns: 8}); err != nil {
			t.Fatal(err)
		}
		defer hhs[i].Close()
	}
	signIn := func() {
		t.Helper()
		for _, hh := range hhs {
			if _, err := hh.SignIn(ctx, "p1", "2468"); err != nil {
				t.Fatalf("sign-in: %v", err)
			}
		}
	}
	signIn()

	sold := make([]int, len(tr.pax)) // sales each passenger's goroutine has started, across trials
	var total, lost, torn int
	start := time.Now()
	for k := range trials {
		target := 20 + rng.IntN(80)
		got := tr.sellUntilCut(fsys, rng, hhs, sold, target)
		loss, err := fsys.Unmount()
		if err != nil {
			t.Fatalf("trial %d: %v", k+1, err)
		}
		fsys = lossyfs.MountForTest(t, backing, mnt)
		if err := tr.c.start(ctx); err != nil {
			t.Fatalf("trial %d: restart after the power cut: %v", k+1, err)
		}
		if err := tr.c.WaitSalesOpen(ctx); err != nil {
			t.Fatalf("trial %d: %v", k+1, err)
		}
		signIn()
		missing := tr.missingApprovals(hhs[0], got)
		lost += missing
		total += len(got)
		if loss.Torn > 0 {
			torn++
		}
		t.Logf("trial %d: cut after %d approvals: %v; %d approvals missing after the restart",
			k+1, len(got), loss, missing)
	}
	t.Logf("power-loss: %d trials, %d approvals, %d lost (cabin server, %d cuts with a torn write, %v)",
		trials, total, lost, torn, time.Since(start).Round(time.Millisecond))
	if lost > 0 {
		t.Fatalf("%d approvals the handhelds received were lost by a power cut", lost)
	}

	// Close and replay; then the journal and the ledger.
	if _, err := hhs[0].CloseFlight(ctx); err != nil {
		t.Fatal(err)
	}
	if err := Poll(ctx, 2*time.Minute, "every invoice cleared and the close accepted", func() (bool, error) {
		st, err := tr.c.Status(ctx)
		return err == nil && st.Invoices.Cleared == int64(st.LastSeq) && st.Replay != nil && st.Replay.CloseAccepted, err
	}); err != nil {
		st, _ := tr.c.Status(ctx)
		t.Fatalf("%v (status %+v)", err, st)
	}
	if err := tr.c.Close(); err != nil {
		t.Fatal(err)
	}
	// The journal is read in this process, so from the backing directory:
	// this process serves the mount, and SQLite maps its WAL index.
	if _, err := fsys.Unmount(); err != nil {
		t.Fatal(err)
	}
	journal := tr.checkChain(filepath.Join(backing, "cabin-D-AIPL", "journal-"+string(tr.flight)+".db"))
	for id, minor := range tr.approved {
		if got, ok := journal[id]; !ok || got != minor {
			t.Fatalf("approval %s (%d minor) not in the journal as approved (journal: %d, %v)", id, minor, got, ok)
		}
	}
	tr.waitGroundDrained()
	tr.assertChargedOnce(journal)
	t.Logf("journal: %d invoices, %d of them approvals a handheld received; ground charged each once", len(journal), len(tr.approved))
}

// sellUntilCut sells on the handhelds, one goroutine per passenger, until
// target approvals have been received; then it arms fsys to cut the power
// in the middle of a write drawn from rng (the cabin server writes its
// journal without pause under this load), kills the cabin server child as
// soon as the power is off, waits for every goroutine to stop, and returns
// the approvals this trial received. A sale that fails before the power
// cut fails the test; after it, failures are the point. An approval
// received after the cut was fsynced before it, and counts.
func (tr *trial) sellUntilCut(fsys *lossyfs.FS, rng *rand.Rand, hhs []*client.Client, sold []int, target int) map[protocol.ID]int64 {
	t := tr.t
	t.Helper()
	var (
		mu       sync.Mutex
		got      = map[protocol.ID]int64{}
		n        atomic.Int64
		off      = fsys.CutDone()
		firstErr error
		wg       sync.WaitGroup
		killed   = make(chan error, 1)
	)
	writes := 1 + rng.IntN(40)
	var tear *rand.Rand
	if rng.IntN(2) == 0 {
		tear = rng
	}
	go func() {
		<-off
		killed <- tr.c.Process().Kill()
	}()
	for i, p := range tr.pax {
		hh := hhs[i%len(hhs)]
		wg.Go(func() {
			for sold[i] < salesPerPassenger {
				select {
				case <-off:
					return
				default:
				}
				sold[i]++
				code, err := p.Wallet.PaymentCode(tr.flight, false)
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				d, err := hh.Authorize(tr.ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code,
					Lines: []onboard.Line{{SKU: "coffee", Quantity: 1}}})
				if err == nil && d.Approved { // received, so it must survive
					mu.Lock()
					got[d.Sale.InvoiceID] = d.Sale.Total.Minor
					mu.Unlock()
					if n.Add(1) == int64(target) {
						fsys.CutAtWrite(writes, tear)
					}
					continue
				}
				select {
				case <-off:
					return
				default:
				}
				if err == nil {
					err = fmt.Errorf("sale to %s declined: %+v", p.Ref, d.Decline)
				}
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				fsys.Cut() // stop the others
				return
			}
		})
	}
	wg.Wait()
	fsys.Cut() // a no-op after the armed cut; else the sales ran out first
	if err := <-killed; err != nil {
		t.Fatalf("kill at the power cut: %v", err)
	}
	if firstErr != nil {
		t.Fatalf("sale before the power cut: %v", firstErr)
	}
	if n.Load() < int64(target) {
		t.Fatalf("only %d approvals before the passengers' limits, want %d", n.Load(), target)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	for id, minor := range got {
		tr.approved[id] = minor
	}
	return got
}

// missingApprovals asks the cabin server for each approval in got and
// returns how many it does not hold as approved with the same total.
func (tr *trial) missingApprovals(hh *client.Client, got map[protocol.ID]int64) int {
	t := tr.t
	t.Helper()
	missing := 0
	for id, minor := range got {
		s, err := hh.Sale(tr.ctx, id)
		if oe, ok := errors.AsType[*onboard.Error](err); ok && oe.Code == onboard.CodeNotFound {
			t.Errorf("approval %s lost by the power cut", id)
			missing++
			continue
		}
		if err != nil {
			t.Fatalf("sale %s: %v", id, err)
		}
		if s.Total.Minor != minor || s.Kind != "sale" {
			t.Errorf("approval %s came back as %s of %d minor, want a sale of %d", id, s.Kind, s.Total.Minor, minor)
			missing++
		}
	}
	return missing
}

// checkChain opens the journal at path (its cabin server stopped) and
// checks that its invoices are numbered 1, 2, 3, … each with Prev the hash
// of the one before. It returns the sales by invoice id with their totals
// in minor units.
func (tr *trial) checkChain(path string) map[protocol.ID]int64 {
	t := tr.t
	t.Helper()
	j, err := sqlite.Open(tr.ctx, path, tr.flight, tr.a.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	sales := map[protocol.ID]int64{}
	var seq uint64
	var prev protocol.Hash
	err = j.Invoices(tr.ctx, func(r onboard.Record) error {
		inv, err := protocol.ParseInvoice(r.Raw)
		if err != nil {
			return fmt.Errorf("invoice after seq %d: %w", seq, err)
		}
		seq++
		if inv.Body.Seq != seq {
			return fmt.Errorf("journal holds seq %d where %d belongs", inv.Body.Seq, seq)
		}
		if inv.Body.Prev != prev {
			return fmt.Errorf("invoice %d: prev %s, want %s (the hash of invoice %d)", seq, inv.Body.Prev, prev, seq-1)
		}
		if r.Status != onboard.StatusCleared {
			return fmt.Errorf("invoice %d is %s, want cleared", seq, r.Status)
		}
		prev = inv.Hash()
		if r.Device != nil {
			sales[inv.Body.ID] = inv.Body.Total.Minor
		}
		return nil
	})
	if err != nil {
		t.Fatalf("journal %s: %v", path, err)
	}
	return sales
}

// assertChargedOnce checks ground's ledger against the sales the journal
// holds: each posted once as a sale of its total and charged once, nothing
// else posted as a sale, no reversal, the ledger balanced, and the flight
// reconciled with every sale settled.
func (tr *trial) assertChargedOnce(sales map[protocol.ID]int64) {
	t, ctx := tr.t, tr.ctx
	t.Helper()
	db := tr.g.Main.DB()
	for id, minor := range sales {
		var n, sum, charges int64
		if err := db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(amount), 0) FROM ledger_transfers
			WHERE ref = ? AND code = ? AND reverses IS NULL`, id[:], ledger.TransferSale).Scan(&n, &sum); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM ledger_transfers
			WHERE ref = ? AND code IN (?, ?) AND reverses IS NULL`, id[:], ledger.TransferWalletCharge, ledger.TransferCardCapture).Scan(&charges); err != nil {
			t.Fatal(err)
		}
		if n != 1 || charges != 1 || sum != minor {
			t.Fatalf("invoice %s in the ledger: %d sale transfers of %d minor, %d charges; want 1 of %d, 1", id, n, sum, charges, minor)
		}
	}
	var n, reversals int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM ledger_transfers WHERE code = ? AND reverses IS NULL`, ledger.TransferSale).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM ledger_transfers WHERE reverses IS NOT NULL`).Scan(&reversals); err != nil {
		t.Fatal(err)
	}
	if n != int64(len(sales)) || reversals != 0 {
		t.Fatalf("ledger holds %d sales and %d reversals, want %d and 0", n, reversals, len(sales))
	}
	if err := ledger.Check(ctx, db); err != nil {
		t.Fatalf("ledger: %v", err)
	}
	rep, err := tr.g.Main.Clearing().Reports().Flight(ctx, tr.flight)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reconciled {
		t.Fatalf("flight not reconciled: %v", rep.Problems)
	}
	if got, want := rep.Settled.Count, len(sales); got != want {
		t.Fatalf("settled = %d, want %d", got, want)
	}
}

// TestPowerLossGround cuts the ground service's power again and again while
// it clears a flight. Ground runs as a child process (as in
// TestExactlyOnceGroundKilled) with its data directory (SQLite database,
// JetStream store, keys) on a lossy filesystem; the cabin server runs in
// this process and replays a closed flight of sales over a
// bandwidth-limited link. Each trial lets ground take in some invoices,
// then cuts the power in the middle of a write drawn from the seed (torn
// or not), kills the child at once and takes the aircraft's link down. The
// invoices the aircraft then holds as cleared are those ground sent a
// clearing receipt for; the database the cut left must hold each of them
// posted and charged, with nothing posted twice and the ledger balanced.
// The filesystem is mounted again and the next ground process starts on
// it. After the last trial ground clears the rest, and every trial's
// end-state checks hold: each approval cleared on the aircraft, posted and
// charged once on ground, the flight reconciled. The set ends early when
// the aircraft holds every receipt. AIRTAB_POWERLOSS_SEED replays the cut
// points; AIRTAB_POWERLOSS_TRIALS sets the most trials.
//
// What the trials found: the embedded JetStream synced its store only every
// two minutes, so a cut dropped about 1 MB and 150 files of both streams
// and the consumers' state, the aircraft's receipt consumer among them
// (onboard/replay now creates it again when a pull finds it gone); it now
// syncs every write (ground/natsvc ServerConfig.SyncInterval), and a cut
// loses a torn last write at most, but still the directory entries of new
// consumers, which nats-server does not fsync. And with its receipts not
// coming, the aircraft resent all 1200 invoices again and again over the
// slow link, keeping it so full that the request creating the consumer
// again, and every pull, timed out behind them: no receipt arrived for
// minutes. The replayer now resends only when ground says the receipt
// consumer has nothing left to deliver (onboard/replay resendBefore).
func TestPowerLossGround(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a FUSE filesystem and runs ground child processes")
	}
	seed := powerLossSeed(t)
	trials := powerLossTrials(t)
	rng := rand.New(rand.NewPCG(seed, 16))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(trials)*40*time.Second)
	defer cancel()

	dir := t.TempDir()
	backing, mnt := lossyDirs(t, dir, "ground-data")
	tr := &trial{t: t, ctx: ctx, dir: dir, approved: map[protocol.ID]int64{}}
	// Registration, long before the flight, on the disk itself.
	var err error
	// A short duplicate window: a receipt lost with JetStream's unsynced
	// tail comes back only when the aircraft resends the invoice after the
	// window (clearing finds it posted and sends the receipt again); with
	// the default two minutes each cut would cost two minutes.
	tr.g, err = StartGround(ctx, filepath.Join(backing, "ground"), GroundOptions{Scorer: fixedScore(800), Logger: testLogger(),
		StreamDuplicates: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.g.Close() })
	tr.a, tr.flight = tr.registerFlight("D-AIPG", "816")
	for i := range powerLossPassengers {
		tr.pax = append(tr.pax, tr.passenger(fmt.Sprintf("pax-%d", i), i%2 == 1))
	}
	tr.c, err = StartCabin(ctx, tr.g, tr.a, tr.flight, CabinOptions{ReconnectWait: 50 * time.Millisecond,
		ReceiptAckWait: time.Second, ResendAfter: 3 * time.Second, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.c.Close() })
	if tr.hh, err = tr.c.Handheld(ctx, "hh-1", "p1", "2468"); err != nil {
		t.Fatal(err)
	}
	defer tr.hh.Close()
	tr.c.Link.SetState(linkemu.Down)
	sales := 60 * trials
	tr.sell(sales)
	tr.closeFlight()

	// Ground moves to child processes on the lossy filesystem over its
	// directory. This process reads the database only from the backing
	// directory, with the filesystem unmounted: it serves the mount, and
	// SQLite maps its WAL index (see lossyfs).
	cfg := tr.g.Config()
	if err := tr.g.Close(); err != nil {
		t.Fatal(err)
	}
	onDisk := cfg.DataDir
	cfg.DataDir = filepath.Join(mnt, "ground")
	fsys := lossyfs.MountForTest(t, backing, mnt)
	tr.c.Link.SetConfig(linkemu.Config{BitsPerSecond: 200_000, Latency: 10 * time.Millisecond})

	var acked, lost, torn int
	start := time.Now()
	for k := range trials {
		before := tr.clearedOnAircraft()
		if len(before) == sales {
			t.Logf("trial %d: the aircraft holds every receipt; the trials end here", k+1)
			trials = k
			break
		}
		name := fmt.Sprintf("ground process %d", k+1)
		ch := startGroundChild(t, name, cfg)
		take := 5 + rng.IntN(30)
		writes := 1 + rng.IntN(60)
		var tear *rand.Rand
		if rng.IntN(2) == 0 {
			tear = rng
		}
		tr.c.Link.SetState(linkemu.Up)
		// Let ground clear take more invoices than the aircraft held as
		// cleared when it started, then cut in the middle of a write.
		if err := Poll(ctx, 2*time.Minute, fmt.Sprintf("%s cleared %d more invoices", name, take), func() (bool, error) {
			select {
			case <-ch.done:
				return false, fmt.Errorf("%s exited: %v", name, ch.err)
			default:
			}
			return len(tr.clearedOnAircraft()) >= min(len(before)+take, sales), nil
		}); err != nil {
			t.Fatalf("%v (aircraft counts %+v, replay %+v)", err, tr.counts(), tr.c.Main.Replayer().Status())
		}
		fsys.CutAtWrite(writes, tear)
		select {
		case <-fsys.CutDone():
		case <-time.After(30 * time.Second):
			fsys.Cut() // ground wrote nothing more: cut now
		}
		ch.kill(t, name)
		tr.c.Link.SetState(linkemu.Down)
		cleared := tr.clearedOnAircraft()
		loss, err := fsys.Unmount()
		if err != nil {
			t.Fatalf("trial %d: %v", k+1, err)
		}
		missing := tr.missingOnGround(onDisk, cleared)
		st := tr.groundCrashState(onDisk)
		fsys = lossyfs.MountForTest(t, backing, mnt)
		acked += len(cleared) - len(before)
		lost += missing
		if loss.Torn > 0 {
			torn++
		}
		t.Logf("trial %d: cut at write %d with %d invoices cleared on the aircraft: %v; ground kept %d posted, %d charged; %d cleared invoices missing",
			k+1, writes, len(cleared), loss, st.sales, st.charged, missing)
		if missing > 0 {
			break
		}
	}
	t.Logf("power-loss: %d trials, %d clearing receipts, %d lost (ground, %d cuts with a torn write, %v)",
		trials, acked, lost, torn, time.Since(start).Round(time.Millisecond))
	if lost > 0 {
		t.Fatalf("%d invoices ground had sent a clearing receipt for were lost by a power cut", lost)
	}

	last := startGroundChild(t, "last ground process", cfg)
	tr.c.Link.SetState(linkemu.Up)
	tr.waitCleared(2 * time.Minute)
	last.stop(t, "last ground process")
	if _, err := fsys.Unmount(); err != nil {
		t.Fatal(err)
	}
	if err := tr.g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	tr.assertExactlyOnce()
}

// clearedOnAircraft returns the invoices the aircraft's journal holds as
// cleared: those it has a clearing receipt for.
func (tr *trial) clearedOnAircraft() map[protocol.ID]bool {
	tr.t.Helper()
	out := map[protocol.ID]bool{}
	err := tr.c.Main.Journal().Invoices(tr.ctx, func(r onboard.Record) error {
		if r.Status != onboard.StatusCleared {
			return nil
		}
		inv, err := protocol.ParseInvoice(r.Raw)
		if err != nil {
			return err
		}
		out[inv.Body.ID] = true
		return nil
	})
	if err != nil {
		tr.t.Fatal(err)
	}
	return out
}

// missingOnGround reads, read-only, the database a power cut left in dir
// and returns how many of the invoices in cleared it does not hold posted
// as a sale and charged, naming each in the test log.
func (tr *trial) missingOnGround(dir string, cleared map[protocol.ID]bool) int {
	t, ctx := tr.t, tr.ctx
	t.Helper()
	db := openGroundReadOnly(t, dir)
	defer db.Close()
	missing := 0
	for id := range cleared {
		var sales, charges int64
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM ledger_transfers WHERE ref = ? AND code = ? AND reverses IS NULL`,
			id[:], ledger.TransferSale).Scan(&sales); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM ledger_transfers WHERE ref = ? AND code IN (?, ?) AND reverses IS NULL`,
			id[:], ledger.TransferWalletCharge, ledger.TransferCardCapture).Scan(&charges); err != nil {
			t.Fatal(err)
		}
		if sales != 1 || charges != 1 {
			t.Errorf("invoice %s: the aircraft holds a clearing receipt, ground after the power cut %d sale transfers and %d charges", id, sales, charges)
			missing++
		}
	}
	return missing
}
