package sqlite_test

import (
	"database/sql"
	"slices"
	"strings"
	"testing"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/onboard/sqlite"
	"github.com/airtab/airtab/protocol"
)

// schemaV1 is the schema of the journals made before version 2, as they
// are on aircraft: a frozen copy, so that a change to the journal's own
// schema cannot change what this test opens.
const schemaV1 = `
CREATE TABLE IF NOT EXISTS meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS manifest (
	id        INTEGER PRIMARY KEY CHECK (id = 1),
	serial    INTEGER NOT NULL CHECK (serial > 0),
	raw       BLOB NOT NULL,
	stored_at INTEGER NOT NULL DEFAULT (unixepoch())
) STRICT;
CREATE TABLE IF NOT EXISTS manifest_deltas (
	base_serial INTEGER NOT NULL,
	seq         INTEGER NOT NULL CHECK (seq > 0),
	raw         BLOB NOT NULL,
	PRIMARY KEY (base_serial, seq)
) STRICT;
CREATE TABLE IF NOT EXISTS invoices (
	seq            INTEGER PRIMARY KEY CHECK (seq > 0),
	id             BLOB NOT NULL UNIQUE CHECK (length(id) = 16),
	kind           INTEGER NOT NULL CHECK (kind IN (1, 2)),
	device_key     BLOB CHECK (device_key IS NULL OR length(device_key) = 32),
	counter        INTEGER,
	credential     BLOB NOT NULL,
	passenger      BLOB NOT NULL,
	total_minor    INTEGER NOT NULL CHECK (total_minor > 0),
	currency       TEXT NOT NULL,
	created_at     INTEGER NOT NULL,
	hash           BLOB NOT NULL CHECK (length(hash) = 32),
	raw            BLOB NOT NULL,
	status         TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'cleared')),
	sent_at        INTEGER,
	receipt        BLOB,
	receipt_status INTEGER,
	cleared_at     INTEGER,
	UNIQUE (device_key, counter),
	CHECK ((kind = 1) = (device_key IS NOT NULL AND counter IS NOT NULL))
) STRICT;
CREATE INDEX IF NOT EXISTS invoices_status ON invoices (status, seq);
CREATE TABLE IF NOT EXISTS flight_state (
	id        INTEGER PRIMARY KEY CHECK (id = 1),
	closed_at INTEGER NOT NULL,
	close_raw BLOB NOT NULL,
	status    TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'cleared')),
	sent_at   INTEGER,
	receipt   BLOB
) STRICT;
`

