package store_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/pgtest"
)

func TestRebind(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"Plain", `SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = $1 AND c = $2`},
		{"Numbered", `VALUES (?1, (SELECT max(x) FROM t WHERE p = ?1), ?2)`, `VALUES ($1, (SELECT max(x) FROM t WHERE p = $1), $2)`},
		{"BareAfterNumbered", `WHERE a = ?3 AND b = ?`, `WHERE a = $3 AND b = $4`},
		{"StringLiteral", `SELECT 'what?', "odd?name" FROM t WHERE a = ?`, `SELECT 'what?', "odd?name" FROM t WHERE a = $1`},
		{"Comments", "-- why?\nSELECT /* ? */ ?", "-- why?\nSELECT /* ? */ $1"},
		{"DollarQuoted", `CREATE FUNCTION f() AS $$ SELECT '?' $$; SELECT ?`, `CREATE FUNCTION f() AS $$ SELECT '?' $$; SELECT $1`},
		{"None", `SELECT 1`, `SELECT 1`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := store.Rebind(tc.in); got != tc.want {
				t.Errorf("Rebind(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestPostgresWritersTakeTurns runs read-then-write transactions from two
// pools, as two ground processes would: with the writer lock none is lost.
func TestPostgresWritersTakeTurns(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	url := srv.NewDatabase(t)
	open := func() *sql.DB {
		db, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	a, b := open(), open()
	if got, want := store.DialectOf(a), store.Postgres; got != want {
		t.Fatalf("DialectOf = %v, want %v", got, want)
	}
	if _, err := a.ExecContext(ctx, `CREATE TABLE counter (n BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := a.ExecContext(ctx, `INSERT INTO counter (n) VALUES (?)`, 0); err != nil {
		t.Fatal(err)
	}
	const perWorker, workers = 50, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		db := []*sql.DB{a, b}[w%2]
		wg.Go(func() {
			for range perWorker {
				if err := increment(ctx, db); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var n int
	if err := a.QueryRowContext(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if got, want := n, perWorker*workers; got != want {
		t.Fatalf("counter = %d, want %d: a write transaction saw a stale read", got, want)
	}
}

func increment(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE counter SET n = ?`, n+1); err != nil {
		return err
	}
	return tx.Commit()
}

func TestDialectOfSQLite(t *testing.T) {
	db, err := store.Open(context.Background(), t.TempDir()+"/ground.db")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, want := store.DialectOf(db), store.SQLite; got != want {
		t.Fatalf("DialectOf = %v, want %v", got, want)
	}
}

// TestPostgresRestart: after the server restarts, the pool's dead
// connections are replaced and every kind of statement works again at once.
func TestPostgresRestart(t *testing.T) {
	ctx := context.Background()
	srv := pgtest.Start(t)
	db, err := store.Open(ctx, srv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `CREATE TABLE counter (n BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO counter (n) VALUES (?)`, 0); err != nil {
		t.Fatal(err)
	}
	// Several connections in the pool, all idle when the server goes.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { increment(ctx, db) })
	}
	wg.Wait()
	for _, tc := range []struct {
		name string
		stop func() error
	}{{"Stop", srv.Stop}, {"Kill", srv.Kill}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.stop(); err != nil {
				t.Fatal(err)
			}
			if err := srv.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if err := increment(ctx, db); err != nil {
				t.Fatalf("write transaction after the restart: %v", err)
			}
			if _, err := db.ExecContext(ctx, `UPDATE counter SET n = n + ?`, 1); err != nil {
				t.Fatalf("write after the restart: %v", err)
			}
			var n int
			if err := db.QueryRowContext(ctx, `SELECT n FROM counter`).Scan(&n); err != nil {
				t.Fatalf("read after the restart: %v", err)
			}
		})
	}
}
