package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/cli"
)

// reportCommand prints a flight's reconciliation report, or a day's
// settlement summary, from the ground database. The report logic is
// clearing's; this only opens the database and picks the report. It may run
// while the service does: SQLite in WAL mode lets it read alongside.
func reportCommand(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ground report", flag.ContinueOnError)
	data := fs.String("data-dir", "airtab-ground", "data `directory` of the ground service (holds ground.db)")
	pg := fs.String("postgres", "", "read this PostgreSQL database (a `URL`, as ground serve --postgres) instead of <data-dir>/ground.db; default from $"+postgresEnv)
	flight := fs.String("flight", "", "`flight` id, for example XX123-2026-11-21: print its reconciliation report")
	day := fs.String("settlement", "", "UTC `date` YYYY-MM-DD: print that day's settlement summary per currency")
	format := fs.String("format", "json", "output `format`: json or csv")
	sales := fs.String("sales", "", "invoice lines in the JSON report: all, or how `many` (by default none: the summary and invoice_count); the CSV lists them all")
	after := fs.String("after", "", "with --sales N, list lines after this sequence `number`: the next_after of the previous page")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `usage: ground report (--flight <id> | --settlement <date>) [--format json|csv] [--data-dir dir | --postgres URL]

Prints, from the ground database, a flight's reconciliation (what the aircraft
reported against what ground received, settled, put in collections and voided;
sequence gaps and hash-chain breaks) or a day's settlement summary. The JSON
report leads with the summary; --sales adds the invoice lines. The CSV has one
row per invoice, then the totals (kind "total") and last the verdict (kind
"reconciled", status true or false, the problems in detail).

Flags:
`)
		fs.PrintDefaults()
	}
	if code, ok := cli.Parse(fs, args, stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return cli.Usage(fs, stderr, "unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if (*flight == "") == (*day == "") {
		return cli.Usage(fs, stderr, "give exactly one of --flight and --settlement")
	}
	page, err := clearing.ParsePage(*sales, *after)
	if err != nil {
		return cli.Usage(fs, stderr, "--%v", err)
	}
	dsn := filepath.Join(*data, "ground.db")
	if *pg == "" {
		*pg = getenv(postgresEnv)
	}
	if *pg != "" {
		if !store.IsPostgresURL(*pg) {
			return cli.Usage(fs, stderr, "--postgres %q: want postgres://user:password@host:port/database", *pg)
		}
		dsn = *pg
	}
	if err := report(ctx, dsn, *flight, *day, *format, page, stdout); err != nil {
		fmt.Fprintf(stderr, "ground report: %v\n", err)
		return 1
	}
	return 0
}

// report prints a report from the database dsn (store.Open: a SQLite path
// or a PostgreSQL URL).
func report(ctx context.Context, dsn, flight, day, format string, page clearing.Page, w io.Writer) error {
	if _, err := clearing.ParseFormat(format); err != nil {
		return err
	}
	if !store.IsPostgresURL(dsn) {
		if _, err := os.Stat(dsn); err != nil {
			return fmt.Errorf("no ground database at %s (--data-dir; a ground on PostgreSQL is read with --postgres URL or AIRTAB_POSTGRES): %w", dsn, err)
		}
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	// A database where clearing never ran has no clearing tables yet.
	if err := clearing.Migrate(ctx, db); err != nil {
		return err
	}
	if flight != "" {
		f, err := protocol.ParseFlightID(flight)
		if err != nil {
			return err
		}
		err = clearing.WriteReport(ctx, db, f, format, page, w)
		if errors.Is(err, clearing.ErrNoData) {
			return noData(ctx, db, f)
		}
		return err
	}
	d, err := time.Parse(time.DateOnly, day)
	if err != nil {
		return fmt.Errorf("--settlement %q: want YYYY-MM-DD", day)
	}
	return clearing.WriteSettlement(ctx, db, d, format, w)
}

// noData explains a flight of which clearing holds nothing: either ground
// has never heard of it (a mistyped id, or a flight registered on another
// ground), or it is registered and nothing has arrived from its aircraft
// yet (it has not flown, or not landed and replayed).
func noData(ctx context.Context, db *sql.DB, f protocol.FlightID) error {
	info, err := registry.LookupFlight(ctx, db, f)
	if errors.Is(err, ground.ErrNotFound) {
		return fmt.Errorf("flight %s is not known to ground: no flight is registered with this id (check the id and the database; GET /v1/flights lists the registered ones; POST /v1/flights registers one)", f)
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("flight %s (aircraft %s) is registered but nothing has been received for it yet: no invoice, no reject, no close report (the aircraft sends them once it lands and replays)", f, info.Aircraft)
}