// makeV1Journal writes a version 1 journal for f at f.JournalPath(), as
// the cabin server made them (before the declines table), holding the
// invoices of entries.
func makeV1Journal(t *testing.T, f *ft.Flight, entries ...onboard.Entry) {
	t.Helper()
	db := openRaw(t, f)
	defer db.Close()
	if _, err := db.Exec(schemaV1); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"schema": "1", "flight": string(f.ID), "aircraft": string(f.Aircraft)} {
		if _, err := db.Exec(`INSERT INTO meta (key, value) VALUES (?, ?)`, k, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, e := range entries {
		inv, h := &e.Invoice.Body, e.Invoice.Hash()
		if _, err := db.Exec(`INSERT INTO invoices
			(seq, id, kind, device_key, counter, credential, passenger, total_minor, currency, created_at, hash, raw)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, int64(inv.Seq), inv.ID[:], int64(inv.Kind), e.Device.Bytes(),
			int64(e.Counter), inv.Credential[:], inv.Passenger[:], inv.Total.Minor, string(inv.Total.Currency),
			inv.CreatedAt.Unix(), h[:], e.Invoice.Raw); err != nil {
			t.Fatal(err)
		}
	}
}

func openRaw(t *testing.T, f *ft.Flight) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+f.JournalPath()+"?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

func schemaOf(t *testing.T, f *ft.Flight) (version string, columns []string) {
	t.Helper()
	db := openRaw(t, f)
	defer db.Close()
	if err := db.QueryRow(`SELECT value FROM meta WHERE key = 'schema'`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT name FROM pragma_table_info('invoices') ORDER BY cid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			t.Fatal(err)
		}
		columns = append(columns, c)
	}
	return version, columns
}

func countInvoices(t *testing.T, j *sqlite.Journal) (n int, raws []string) {
	t.Helper()
	if err := j.Invoices(ctx, func(r onboard.Record) error {
		n++
		raws = append(raws, string(r.Raw))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n, raws
}

// TestVersion1JournalOpens opens a journal made before schema version 2,
// with an invoice in it, as a cabin server restarting mid-flight after an
// upgrade does: it reads the invoice, writes new ones into the version 1
// columns, keeps one code to one sale across a restart, and stays version
// 1.
func TestVersion1JournalOpens(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	code := f.Passengers[0].Code()
	a := invoice(t, f, 1, protocol.Hash{}, code)
	makeV1Journal(t, f, a)

	j := f.OpenJournal()
	b := invoice(t, f, 2, a.Invoice.Hash(), f.Passengers[0].Code())
	if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{b}, Declines: 2}); err != nil {
		t.Fatalf("commit to a version 1 journal: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	j = f.OpenJournal()
	defer j.Close()
	n, raws := countInvoices(t, j)
	if n != 2 || raws[0] != string(a.Invoice.Raw) || raws[1] != string(b.Invoice.Raw) {
		t.Fatalf("version 1 journal after a restart holds %d invoices, want the old one then the new one", n)
	}
	if d, err := j.Declines(ctx); err != nil || d != 2 {
		t.Fatalf("declines = %d, %v; want 2 (the table a version 1 journal lacked is made)", d, err)
	}
	c := invoice(t, f, 3, b.Invoice.Hash(), code) // a's code again
	if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{c}}); err == nil || !strings.Contains(err.Error(), "UNIQUE") {
		t.Fatalf("a code used before the restart, again: %v, want a unique-key failure", err)
	}
	rec, err := j.Invoice(ctx, b.Invoice.Body.ID)
	if err != nil || rec.Counter != b.Counter || string(rec.Device) != string(b.Device.Bytes()) {
		t.Fatalf("invoice = %+v, %v", rec, err)
	}

	version, columns := schemaOf(t, f)
	if version != "1" || !slices.Contains(columns, "hash") {
		t.Fatalf("after opening: schema %q, columns %v; want version 1 as it was", version, columns)
	}
	db := openRaw(t, f)
	defer db.Close()
	var hash []byte
	var minor int64
	if err := db.QueryRow(`SELECT hash, total_minor FROM invoices WHERE seq = 2`).Scan(&hash, &minor); err != nil {
		t.Fatal(err)
	}
	if h := b.Invoice.Hash(); string(hash) != string(h[:]) || minor != b.Invoice.Body.Total.Minor {
		t.Fatalf("version 1 columns of the new invoice: hash %x, total %d; want %x, %d", hash, minor, h, b.Invoice.Body.Total.Minor)
	}
}

// TestNewJournalIsVersion2 checks a new journal's schema: version 2,
// without the columns raw already holds, and its unique keys hold across a
// restart.
func TestNewJournalIsVersion2(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	j := f.OpenJournal()
	code := f.Passengers[0].Code()
	a := invoice(t, f, 1, protocol.Hash{}, code)
	if err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{a}}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	version, columns := schemaOf(t, f)
	want := []string{"seq", "id", "kind", "device_key", "counter", "raw", "status", "sent_at", "receipt", "receipt_status", "cleared_at"}
	if version != "2" || strings.Join(columns, " ") != strings.Join(want, " ") {
		t.Fatalf("new journal: schema %q, columns %v; want version 2, %v", version, columns, want)
	}

	j = f.OpenJournal()
	defer j.Close()
	for _, tc := range []struct {
		name string
		e    onboard.Entry
	}{
		{"same code", invoice(t, f, 2, a.Invoice.Hash(), code)},
		{"same id", func() onboard.Entry {
			e := invoice(t, f, 2, a.Invoice.Hash(), f.Passengers[0].Code())
			inv := e.Invoice.Body
			inv.ID = a.Invoice.Body.ID
			s, err := protocol.Sign(inv, f.AircraftKey, nil)
			if err != nil {
				t.Fatal(err)
			}
			e.Invoice = s
			return e
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := j.Commit(ctx, onboard.Batch{Invoices: []onboard.Entry{tc.e}})
			if err == nil || !strings.Contains(err.Error(), "UNIQUE") {
				t.Fatalf("commit after a restart: %v, want a unique-key failure", err)
			}
		})
	}
	if n, _ := countInvoices(t, j); n != 1 {
		t.Fatalf("journal holds %d invoices, want 1", n)
	}
}

// TestUnknownSchemaVersionRefused opens a journal of a version this cabin
// server does not know (made by a newer one): refused, and left as it is.
func TestUnknownSchemaVersionRefused(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	f.OpenJournal().Close()
	db := openRaw(t, f)
	if _, err := db.Exec(`UPDATE meta SET value = '3' WHERE key = 'schema'`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err := sqlite.Open(ctx, f.JournalPath(), f.ID, f.Aircraft)
	if err == nil || !strings.Contains(err.Error(), `schema version "3"`) {
		t.Fatalf("open a version 3 journal = %v, want refused naming the version", err)
	}
	if version, _ := schemaOf(t, f); version != "3" {
		t.Fatalf("schema after the refused open = %q, want 3", version)
	}
}
