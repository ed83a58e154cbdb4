package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// The PostgreSQL store runs the same SQL as SQLite through pgx's
// database/sql driver, wrapped so that two things SQLite gives the ground
// packages hold on PostgreSQL too:
//
//   - Placeholders: the packages write SQLite's ? and ?N; the wrapper
//     rewrites them to $N (outside string literals, quoted names and
//     comments) before PostgreSQL sees them.
//
//   - Serial write transactions. On SQLite every transaction is BEGIN
//     IMMEDIATE on a one-connection pool: read-then-write code (a wallet's
//     balance checked, then debited; an invoice looked up, then posted) runs
//     as if alone. On PostgreSQL every transaction that is not read-only
//     starts with pg_advisory_xact_lock(WriterLockKey), and a statement run
//     outside a transaction through Exec runs in one that does. Writers in
//     every process on the database therefore take turns, each seeing all
//     that the ones before committed (READ COMMITTED takes a fresh snapshot
//     per statement, and the lock is the first), so the ledger's rules
//     (the wallet never goes negative, each invoice posted once) hold
//     across any number of ground processes exactly as they do in one.
//     Read-only transactions take no lock and read one REPEATABLE READ
//     snapshot, as a SQLite read transaction does.
//
// SERIALIZABLE with retries would let writers overlap, but every
// transaction in registry, ledger and clearing would need to be a closure
// that can be retried, with effects outside the database (acquirer
// captures, NATS acks) kept out of it; one lock keeps the one set of domain
// rules exactly as it is, and ground's write transactions are short (a
// clearing batch commits hundreds of invoices in one).

// WriterIdleTimeout bounds how long a write transaction may sit idle
// holding the writer lock: PostgreSQL ends a session idle in a transaction
// that long (idle_in_transaction_session_timeout, set for the transaction
// only), rolling it back and freeing the lock. Without it a ground process
// that hangs or is cut off mid-transaction would stop every writer in every
// process until TCP keepalive noticed, hours later; SQLite's lock dies with
// its process. Ground's write transactions never wait on anything but the
// database, so a minute is far above any real pause.
const WriterIdleTimeout = time.Minute

// lockSQL takes the writer lock for the transaction it runs in.
var lockSQL = lockStatement(WriterIdleTimeout)

func lockStatement(idle time.Duration) string {
	return fmt.Sprintf("SELECT pg_advisory_xact_lock(%d), set_config('idle_in_transaction_session_timeout', '%d', true)",
		WriterLockKey, idle.Milliseconds())
}

// IsPostgresURL reports whether dsn names a PostgreSQL database
// (postgres:// or postgresql://) rather than a SQLite file.
func IsPostgresURL(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// maxPostgresConns caps each process's pool. Writers take turns on the
// advisory lock anyway; the rest serve reads.
const maxPostgresConns = 16

func openPostgres(ctx context.Context, url string) (*sql.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	db := sql.OpenDB(pgConnector{stdlib.GetConnector(*cfg)})
	db.SetMaxOpenConns(maxPostgresConns)
	db.SetMaxIdleConns(maxPostgresConns)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", redact(cfg), err)
	}
	return db, nil
}

// redact names a database without its password.
func redact(cfg *pgx.ConnConfig) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s", cfg.User, cfg.Host, cfg.Port, cfg.Database)
}

// Dialect is the SQL dialect of a ground database.
type Dialect int

// The dialects: SQLite (the default, a file in the data directory) and
// PostgreSQL.
const (
	SQLite Dialect = iota
	Postgres
)

func (d Dialect) String() string {
	if d == Postgres {
		return "postgres"
	}
	return "sqlite"
}

// DialectOf returns the dialect of a database Open opened.
func DialectOf(db *sql.DB) Dialect {
	if _, ok := db.Driver().(pgDriver); ok {
		return Postgres
	}
	return SQLite
}

// pgDriver is the driver of databases opened by openPostgres; it only
// marks them (DialectOf), connections come from pgConnector.
type pgDriver struct{}

func (pgDriver) Open(string) (driver.Conn, error) {
	return nil, errors.New("store: open PostgreSQL with store.Open")
}

type pgConnector struct{ inner driver.Connector }

func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.inner.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{Conn: conn.(*stdlib.Conn)}, nil
}

func (pgConnector) Driver() driver.Driver { return pgDriver{} }

// pgConn is a pgx connection that rewrites placeholders and takes the
// writer lock; every other method is pgx's.
type pgConn struct{ *stdlib.Conn }

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	query = Rebind(query)
	st, err := c.Conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	return &pgStmt{Stmt: st.(*stdlib.Stmt), c: c, query: query}, nil
}

