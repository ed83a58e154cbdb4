package store

import (
	"context"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/store/pgtest"
)

// TestWriterIdleTimeoutFreesTheLock: a process that takes the writer lock
// and then hangs (here: a transaction left open) does not stop the other
// writers for good; PostgreSQL ends its session after the idle timeout and
// the next writer goes on. Its own transaction is rolled back, not half
// written.
func TestWriterIdleTimeoutFreesTheLock(t *testing.T) {
	saved := lockSQL
	lockSQL = lockStatement(300 * time.Millisecond)
	t.Cleanup(func() { lockSQL = saved })
	ctx := context.Background()
	url := pgtest.Start(t).NewDatabase(t)
	a, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := a.ExecContext(ctx, `CREATE TABLE t (n BIGINT NOT NULL)`); err != nil {
		t.Fatal(err)
	}

	hung, err := a.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hung.ExecContext(ctx, `INSERT INTO t (n) VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	// The hung writer now sits idle, holding the lock.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	next, err := b.BeginTx(wctx, nil)
	if err != nil {
		t.Fatalf("the next writer never got the lock: %v", err)
	}
	if _, err := next.ExecContext(wctx, `INSERT INTO t (n) VALUES (2)`); err != nil {
		t.Fatal(err)
	}
	if err := next.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := hung.Commit(); err == nil {
		t.Fatal("the hung transaction committed after its session was ended")
	}
	var got []int64
	rows, err := b.QueryContext(ctx, `SELECT n FROM t ORDER BY n`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		got = append(got, n)
	}
	if len(got) != 1 || got[0] != 2 {
		t.Fatalf("rows %v, want only the next writer's [2]", got)
	}
}
