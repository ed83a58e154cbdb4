package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/onboard/sqlite"
	"github.com/airtab/airtab/protocol"
)

var ctx = context.Background()

// invoice signs a sale invoice with seq and prev paying with code.
func invoice(t testing.TB, f *ft.Flight, seq uint64, prev protocol.Hash, code string) onboard.Entry {
	t.Helper()
	raw, err := protocol.FromQRText(protocol.PrefixPaymentCode, code)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := protocol.ParsePaymentCode(raw)
	if err != nil {
		t.Fatal(err)
	}
	p := f.Passengers[0]
	lines := []protocol.OrderLine{{SKU: "COFFEE", Quantity: 1, UnitPrice: protocol.M(350, "EUR")}}
	s, err := protocol.Sign(protocol.Invoice{Version: protocol.Version, ID: protocol.NewID(nil), Flight: f.ID,
		Aircraft: f.Aircraft, Seq: seq, Prev: prev, Kind: protocol.KindSale, Credential: p.Credential.Body.ID,
		Passenger: p.ID, Lines: lines, Total: protocol.M(350, "EUR"), CreatedAt: f.Now(), Code: raw, Crew: "fa1"},
		f.AircraftKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return onboard.Entry{Invoice: s, Device: p.Wallet.DeviceKey(), Counter: pc.Body.Counter}
}

func TestCommitAndRead(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	j := f.OpenJournal()
	defer j.Close()
	a := invoice(t, f, 1, protocol.Hash{}, f.Passengers[0].Code())
	b := invoice(t, f, 2, a.Invoice.Hash(), f.Passengers[0].Code())
	if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{a, b}}); err != nil {
		t.Fatal(err)
	}
	rec, err := j.Invoice(ctx, b.Invoice.Body.ID)
	if err != nil || string(rec.Raw) != string(b.Invoice.Raw) || rec.Status != onboard.StatusPending || rec.Counter != b.Counter {
		t.Fatalf("invoice = %+v, %v", rec, err)
	}
	if _, err := j.Invoice(ctx, protocol.NewID(nil)); !errors.Is(err, onboard.ErrNotFound) {
		t.Fatalf("unknown invoice: %v, want ErrNotFound", err)
	}
	counts, err := j.InvoiceCounts(ctx)
	if err != nil || counts.Pending != 2 {
		t.Fatalf("counts = %+v, %v", counts, err)
	}
}

// TestCommitAllOrNothing commits a batch whose second invoice reuses the
// first one's code: the unique key on (device key, counter) fails the
// batch, and neither invoice is written.
func TestCommitAllOrNothing(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	j := f.OpenJournal()
	defer j.Close()
	code := f.Passengers[0].Code()
	a := invoice(t, f, 1, protocol.Hash{}, code)
	b := invoice(t, f, 2, a.Invoice.Hash(), code)
	err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{a, b}})
	if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("commit of one code twice = %v, want a unique-key failure", err)
	}
	n := 0
	if err := j.Invoices(ctx, func(onboard.Record) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d invoices written by a failed batch, want 0", n)
	}
	// The same seq twice fails too.
	c := invoice(t, f, 1, protocol.Hash{}, f.Passengers[0].Code())
	if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{a}}); err != nil {
		t.Fatal(err)
	}
	if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{c}}); err == nil {
		t.Fatal("a second invoice with seq 1: no error")
	}
}

func TestManifestStore(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	j := f.OpenJournal()
	defer j.Close()
	if raw, _, err := j.Manifest(ctx); err != nil || raw != nil {
		t.Fatalf("empty journal: manifest %v, %v", raw, err)
	}
	m1 := f.SignManifest(nil)
	if err := j.SaveManifest(ctx, 1, m1); err != nil {
		t.Fatal(err)
	}
	d1, d2 := f.SignDelta(1, nil), f.SignDelta(2, nil)
	for i, d := range [][]byte{d2, d1} { // stored out of order, read in order
		if err := j.SaveDelta(ctx, 1, uint64(2-i), d); err != nil {
			t.Fatal(err)
		}
	}
	raw, deltas, err := j.Manifest(ctx)
	if err != nil || string(raw) != string(m1) || len(deltas) != 2 || string(deltas[0]) != string(d1) {
		t.Fatalf("manifest = %d bytes, %d deltas, %v", len(raw), len(deltas), err)
	}
	m2 := f.SignManifest(nil)
	if err := j.SaveManifest(ctx, 2, m2); err != nil {
		t.Fatal(err)
	}
	raw, deltas, err = j.Manifest(ctx)
	if err != nil || string(raw) != string(m2) || len(deltas) != 0 {
		t.Fatalf("after a new manifest: %d deltas, %v; want the new manifest and none", len(deltas), err)
	}
}

