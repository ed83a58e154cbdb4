package ledger

import (
	"context"
	"database/sql"
	"sync"
)

// stmtCache prepares each statement once per transaction. SQLite takes
// about as long to parse a statement as to run it, and a clearing batch runs
// the same few statements hundreds of times in one transaction. Statements
// made by tx.PrepareContext are closed by database/sql when their
// transaction ends; the cache only remembers the last few transactions (it
// holds them, so a new transaction can never reuse a cached one's address).
type stmtCache struct {
	mu   sync.Mutex
	txs  [maxCachedTxs]txStmts
	next int
}

type txStmts struct {
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
}

// maxCachedTxs bounds how many transactions' statements are remembered.
const maxCachedTxs = 4

var stmts stmtCache

// prepared returns query prepared in tx.
func (c *stmtCache) prepared(ctx context.Context, tx *sql.Tx, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var e *txStmts
	for i := range c.txs {
		if c.txs[i].tx == tx {
			e = &c.txs[i]
			break
		}
	}
	if e == nil {
		e = &c.txs[c.next]
		c.next = (c.next + 1) % maxCachedTxs
		*e = txStmts{tx: tx, stmts: map[string]*sql.Stmt{}}
	}
	if st, ok := e.stmts[query]; ok {
		return st, nil
	}
	st, err := tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	e.stmts[query] = st
	return st, nil
}

// txQuerier runs queries in tx with statements prepared once per tx.
type txQuerier struct{ tx *sql.Tx }

// ExecContext runs query with a statement prepared once per transaction.
func (q txQuerier) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := stmts.prepared(ctx, q.tx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// QueryContext runs query with a statement prepared once per transaction.
func (q txQuerier) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := stmts.prepared(ctx, q.tx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext runs query with a statement prepared once per transaction.
func (q txQuerier) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := stmts.prepared(ctx, q.tx, query)
	if err != nil {
		return q.tx.QueryRowContext(ctx, query, args...) // reports the same error from Scan
	}
	return st.QueryRowContext(ctx, args...)
}
