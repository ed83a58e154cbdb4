package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Migration is one numbered step of a package's schema. Steps are applied
// in order, each at most once per database, and recorded in the table
// schema_migrations under the package's name.
type Migration struct {
	// Version numbers the step: 1, 2, 3... with no gaps.
	Version int
	// SQLite and Postgres are the step's statements for each dialect
	// (several, separated by semicolons; either may be empty).
	SQLite, Postgres string
	// Func, if set, runs after the statements in the same transaction: for
	// a step that must look at the data (a column that may already exist).
	Func func(ctx context.Context, tx *sql.Tx, d Dialect) error
}

const migrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	component  TEXT NOT NULL,
	version    BIGINT NOT NULL,
	applied_at BIGINT NOT NULL,
	PRIMARY KEY (component, version)
)`

// Migrate brings component's schema in db up to its last step: the steps
// above the version recorded run in one write transaction, so a
// half-applied step never stays and ground processes starting at once on
// one database apply each step once (the second waits for the first's
// commit, then finds nothing to do). A database made before
// schema_migrations existed records no version: its tables were made by
// the statements of version 1, which are written to be idempotent
// (IF NOT EXISTS) so that version 1 adopts them.
func Migrate(ctx context.Context, db *sql.DB, component string, steps []Migration) error {
	for i, s := range steps {
		if s.Version != i+1 {
			return fmt.Errorf("migrate %s: step %d has version %d, want %d", component, i, s.Version, i+1)
		}
	}
	if _, err := db.ExecContext(ctx, migrationsTable); err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	d := DialectOf(db)
	tx, err := BeginWrite(ctx, db)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	defer tx.Rollback()
	var have int
	if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations WHERE component = ?`, component).Scan(&have); err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	if have > len(steps) {
		return fmt.Errorf("migrate %s: the database is at version %d, this program knows %d: run a newer ground", component, have, len(steps))
	}
	for _, s := range steps[have:] {
		ddl := s.SQLite
		if d == Postgres {
			ddl = s.Postgres
		}
		if ddl != "" {
			if _, err := tx.ExecContext(ctx, ddl); err != nil {
				return fmt.Errorf("migrate %s to version %d: %w", component, s.Version, err)
			}
		}
		if s.Func != nil {
			if err := s.Func(ctx, tx, d); err != nil {
				return fmt.Errorf("migrate %s to version %d: %w", component, s.Version, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (component, version, applied_at) VALUES (?, ?, ?)`,
			component, s.Version, time.Now().Unix()); err != nil {
			return fmt.Errorf("migrate %s to version %d: %w", component, s.Version, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	return nil
}

// SchemaVersion returns the version of component recorded in db, 0 when
// none is.
func SchemaVersion(ctx context.Context, db *sql.DB, component string) (int, error) {
	var v int
	err := db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations WHERE component = ?`, component).Scan(&v)
	return v, err
}
