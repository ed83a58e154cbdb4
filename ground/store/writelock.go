package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"

	"modernc.org/sqlite"
)

// Writers and once-only work on a database that several ground processes
// share.
//
// SQLite has one writer: Open makes every transaction BEGIN IMMEDIATE, so a
// transaction that reads and then writes (the next manifest serial, a
// passenger's spend on a flight before a sale, a ledger account's totals
// before Flush) sees nothing change under it. Registry, ledger and clearing
// are written for that rule. On PostgreSQL several processes write at once
// at READ COMMITTED, where the same code would lose updates (two sales both
// under the limit, two manifests with one serial, the ledger's
// compare-and-set in Flush refusing a batch as a broken invariant). So there
// every write transaction takes one transaction-scoped advisory lock,
// WriterLockKey, as it begins (the PostgreSQL connection does it, see
// postgres.go): write transactions run one at a time across every process on
// the database, exactly as on SQLite. What costs CPU (signature checks,
// receipt signing) and what waits on others (acquirer calls, NATS) happens
// outside those transactions and runs in parallel on every worker.
//
// Work that must run in one process at a time, not merely in one
// transaction (clearing's retry round: due charges, arrears calls and the
// hold sweep), takes a session-level advisory lock with TryLock; a process
// that does not get it skips the round, and a process that dies lets it go
// with its connection.

// Advisory lock keys on PostgreSQL. Stable numbers: every ground process of
// a deployment must use the same ones. The high bytes spell "airtab".
const (
	// WriterLockKey serialises write transactions.
	WriterLockKey int64 = 0x6169727461620001
	// RetryLockKey is held by the one clearing worker running a retry
	// round.
	RetryLockKey int64 = 0x6169727461620002
)

// IsPostgres reports whether db is a PostgreSQL database, that is not a
// SQLite one opened by Open.
func IsPostgres(db *sql.DB) bool {
	_, isSQLite := db.Driver().(*sqlite.Driver)
	return !isSQLite
}

// BeginWrite begins a transaction that writes. On SQLite it is BEGIN
// IMMEDIATE (Open sets it), which takes the database's write lock; on
// PostgreSQL the connection takes the writer lock (WriterLockKey) first
// thing in the transaction, released by its commit or rollback. See the
// comment above for why.
func BeginWrite(ctx context.Context, db *sql.DB) (*sql.Tx, error) {
	return db.BeginTx(ctx, nil)
}

// TryLock takes the session-level advisory lock key on PostgreSQL without
// waiting. It reports whether it got the lock; unlock releases it and must
// be called when ok. On SQLite the database has one ground process (the
// data directory's lock sees to it), so it always succeeds and unlock does
// nothing.
func TryLock(ctx context.Context, db *sql.DB, key int64) (unlock func(), ok bool, err error) {
	if !IsPostgres(db) {
		return func() {}, true, nil
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("advisory lock %#x: %w", key, err)
	}
	if err := conn.QueryRowContext(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil || !ok {
		conn.Close()
		if err != nil {
			return nil, false, fmt.Errorf("advisory lock %#x: %w", key, err)
		}
		return nil, false, nil
	}
	return func() {
		// A connection whose unlock failed is thrown away, not pooled:
		// that ends its session, which releases the lock.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", key); err != nil {
			conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
	}, true, nil
}
