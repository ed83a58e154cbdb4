package onboard_test

import (
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"

	_ "modernc.org/sqlite"
)

// manyPassengers is a flight whose caps do not get in the way of many
// sales.
func manyPassengers(t *testing.T, n int) *ft.Flight {
	return ft.New(t, ft.Options{Passengers: n, Limit: protocol.M(1_000_000, "EUR"),
		Caps: protocol.Caps{AircraftExposure: protocol.M(100_000_000, "EUR"), CodeFreshSeconds: 60,
			ClockSkewSeconds: 30, VelocityCount: 10_000, VelocityWindowSeconds: 600}})
}

// TestSameCodeConcurrently sends one code from many goroutines at once, each
// with its own invoice id, as if scanned on many handhelds at the same
// instant: exactly one is approved, every other is declined as reused.
func TestSameCodeConcurrently(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, j := f.OpenCabin(f.SignManifest(nil), nil)
	code := f.Passengers[0].Code()
	const n = 32
	var wg sync.WaitGroup
	reasons := make([]protocol.Reason, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			d, err := c.Authorize(ctx, sale(code, coffee(1)...))
			switch {
			case err != nil:
				t.Errorf("authorize: %v", err)
			case d.Approved:
				reasons[i] = 0
			default:
				reasons[i] = d.Decline.Reason
			}
		})
	}
	close(start)
	wg.Wait()
	approved := 0
	for _, r := range reasons {
		switch r {
		case 0:
			approved++
		case protocol.ReasonCodeReused:
		default:
			t.Errorf("declined with reason %d, want only code reused", r)
		}
	}
	if approved != 1 {
		t.Fatalf("%d approvals of one code, want exactly 1", approved)
	}
	if got := len(checkJournal(t, f, j)); got != 1 {
		t.Fatalf("journal holds %d invoices, want 1", got)
	}
}

