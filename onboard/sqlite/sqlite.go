// Package sqlite is the cabin server's journal on SQLite (modernc.org/sqlite,
// no cgo): the invoices of one flight, the cached manifest and its deltas,
// and the flight-close report. It implements onboard.Journal.
//
// Durability: WAL with synchronous=FULL, so a commit returns only after the
// WAL is fsynced; one writer connection, which the journal holds for its
// whole life outside database/sql's pool (writer.go says why) and which
// starts every transaction with BEGIN IMMEDIATE; a busy timeout; a small
// page cache, as the whole cabin server must stay under 64 MiB. Readers use a separate pool of two
// connections, which WAL lets run beside the writer.
//
// Checkpoints: a goroutine with a connection of its own copies the WAL into
// the database file (a PASSIVE checkpoint) once the commits since the last
// one wrote about checkpointFrames frames, beside the writer rather than on
// its goroutine, so a commit, and the approvals waiting on it, never waits
// for one. The writer's own automatic checkpoint stays as a backstop at
// backstopFrames, for frames the background one could not finish.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Settings of every connection, in the driver's _pragma form.
const (
	busyTimeoutMS = 5000
	// cacheKiB is the page cache per connection. Three connections
	// (one writer, two readers) take at most 3 × 2 MiB; the checkpoint's
	// takes ckptCacheKiB, as it reads each page once.
	cacheKiB     = 2048
	ckptCacheKiB = 64
	maxReaders   = 2

	// checkpointFrames is about how many WAL frames (pages) the commits
	// since the last checkpoint wrote when the background checkpoint
	// runs: fewer, larger checkpoints copy a page rewritten by many
	// commits once, and pay the two fsyncs of a checkpoint less often.
	// SQLite's default is 1,000, on the writer's goroutine.
	checkpointFrames = 4000
	// backstopFrames is the writer's wal_autocheckpoint: the WAL grows to
	// at most about this many frames (4 KiB pages) before the writer
	// checkpoints itself, if the background checkpoint fell behind (a
	// PASSIVE checkpoint copies only what no reader still needs).
	backstopFrames = 16000
	// walSizeLimit is what the WAL file is cut back to when a checkpoint
	// has copied all of it: without it the file keeps the size of its
	// largest backlog (up to about 64 MiB at the backstop) for the flight.
	walSizeLimit = 16 << 20
	// Frames a commit writes, estimated from its size: the rowid table
	// appends, but each invoice lands on random leaves of the two
	// unique indexes (about 2.7 frames an invoice), and every commit
	// rewrites page 1, the status index and interior pages.
	framesPerCommit, framesPerInvoice = 6, 3
)

// The invoices table keeps seq as the INTEGER PRIMARY KEY (SQLite's rowid)
// and the invoice id as a UNIQUE key, rather than the other way round: a
// rowid table with a BLOB primary key has the rowid and an extra index
// anyway, so this saves an index and appends to the table in seq order.
// UNIQUE (device_key, counter) is the atomic one-code-one-sale guarantee;
// voids have no code, and SQLite's UNIQUE lets NULLs repeat. The device key
// is the full 32-byte key, not the 8-byte key id: ids may collide, and two
// devices must never block each other's codes.
//
// status, sent_at and the receipt columns are for the replayer: an invoice
// stays until a clearing receipt says ground's ledger committed it.
//
// Schema versions. Version 2 (every journal made now) keeps of an invoice
// only the signed bytes (raw) and the keys the journal looks up or must
// keep unique; version 1 also stored credential, passenger, total_minor,
// currency, created_at and hash, values raw holds (the hash is raw's
// SHA-256) that nothing read, and wrote its status check as an IN list,
// which SQLite evaluates through a temporary index on every insert. A
// version 1 journal, from a flight begun before, opens and is written as
// it is: its invoices table keeps its columns, and Commit fills them.
// A journal of a version other than these is refused.
const (
	schemaVersion   = "2"
	schemaVersionV1 = "1"
)

// schemaShared is the tables and index both versions have alike. Every
// open runs it: IF NOT EXISTS adds a table a journal made by an older
// build lacks (declines came after version 1 did).
const schemaShared = `
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
CREATE TABLE IF NOT EXISTS declines (
	id INTEGER PRIMARY KEY CHECK (id = 1),
	n  INTEGER NOT NULL CHECK (n >= 0)
) STRICT;
CREATE TABLE IF NOT EXISTS flight_state (
	id        INTEGER PRIMARY KEY CHECK (id = 1),
	closed_at INTEGER NOT NULL,
	close_raw BLOB NOT NULL,
	status    TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'cleared')),
	sent_at   INTEGER,
	receipt   BLOB
) STRICT;
`

