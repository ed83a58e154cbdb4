// Package store opens the ground service's database with the settings every
// ground package relies on: a SQLite file (the default) or a PostgreSQL
// database (postgres.go), behind the same *sql.DB, and applies each
// package's numbered schema migrations (migrate.go).
package store

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Open opens the ground database dsn: a PostgreSQL database when dsn is a
// postgres:// or postgresql:// URL (see postgres.go), else the SQLite file
// at path dsn, created if needed, in WAL mode
// with synchronous=FULL, so every commit is on disk before it returns;
// foreign keys on (SQLite leaves them off by default); a busy timeout so
// concurrent writers wait rather than fail; and a page cache of 64 MiB
// (SQLite's default is 2 MiB), so a clearing batch, whose random ids dirty
// a page of every index per row, neither spills dirty pages to the WAL
// before its commit nor reads back the ones it just wrote (about a tenth
// of a batch's cost at the default); and temporary files in memory
// (temp_store=MEMORY): a statement that writes many rows (the ledger's
// 16-row INSERTs) keeps a statement journal of the pages it touches, and
// past 64 KiB SQLite wrote it to a temporary file, a pwrite per page,
// though it is never read unless the statement fails. The pool holds one connection:
// SQLite has one writer, and one connection keeps BEGIN IMMEDIATE simple.
func Open(ctx context.Context, dsn string) (*sql.DB, error) {
	if IsPostgresURL(dsn) {
		return openPostgres(ctx, dsn)
	}
	path := dsn
	q := url.Values{}
	for _, p := range []string{
		"journal_mode(WAL)",
		"synchronous(FULL)",
		"foreign_keys(ON)",
		"busy_timeout(10000)",
		"cache_size(-65536)", // KiB
		"temp_store(MEMORY)",
	} {
		q.Add("_pragma", p)
	}
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}
