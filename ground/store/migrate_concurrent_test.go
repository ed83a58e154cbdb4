package store_test

import (
	"context"
	"database/sql"
	"sync"
	"testing"

	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/pgtest"
)

// TestMigrateConcurrentPostgres: ground processes starting at once on one
// fresh PostgreSQL database migrate it once between them: steps that would
// fail if run twice (no IF NOT EXISTS) run once, and every process starts.
func TestMigrateConcurrentPostgres(t *testing.T) {
	ctx := context.Background()
	url := pgtest.Start(t).NewDatabase(t)
	steps := []store.Migration{
		{Version: 1, Postgres: `CREATE TABLE things (id BIGINT PRIMARY KEY)`},
		{Version: 2, Postgres: `ALTER TABLE things ADD COLUMN name TEXT`},
		{Version: 3, Postgres: `CREATE INDEX things_name ON things (name)`},
	}
	const processes = 4
	dbs := make([]*sql.DB, processes)
	for i := range dbs {
		db, err := store.Open(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		dbs[i] = db
	}
	var wg sync.WaitGroup
	errs := make([]error, processes)
	for i, db := range dbs {
		wg.Go(func() {
			// Each process migrates two components, as ground does.
			if errs[i] = store.Migrate(ctx, db, "things", steps); errs[i] == nil {
				errs[i] = store.Migrate(ctx, db, "other", []store.Migration{{Version: 1, Postgres: `CREATE TABLE other (x BIGINT)`}})
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("process %d: %v", i, err)
		}
	}
	var n int
	if err := dbs[0].QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if got, want := n, 4; got != want {
		t.Fatalf("schema_migrations has %d rows, want %d (each step once)", got, want)
	}
}