// schemaInvoices is version 2's invoices table, made with a new journal.
const schemaInvoices = `
CREATE TABLE invoices (
	seq            INTEGER PRIMARY KEY CHECK (seq > 0),
	id             BLOB NOT NULL UNIQUE CHECK (length(id) = 16),
	kind           INTEGER NOT NULL CHECK (kind IN (1, 2)),
	device_key     BLOB CHECK (device_key IS NULL OR length(device_key) = 32),
	counter        INTEGER,
	raw            BLOB NOT NULL,
	status         TEXT NOT NULL DEFAULT 'pending' CHECK (status = 'pending' OR status = 'sent' OR status = 'cleared'),
	sent_at        INTEGER,
	receipt        BLOB,
	receipt_status INTEGER,
	cleared_at     INTEGER,
	UNIQUE (device_key, counter),
	CHECK ((kind = 1) = (device_key IS NOT NULL AND counter IS NOT NULL))
) STRICT;
CREATE INDEX invoices_status ON invoices (status, seq);
`

const (
	insertInvoice = `INSERT INTO invoices (seq, id, kind, device_key, counter, raw) VALUES (?, ?, ?, ?, ?, ?)`
	// insertInvoiceV1 fills a version 1 journal's columns.
	insertInvoiceV1 = `INSERT INTO invoices
	(seq, id, kind, device_key, counter, credential, passenger, total_minor, currency, created_at, hash, raw)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

// Journal is an onboard.Journal in one SQLite file. It is safe for
// concurrent use, though onboard.Cabin writes from one goroutine only.
type Journal struct {
	path   string
	flight protocol.FlightID
	w      *writer // the only writer
	r      *sql.DB // readers

	ckpt       *sql.DB       // one connection: the background checkpoint's
	ckptWanted chan struct{} // a checkpoint is due (buffered, 1)
	ckptDone   chan struct{} // closed when the checkpoint goroutine ends
	framesMu   sync.Mutex    // guards frames, ckptClosed and sends on ckptWanted
	frames     int           // estimated WAL frames written since the last checkpoint request
	ckptClosed bool
}

var _ onboard.Journal = (*Journal)(nil)

// Open opens or creates the journal at path for flight f on aircraft a. A
// journal made for another flight or aircraft is refused: each flight has
// its own file.
func Open(ctx context.Context, path string, f protocol.FlightID, a protocol.AircraftID) (*Journal, error) {
	w, err := newWriter(path, dsn(path, roleWriter))
	if err != nil {
		return nil, err
	}
	j := &Journal{path: path, flight: f, w: w}
	if err := j.init(ctx, f, a); err != nil {
		j.w.close()
		return nil, err
	}
	if j.r, err = openDB(path, roleReader); err != nil {
		j.w.close()
		return nil, err
	}
	if j.ckpt, err = openDB(path, roleCheckpointer); err != nil {
		j.r.Close()
		j.w.close()
		return nil, err
	}
	j.ckptWanted, j.ckptDone = make(chan struct{}, 1), make(chan struct{})
	go j.checkpointer()
	return j, nil
}

// role is what a connection pool of the journal is for.
type role int

const (
	roleWriter role = iota
	roleReader
	roleCheckpointer
)

// dsn returns the driver's data source name for a connection of role r to
// the journal at path.
func dsn(path string, r role) string {
	cache := cacheKiB
	if r == roleCheckpointer {
		cache = ckptCacheKiB
	}
	pragmas := []string{
		"journal_mode(WAL)",
		"synchronous(FULL)", // a checkpoint syncs the WAL before and the database after
		fmt.Sprintf("busy_timeout(%d)", busyTimeoutMS),
		fmt.Sprintf("cache_size(-%d)", cache),
		"foreign_keys(ON)",
	}
	switch r {
	case roleWriter:
		pragmas = append(pragmas, fmt.Sprintf("wal_autocheckpoint(%d)", backstopFrames),
			fmt.Sprintf("journal_size_limit(%d)", walSizeLimit))
	case roleReader:
		pragmas = append(pragmas, "query_only(1)")
	}
	var q strings.Builder
	for i, p := range pragmas {
		if i > 0 {
			q.WriteByte('&')
		}
		q.WriteString("_pragma=" + p)
	}
	escaped := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + escaped + "?" + q.String()
}

// openDB opens the pool of the readers or of the checkpoint's connection.
func openDB(path string, r role) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, r))
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	if r == roleReader {
		db.SetMaxOpenConns(maxReaders)
		db.SetMaxIdleConns(maxReaders)
	} else {
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
	}
	db.SetConnMaxLifetime(0)
	return db, nil
}

// init creates the schema of a new journal, or checks the version of an
// existing one, and checks the journal's flight and aircraft.
func (j *Journal) init(ctx context.Context, f protocol.FlightID, a protocol.AircraftID) error {
	w := j.w
	return w.do(ctx, func() error {
		if err := w.tx(ctx, func() error { return j.initTx(ctx, f, a) }); err != nil {
			return fmt.Errorf("journal %s: %w", j.path, err)
		}
		return nil
	})
}

// initTx is init's transaction. Its errors name what failed; init names
// the journal.
func (j *Journal) initTx(ctx context.Context, f protocol.FlightID, a protocol.AircraftID) error {
	w := j.w
	if _, err := w.exec(ctx, schemaShared); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	version, ok, err := w.queryText(ctx, `SELECT value FROM meta WHERE key = 'schema'`)
	switch {
	case err != nil:
		return err
	case !ok:
		// A new journal, or one whose first open stopped before this
		// transaction committed: either way it has no invoices table.
		if _, err := w.exec(ctx, schemaInvoices); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		version = schemaVersion
	case version == schemaVersionV1:
		w.v1 = true
	case version != schemaVersion:
		return fmt.Errorf("schema version %q, not one this cabin server reads (versions %s and %s)",
			version, schemaVersionV1, schemaVersion)
	}
	want := map[string]string{"schema": version, "flight": string(f), "aircraft": string(a)}
	for _, k := range []string{"schema", "flight", "aircraft"} {
		got, ok, err := w.queryText(ctx, `SELECT value FROM meta WHERE key = ?`, k)
		switch {
		case err != nil:
			return err
		case !ok:
			if _, err := w.exec(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, k, want[k]); err != nil {
				return err
			}
		case got != want[k]:
			return fmt.Errorf("made for %s %q, not %q: each flight needs its own journal", k, got, want[k])
		}
	}
	return nil
}

// checkpointer runs a PASSIVE checkpoint each time one is wanted, until
// ckptWanted is closed. A checkpoint that fails or stops short is not an
// error of any commit (the WAL is durable either way): the next one, or the
// writer's backstop, copies what is left.
func (j *Journal) checkpointer() {
	defer close(j.ckptDone)
	for range j.ckptWanted {
		if _, err := j.ckpt.Exec(`PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
			// Not an error of any commit, but an operator should know the
			// WAL is growing towards the backstop.
			slog.Warn("journal: background checkpoint failed; the writer's own checkpoint is the backstop",
				"journal", j.path, "err", err)
		}
	}
}

