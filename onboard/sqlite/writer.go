package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	msqlite "modernc.org/sqlite"
)

// writer is the journal's one writing connection: a driver connection the
// journal opens itself and holds for its whole life, outside database/sql's
// pool, with Commit's statements prepared on it.
//
// Why not a pooled connection: database/sql closes a connection it judges
// bad (modernc's driver calls one whose statement a context interrupted not
// valid) without knowing of statements prepared on it through Conn.Raw.
// Finalizing those after the driver has freed the connection would crash,
// and leaving them keeps the SQLite handle open until the process ends.
// Here only the journal closes the connection, and always the statements
// first: Close does, and so does abandon, for a connection whose state is
// unknown (a rollback that failed). The next write after an abandon opens a
// fresh connection and prepares the statements again; if it cannot, every
// write fails with that error, and the cabin server approves nothing. A
// fresh connection is opened only on the file the first one opened: a
// journal whose file went missing, or was replaced by another file at its
// path, is not written to.
type writer struct {
	path string
	// create opens the first connection, creating a new journal's file;
	// reopen every later one, and only an existing file: a journal whose
	// file went missing fails, rather than start an empty one.
	create, reopen driver.Connector
	opened         bool        // a connection was opened before
	file           os.FileInfo // the journal's file, as the first connection found it

	mu     sync.Mutex  // one write at a time: a driver connection is not safe for concurrent use
	dc     driver.Conn // nil before the first write, after an abandon, and once closed
	stmts  writeStmts
	v1     bool // a version 1 journal: the insert fills its extra columns
	closed bool
}

// writeStmts are the writer's prepared statements. Commit runs them on the
// driver connection directly rather than through database/sql's Tx, which
// starts a goroutine for every transaction (to watch its context) and
// checks and converts every argument: at a few sales a commit, these were
// a fifth of a commit's CPU. begin, commit and rollback are prepared with
// the connection; the others, on the tables, at its first Commit or
// MarkSent, as a new journal's tables do not exist before init has made
// them. Every statement prepared on the connection is here, so that
// abandon and close can close them all before the connection.
type writeStmts struct {
	begin, commit, rollback driver.Stmt
	insert, declines, close driver.Stmt
	markSent                driver.Stmt
}

func newWriter(path, dsn string) (*writer, error) {
	w := &writer{path: path}
	var err1, err2 error
	w.create, err1 = msqlite.NewConnector(dsn)
	w.reopen, err2 = msqlite.NewConnector(dsn + "&mode=rw")
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return w, nil
}

// do runs fn with the writer's connection, opening one first when there is
// none (the first write, or the first after an abandon).
func (w *writer) do(ctx context.Context, fn func() error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return fmt.Errorf("journal %s is closed", w.path)
	}
	if w.dc == nil {
		if err := w.open(ctx); err != nil {
			return err
		}
	}
	return fn()
}

// open opens the connection and prepares the transaction statements.
func (w *writer) open(ctx context.Context) error {
	c := w.create
	if w.opened {
		c = w.reopen
		// Before connecting, not only after: a connection to another file
		// at the path would take the journal's WAL, left at the path's
		// name, for that file's, and the last connection to that file to
		// close may checkpoint the WAL into it and delete it.
		if err := w.sameFile(); err != nil {
			return err
		}
	}
	dc, err := c.Connect(ctx)
	if err != nil {
		return fmt.Errorf("journal %s: open the writer connection: %w", w.path, err)
	}
	if err := w.sameFile(); err != nil {
		return errors.Join(err, dc.Close())
	}
	w.dc, w.opened = dc, true
	err = errors.Join(
		w.prepare(ctx, &w.stmts.begin, `BEGIN IMMEDIATE`),
		w.prepare(ctx, &w.stmts.commit, `COMMIT`),
		w.prepare(ctx, &w.stmts.rollback, `ROLLBACK`),
	)
	if err != nil {
		return fmt.Errorf("journal %s: prepare: %w", w.path, errors.Join(err, w.abandon()))
	}
	return nil
}

// sameFile checks that the file at the journal's path is the one the first
// connection opened, and records it at the first.
func (w *writer) sameFile() error {
	fi, err := os.Stat(w.path)
	switch {
	case err != nil:
		return fmt.Errorf("journal %s: open the writer connection: %w", w.path, err)
	case w.file == nil:
		w.file = fi
	case !os.SameFile(fi, w.file):
		return fmt.Errorf("journal %s: open the writer connection: the file at that path is not the journal's (it was replaced since the journal opened)", w.path)
	}
	return nil
}