func TestIdempotentRetry(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, j := f.OpenCabin(f.SignManifest(nil), nil)
	p := f.Passengers[0]
	req := sale(p.Code(), coffee(2)...)
	first := mustApprove(t, c, req)

	t.Run("SameRequest", func(t *testing.T) {
		again := mustApprove(t, c, req)
		if again.Seq != first.Seq || again.Hash != first.Hash || again.Total != first.Total {
			t.Fatalf("retry = %+v, want the original %+v", again, first)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				d, err := c.Authorize(ctx, req)
				if err != nil || !d.Approved || d.Sale.Hash != first.Hash {
					t.Errorf("concurrent retry = %+v, %v; want the original approval", d, err)
				}
			})
		}
		wg.Wait()
	})
	t.Run("OtherBasket", func(t *testing.T) {
		other := req
		other.Lines = coffee(3)
		_, err := c.Authorize(ctx, other)
		if e, ok := errors.AsType[*onboard.Error](err); !ok || e.Code != onboard.CodeConflict || e.Reason != protocol.ReasonDuplicateConflict {
			t.Fatalf("same id, other basket: err = %v, want a conflict", err)
		}
	})
	t.Run("OtherCode", func(t *testing.T) {
		other := req
		other.Code = p.Code()
		if _, err := c.Authorize(ctx, other); ErrorCodeOf(err) != onboard.CodeConflict {
			t.Fatalf("same id, other code: err = %v, want a conflict", err)
		}
	})
	t.Run("NewRetryInSameBatch", func(t *testing.T) {
		// Two copies of a new request queued together: one invoice, both
		// get it.
		req := sale(p.Code(), coffee(1)...)
		resume := c.PauseWriter()
		var wg sync.WaitGroup
		var seqs [2]uint64
		for i := range 2 {
			wg.Go(func() {
				d, err := c.Authorize(ctx, req)
				if err != nil || !d.Approved {
					t.Errorf("authorize = %+v, %v", d, err)
					return
				}
				seqs[i] = d.Sale.Seq
			})
		}
		waitFor(t, func() bool { return c.Pending() == 2 })
		resume()
		wg.Wait()
		if seqs[0] != seqs[1] {
			t.Fatalf("two copies of one request got seq %d and %d, want one invoice", seqs[0], seqs[1])
		}
	})
	if got, want := len(checkJournal(t, f, j)), 2; got != want {
		t.Fatalf("journal holds %d invoices, want %d", got, want)
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommit lets many authorizations queue up while the writer is
// held, and checks they are committed together: fewer commits than
// approvals, every approval in the journal with a gapless sequence and an
// unbroken hash chain signed by the aircraft.
func TestGroupCommit(t *testing.T) {
	const n = 64
	f := manyPassengers(t, 8)
	c, j := f.OpenCabin(f.SignManifest(nil), nil)
	codes := make([]string, n)
	for i := range codes {
		codes[i] = f.Passengers[i%len(f.Passengers)].Code()
	}
	resume := c.PauseWriter()
	var wg sync.WaitGroup
	approved := make([]*onboard.Sale, n)
	for i := range n {
		wg.Go(func() {
			d, err := c.Authorize(ctx, sale(codes[i], coffee(1+i%3)...))
			if err != nil || !d.Approved {
				t.Errorf("authorize %d = %+v, %v", i, d, err)
				return
			}
			approved[i] = d.Sale
		})
	}
	waitFor(t, func() bool { return c.Pending() == n })
	resume()
	wg.Wait()

	st := c.Stats()
	if st.Approved != n || st.Commits >= st.Approved {
		t.Fatalf("stats = %+v: want %d approvals in fewer commits", st, n)
	}
	if st.MaxBatch < 2 {
		t.Fatalf("largest batch = %d, want several requests per commit", st.MaxBatch)
	}
	invoices := checkJournal(t, f, j)
	if len(invoices) != n {
		t.Fatalf("journal holds %d invoices, want %d", len(invoices), n)
	}
	bySeq := map[uint64]*protocol.SignedInvoice{}
	for _, inv := range invoices {
		bySeq[inv.Body.Seq] = inv
	}
	for _, s := range approved {
		if s == nil {
			continue
		}
		inv := bySeq[s.Seq]
		if inv == nil || inv.Body.ID != s.InvoiceID || inv.Hash() != s.Hash || inv.Body.Total != s.Total {
			t.Errorf("approval seq %d (%s) not in the journal as approved", s.Seq, s.InvoiceID)
		}
	}
}

// TestGroupCommitUnpaused drives many concurrent authorizations without
// holding the writer, the way a busy cabin does, and checks the journal.
func TestGroupCommitUnpaused(t *testing.T) {
	const clients, perClient = 16, 8
	f := manyPassengers(t, clients)
	c, j := f.OpenCabin(f.SignManifest(nil), nil)
	var wg sync.WaitGroup
	for i := range clients {
		p := f.Passengers[i]
		codes := make([]string, perClient)
		for k := range codes {
			codes[k] = p.Code()
		}
		wg.Go(func() {
			for _, code := range codes {
				if _, err := c.Authorize(ctx, sale(code, coffee(1)...)); err != nil {
					t.Errorf("authorize: %v", err)
				}
			}
		})
	}
	wg.Wait()
	if got, want := len(checkJournal(t, f, j)), clients*perClient; got != want {
		t.Fatalf("journal holds %d invoices, want %d", got, want)
	}
	t.Logf("stats: %+v", c.Stats())
}

// TestFailedCommitRollsBack makes the journal fail part-way through a
// batch's inserts (a trigger that aborts the insert of seq 3) and checks
// that nothing of the batch is written, nobody is approved, the state is as
// before, and the same requests succeed once the fault is gone.
func TestFailedCommitRollsBack(t *testing.T) {
	f := manyPassengers(t, 2)
	c, j := f.OpenCabin(f.SignManifest(nil), nil)
	p := f.Passengers[0]
	mustApprove(t, c, sale(p.Code(), coffee(1)...)) // seq 1

	db, err := sql.Open("sqlite", "file:"+f.JournalPath()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TRIGGER fail_seq3 BEFORE INSERT ON invoices WHEN NEW.seq = 3
		BEGIN SELECT RAISE(ABORT, 'injected fault'); END`); err != nil {
		t.Fatal(err)
	}

	before, err := c.Limit(ctx, onboard.LimitRequest{Code: p.Code()})
	if err != nil {
		t.Fatal(err)
	}
	reqs := []onboard.SaleRequest{sale(p.Code(), coffee(1)...), sale(p.Code(), coffee(2)...), sale(p.Code(), coffee(3)...)}
	resume := c.PauseWriter()
	var wg sync.WaitGroup
	for _, req := range reqs {
		wg.Go(func() {
			d, err := c.Authorize(ctx, req)
			if got, want := ErrorCodeOf(err), onboard.CodeUnavailable; got != want || d.Approved {
				t.Errorf("authorize in a failed batch = %+v, %v; want unavailable", d, err)
			}
		})
	}
	waitFor(t, func() bool { return c.Pending() == int64(len(reqs)) })
	resume()
	wg.Wait()

	if got, want := len(checkJournal(t, f, j)), 1; got != want {
		t.Fatalf("journal holds %d invoices after the failed batch, want %d", got, want)
	}
	after, err := c.Limit(ctx, onboard.LimitRequest{Code: p.Code()})
	if err != nil {
		t.Fatal(err)
	}
	if after.Spent != before.Spent {
		t.Fatalf("spend after the failed batch = %v, want %v", after.Spent, before.Spent)
	}
	if st := c.Stats(); st.FailedCommits != 1 || st.Approved != 1 {
		t.Fatalf("stats = %+v, want 1 failed commit and 1 approval", st)
	}
	status, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if status.LastSeq != 1 {
		t.Fatalf("last seq after the failed batch = %d, want 1", status.LastSeq)
	}

	if _, err := db.Exec(`DROP TRIGGER fail_seq3`); err != nil {
		t.Fatal(err)
	}
	for i, req := range reqs { // the handheld retries with the same ids
		s := mustApprove(t, c, req)
		if got, want := s.Seq, uint64(2+i); got != want {
			t.Errorf("retry %d: seq %d, want %d", i, got, want)
		}
	}
	if got, want := len(checkJournal(t, f, j)), 4; got != want {
		t.Fatalf("journal holds %d invoices, want %d", got, want)
	}
}

// TestRestartRebuildsState closes a cabin and opens a new one on the same
// journal: used codes stay used, spend and velocity carry over, and the
// sequence and chain continue.
func TestRestartRebuildsState(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	manifest := f.SignManifest(nil)
	j := f.OpenJournal()
	c, err := onboard.Open(ctx, f.Config(j))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.LoadManifest(ctx, manifest); err != nil {
		t.Fatal(err)
	}
	p := f.Passengers[0]
	code := p.Code()
	mustApprove(t, c, sale(code, ft.Basket("PERFUME", 1)...))
	mustApprove(t, c, sale(p.Code(), ft.Basket("PERFUME", 1)...))
	c.Close()
	j.Close()

	c2, j2 := f.OpenCabin(nil, nil) // the manifest comes back from the journal
	st, err := c2.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !st.SalesOpen || st.LastSeq != 2 || st.Invoices.Pending != 2 {
		t.Fatalf("status after restart = %+v; want sales open, seq 2, 2 pending", st)
	}
	d, err := c2.Authorize(ctx, sale(code, coffee(1)...))
	if got, want := reasonOf(t, d, err), protocol.ReasonCodeReused; got != want {
		t.Fatalf("reused code after restart: reason %d, want %d", got, want)
	}
	mustApprove(t, c2, sale(p.Code(), ft.Basket("PERFUME", 1)...)) // 195.00 of 200.00
	d, err = c2.Authorize(ctx, sale(p.Code(), ft.Basket("COFFEE", 2)...))
	if got, want := reasonOf(t, d, err), protocol.ReasonOverPassengerLimit; got != want {
		t.Fatalf("over the limit after restart: reason %d, want %d", got, want)
	}
	if got := len(checkJournal(t, f, j2)); got != 3 {
		t.Fatalf("journal holds %d invoices, want 3", got)
	}
}

// TestTamperedJournalRefused changes an invoice's bytes in the journal:
// the next start refuses the journal instead of building on it.
func TestTamperedJournalRefused(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, j := f.OpenCabin(f.SignManifest(nil), nil)
	mustApprove(t, c, sale(f.Passengers[0].Code(), coffee(1)...))
	mustApprove(t, c, sale(f.Passengers[0].Code(), coffee(1)...))
	c.Close()
	db, err := sql.Open("sqlite", "file:"+f.JournalPath()+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM invoices WHERE seq = 1`); err != nil {
		t.Fatal(err)
	}
	if _, err := onboard.Open(ctx, f.Config(j)); err == nil {
		t.Fatal("open on a journal with a gap: no error")
	}
}