// wrote counts the estimated WAL frames of a commit and asks for a
// background checkpoint once they add up to checkpointFrames.
func (j *Journal) wrote(invoices int) {
	j.framesMu.Lock()
	defer j.framesMu.Unlock()
	j.frames += framesPerCommit + framesPerInvoice*invoices
	if j.frames < checkpointFrames || j.ckptClosed {
		return
	}
	j.frames = 0
	select {
	case j.ckptWanted <- struct{}{}:
	default: // one is wanted already
	}
}

// Close checkpoints the WAL into the database file (best effort: the WAL is
// durable either way) and closes the connections, the writer's last and
// its statements before it. Closing again does no harm; a write after
// Close is an error.
func (j *Journal) Close() error {
	var errs []error
	if j.ckpt != nil {
		if j.ckptWanted != nil {
			j.framesMu.Lock()
			if !j.ckptClosed {
				j.ckptClosed = true
				close(j.ckptWanted)
			}
			j.framesMu.Unlock()
			<-j.ckptDone
		}
		errs = append(errs, j.ckpt.Close())
	}
	if j.r != nil {
		errs = append(errs, j.r.Close())
	}
	if j.w != nil {
		errs = append(errs, j.w.close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close journal %s: %w", j.path, err)
	}
	return nil
}

// Path returns the journal's file name.
func (j *Journal) Path() string { return j.path }

// Commit writes a group commit in one BEGIN IMMEDIATE transaction and
// commits it: the invoices, and the flight-close report when there is one.
// On any error the transaction is rolled back and nothing is written.
func (j *Journal) Commit(ctx context.Context, b onboard.Batch) error {
	var closedAt int64
	if b.Close != nil {
		fc, err := protocol.ParseFlightClose(b.Close)
		if err != nil {
			return err // it names the flight close
		}
		closedAt = fc.Body.ClosedAt.Unix()
	}
	w := j.w
	err := w.do(ctx, func() error {
		if err := w.tableStmts(ctx); err != nil {
			return err
		}
		return w.tx(ctx, func() error { return j.writeBatch(ctx, b, closedAt) })
	})
	if err != nil {
		return err
	}
	j.wrote(len(b.Invoices))
	return nil
}

// writeBatch writes the batch inside Commit's transaction.
func (j *Journal) writeBatch(ctx context.Context, b onboard.Batch, closedAt int64) error {
	st := &j.w.stmts
	for _, e := range b.Invoices {
		if err := j.insert(ctx, st.insert, e); err != nil {
			return err
		}
	}
	if b.Declines > 0 {
		if err := execStmt(ctx, st.declines, int64(b.Declines)); err != nil {
			return fmt.Errorf("count %d declines: %w", b.Declines, err)
		}
	}
	if b.Close != nil {
		if err := execStmt(ctx, st.close, closedAt, b.Close); err != nil {
			return fmt.Errorf("insert flight close: %w", err)
		}
	}
	return nil
}

// code returns the device key and counter columns of an entry: a sale's
// code, NULL for a void.
func code(e onboard.Entry) (device, counter any) {
	if e.Invoice.Body.Kind == protocol.KindSale {
		return e.Device.Bytes(), int64(e.Counter)
	}
	return nil, nil
}

// insert inserts one invoice. One statement a row, not one for the whole
// batch: SQLite rolls a many-row INSERT back alone if a row fails, so it
// keeps a statement journal of every page the statement changes (copied,
// and spilled to a temporary file past 64 KiB), which cost more than the
// per-statement work it saves.
func (j *Journal) insert(ctx context.Context, st driver.Stmt, e onboard.Entry) error {
	inv := &e.Invoice.Body
	device, counter := code(e)
	var err error
	if j.w.v1 {
		h := e.Invoice.Hash()
		err = execStmt(ctx, st, int64(inv.Seq), inv.ID[:], int64(inv.Kind), device, counter,
			inv.Credential[:], inv.Passenger[:], inv.Total.Minor, string(inv.Total.Currency),
			inv.CreatedAt.Unix(), h[:], e.Invoice.Raw)
	} else {
		err = execStmt(ctx, st, int64(inv.Seq), inv.ID[:], int64(inv.Kind), device, counter, e.Invoice.Raw)
	}
	if err != nil {
		return fmt.Errorf("insert invoice %s (seq %d): %w", inv.ID, inv.Seq, err)
	}
	return nil
}

// Invoices calls fn for every invoice in sequence order.
func (j *Journal) Invoices(ctx context.Context, fn func(onboard.Record) error) error {
	rows, err := j.r.QueryContext(ctx, `SELECT raw, device_key, counter, status FROM invoices ORDER BY seq`)
	if err != nil {
		return fmt.Errorf("read invoices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		rec, err := scanRecord(rows)
		if err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read invoices: %w", err)
	}
	return nil
}

type scanner interface{ Scan(...any) error }

func scanRecord(s scanner) (onboard.Record, error) {
	var rec onboard.Record
	var counter sql.NullInt64
	var status string
	if err := s.Scan(&rec.Raw, &rec.Device, &counter, &status); err != nil {
		return rec, err
	}
	rec.Counter = uint64(counter.Int64)
	rec.Status = onboard.InvoiceStatus(status)
	return rec, nil
}

// Invoice returns the invoice with id, or an error wrapping
// onboard.ErrNotFound.
func (j *Journal) Invoice(ctx context.Context, id protocol.ID) (onboard.Record, error) {
	row := j.r.QueryRowContext(ctx, `SELECT raw, device_key, counter, status FROM invoices WHERE id = ?`, id[:])
	rec, err := scanRecord(row)
	if errors.Is(err, sql.ErrNoRows) {
		return rec, fmt.Errorf("invoice %s: %w", id, onboard.ErrNotFound)
	}
	if err != nil {
		return rec, fmt.Errorf("read invoice %s: %w", id, err)
	}
	return rec, nil
}

// InvoiceCounts counts invoices by status.
func (j *Journal) InvoiceCounts(ctx context.Context) (onboard.InvoiceCounts, error) {
	var c onboard.InvoiceCounts
	rows, err := j.r.QueryContext(ctx, `SELECT status, count(*) FROM invoices GROUP BY status`)
	if err != nil {
		return c, fmt.Errorf("count invoices: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var status string
		var n int64
		if err := rows.Scan(&status, &n); err != nil {
			return c, fmt.Errorf("count invoices: %w", err)
		}
		switch onboard.InvoiceStatus(status) {
		case onboard.StatusPending:
			c.Pending = n
		case onboard.StatusSent:
			c.Sent = n
		case onboard.StatusCleared:
			c.Cleared = n
		}
	}
	if err := rows.Err(); err != nil {
		return c, fmt.Errorf("count invoices: %w", err)
	}
	return c, nil
}

// FlightClose returns the stored flight-close report, or nil.
func (j *Journal) FlightClose(ctx context.Context) ([]byte, error) {
	var raw []byte
	err := j.r.QueryRowContext(ctx, `SELECT close_raw FROM flight_state WHERE id = 1`).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read flight close: %w", err)
	}
	return raw, nil
}

// SaveManifest stores a manifest, replacing the one stored and its deltas,
// in one transaction.
func (j *Journal) SaveManifest(ctx context.Context, serial uint64, raw []byte) error {
	w := j.w
	err := w.do(ctx, func() error {
		return w.tx(ctx, func() error {
			if _, err := w.exec(ctx, `DELETE FROM manifest_deltas`); err != nil {
				return err
			}
			_, err := w.exec(ctx, `INSERT OR REPLACE INTO manifest (id, serial, raw) VALUES (1, ?, ?)`, int64(serial), raw)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("save manifest: %w", err)
	}
	return nil
}

// SaveDelta stores a manifest delta. A delta stored before under the same
// serial and sequence number is replaced.
//
// Its one statement runs in a transaction, as every write does: on its own
// it would be its own commit, and the driver reports a context that ended
// while a statement ran as its error even when it completed, which would
// call a durable write failed. In a transaction it is rolled back.
func (j *Journal) SaveDelta(ctx context.Context, baseSerial, seq uint64, raw []byte) error {
	w := j.w
	err := w.do(ctx, func() error {
		return w.tx(ctx, func() error {
			_, err := w.exec(ctx, `INSERT OR REPLACE INTO manifest_deltas (base_serial, seq, raw) VALUES (?, ?, ?)`,
				int64(baseSerial), int64(seq), raw)
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("save manifest delta %d: %w", seq, err)
	}
	return nil
}

// Manifest returns the stored manifest and the deltas of its serial in
// order, or a nil manifest when none is stored.
func (j *Journal) Manifest(ctx context.Context) ([]byte, [][]byte, error) {
	var raw []byte
	var serial int64
	err := j.r.QueryRowContext(ctx, `SELECT serial, raw FROM manifest WHERE id = 1`).Scan(&serial, &raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest: %w", err)
	}
	rows, err := j.r.QueryContext(ctx, `SELECT raw FROM manifest_deltas WHERE base_serial = ? ORDER BY seq`, serial)
	if err != nil {
		return nil, nil, fmt.Errorf("read manifest deltas: %w", err)
	}
	defer rows.Close()
	var deltas [][]byte
	for rows.Next() {
		var d []byte
		if err := rows.Scan(&d); err != nil {
			return nil, nil, fmt.Errorf("read manifest deltas: %w", err)
		}
		deltas = append(deltas, d)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read manifest deltas: %w", err)
	}
	return raw, deltas, nil
}

// Declines returns how many declined sale requests the journal has counted.
func (j *Journal) Declines(ctx context.Context) (uint64, error) {
	var n int64
	err := j.r.QueryRowContext(ctx, `SELECT n FROM declines WHERE id = 1`).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("count declines: %w", err)
	}
	return uint64(n), nil
}