func TestOpenRefusesOtherFlight(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	f.OpenJournal().Close()
	other, _ := protocol.NewFlightID("XX", "999", f.Now())
	if _, err := sqlite.Open(ctx, f.JournalPath(), other, f.Aircraft); err == nil || !strings.Contains(err.Error(), "own journal") {
		t.Fatalf("open for another flight = %v, want refused", err)
	}
}

func TestFlightCloseStored(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	j := f.OpenJournal()
	defer j.Close()
	fc, err := protocol.Sign(protocol.FlightClose{Version: protocol.Version, Flight: f.ID, Aircraft: f.Aircraft,
		ClosedAt: f.Now().Add(time.Hour)}, f.AircraftKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Commit(ctx, onboard.Batch{Close: fc.Raw}); err != nil {
		t.Fatal(err)
	}
	raw, err := j.FlightClose(ctx)
	if err != nil || string(raw) != string(fc.Raw) {
		t.Fatalf("flight close = %v", err)
	}
	if err := j.Commit(ctx, onboard.Batch{Close: fc.Raw}); err == nil {
		t.Fatal("a second flight close: no error")
	}
}

func TestPathWithSpecialCharacters(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	dir := filepath.Join(t.TempDir(), "a?b#c%d")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	j, err := sqlite.Open(ctx, filepath.Join(dir, "j.db"), f.ID, f.Aircraft)
	if err != nil {
		t.Fatal(err)
	}
	j.Close()
	if _, err := os.Stat(filepath.Join(dir, "j.db")); err != nil {
		t.Fatalf("journal not at its path: %v", err)
	}
}

// TestBackgroundCheckpoint commits far fewer WAL frames than the writer's
// own automatic checkpoint waits for, but more than the background
// checkpoint's share: the database file then receives the pages, copied
// beside the writer, and every invoice reads back.
func TestBackgroundCheckpoint(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1, Seats: 64})
	j := f.OpenJournal()
	defer j.Close()
	const commits, batch = 150, 10 // about 5,000 frames, by the journal's estimate
	before := fileSize(t, j.Path())
	var prev protocol.Hash
	seq := uint64(0)
	for range commits {
		entries := make([]onboard.Entry, batch)
		for i := range entries {
			seq++
			entries[i] = seatInvoice(t, f, f.Seats[seq%64], seq, prev)
			prev = entries[i].Invoice.Hash()
		}
		if err := j.Commit(ctx, onboard.Batch{Invoices: entries}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for fileSize(t, j.Path()) < before+256<<10 {
		if time.Now().After(deadline) {
			t.Fatalf("database file %d bytes after %d commits (%d before): no checkpoint copied the WAL", fileSize(t, j.Path()), commits, before)
		}
		time.Sleep(10 * time.Millisecond)
	}
	counts, err := j.InvoiceCounts(ctx)
	if err != nil || counts.Pending != commits*batch {
		t.Fatalf("counts = %+v, %v; want %d pending", counts, err, commits*batch)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// TestCommitAfterFailedRollback makes SQLite end a batch's transaction
// itself (a trigger raising ROLLBACK), so the journal's own rollback
// fails: the writer's connection, its state unknown, is closed with its
// statements, nothing of the batch is written, and the next commit runs on
// a fresh connection; Close then leaves no handle open.
func TestCommitAfterFailedRollback(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	j, a, db := journalWithRollbackTrigger(t, f)
	defer j.Close()
	defer db.Close()
	b := invoice(t, f, 2, a.Invoice.Hash(), f.Passengers[0].Code())
	c := invoice(t, f, 3, b.Invoice.Hash(), f.Passengers[0].Code())
	err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{b, c}, Declines: 1})
	if err == nil || !strings.Contains(err.Error(), "injected rollback") || !strings.Contains(err.Error(), "rollback:") ||
		!strings.Contains(err.Error(), "connection closed") {
		t.Fatalf("commit through a rolled-back transaction = %v, want the trigger's error, the failed rollback and the connection closed", err)
	}
	if n, _ := countInvoices(t, j); n != 1 {
		t.Fatalf("journal holds %d invoices after the failed batch, want 1", n)
	}
	if _, err := db.Exec(`DROP TRIGGER end_tx`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{b, c}, Declines: 1}); err != nil {
		t.Fatalf("commit after the failed one: %v", err)
	}
	if n, _ := countInvoices(t, j); n != 3 {
		t.Fatalf("journal holds %d invoices, want 3", n)
	}
	if d, err := j.Declines(ctx); err != nil || d != 1 {
		t.Fatalf("declines = %d, %v; want 1", d, err)
	}
	if err := j.MarkSent(ctx, []protocol.ID{b.Invoice.Body.ID}, f.Now()); err != nil {
		t.Fatalf("mark sent on the fresh connection: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	assertReleased(t, f.JournalPath())
}

// TestFailedRollbackReopenFails abandons the writer's connection (a failed
// rollback) while the journal's file is gone: the journal does not start
// an empty file in its place, every later write fails naming the reason,
// so the cabin server approves nothing, and Close still closes.
func TestFailedRollbackReopenFails(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	j, _, b := journalAfterFailedRollback(t, f)
	defer j.Close()
	moved := filepath.Join(t.TempDir(), "moved.db")
	if err := os.Rename(f.JournalPath(), moved); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{b}})
		if err == nil || !strings.Contains(err.Error(), "open the writer connection") {
			t.Fatalf("commit %d without the journal's file = %v, want the writer's open to fail", i+1, err)
		}
	}
	if err := j.SaveDelta(ctx, 1, 1, []byte{1}); err == nil {
		t.Fatal("save delta without the journal's file: no error")
	}
	if _, err := os.Stat(f.JournalPath()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file at the journal's path after the failed reopen (%v): want none", err)
	}
	if err := j.Close(); err != nil {
		t.Fatalf("close = %v", err)
	}
}

