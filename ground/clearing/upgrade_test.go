package clearing_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/storetest"
)

// TestUpgradeFromUnversionedDatabase opens a ground database made before
// schema versions were recorded (testdata/schema-unversioned.sql, the DDL
// of that time, with rows in it) as ground serve does: version 1 adopts it,
// the later steps run, every component ends at the version a new database
// has, with the same schema, and the rows are still there and readable.
func TestUpgradeFromUnversionedDatabase(t *testing.T) {
	if storetest.Dialect() != store.SQLite {
		t.Skip("databases made before schema versions are SQLite files: a PostgreSQL database starts at version 1")
	}
	ctx := context.Background()
	ddl, err := os.ReadFile("testdata/schema-unversioned.sql")
	if err != nil {
		t.Fatal(err)
	}
	old := openFile(t)
	if _, err := old.ExecContext(ctx, string(ddl)); err != nil {
		t.Fatal(err)
	}
	aircraft, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO registry_aircraft (id, key, nkey, registered_at) VALUES (?, ?, '', ?)`, []any{"D-AIUA", aircraft.Public().Bytes(), 1_700_000_000}},
		{`INSERT INTO ledger_accounts (id, name, code, currency, flags, created_at) VALUES (?, ?, ?, 'EUR', 0, 1)`,
			[]any{make([]byte, 16), "flight/XX1-2026-11-21/revenue/EUR", int(ledger.AccountFlightRevenue)}},
	} {
		if _, err := old.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}
	reg := openGround(t, old)
	fresh := openFile(t)
	openGround(t, fresh)
	for _, c := range []string{"registry", "ledger", "clearing"} {
		got, err := store.SchemaVersion(ctx, old, c)
		if err != nil {
			t.Fatal(err)
		}
		want, err := store.SchemaVersion(ctx, fresh, c)
		if err != nil {
			t.Fatal(err)
		}
		if got != want || got < 1 {
			t.Errorf("schema version of %s after the upgrade = %d, want %d (a new database's)", c, got, want)
		}
	}
	if got, want := sqliteSchema(t, old), sqliteSchema(t, fresh); got != want {
		t.Errorf("the upgraded schema differs from a new database's:\ngot  %s\nwant %s", got, want)
	}
	a, err := reg.AircraftDetails(ctx, "D-AIUA")
	if err != nil {
		t.Fatalf("aircraft stored before the upgrade: %v", err)
	}
	if !a.Key.Equal(aircraft.Public()) {
		t.Errorf("aircraft key after the upgrade = %v, want %v", a.Key, aircraft.Public())
	}
	if err := ledger.Check(ctx, old); err != nil {
		t.Errorf("ledger check after the upgrade: %v", err)
	}
}

func openFile(t *testing.T) *sql.DB {
	t.Helper()
	db, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "ground.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// openGround migrates db as ground serve does at start.
func openGround(t *testing.T, db *sql.DB) *registry.Registry {
	t.Helper()
	ctx := context.Background()
	issuer, err := crypto.GenerateKey(crypto.Issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(ctx, db, registry.Config{Issuer: issuer, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := clearing.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	return reg
}

// sqliteSchema lists db's tables, indexes and triggers with their SQL,
// but for schema_migrations.
func sqliteSchema(t *testing.T, db *sql.DB) string {
	t.Helper()
	rows, err := db.QueryContext(context.Background(), `SELECT type, name, coalesce(sql, '') FROM sqlite_master
		WHERE name NOT LIKE 'sqlite_%' AND tbl_name <> 'schema_migrations' ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out string
	for rows.Next() {
		var typ, name, text string
		if err := rows.Scan(&typ, &name, &text); err != nil {
			t.Fatal(err)
		}
		out += typ + " " + name + ": " + text + "\n"
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
