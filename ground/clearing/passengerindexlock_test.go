package clearing

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/storetest"
)

// TestPassengerIndexBuildLeavesReaders checks, on PostgreSQL, that schema
// step 2 builds clearing_invoices_passenger without holding the lock that
// every reader of clearing_invoices waits for: other ground processes on
// the database (the wallet API's receipt listing, the back office's
// reports, the operations metrics) keep reading the table while the index
// builds, which takes a while on a large table. DROP INDEX takes an ACCESS
// EXCLUSIVE lock on the table until the transaction ends, so the old index
// is dropped after the new one is built. The step's statements run one at
// a time in one transaction, as Migrate runs them; after each, up to and
// including the index build, no session may hold the one lock a SELECT
// waits for (ACCESS EXCLUSIVE, in pg_locks). SQLite has no table locks: its readers read the last
// commit while the step's write transaction runs.
func TestPassengerIndexBuildLeavesReaders(t *testing.T) {
	if storetest.Dialect() != store.Postgres {
		t.Skip("PostgreSQL's table locks; SQLite readers read the last commit during a write transaction")
	}
	ctx := context.Background()
	db := storetest.Open(t)
	if err := ledger.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, db, "clearing", migrations[:1]); err != nil {
		t.Fatal(err)
	}
	fillFlight(t, db, 16, 4)

	var stmts []string
	for s := range strings.SplitSeq(migrations[1].Postgres, ";") {
		if s = strings.TrimSpace(s); s != "" {
			stmts = append(stmts, s)
		}
	}
	build := -1
	for i, s := range stmts {
		if strings.HasPrefix(s, "CREATE INDEX") && strings.Contains(s, "clearing_invoices_passenger") {
			build = i
		}
	}
	if build < 0 {
		t.Fatalf("step 2 builds no clearing_invoices_passenger: %q", stmts)
	}

	tx, err := store.BeginWrite(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	// What blocks a reader: an ACCESS EXCLUSIVE lock on the table, the
	// only mode that conflicts with a SELECT's ACCESS SHARE. Asked by
	// QueryRow, which takes no writer lock, as the readers' SELECTs do.
	readable := func() error {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_locks
			WHERE relation = 'clearing_invoices'::regclass AND mode = 'AccessExclusiveLock'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return fmt.Errorf("%d ACCESS EXCLUSIVE locks on clearing_invoices", n)
		}
		return nil
	}
	if err := readable(); err != nil {
		t.Fatalf("before step 2: %v", err)
	}
	for i, s := range stmts[:build+1] {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			t.Fatalf("statement %d of step 2 (%s): %v", i+1, s, err)
		}
		if err := readable(); err != nil {
			t.Errorf("after statement %d of step 2 (%s), up to the index build: a reader of clearing_invoices waits: %v", i+1, s, err)
		}
	}
	// The whole step still ends with the one index.
	for _, s := range stmts[build+1:] {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			t.Fatalf("step 2 (%s): %v", s, err)
		}
	}
	var names []string
	rows, err := tx.QueryContext(ctx, `SELECT indexname FROM pg_indexes WHERE tablename = 'clearing_invoices'
		AND indexname IN ('clearing_invoices_spend', 'clearing_invoices_passenger') ORDER BY indexname`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(names, " "); got != "clearing_invoices_passenger" {
		t.Errorf("indexes after step 2 = %q, want clearing_invoices_passenger alone", got)
	}
}