// journalWithRollbackTrigger opens a journal, commits invoice 1 to it and
// adds a trigger that ends the transaction inserting seq 3 (RAISE
// ROLLBACK), through db, which the test closes.
func journalWithRollbackTrigger(t *testing.T, f *ft.Flight) (*sqlite.Journal, onboard.Entry, *sql.DB) {
	t.Helper()
	j := f.OpenJournal()
	a := invoice(t, f, 1, protocol.Hash{}, f.Passengers[0].Code())
	if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{a}}); err != nil {
		t.Fatal(err)
	}
	db := openRaw(t, f)
	if _, err := db.Exec(`CREATE TRIGGER end_tx BEFORE INSERT ON invoices WHEN NEW.seq = 3
		BEGIN SELECT RAISE(ROLLBACK, 'injected rollback'); END`); err != nil {
		t.Fatal(err)
	}
	return j, a, db
}

// journalAfterFailedRollback is journalWithRollbackTrigger's journal after
// a commit of invoices 2 and 3 that the trigger ended, so the writer's
// connection was abandoned; it returns invoice 1 (committed) and 2 (not).
func journalAfterFailedRollback(t *testing.T, f *ft.Flight) (*sqlite.Journal, onboard.Entry, onboard.Entry) {
	t.Helper()
	j, a, db := journalWithRollbackTrigger(t, f)
	db.Close()
	b := invoice(t, f, 2, a.Invoice.Hash(), f.Passengers[0].Code())
	c := invoice(t, f, 3, b.Invoice.Hash(), f.Passengers[0].Code())
	if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{b, c}}); err == nil {
		j.Close()
		t.Fatal("commit through a rolled-back transaction: no error")
	}
	return j, a, b
}

// TestFailedRollbackReopenReplacedFile abandons the writer's connection (a
// failed rollback) and puts another journal, of the same flight, at the
// journal's path: the fresh connection must not be opened on it, so no
// sale is made durable in a file that is not the journal the cabin server
// rebuilt its state from and whose invoices its readers see.
func TestFailedRollbackReopenReplacedFile(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	j, a, b := journalAfterFailedRollback(t, f)
	defer j.Close()
	other := filepath.Join(t.TempDir(), "other.db")
	oj, err := sqlite.Open(ctx, other, f.ID, f.Aircraft)
	if err != nil {
		t.Fatal(err)
	}
	if err := oj.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(f.JournalPath(), filepath.Join(t.TempDir(), "moved.db")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(other, f.JournalPath()); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{b}})
		if err == nil || !strings.Contains(err.Error(), "open the writer connection") || !strings.Contains(err.Error(), "replaced") {
			t.Fatalf("commit %d with another file at the journal's path = %v, want the writer's open to fail saying the file was replaced", i+1, err)
		}
	}
	if err := j.MarkSent(ctx, []protocol.ID{a.Invoice.Body.ID}, f.Now()); err == nil {
		t.Fatal("mark sent with another file at the journal's path: no error")
	}
	if err := j.Close(); err != nil {
		t.Fatalf("close = %v", err)
	}
	rdb := openRaw(t, f)
	defer rdb.Close()
	var n int
	if err := rdb.QueryRow(`SELECT count(*) FROM invoices`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the file put at the journal's path holds %d invoices (%v), want 0", n, err)
	}
}
