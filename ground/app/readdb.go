package app

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
)

// openReadDB opens a read-only handle on the SQLite database at path, for
// the registry lookups clearing makes while its batch transaction holds the
// database's one read-write connection (registry.Config.ReadDB). WAL lets
// its readers see the last commit while the writer writes; query_only
// refuses any write made through it by mistake.
func openReadDB(ctx context.Context, path string) (*sql.DB, error) {
	q := url.Values{}
	q.Set("mode", "ro")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "query_only(1)")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s for reading: %w", path, err)
	}
	db.SetMaxOpenConns(2)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s for reading: %w", path, err)
	}
	return db, nil
}
