package ledger

import (
	"context"
	"testing"

	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/storetest"
	"github.com/airtab/airtab/protocol"
)

// TestImmutableTruncate: on PostgreSQL, TRUNCATE fires no row trigger, so
// the ledger's tables refuse it with statement triggers of their own.
// (SQLite has no TRUNCATE: its DELETE fires the row triggers, TestImmutable.)
func TestImmutableTruncate(t *testing.T) {
	if storetest.Dialect() != store.Postgres {
		t.Skip("SQLite has no TRUNCATE")
	}
	db := openDB(t)
	f := newFixture(t, db)
	if _, err := post(t, db, f.sale(protocol.NewID(nil), 10)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, q := range []string{
		`TRUNCATE ledger_transfers`,
		`TRUNCATE ledger_accounts CASCADE`,
		`TRUNCATE ledger_transfers, ledger_accounts`,
	} {
		if _, err := db.ExecContext(ctx, q); err == nil {
			t.Errorf("%s: no error, want a trigger to refuse", q)
		}
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM ledger_transfers`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the ledger's transfers are gone")
	}
	mustCheck(t, db)
}
