package pgtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestStartRestart(t *testing.T) {
	ctx := context.Background()
	s := Start(t)
	url := s.NewDatabase(t)
	exec := func(sql string) {
		t.Helper()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		t.Helper()
		c, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var n int
		if err := c.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	exec(`CREATE TABLE t (x BIGINT)`)
	exec(`INSERT INTO t VALUES (1)`)
	for _, tc := range []struct {
		name string
		stop func() error
	}{{"Stop", s.Stop}, {"Kill", s.Kill}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.stop(); err != nil {
				t.Fatal(err)
			}
			if _, err := pgx.Connect(ctx, url); err == nil {
				t.Fatal("connected to a stopped server")
			}
			if err := s.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			if got, want := count(), 1; got != want {
				t.Fatalf("rows after restart = %d, want %d", got, want)
			}
		})
	}
	t.Run("FreshDatabase", func(t *testing.T) {
		other := s.NewDatabase(t)
		if other == url {
			t.Fatalf("NewDatabase returned the same URL %s twice", url)
		}
	})
}
