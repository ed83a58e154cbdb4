package store_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/pgtest"
)

// openBoth opens a fresh database of each store.
func openBoth(t *testing.T) map[string]*sql.DB {
	ctx := context.Background()
	out := map[string]*sql.DB{}
	lite, err := store.Open(ctx, t.TempDir()+"/ground.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lite.Close() })
	out["sqlite"] = lite
	srv := pgtest.Start(t)
	pg, err := store.Open(ctx, srv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	out["postgres"] = pg
	return out
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	v1 := store.Migration{Version: 1,
		SQLite:   `CREATE TABLE IF NOT EXISTS things (id INTEGER PRIMARY KEY, name TEXT NOT NULL)`,
		Postgres: `CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT NOT NULL)`}
	v2 := store.Migration{Version: 2,
		SQLite:   `ALTER TABLE things ADD COLUMN size INTEGER NOT NULL DEFAULT 0`,
		Postgres: `ALTER TABLE things ADD COLUMN size BIGINT NOT NULL DEFAULT 0`,
		Func: func(ctx context.Context, tx *sql.Tx, d store.Dialect) error {
			_, err := tx.ExecContext(ctx, `UPDATE things SET size = length(name)`)
			return err
		}}
	for name, db := range openBoth(t) {
		t.Run(name, func(t *testing.T) {
			version := func() int {
				t.Helper()
				v, err := store.SchemaVersion(ctx, db, "things")
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			if err := store.Migrate(ctx, db, "things", []store.Migration{v1}); err != nil {
				t.Fatal(err)
			}
			if _, err := db.ExecContext(ctx, `INSERT INTO things (id, name) VALUES (?, ?)`, 1, "cart"); err != nil {
				t.Fatal(err)
			}
			t.Run("Upgrade", func(t *testing.T) {
				for range 2 { // the second run finds nothing to do
					if err := store.Migrate(ctx, db, "things", []store.Migration{v1, v2}); err != nil {
						t.Fatal(err)
					}
				}
				if got, want := version(), 2; got != want {
					t.Fatalf("version = %d, want %d", got, want)
				}
				var size int
				if err := db.QueryRowContext(ctx, `SELECT size FROM things WHERE id = ?`, 1).Scan(&size); err != nil {
					t.Fatal(err)
				}
				if got, want := size, 4; got != want {
					t.Fatalf("size after step 2 = %d, want %d", got, want)
				}
			})
			t.Run("FailedStepWritesNothing", func(t *testing.T) {
				bad := store.Migration{Version: 3, SQLite: `CREATE TABLE extra (x INTEGER)`, Postgres: `CREATE TABLE extra (x BIGINT)`,
					Func: func(context.Context, *sql.Tx, store.Dialect) error { return errors.New("step refused") }}
				err := store.Migrate(ctx, db, "things", []store.Migration{v1, v2, bad})
				if err == nil || !strings.Contains(err.Error(), "step refused") || !strings.Contains(err.Error(), "version 3") {
					t.Fatalf("Migrate with a failing step = %v, want its error naming version 3", err)
				}
				if got, want := version(), 2; got != want {
					t.Fatalf("version after the failed step = %d, want %d", got, want)
				}
				if _, err := db.ExecContext(ctx, `INSERT INTO extra (x) VALUES (1)`); err == nil {
					t.Fatal("the failed step's table exists")
				}
			})
			t.Run("NewerDatabase", func(t *testing.T) {
				err := store.Migrate(ctx, db, "things", []store.Migration{v1})
				if err == nil || !strings.Contains(err.Error(), "run a newer ground") {
					t.Fatalf("Migrate of a newer database = %v, want a refusal", err)
				}
			})
			t.Run("GapInSteps", func(t *testing.T) {
				if err := store.Migrate(ctx, db, "other", []store.Migration{{Version: 2}}); err == nil {
					t.Fatal("Migrate took steps numbered from 2")
				}
			})
		})
	}
}
