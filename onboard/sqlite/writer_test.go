package sqlite_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/onboard/sqlite"
	"github.com/airtab/airtab/protocol"

	msqlite "modernc.org/sqlite"
)

// assertReleased checks that nothing holds the journal at path open: the
// last connection to close a WAL database checkpoints it and deletes the
// WAL, which it does only when no other connection (a leaked handle, or one
// a statement left unfinalized keeps alive) still has the file; and a
// connection in exclusive locking mode then gets the file's exclusive lock
// at once.
func assertReleased(t *testing.T, path string) {
	t.Helper()
	if _, err := os.Stat(path + "-wal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close the WAL %s-wal is still there (%v): a connection to the journal is still open", path, err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=locking_mode(EXCLUSIVE)&_pragma=busy_timeout(0)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`BEGIN EXCLUSIVE; SELECT count(*) FROM meta; COMMIT`); err != nil {
		t.Errorf("after Close, an exclusive lock on the journal: %v; want it free", err)
	}
}

func TestCloseReleasesHandles(t *testing.T) {
	t.Run("Unused", func(t *testing.T) {
		f := ft.New(t, ft.Options{Passengers: 1})
		if err := f.OpenJournal().Close(); err != nil {
			t.Fatal(err)
		}
		assertReleased(t, f.JournalPath())
	})
	t.Run("AfterEveryKindOfWrite", func(t *testing.T) {
		f := ft.New(t, ft.Options{Passengers: 1})
		j := f.OpenJournal()
		writeEveryKind(t, f, j)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		assertReleased(t, f.JournalPath())
		if err := j.Close(); err != nil {
			t.Fatalf("second Close = %v, want nil", err)
		}
		b := invoice(t, f, 9, protocol.Hash{9}, f.Passengers[0].Code())
		if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{b}}); err == nil || !strings.Contains(err.Error(), "closed") {
			t.Fatalf("commit after Close = %v, want an error saying the journal is closed", err)
		}
		assertReleased(t, f.JournalPath())
	})
	t.Run("Version1Journal", func(t *testing.T) {
		f := ft.New(t, ft.Options{Passengers: 1})
		makeV1Journal(t, f)
		j := f.OpenJournal()
		writeEveryKind(t, f, j)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		assertReleased(t, f.JournalPath())
	})
}

// writeEveryKind writes through each of the journal's writing methods
// once: Commit (invoices, a decline, the flight close), SaveManifest,
// SaveDelta, MarkSent and MarkCloseSent.
func writeEveryKind(t *testing.T, f *ft.Flight, j *sqlite.Journal) {
	t.Helper()
	a := invoice(t, f, 1, protocol.Hash{}, f.Passengers[0].Code())
	fc, err := protocol.Sign(protocol.FlightClose{Version: protocol.Version, Flight: f.ID, Aircraft: f.Aircraft,
		ClosedAt: f.Now().Add(time.Hour)}, f.AircraftKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{a}, Declines: 1, Close: fc.Raw}); err != nil {
		t.Fatal(err)
	}
	if err := j.SaveManifest(ctx, 1, f.SignManifest(nil)); err != nil {
		t.Fatal(err)
	}
	if err := j.SaveDelta(ctx, 1, 1, f.SignDelta(1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := j.MarkSent(ctx, []protocol.ID{a.Invoice.Body.ID}, f.Now()); err != nil {
		t.Fatal(err)
	}
	if err := j.MarkCloseSent(ctx, f.Now()); err != nil {
		t.Fatal(err)
	}
	if c, err := j.InvoiceCounts(ctx); err != nil || c.Sent != 1 {
		t.Fatalf("counts = %+v, %v; want 1 sent", c, err)
	}
}

// cancelCommit is what the SQL function test_cancel() calls: a test sets it
// to end a commit's context from inside one of its statements.
var (
	cancelCommit     atomic.Pointer[context.CancelFunc]
	registerTestFunc sync.Once
)

// journalWithCancelTrigger opens a journal, commits invoice 1 to it, and
// adds a trigger that calls test_cancel() before the insert of seq.
func journalWithCancelTrigger(t *testing.T, f *ft.Flight, seq uint64) (*sqlite.Journal, onboard.Entry) {
	t.Helper()
	registerTestFunc.Do(func() {
		msqlite.MustRegisterScalarFunction("test_cancel", 0, func(*msqlite.FunctionContext, []driver.Value) (driver.Value, error) {
			if c := cancelCommit.Load(); c != nil {
				(*c)()
			}
			return nil, nil
		})
	})
	j := f.OpenJournal()
	a := invoice(t, f, 1, protocol.Hash{}, f.Passengers[0].Code())
	if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{a}}); err != nil {
		t.Fatal(err)
	}
	db := openRaw(t, f)
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf(`CREATE TRIGGER cancel_ctx BEFORE INSERT ON invoices WHEN NEW.seq = %d
		BEGIN SELECT test_cancel(); END`, seq)); err != nil {
		t.Fatal(err)
	}
	return j, a
}

