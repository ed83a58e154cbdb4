package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/pgtest"
)

// The ground database of a simulator or bench run: SQLite in the run's
// directory (the default), a PostgreSQL database named by --postgres, or,
// with --store postgres, a throwaway PostgreSQL server started from the
// machine's installed binaries (ground/store/pgtest: as the postgres user,
// in a temporary directory, on a free loopback port) for the run.

// throwawayPostgres stands for the database --store postgres starts, from
// parsing the flags (where the configuration is validated) until the run
// starts the server (openStore) and puts the real URL in its place.
const throwawayPostgres = "postgres://throwaway"

// storeFlags are --postgres and --store.
type storeFlags struct {
	postgres string
	store    string
}

// addStoreFlags adds --postgres and --store to fs.
func addStoreFlags(fs *flag.FlagSet) *storeFlags {
	f := &storeFlags{}
	fs.StringVar(&f.postgres, "postgres", "", "run ground on this PostgreSQL database (a `URL`, postgres://user:password@host:5432/db; it should be empty) instead of SQLite")
	fs.StringVar(&f.store, "store", "sqlite", "ground's store: sqlite, or postgres for a throwaway PostgreSQL server started from the installed binaries for this run (initdb and postgres run as the postgres user, on a free loopback port)")
	return f
}

// url returns the PostgreSQL URL the flags ask for: --postgres,
// throwawayPostgres for --store postgres, or "" for SQLite.
func (f *storeFlags) url() (string, error) {
	switch {
	case f.store != "sqlite" && f.store != "postgres":
		return "", fmt.Errorf("--store %q: want sqlite or postgres", f.store)
	case f.postgres != "" && f.store == "postgres":
		return "", fmt.Errorf("--postgres and --store postgres: give one (--store postgres starts a throwaway server)")
	case f.postgres != "" && !store.IsPostgresURL(f.postgres):
		return "", fmt.Errorf("--postgres %q: want a postgres:// URL", f.postgres)
	case f.store == "postgres":
		return throwawayPostgres, nil
	}
	return f.postgres, nil
}

// openStore replaces throwawayPostgres in *url with a fresh database on a
// throwaway server it starts, and returns the function that stops it. For
// any other URL it does nothing.
func openStore(ctx context.Context, url *string, progress io.Writer) (func(), error) {
	if *url != throwawayPostgres {
		return func() {}, nil
	}
	// Durable: fsync and synchronous commit on, as in production, so the
	// bench's PostgreSQL figures are a real server's and a crash trial's
	// kill loses nothing committed.
	s, err := pgtest.StartServer(ctx, pgtest.Options{Durable: true})
	if err != nil {
		return nil, fmt.Errorf("--store postgres: %w", err)
	}
	u, err := s.CreateDatabase(ctx, "airtab")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("--store postgres: %w", err)
	}
	fmt.Fprintf(progress, "PostgreSQL: a throwaway server (fsync on) on 127.0.0.1:%d in %s, for this run\n", s.Port(), s.Dir())
	*url = u
	return func() { s.Close() }, nil
}
