package sqlite

import (
	"context"
	"database/sql/driver"
	"path/filepath"
	"testing"
)

// TestWriterSettings checks the settings durability rests on, on the
// writer's first connection and on the fresh one opened after an abandon:
// WAL, synchronous=FULL (the WAL fsynced before a commit returns), the
// busy timeout and the backstop checkpoint.
func TestWriterSettings(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "j.db")
	w, err := newWriter(path, dsn(path, roleWriter))
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	for _, conn := range []string{"first", "reopened"} {
		err := w.do(ctx, func() error {
			for _, c := range []struct {
				pragma string
				want   driver.Value
			}{
				{"journal_mode", "wal"},
				{"synchronous", int64(2)}, // FULL
				{"busy_timeout", int64(busyTimeoutMS)},
				{"wal_autocheckpoint", int64(backstopFrames)},
				{"journal_size_limit", int64(walSizeLimit)},
			} {
				qc := w.dc.(driver.QueryerContext)
				rows, err := qc.QueryContext(ctx, "PRAGMA "+c.pragma, nil)
				if err != nil {
					return err
				}
				got := make([]driver.Value, 1)
				err = rows.Next(got)
				rows.Close()
				if err != nil {
					return err
				}
				if got[0] != c.want {
					t.Errorf("%s connection: %s = %v (%T), want %v", conn, c.pragma, got[0], got[0], c.want)
				}
			}
			return w.abandon() // the next do opens a fresh connection
		})
		if err != nil {
			t.Fatalf("%s connection: %v", conn, err)
		}
	}
}