// TestCommitContextEnds ends a commit's context while its batch is being
// written. The commit either fails and writes nothing, or succeeds and is
// durable: never half of it, never a durable commit reported failed; the
// journal goes on committing and Close releases every handle.
func TestCommitContextEnds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cancelAt uint64 // the insert whose trigger ends the context
		mustFail bool   // an insert after that one sees the ended context
	}{
		{"MidBatch", 3, true},
		{"LastInsert", 4, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ft.New(t, ft.Options{Passengers: 1})
			j, a := journalWithCancelTrigger(t, f, tc.cancelAt)
			defer j.Close()
			p := f.Passengers[0]
			b := invoice(t, f, 2, a.Invoice.Hash(), p.Code())
			c := invoice(t, f, 3, b.Invoice.Hash(), p.Code())
			d := invoice(t, f, 4, c.Invoice.Hash(), p.Code())
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			cancelCommit.Store(&cancel)
			defer cancelCommit.Store(nil)
			err := j.Commit(cctx, onboard.Batch{Invoices: []onboard.Entry{b, c, d}})
			if tc.mustFail && !errors.Is(err, context.Canceled) {
				t.Fatalf("commit whose context ended mid-batch = %v, want context.Canceled", err)
			}
			want := 1
			if err == nil {
				want = 4
			}
			if n, _ := countInvoices(t, j); n != want {
				t.Fatalf("commit = %v, and the journal holds %d invoices; want %d", err, n, want)
			}
			if err != nil { // the same batch again, on a context that lasts
				if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{b, c, d}}); err != nil {
					t.Fatalf("commit after the cancelled one: %v", err)
				}
			}
			e := invoice(t, f, 5, d.Invoice.Hash(), p.Code())
			if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{e}}); err != nil {
				t.Fatalf("next commit: %v", err)
			}
			if n, _ := countInvoices(t, j); n != 5 {
				t.Fatalf("journal holds %d invoices, want 5", n)
			}
			if err := j.Close(); err != nil {
				t.Fatal(err)
			}
			assertReleased(t, f.JournalPath())
		})
	}
	t.Run("EndedBefore", func(t *testing.T) {
		f := ft.New(t, ft.Options{Passengers: 1})
		j := f.OpenJournal()
		defer j.Close()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		a := invoice(t, f, 1, protocol.Hash{}, f.Passengers[0].Code())
		if err := j.Commit(cctx, onboard.Batch{Invoices: []onboard.Entry{a}}); !errors.Is(err, context.Canceled) {
			t.Fatalf("commit on an ended context = %v, want context.Canceled", err)
		}
		if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{a}}); err != nil {
			t.Fatalf("commit after: %v", err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		assertReleased(t, f.JournalPath())
	})
}

// TestConcurrentWrites writes from several goroutines at once, through
// every writing method, as the cabin's committer, the replayer and the
// manifest sync do: the writer connection takes them one at a time (run
// with -race), and every write lands.
func TestConcurrentWrites(t *testing.T) {
	const (
		writers = 4
		commits = 20
		batch   = 2
	)
	f := ft.New(t, ft.Options{Passengers: 1, Seats: 32})
	j := f.OpenJournal()
	defer j.Close()
	entries := make([][]onboard.Entry, writers*commits)
	seq, prev := uint64(0), protocol.Hash{}
	for i := range entries {
		for range batch {
			seq++
			e := seatInvoice(t, f, f.Seats[seq%32], seq, prev)
			entries[i], prev = append(entries[i], e), e.Invoice.Hash()
		}
	}
	if err := j.SaveManifest(ctx, 1, f.SignManifest(nil)); err != nil {
		t.Fatal(err)
	}
	deltas := make([][]byte, commits)
	for i := range deltas {
		deltas[i] = f.SignDelta(uint64(i+1), nil)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers+2)
	for w := range writers {
		wg.Go(func() {
			for _, b := range entries[w*commits : (w+1)*commits] {
				if err := j.Commit(ctx, onboard.Batch{Invoices: b, Declines: 1}); err != nil {
					errs <- err
					return
				}
				ids := []protocol.ID{b[0].Invoice.Body.ID, b[1].Invoice.Body.ID}
				if err := j.MarkSent(ctx, ids, f.Now()); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for i, d := range deltas {
			if err := j.SaveDelta(ctx, 1, uint64(i+1), d); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		for range commits {
			if _, err := j.InvoiceCounts(ctx); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c, err := j.InvoiceCounts(ctx); err != nil || c.Sent != writers*commits*batch {
		t.Fatalf("counts = %+v, %v; want %d sent", c, err, writers*commits*batch)
	}
	if d, err := j.Declines(ctx); err != nil || d != writers*commits {
		t.Fatalf("declines = %d, %v; want %d", d, err, writers*commits)
	}
	if _, ds, err := j.Manifest(ctx); err != nil || len(ds) != commits {
		t.Fatalf("manifest deltas = %d, %v; want %d", len(ds), err, commits)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	assertReleased(t, f.JournalPath())
}