// tableStmts prepares the statements on the tables, unless done.
func (w *writer) tableStmts(ctx context.Context) error {
	if w.stmts.insert != nil {
		return nil
	}
	insert := insertInvoice
	if w.v1 {
		insert = insertInvoiceV1
	}
	err := errors.Join(
		w.prepare(ctx, &w.stmts.declines, `INSERT INTO declines (id, n) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET n = n + excluded.n`),
		w.prepare(ctx, &w.stmts.close, `INSERT INTO flight_state (id, closed_at, close_raw) VALUES (1, ?, ?)`),
		w.prepare(ctx, &w.stmts.markSent, `UPDATE invoices SET status = 'sent', sent_at = ? WHERE id = ? AND status != 'cleared'`),
		w.prepare(ctx, &w.stmts.insert, insert), // last: it marks the set prepared
	)
	if err != nil {
		for _, st := range []*driver.Stmt{&w.stmts.declines, &w.stmts.close, &w.stmts.markSent, &w.stmts.insert} {
			if *st != nil {
				err = errors.Join(err, (*st).Close())
				*st = nil
			}
		}
		return fmt.Errorf("prepare: %w", err)
	}
	return nil
}

func (w *writer) prepare(ctx context.Context, st *driver.Stmt, query string) error {
	pc, ok := w.dc.(driver.ConnPrepareContext)
	if !ok {
		return fmt.Errorf("driver connection %T cannot prepare statements", w.dc)
	}
	s, err := pc.PrepareContext(ctx, query)
	if err != nil {
		return err // s may be a typed nil
	}
	*st = s
	return nil
}

// abandon closes the statements, then the connection, and forgets both:
// the next write opens a fresh connection.
func (w *writer) abandon() error {
	var errs []error
	s := &w.stmts
	for _, st := range []driver.Stmt{s.begin, s.commit, s.rollback, s.insert, s.declines, s.close, s.markSent} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	w.stmts = writeStmts{}
	if w.dc != nil {
		errs = append(errs, w.dc.Close())
		w.dc = nil
	}
	return errors.Join(errs...)
}

// close checkpoints the WAL into the database file and truncates it (best
// effort: the WAL is durable either way), then closes the statements and
// the connection. Closing again does no harm.
func (w *writer) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.dc == nil {
		return nil
	}
	_, _ = w.exec(context.Background(), `PRAGMA wal_checkpoint(TRUNCATE)`)
	return w.abandon()
}

// tx runs fn in a BEGIN IMMEDIATE transaction and commits it. On an error
// it rolls back; if even the rollback fails, the connection's state is
// unknown (a transaction may still be open), so tx abandons it.
//
// BEGIN, COMMIT and ROLLBACK run whatever ctx does (only fn's statements
// watch it): the driver reports a context that ended during a statement
// as that statement's error even when it completed, which would call a
// durable commit failed, or leave a transaction open that tx believes was
// never begun (every later BEGIN would then fail); and it refuses a
// rollback on an ended context. A BEGIN so run may wait for the write lock
// up to the busy timeout, though the journal's writer is the file's only
// one.
func (w *writer) tx(ctx context.Context, fn func() error) (err error) {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	end := context.WithoutCancel(ctx)
	if err := execStmt(end, w.stmts.begin); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err == nil {
			return
		}
		if rerr := execStmt(end, w.stmts.rollback); rerr != nil {
			if cerr := w.abandon(); cerr != nil {
				rerr = fmt.Errorf("%w; close: %w", rerr, cerr)
			}
			slog.Error("journal: rollback failed; the writer connection is closed and the next write opens a fresh one",
				"journal", w.path, "err", rerr)
			err = fmt.Errorf("%w (rollback: %v; writer connection closed)", err, rerr)
		}
	}()
	if err := fn(); err != nil {
		return err
	}
	if err := execStmt(end, w.stmts.commit); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// exec runs query, which may hold several statements, on the connection.
func (w *writer) exec(ctx context.Context, query string, args ...any) (driver.Result, error) {
	ec, ok := w.dc.(driver.ExecerContext)
	if !ok {
		return nil, fmt.Errorf("driver connection %T cannot execute statements", w.dc)
	}
	return ec.ExecContext(ctx, query, named(args))
}

// queryText returns the first column, which must be text, of query's first
// row, and false when it has no rows.
func (w *writer) queryText(ctx context.Context, query string, args ...any) (string, bool, error) {
	qc, ok := w.dc.(driver.QueryerContext)
	if !ok {
		return "", false, fmt.Errorf("driver connection %T cannot query", w.dc)
	}
	rows, err := qc.QueryContext(ctx, query, named(args))
	if err != nil {
		return "", false, err
	}
	dest := make([]driver.Value, len(rows.Columns()))
	err = rows.Next(dest)
	cerr := rows.Close()
	switch {
	case errors.Is(err, io.EOF):
		return "", false, cerr
	case err != nil:
		return "", false, err
	case cerr != nil:
		return "", false, cerr
	}
	switch v := dest[0].(type) {
	case string:
		return v, true, nil
	case []byte:
		return string(v), true, nil
	default:
		return "", false, fmt.Errorf("%s: got a %T, want text", query, v)
	}
}

// execStmt runs a driver statement with args, which are driver values
// already (int64, []byte, string or nil).
func execStmt(ctx context.Context, st driver.Stmt, args ...any) error {
	_, err := st.(driver.StmtExecContext).ExecContext(ctx, named(args))
	return err
}

func named(args []any) []driver.NamedValue {
	nv := make([]driver.NamedValue, len(args))
	for i, a := range args {
		nv[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return nv
}
