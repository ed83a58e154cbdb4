// Package storetest runs a package's tests against each ground store:
// SQLite in a temporary directory, then PostgreSQL from a throwaway server
// (ground/store/pgtest). A package's TestMain calls Main; its helpers open
// the database with Open or DSN instead of a SQLite path.
//
// AIRTAB_TEST_STORES picks the stores, comma-separated (default
// "sqlite,postgres"). Without PostgreSQL installed, the PostgreSQL run's
// tests skip and say why, except under CI=true, where they fail.
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/pgtest"
)

var (
	current = store.SQLite

	mu     sync.Mutex
	server *pgtest.Server
	srvErr error
)

// Main runs m once per store and exits with the worst result. Each run
// prints which store it used.
func Main(m *testing.M) {
	code := 0
	for _, name := range stores() {
		switch name {
		case "sqlite":
			current = store.SQLite
		case "postgres":
			current = store.Postgres
		default:
			fmt.Fprintf(os.Stderr, "storetest: AIRTAB_TEST_STORES: unknown store %q (want sqlite or postgres)\n", name)
			os.Exit(2)
		}
		fmt.Printf("=== store: %s\n", name)
		if c := m.Run(); c != 0 {
			code = c
		}
	}
	mu.Lock()
	if server != nil {
		server.Close()
	}
	mu.Unlock()
	os.Exit(code)
}

func stores() []string {
	v := os.Getenv("AIRTAB_TEST_STORES")
	if v == "" {
		return []string{"sqlite", "postgres"}
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// Dialect is the store this run of the tests uses.
func Dialect() store.Dialect { return current }

// Server returns the run's PostgreSQL server, started on first use (for a
// trial that restarts it). It ends tb (skip or failure, see the package
// comment) when there is none.
func Server(tb testing.TB) *pgtest.Server {
	tb.Helper()
	mu.Lock()
	defer mu.Unlock()
	if server == nil && srvErr == nil {
		server, srvErr = pgtest.StartServer(context.Background(), pgtest.Options{})
	}
	if srvErr != nil {
		pgtest.SkipOrFail(tb, srvErr)
	}
	return server
}

// DSN returns what store.Open takes for a fresh, empty database for tb: a
// SQLite file in tb.TempDir(), or a new PostgreSQL database (dropped when
// tb ends). Opening it again reopens the same database.
func DSN(tb testing.TB) string {
	tb.Helper()
	if current == store.Postgres {
		return Server(tb).NewDatabase(tb)
	}
	return filepath.Join(tb.TempDir(), "ground.db")
}

// Open opens a fresh database for tb (DSN) and closes it when tb ends.
func Open(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := store.Open(context.Background(), DSN(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