// pgStmt is a prepared statement that runs through its connection's
// ExecContext and QueryContext, so that a statement prepared on the pool
// (outside a transaction) takes the writer lock as Exec does; pgx's own
// statement would run on the connection underneath, past the lock. pgx
// names a prepared statement by its SQL, so running the SQL runs it.
type pgStmt struct {
	*stdlib.Stmt
	c     *pgConn
	query string
}

func (s *pgStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.c.ExecContext(ctx, s.query, args)
}

func (s *pgStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.c.QueryContext(ctx, s.query, args)
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	query = Rebind(query)
	if c.Conn.Conn().PgConn().TxStatus() == 'I' && !isRead(query) {
		// Its rows are read after it returns: there is no moment to commit
		// a transaction holding the lock, and a commit that failed as the
		// rows closed could go unseen.
		return nil, fmt.Errorf("store: a write through Query outside a transaction would skip the writer lock: run it in a transaction (store.BeginWrite): %.60s", query)
	}
	rows, err := c.Conn.QueryContext(ctx, query, args)
	if err != nil && c.Conn.Conn().PgConn().TxStatus() == 'I' && isSelect(query) {
		return nil, badConn(err, c.Conn.Conn()) // a read outside a transaction: safe to run again
	}
	return rows, err
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	query = Rebind(query)
	if c.Conn.Conn().PgConn().TxStatus() != 'I' || isSelect(query) {
		return c.Conn.ExecContext(ctx, query, args)
	}
	// A write outside a transaction takes its turn like any other.
	pc := c.Conn.Conn()
	tx, err := pc.Begin(ctx)
	if err != nil {
		return nil, badConn(err, pc)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(ctx, lockSQL); err != nil {
		return nil, badConn(err, pc)
	}
	vals := make([]any, len(args))
	for i, a := range args {
		vals[i] = a.Value
	}
	tag, err := tx.Exec(ctx, query, vals...)
	if err != nil {
		return nil, err
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return driver.RowsAffected(tag.RowsAffected()), nil
}

// isSelect reports whether query is a SELECT (a read, or a call such as
// pg_advisory_unlock that must not wait for the writer lock).
func isSelect(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

// isRead reports whether query, run outside a transaction through Query,
// only reads: a SELECT, or a WITH, VALUES, TABLE or SHOW with no
// data-modifying word in it (a coarse test that errs towards refusing).
func isRead(query string) bool {
	for { // past leading comments
		query = strings.TrimLeft(query, " \t\r\n")
		if rest, ok := strings.CutPrefix(query, "--"); ok {
			_, query, _ = strings.Cut(rest, "\n")
		} else if rest, ok := strings.CutPrefix(query, "/*"); ok {
			_, query, _ = strings.Cut(rest, "*/")
		} else {
			break
		}
	}
	words := strings.FieldsFunc(strings.ToUpper(query), func(r rune) bool { return !('A' <= r && r <= 'Z' || r == '_') })
	if len(words) == 0 {
		return false
	}
	switch words[0] {
	case "SELECT", "VALUES", "TABLE", "SHOW":
		return true
	case "WITH":
		for _, w := range words {
			switch w {
			case "INSERT", "UPDATE", "DELETE", "MERGE":
				return false
			}
		}
		return true
	}
	return false
}

func (c *pgConn) Begin() (driver.Tx, error) {
	return c.BeginTx(context.Background(), driver.TxOptions{})
}

func (c *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.ReadOnly && sql.IsolationLevel(opts.Isolation) == sql.LevelDefault {
		opts.Isolation = driver.IsolationLevel(sql.LevelRepeatableRead)
	}
	if !opts.ReadOnly && sql.IsolationLevel(opts.Isolation) != sql.LevelDefault {
		// A snapshot taken before the lock is granted would miss the
		// writer before: see the comment at the top of this file.
		return nil, fmt.Errorf("store: write transactions run at the default isolation (READ COMMITTED under the writer lock), not %v", sql.IsolationLevel(opts.Isolation))
	}
	tx, err := c.Conn.BeginTx(ctx, opts)
	if err != nil {
		return nil, badConn(err, c.Conn.Conn())
	}
	if !opts.ReadOnly {
		if _, err := c.Conn.ExecContext(ctx, lockSQL, nil); err != nil {
			tx.Rollback()
			return nil, badConn(err, c.Conn.Conn())
		}
	}
	return tx, nil
}

// badConn reports a failure before anything was done on a connection (its
// BEGIN, the writer lock, a read) as driver.ErrBadConn when the connection
// is what failed, so database/sql throws it away and retries on another:
// after a PostgreSQL restart every pooled connection is dead, and the first
// statement on each would fail otherwise. pgx's Exec and Query do this
// only for errors before the statement was sent; a backend that was
// terminated (SQLSTATE 57P01 and kin, class 08) fails the statement after.
func badConn(err error, conn *pgx.Conn) error {
	if err == nil || errors.Is(err, driver.ErrBadConn) {
		return err
	}
	if pgconn.SafeToRetry(err) || conn.IsClosed() {
		return driver.ErrBadConn
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")) {
		return driver.ErrBadConn
	}
	return err
}

var rebound sync.Map // query → rewritten query, for queries seen so far

// maxRebound bounds the rewrites remembered; the ground packages' queries
// are a few hundred constants.
const maxRebound = 4096

var nRebound int64
var reboundMu sync.Mutex

// Rebind rewrites SQLite placeholders (? and ?N) to PostgreSQL's ($N),
// leaving string literals, quoted identifiers, dollar-quoted bodies and
// comments alone. A bare ? takes one more than the largest number used
// before it, as in SQLite.
func Rebind(query string) string {
	if !strings.Contains(query, "?") {
		return query
	}
	if q, ok := rebound.Load(query); ok {
		return q.(string)
	}
	out := rebind(query)
	reboundMu.Lock()
	if nRebound < maxRebound {
		nRebound++
		rebound.Store(query, out)
	}
	reboundMu.Unlock()
	return out
}

func rebind(q string) string {
	var b strings.Builder
	b.Grow(len(q) + 16)
	last := 0
	for i := 0; i < len(q); {
		c := q[i]
		j := i + 1 // the end of what q[i:] starts, copied as it is
		switch {
		case c == '\'':
			// An escape string (E'…') ends at a quote not escaped by a
			// backslash; any string at a quote not doubled.
			escapes := i > 0 && (q[i-1] == 'E' || q[i-1] == 'e') && (i < 2 || !isIdentByte(q[i-2]))
			j = len(q)
			for k := i + 1; k < len(q); k++ {
				if escapes && q[k] == '\\' {
					k++
				} else if q[k] == '\'' {
					if k+1 < len(q) && q[k+1] == '\'' {
						k++
						continue
					}
					j = k + 1
					break
				}
			}
		case c == '"':
			j = len(q)
			if k := strings.IndexByte(q[i+1:], '"'); k >= 0 {
				j = i + 1 + k + 1 // a doubled "" starts the next quoted name
			}
		case c == '-' && i+1 < len(q) && q[i+1] == '-':
			j = len(q)
			if k := strings.IndexByte(q[i:], '\n'); k >= 0 {
				j = i + k + 1
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			// PostgreSQL's block comments nest.
			j = len(q)
			for k, depth := i+2, 1; k+1 < len(q); k++ {
				if q[k] == '/' && q[k+1] == '*' {
					depth++
					k++
				} else if q[k] == '*' && q[k+1] == '/' {
					depth--
					k++
					if depth == 0 {
						j = k + 1
						break
					}
				}
			}
		case c == '$' && (i == 0 || !isIdentByte(q[i-1])):
			// A dollar-quoted body, $$…$$ or $tag$…$tag$; $1 is a
			// parameter, copied as it is.
			k := i + 1
			for k < len(q) && isIdentByte(q[k]) && q[k] != '$' && !(k == i+1 && '0' <= q[k] && q[k] <= '9') {
				k++
			}
			if k < len(q) && q[k] == '$' {
				tag := q[i : k+1]
				j = len(q)
				if e := strings.Index(q[k+1:], tag); e >= 0 {
					j = k + 1 + e + len(tag)
				}
			}
		case c == '?':
			for j < len(q) && q[j] >= '0' && q[j] <= '9' {
				j++
			}
			n := last + 1
			if j > i+1 {
				fmt.Sscan(q[i+1:j], &n)
			}
			last = max(last, n)
			fmt.Fprintf(&b, "$%d", n)
			i = j
			continue
		}
		b.WriteString(q[i:j])
		i = j
	}
	return b.String()
}

// isIdentByte reports whether c may be part of an unquoted name (or a
// dollar quote's tag) in PostgreSQL: a letter, digit, _, $ or any byte of
// a multibyte character.
func isIdentByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '$' || c >= 0x80
}
