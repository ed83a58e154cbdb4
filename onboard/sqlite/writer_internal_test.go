package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/protocol"
)

// TestWriterSettings checks the settings durability rests on, on the
// writer's first connection and on the fresh one opened after an abandon:
// WAL, synchronous=FULL (the WAL fsynced before a commit returns), the
// busy timeout and the backstop checkpoint.
func TestWriterSettings(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	w, err := newWriter(path, dsn(path, roleWriter))
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	for _, conn := range []string{"first", "reopened"} {
		err := w.do(ctx, func() error {
			for _, c := range []struct {
				pragma string
				want   driver.Value
			}{
				{"journal_mode", "wal"},
				{"synchronous", int64(2)}, // FULL
				{"busy_timeout", int64(busyTimeoutMS)},
				{"wal_autocheckpoint", int64(backstopFrames)},
				{"journal_size_limit", int64(walSizeLimit)},
			} {
				qc := w.dc.(driver.QueryerContext)
				rows, err := qc.QueryContext(ctx, "PRAGMA "+c.pragma, nil)
				if err != nil {
					return err
				}
				got := make([]driver.Value, 1)
				err = rows.Next(got)
				rows.Close()
				if err != nil {
					return err
				}
				if got[0] != c.want {
					t.Errorf("%s connection: %s = %v (%T), want %v", conn, c.pragma, got[0], got[0], c.want)
				}
			}
			return w.abandon() // the next do opens a fresh connection
		})
		if err != nil {
			t.Fatalf("%s connection: %v", conn, err)
		}
	}
}

// endsDuring wraps the writer's driver connection. A statement it runs
// through ExecContext on a context that can end runs to completion, and
// then the context is ended and its error returned: what modernc's driver
// reports when the context ends while the statement runs and the statement
// completes anyway (its exec checks, after the step, whether the goroutine
// watching the context saw it end). That timing cannot be arranged on the
// driver alone; the statement itself runs on the real connection.
type endsDuring struct {
	driver.Conn
	cancel context.CancelFunc
}

func (c endsDuring) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	res, err := c.Conn.(driver.ExecerContext).ExecContext(context.WithoutCancel(ctx), q, args)
	if err != nil || ctx.Done() == nil {
		return res, err
	}
	c.cancel()
	return nil, ctx.Err()
}

func (c endsDuring) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
}

func (c endsDuring) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

// TestWriteContextEndsDuringStatement ends a write's context while its
// statement runs and completes: the driver then reports the context's
// error, so the write must have changed nothing, not be durable and
// reported failed. The same write on a context that lasts then lands.
func TestWriteContextEndsDuringStatement(t *testing.T) {
	ctx := context.Background()
	flight, err := protocol.NewFlightID("XX", "123", time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	id := protocol.ID{1}
	for _, tc := range []struct {
		name  string
		write func(context.Context, *Journal) error
		query string // what the write changes
		want  string // before, then after
	}{
		{"SaveDelta", func(ctx context.Context, j *Journal) error { return j.SaveDelta(ctx, 1, 1, []byte{1}) },
			`SELECT count(*) FROM manifest_deltas`, "0 1"},
		{"SaveManifest", func(ctx context.Context, j *Journal) error { return j.SaveManifest(ctx, 1, []byte{1}) },
			`SELECT count(*) FROM manifest`, "0 1"},
		{"MarkCloseSent", func(ctx context.Context, j *Journal) error { return j.MarkCloseSent(ctx, time.UnixMilli(1)) },
			`SELECT status FROM flight_state`, "pending sent"},
		{"ApplyCloseReceipt", func(ctx context.Context, j *Journal) error {
			_, err := j.ApplyReceipt(ctx, &protocol.SignedReceipt{Raw: []byte{1},
				Body: protocol.ClearingReceipt{Flight: flight, Status: protocol.StatusCloseAccepted, At: time.UnixMilli(1)}})
			return err
		}, `SELECT status FROM flight_state`, "pending cleared"},
		{"ApplyReceipt", func(ctx context.Context, j *Journal) error {
			_, err := j.ApplyReceipt(ctx, &protocol.SignedReceipt{Raw: []byte{1},
				Body: protocol.ClearingReceipt{Invoice: id, Flight: flight, Seq: 1, Status: protocol.StatusSettled, At: time.UnixMilli(1)}})
			return err
		}, `SELECT status FROM invoices`, "pending cleared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j, err := Open(ctx, filepath.Join(t.TempDir(), "j.db"), flight, "D-AIUA")
			if err != nil {
				t.Fatal(err)
			}
			defer j.Close()
			err = j.w.do(ctx, func() error {
				_, err := j.w.exec(ctx, `INSERT INTO flight_state (id, closed_at, close_raw) VALUES (1, 1, x'01');
					INSERT INTO invoices (seq, id, kind, raw) VALUES (1, ?, 2, x'01')`, id[:])
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			state := func() string {
				t.Helper()
				var s string
				if err := j.r.QueryRowContext(ctx, tc.query).Scan(&s); err != nil {
					t.Fatal(err)
				}
				return s
			}
			before, after, _ := strings.Cut(tc.want, " ")
			if got := state(); got != before {
				t.Fatalf("before the write: %s = %s, want %s", tc.query, got, before)
			}
			cctx, cancel := context.WithCancel(ctx)
			defer cancel()
			j.w.mu.Lock()
			dc := j.w.dc
			j.w.dc = endsDuring{Conn: dc, cancel: cancel}
			j.w.mu.Unlock()
			err = tc.write(cctx, j)
			j.w.mu.Lock()
			j.w.dc = dc
			j.w.mu.Unlock()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("write whose context ended during its statement = %v, want context.Canceled", err)
			}
			if got := state(); got != before {
				t.Fatalf("write reported failed, and %s = %s; want %s, unchanged", tc.query, got, before)
			}
			if err := tc.write(ctx, j); err != nil {
				t.Fatalf("the write again, on a context that lasts: %v", err)
			}
			if got := state(); got != after {
				t.Fatalf("after the write: %s = %s, want %s", tc.query, got, after)
			}
		})
	}
}
