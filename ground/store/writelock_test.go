package store_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/pgtest"
)

// openCounter opens two pools on one fresh PostgreSQL database holding the
// table counter with one row, n = 0: two ground processes.
func openCounter(t *testing.T) (a, b *sql.DB) {
	t.Helper()
	ctx := context.Background()
	url := pgtest.Start(t).NewDatabase(t)
	open := func() *sql.DB {
		db, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b = open(), open()
	for _, q := range []string{`CREATE TABLE counter (n BIGINT NOT NULL)`, `INSERT INTO counter (n) VALUES (0)`} {
		if _, err := a.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return a, b
}

// waitForWriterLock polls until some session waits for the writer lock or
// done is closed, and reports which.
func waitForWriterLock(t *testing.T, db *sql.DB, done <-chan struct{}) (waiting bool) {
	t.Helper()
	ctx := context.Background()
	for {
		select {
		case <-done:
			return false
		default:
		}
		var n int
		// An advisory lock on a bigint key shows as classid = high 32
		// bits, objid = low 32 bits, objsubid = 1.
		err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
			AND classid::bigint = ? AND objid::bigint = ? AND objsubid = 1`,
			store.WriterLockKey>>32, store.WriterLockKey&0xffffffff).Scan(&n)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return true
		}
		time.Sleep(5 * time.Millisecond) // a poll interval, not a pass/fail condition
	}
}

// lostUpdate runs, while a read-then-write transaction of pool a holds the
// writer lock, the write "add 100" through pool b, then lets a write what
// it read plus one. With b's write waiting for its turn the counter ends
// at 101; a write that skipped the lock is lost (1).
func lostUpdate(t *testing.T, a, b *sql.DB, write func(ctx context.Context, db *sql.DB) error) {
	t.Helper()
	ctx := context.Background()
	tx, err := store.BeginWrite(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var werr error
	go func() {
		defer close(done)
		werr = write(ctx, b)
	}()
	waiting := waitForWriterLock(t, a, done)
	if _, err := tx.ExecContext(ctx, `UPDATE counter SET n = ?`, n+1); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	<-done
	if werr != nil {
		t.Fatalf("write from the second pool: %v", werr)
	}
	if err := a.QueryRowContext(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if got, want := n, 101; got != want {
		t.Fatalf("counter = %d, want %d (the second pool's write waited for the writer lock: %v)", got, want, waiting)
	}
}

// TestPostgresPreparedWriteTakesTurns: a statement prepared on the pool
// (outside a transaction) writes under the writer lock like Exec.
func TestPostgresPreparedWriteTakesTurns(t *testing.T) {
	a, b := openCounter(t)
	lostUpdate(t, a, b, func(ctx context.Context, db *sql.DB) error {
		st, err := db.PrepareContext(ctx, `UPDATE counter SET n = n + ?`)
		if err != nil {
			return err
		}
		defer st.Close()
		_, err = st.ExecContext(ctx, 100)
		return err
	})
}

// TestPostgresExecWriteTakesTurns is the same through Exec outside a
// transaction, which already took the lock.
func TestPostgresExecWriteTakesTurns(t *testing.T) {
	a, b := openCounter(t)
	lostUpdate(t, a, b, func(ctx context.Context, db *sql.DB) error {
		_, err := db.ExecContext(ctx, `UPDATE counter SET n = n + ?`, 100)
		return err
	})
}

// TestPostgresQueryWriteOutsideTx: a write through Query outside a
// transaction (INSERT … RETURNING, say) cannot take the writer lock for
// the time its rows are read, so it is refused, naming what to do.
func TestPostgresQueryWriteOutsideTx(t *testing.T) {
	ctx := context.Background()
	a, _ := openCounter(t)
	var n int
	err := a.QueryRowContext(ctx, `UPDATE counter SET n = n + ? RETURNING n`, 100).Scan(&n)
	if err == nil || !strings.Contains(err.Error(), "BeginWrite") {
		t.Fatalf("write through Query outside a transaction = %v (n %d), want a refusal naming BeginWrite", err, n)
	}
	if err := a.QueryRowContext(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("counter = %d after the refused write, want 0", n)
	}
	t.Run("InTransaction", func(t *testing.T) {
		tx, err := store.BeginWrite(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if err := tx.QueryRowContext(ctx, `UPDATE counter SET n = n + ? RETURNING n`, 100).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		if n != 100 {
			t.Fatalf("counter = %d, want 100", n)
		}
	})
	t.Run("DataModifyingWith", func(t *testing.T) {
		err := a.QueryRowContext(ctx, "WITH\nu AS (UPDATE counter SET n = n + 1 RETURNING n) SELECT n FROM u").Scan(&n)
		if err == nil || !strings.Contains(err.Error(), "BeginWrite") {
			t.Fatalf("WITH … UPDATE through Query outside a transaction = %v, want a refusal", err)
		}
	})
	t.Run("CommentedWrite", func(t *testing.T) {
		err := a.QueryRowContext(ctx, "-- SELECT\n/* SELECT */ UPDATE counter SET n = n + 1 RETURNING n").Scan(&n)
		if err == nil || !strings.Contains(err.Error(), "BeginWrite") {
			t.Fatalf("commented UPDATE through Query outside a transaction = %v, want a refusal", err)
		}
	})
	t.Run("CommentedRead", func(t *testing.T) {
		if err := a.QueryRowContext(ctx, "-- the counter\n/* read */ SELECT n FROM counter").Scan(&n); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ReadOnlyWithIsAllowed", func(t *testing.T) {
		if err := a.QueryRowContext(ctx, `WITH c AS (SELECT n FROM counter) SELECT n FROM c`).Scan(&n); err != nil {
			t.Fatal(err)
		}
	})
}
