package clearing

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
)

// Every SQL statement of clearing. Times are Unix nanoseconds (UTC), NULL
// when unset; ids and hashes are blobs; amounts integer minor units.
//
// clearing_invoices holds every invoice the aircraft authenticated (its
// signature verified on the subject it came in on), keyed by invoice id: the
// exactly-once key. clearing_rejects holds what could not be authenticated
// (malformed, wrong aircraft, bad aircraft signature) or conflicts with an
// invoice already held, keyed by the hash of the raw bytes, so garbage
// carrying someone else's invoice id can never take that id.

const schema = `
CREATE TABLE IF NOT EXISTS clearing_invoices (
	id             BLOB PRIMARY KEY CHECK (length(id) = 16),
	hash           BLOB NOT NULL CHECK (length(hash) = 32),
	raw            BLOB NOT NULL,
	flight         TEXT NOT NULL,
	aircraft       TEXT NOT NULL,
	seq            INTEGER NOT NULL CHECK (seq > 0),
	prev           BLOB NOT NULL,
	kind           INTEGER NOT NULL CHECK (kind IN (1, 2)),
	passenger      BLOB NOT NULL,
	credential     BLOB NOT NULL,
	amount         INTEGER NOT NULL CHECK (amount > 0),
	currency       TEXT NOT NULL,
	voids          BLOB,
	created_at     INTEGER NOT NULL,
	received_at    INTEGER NOT NULL,
	updated_at     INTEGER NOT NULL,
	status         TEXT NOT NULL,
	reason         INTEGER NOT NULL DEFAULT 0,
	detail         TEXT NOT NULL DEFAULT '',
	funding        TEXT NOT NULL DEFAULT '',
	attempt        INTEGER NOT NULL DEFAULT 0,
	tries          INTEGER NOT NULL DEFAULT 0,
	next_retry_at  INTEGER,
	decline        TEXT NOT NULL DEFAULT '',
	refund         TEXT NOT NULL DEFAULT '',
	arrears        TEXT NOT NULL DEFAULT '',
	collections_at INTEGER,
	settled_at     INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS clearing_invoices_flight ON clearing_invoices (flight, seq);
-- Covers the cumulative-limit query, so it reads no table rows.
CREATE INDEX IF NOT EXISTS clearing_invoices_spend ON clearing_invoices (passenger, flight, currency, status, amount) WHERE kind = 1;
CREATE INDEX IF NOT EXISTS clearing_invoices_voids ON clearing_invoices (voids) WHERE voids IS NOT NULL;
CREATE INDEX IF NOT EXISTS clearing_invoices_due ON clearing_invoices (next_retry_at) WHERE next_retry_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS clearing_invoices_arrears ON clearing_invoices (arrears) WHERE arrears IN ('mark', 'clear');
CREATE INDEX IF NOT EXISTS clearing_invoices_collections ON clearing_invoices (collections_at) WHERE collections_at IS NOT NULL;

-- One (credential, counter) pair authorizes at most one sale (SPEC §6): the
-- rule a cabin server can enforce offline, since the device signature binds
-- the credential id and a credential belongs to one flight. The table keyed
-- by device alone (clearing_counters) made a counter reused on another
-- flight, which no aircraft could see, an unpaid sale; a database that
-- still has it is upgraded by upgradeCounters, which fills this table from
-- the stored sales before dropping it.
CREATE TABLE IF NOT EXISTS clearing_credential_counters (
	credential BLOB NOT NULL CHECK (length(credential) = 16),
	counter    INTEGER NOT NULL,
	invoice    BLOB NOT NULL,
	PRIMARY KEY (credential, counter)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS clearing_rejects (
	hash        BLOB PRIMARY KEY CHECK (length(hash) = 32),
	subject     TEXT NOT NULL,
	kind        TEXT NOT NULL,
	aircraft    TEXT NOT NULL DEFAULT '',
	flight      TEXT NOT NULL DEFAULT '',
	invoice     BLOB,
	seq         INTEGER NOT NULL DEFAULT 0,
	reason      INTEGER NOT NULL,
	detail      TEXT NOT NULL DEFAULT '',
	raw         BLOB NOT NULL,
	received_at INTEGER NOT NULL,
	receipt     BLOB
) STRICT;
CREATE INDEX IF NOT EXISTS clearing_rejects_flight ON clearing_rejects (flight);

CREATE TABLE IF NOT EXISTS clearing_closes (
	hash        BLOB PRIMARY KEY CHECK (length(hash) = 32),
	flight      TEXT NOT NULL,
	aircraft    TEXT NOT NULL,
	closed_at   INTEGER NOT NULL,
	sales       INTEGER NOT NULL,
	voids       INTEGER NOT NULL,
	sales_total TEXT NOT NULL,
	voids_total TEXT NOT NULL,
	last_seq    INTEGER NOT NULL,
	head        BLOB NOT NULL,
	raw         BLOB NOT NULL,
	received_at INTEGER NOT NULL,
	receipt     BLOB
) STRICT;
CREATE INDEX IF NOT EXISTS clearing_closes_flight ON clearing_closes (flight, closed_at);
`

// schemaPostgres is schema in PostgreSQL's dialect (BIGINT for INTEGER,
// BYTEA for BLOB, TEXT COLLATE "C" so text compares and sorts bytewise as
// in SQLite whatever the database's locale); clearing_counters never
// existed there.
const schemaPostgres = `
CREATE TABLE clearing_invoices (
	id             BYTEA PRIMARY KEY CHECK (length(id) = 16),
	hash           BYTEA NOT NULL CHECK (length(hash) = 32),
	raw            BYTEA NOT NULL,
	flight         TEXT COLLATE "C" NOT NULL,
	aircraft       TEXT COLLATE "C" NOT NULL,
	seq            BIGINT NOT NULL CHECK (seq > 0),
	prev           BYTEA NOT NULL,
	kind           BIGINT NOT NULL CHECK (kind IN (1, 2)),
	passenger      BYTEA NOT NULL,
	credential     BYTEA NOT NULL,
	amount         BIGINT NOT NULL CHECK (amount > 0),
	currency       TEXT COLLATE "C" NOT NULL,
	voids          BYTEA,
	created_at     BIGINT NOT NULL,
	received_at    BIGINT NOT NULL,
	updated_at     BIGINT NOT NULL,
	status         TEXT COLLATE "C" NOT NULL,
	reason         BIGINT NOT NULL DEFAULT 0,
	detail         TEXT COLLATE "C" NOT NULL DEFAULT '',
	funding        TEXT COLLATE "C" NOT NULL DEFAULT '',
	attempt        BIGINT NOT NULL DEFAULT 0,
	tries          BIGINT NOT NULL DEFAULT 0,
	next_retry_at  BIGINT,
	decline        TEXT COLLATE "C" NOT NULL DEFAULT '',
	refund         TEXT COLLATE "C" NOT NULL DEFAULT '',
	arrears        TEXT COLLATE "C" NOT NULL DEFAULT '',
	collections_at BIGINT,
	settled_at     BIGINT
);
CREATE INDEX clearing_invoices_flight ON clearing_invoices (flight, seq);
CREATE INDEX clearing_invoices_spend ON clearing_invoices (passenger, flight, currency, status, amount) WHERE kind = 1;
CREATE INDEX clearing_invoices_voids ON clearing_invoices (voids) WHERE voids IS NOT NULL;
CREATE INDEX clearing_invoices_due ON clearing_invoices (next_retry_at) WHERE next_retry_at IS NOT NULL;
CREATE INDEX clearing_invoices_arrears ON clearing_invoices (arrears) WHERE arrears IN ('mark', 'clear');
CREATE INDEX clearing_invoices_collections ON clearing_invoices (collections_at) WHERE collections_at IS NOT NULL;

CREATE TABLE clearing_credential_counters (
	credential BYTEA NOT NULL CHECK (length(credential) = 16),
	counter    BIGINT NOT NULL,
	invoice    BYTEA NOT NULL,
	PRIMARY KEY (credential, counter)
);

CREATE TABLE clearing_rejects (
	hash        BYTEA PRIMARY KEY CHECK (length(hash) = 32),
	subject     TEXT COLLATE "C" NOT NULL,
	kind        TEXT COLLATE "C" NOT NULL,
	aircraft    TEXT COLLATE "C" NOT NULL DEFAULT '',
	flight      TEXT COLLATE "C" NOT NULL DEFAULT '',
	invoice     BYTEA,
	seq         BIGINT NOT NULL DEFAULT 0,
	reason      BIGINT NOT NULL,
	detail      TEXT COLLATE "C" NOT NULL DEFAULT '',
	raw         BYTEA NOT NULL,
	received_at BIGINT NOT NULL,
	receipt     BYTEA
);
CREATE INDEX clearing_rejects_flight ON clearing_rejects (flight);

CREATE TABLE clearing_closes (
	hash        BYTEA PRIMARY KEY CHECK (length(hash) = 32),
	flight      TEXT COLLATE "C" NOT NULL,
	aircraft    TEXT COLLATE "C" NOT NULL,
	closed_at   BIGINT NOT NULL,
	sales       BIGINT NOT NULL,
	voids       BIGINT NOT NULL,
	sales_total TEXT COLLATE "C" NOT NULL,
	voids_total TEXT COLLATE "C" NOT NULL,
	last_seq    BIGINT NOT NULL,
	head        BYTEA NOT NULL,
	raw         BYTEA NOT NULL,
	received_at BIGINT NOT NULL,
	receipt     BYTEA
);
CREATE INDEX clearing_closes_flight ON clearing_closes (flight, closed_at);
`

// migrations are clearing's schema steps (store.Migrate). Version 1 is the
// schema as it was before versions were recorded: on SQLite its statements
// are idempotent and upgradeCounters still upgrades an older database, so
// it adopts any database made before. Add steps at the end; never edit one
// that has shipped.
var migrations = []store.Migration{
	{Version: 1, SQLite: schema, Postgres: schemaPostgres, Func: upgradeCounters},
	{Version: 2, SQLite: passengerIndex, Postgres: passengerIndex},
}

// passengerIndex replaces the partial spend index (sales only) by one over
// every invoice, led by the passenger, the same on both stores. Nothing
// else has the passenger first, so a passenger's receipt listing
// (PassengerCharges) read the whole table; a second index would cost the
// batch transaction, which writes every index of clearing_invoices, one
// more entry per invoice. With kind second, the spend queries (passenger,
// kind = 1, flight, currency, status) still search all five columns and
// take the amount from the index (SQLite reads no table row for them), and
// the collections retries (passenger, kind = 1, status) a prefix. Voids,
// a small share of invoices, get an entry they did not have. Idempotent,
// like version 1, which it follows when version 1 adopts a database whose
// versions were not recorded. The new index is built before the old one
// is dropped: on PostgreSQL, CREATE INDEX holds a lock that lets readers
// of the table (the wallet API, the back office, the metrics) go on while
// it builds, where DROP INDEX holds one that stops them until the
// transaction ends, so dropping first would stop them for the whole build.
const passengerIndex = `
CREATE INDEX IF NOT EXISTS clearing_invoices_passenger ON clearing_invoices (passenger, kind, flight, currency, status, amount);
DROP INDEX IF EXISTS clearing_invoices_spend;
`

// cachedTx is a transaction that prepares each statement once: SQLite
// takes about as long to parse a statement as to run it, and a batch runs
// the same few statements hundreds of times. Not for concurrent use.
type cachedTx struct {
	*sql.Tx
	stmts map[string]*sql.Stmt
	// shared, when set, holds statements prepared on the database that
	// the transaction runs without preparing them again.
	shared *stmtCache
}

// stmtCache keeps statements prepared on the database for a service's
// write transactions (commitBatch, recordJobs) to reuse: sql.Tx.StmtContext
// runs a statement already prepared on the transaction's connection
// without parsing it again, where preparing per transaction parsed a
// batch's few dozen statements anew each time. A query is prepared on the
// database before the next transaction after the one that first ran it
// (learn): on SQLite the pool's one connection is the transaction's while
// it lasts. At most maxSharedStmts queries are kept; others are prepared
// per transaction.
type stmtCache struct {
	mu      sync.Mutex
	stmts   map[string]*sql.Stmt
	learned []string
}

// maxSharedStmts bounds the queries a stmtCache keeps (clearing's batch
// transactions run about thirty).
const maxSharedStmts = 128

// get returns query prepared on the database, or nil, noting query to be
// prepared before the next transaction.
func (c *stmtCache) get(query string) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[query]; ok {
		return st
	}
	if len(c.stmts)+len(c.learned) < maxSharedStmts && !slices.Contains(c.learned, query) {
		c.learned = append(c.learned, query)
	}
	return nil
}

// prepareLearned prepares on db the queries noted by get. A query that
// does not prepare is forgotten: it is prepared per transaction, which
// reports its error.
func (c *stmtCache) prepareLearned(ctx context.Context, db *sql.DB) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, q := range c.learned {
		if st, err := db.PrepareContext(ctx, q); err == nil {
			if c.stmts == nil {
				c.stmts = map[string]*sql.Stmt{}
			}
			c.stmts[q] = st
		}
	}
	c.learned = nil
}

// beginShared begins a write transaction (beginCached) whose statements
// are prepared once for the service (stmtCache).
func (s *Service) beginShared(ctx context.Context) (*cachedTx, error) {
	s.stmts.prepareLearned(ctx, s.db)
	tx, err := beginCached(ctx, s.db)
	if err != nil {
		return nil, err
	}
	tx.shared = &s.stmts
	return tx, nil
}

// beginCached begins a write transaction (store.BeginWrite: on PostgreSQL
// it takes the writer lock, so clearing workers sharing the database write
// one at a time, as on SQLite).
func beginCached(ctx context.Context, db *sql.DB) (*cachedTx, error) {
	tx, err := store.BeginWrite(ctx, db)
	if err != nil {
		return nil, err
	}
	return &cachedTx{Tx: tx, stmts: map[string]*sql.Stmt{}}, nil
}

// statementContext returns the context for the statements of a write
// transaction on db begun with ctx. On SQLite it is ctx without its
// cancellation: the SQLite driver starts a goroutine per statement run with
// a cancellable context, to interrupt it, while no statement of a
// transaction holding SQLite's one write lock waits for anything
// (database/sql still starts its own per query, since it also watches the
// transaction's context). The transaction still ends with ctx: when ctx is
// done database/sql rolls it back once the statement in progress, no longer
// interrupted, has finished, and the next statement or the commit fails
// (batches run under BatchTimeout, not the shutdown's cancellation). On
// PostgreSQL, whose statements wait on the network, it is ctx.
func statementContext(ctx context.Context, db *sql.DB) context.Context {
	if store.DialectOf(db) == store.SQLite {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

func (t *cachedTx) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	if t.shared != nil {
		if ps := t.shared.get(query); ps != nil {
			st := t.Tx.StmtContext(ctx, ps)
			t.stmts[query] = st
			return st, nil
		}
	}
	st, err := t.Tx.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	t.stmts[query] = st
	return st, nil
}

// ExecContext runs query with a statement prepared once per transaction.
func (t *cachedTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	st, err := t.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(ctx, args...)
}

// QueryContext runs query with a statement prepared once per transaction.
func (t *cachedTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := t.prepared(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

// QueryRowContext runs query with a statement prepared once per transaction.
func (t *cachedTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := t.prepared(ctx, query)
	if err != nil {
		return t.Tx.QueryRowContext(ctx, query, args...) // Scan reports the same error
	}
	return st.QueryRowContext(ctx, args...)
}

// RefundState says what must still happen to the money of a voided sale.
// Stored as text; stable values.
type RefundState string

// Refund states.
const (
	RefundNone   RefundState = ""       // nothing was charged, or not voided
	RefundDue    RefundState = "refund" // a card capture to refund at the acquirer
	RefundCancel RefundState = "cancel" // a capture of unknown outcome to void at the acquirer
	RefundDone   RefundState = "done"   // refunded (or nothing was captured)
)

// ArrearsState tracks the Directory calls a charge outcome owes, so a
// failed call is made again rather than forgotten. Stored as text; stable
// values.
type ArrearsState string

// Arrears states.
const (
	ArrearsNone    ArrearsState = ""
	ArrearsMark    ArrearsState = "mark" // MarkArrears due
	ArrearsMarked  ArrearsState = "marked"
	ArrearsClear   ArrearsState = "clear" // ClearArrears due
	ArrearsCleared ArrearsState = "cleared"
)

// InvoiceRecord is clearing's record of one invoice its aircraft
// authenticated.
type InvoiceRecord struct {
	ID          protocol.ID          `json:"id"`
	Hash        protocol.Hash        `json:"hash"`
	Flight      protocol.FlightID    `json:"flight"`
	Aircraft    protocol.AircraftID  `json:"aircraft"`
	Seq         uint64               `json:"seq"`
	Prev        protocol.Hash        `json:"prev"`
	Kind        protocol.InvoiceKind `json:"kind"`
	Passenger   protocol.ID          `json:"passenger"`
	Credential  protocol.ID          `json:"credential"`
	Total       protocol.Money       `json:"total"`
	Voids       protocol.ID          `json:"voids,omitzero"`
	CreatedAt   time.Time            `json:"created_at"` // the aircraft's time
	ReceivedAt  time.Time            `json:"received_at"`
	UpdatedAt   time.Time            `json:"updated_at"`
	Status      Status               `json:"status"`
	Reason      protocol.Reason      `json:"reason,omitzero"` // quarantine reason
	Detail      string               `json:"detail,omitempty"`
	Funding     ground.FundingKind   `json:"funding,omitempty"`
	Attempt     uint32               `json:"attempt,omitzero"` // capture attempt in use
	Tries       int                  `json:"tries,omitzero"`   // charge tries so far
	NextRetryAt time.Time            `json:"next_retry_at,omitzero"`
	Decline     string               `json:"decline,omitempty"` // last decline or error
	Refund      RefundState          `json:"refund,omitempty"`
	Arrears     ArrearsState         `json:"arrears,omitempty"`
	CollectAt   time.Time            `json:"collections_at,omitzero"`
	SettledAt   time.Time            `json:"settled_at,omitzero"`
	Raw         []byte               `json:"-"`
}

func nsOrNull(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNS(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func blobOrNull(id protocol.ID) any {
	if id.IsZero() {
		return nil
	}
	return id[:]
}

// invoiceColumns lists every column but raw; withRaw adds it.
const invoiceColumns = `id, hash, flight, aircraft, seq, prev, kind, passenger, credential, amount, currency, voids,
	created_at, received_at, updated_at, status, reason, detail, funding, attempt, tries, next_retry_at,
	decline, refund, arrears, collections_at, settled_at`

func scanInvoice(sc interface{ Scan(...any) error }, withRaw bool) (InvoiceRecord, error) {
	var (
		r                                             InvoiceRecord
		id, hash, prev, pax, cred, voids              []byte
		seq, kind, amount, created, received, updated int64
		reason, attempt                               int64
		cur, flight, aircraft, status, funding        string
		refund, arrears                               string
		next, collect, settled                        sql.NullInt64
	)
	dest := []any{&id, &hash, &flight, &aircraft, &seq, &prev, &kind, &pax, &cred, &amount, &cur, &voids,
		&created, &received, &updated, &status, &reason, &r.Detail, &funding, &attempt, &r.Tries, &next,
		&r.Decline, &refund, &arrears, &collect, &settled}
	if withRaw {
		dest = append(dest, &r.Raw)
	}
	if err := sc.Scan(dest...); err != nil {
		return InvoiceRecord{}, err
	}
	copy(r.ID[:], id)
	copy(r.Hash[:], hash)
	copy(r.Prev[:], prev)
	copy(r.Passenger[:], pax)
	copy(r.Credential[:], cred)
	copy(r.Voids[:], voids)
	r.Flight, r.Aircraft, r.Seq, r.Kind = protocol.FlightID(flight), protocol.AircraftID(aircraft), uint64(seq), protocol.InvoiceKind(kind)
	r.Total = protocol.Money{Minor: amount, Currency: protocol.Currency(cur)}
	r.CreatedAt, r.ReceivedAt, r.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, received).UTC(), time.Unix(0, updated).UTC()
	r.Status, r.Reason, r.Funding, r.Attempt = Status(status), protocol.Reason(reason), ground.FundingKind(funding), uint32(attempt)
	r.Refund, r.Arrears = RefundState(refund), ArrearsState(arrears)
	r.NextRetryAt, r.CollectAt, r.SettledAt = fromNS(next), fromNS(collect), fromNS(settled)
	return r, nil
}

// getInvoice returns the record with id (without raw), and false if none.
func getInvoice(ctx context.Context, q ledger.Querier, id protocol.ID) (InvoiceRecord, bool, error) {
	r, err := scanInvoice(q.QueryRowContext(ctx, `SELECT `+invoiceColumns+` FROM clearing_invoices WHERE id = ?`, id[:]), false)
	if errors.Is(err, sql.ErrNoRows) {
		return InvoiceRecord{}, false, nil
	}
	if err != nil {
		return InvoiceRecord{}, false, fmt.Errorf("read invoice %s: %w", id, err)
	}
	return r, true, nil
}

// LookupInvoice returns clearing's record of an invoice, raw bytes included,
// and false if clearing never accepted it (a reject is not a record).
func LookupInvoice(ctx context.Context, db *sql.DB, id protocol.ID) (InvoiceRecord, bool, error) {
	r, err := scanInvoice(db.QueryRowContext(ctx, `SELECT `+invoiceColumns+`, raw FROM clearing_invoices WHERE id = ?`, id[:]), true)
	if errors.Is(err, sql.ErrNoRows) {
		return InvoiceRecord{}, false, nil
	}
	if err != nil {
		return InvoiceRecord{}, false, fmt.Errorf("clearing: read invoice %s: %w", id, err)
	}
	return r, true, nil
}

func insertInvoice(ctx context.Context, tx ledger.Querier, r InvoiceRecord) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO clearing_invoices (id, hash, raw, flight, aircraft, seq, prev, kind,
		passenger, credential, amount, currency, voids, created_at, received_at, updated_at, status, reason, detail,
		funding, attempt, tries, next_retry_at, decline, refund, arrears, collections_at, settled_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.ID[:], r.Hash[:], r.Raw, string(r.Flight), string(r.Aircraft), int64(r.Seq), r.Prev[:], int64(r.Kind),
		r.Passenger[:], r.Credential[:], r.Total.Minor, string(r.Total.Currency), blobOrNull(r.Voids),
		r.CreatedAt.UnixNano(), r.ReceivedAt.UnixNano(), r.UpdatedAt.UnixNano(), string(r.Status), int64(r.Reason), storedText(r.Detail),
		string(r.Funding), int64(r.Attempt), r.Tries, nsOrNull(r.NextRetryAt), storedText(r.Decline), string(r.Refund), string(r.Arrears),
		nsOrNull(r.CollectAt), nsOrNull(r.SettledAt))
	if err != nil {
		return fmt.Errorf("insert invoice %s: %w", r.ID, err)
	}
	return nil
}

// updateInvoice writes the mutable columns of r. The immutable ones (what
// the aircraft signed) are never updated.
func updateInvoice(ctx context.Context, tx ledger.Querier, r InvoiceRecord) error {
	res, err := tx.ExecContext(ctx, `UPDATE clearing_invoices SET updated_at = ?, status = ?, reason = ?, detail = ?,
		funding = ?, attempt = ?, tries = ?, next_retry_at = ?, decline = ?, refund = ?, arrears = ?,
		collections_at = ?, settled_at = ? WHERE id = ?`,
		r.UpdatedAt.UnixNano(), string(r.Status), int64(r.Reason), storedText(r.Detail), string(r.Funding), int64(r.Attempt), r.Tries,
		nsOrNull(r.NextRetryAt), storedText(r.Decline), string(r.Refund), string(r.Arrears), nsOrNull(r.CollectAt), nsOrNull(r.SettledAt),
		r.ID[:])
	if err != nil {
		return fmt.Errorf("update invoice %s: %w", r.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("update invoice %s: %d rows (%v): %w", r.ID, n, err, errInvariant)
	}
	return nil
}

// counterOwner returns the invoice that used the credential's counter, if
// any.
func counterOwner(ctx context.Context, tx ledger.Querier, credential protocol.ID, counter uint64) (protocol.ID, bool, error) {
	var b []byte
	err := tx.QueryRowContext(ctx, `SELECT invoice FROM clearing_credential_counters WHERE credential = ? AND counter = ?`,
		credential[:], int64(counter)).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return protocol.ID{}, false, nil
	}
	if err != nil {
		return protocol.ID{}, false, fmt.Errorf("read counter: %w", err)
	}
	var id protocol.ID
	copy(id[:], b)
	return id, true, nil
}

func insertCounter(ctx context.Context, tx ledger.Querier, credential protocol.ID, counter uint64, invoice protocol.ID) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO clearing_credential_counters (credential, counter, invoice) VALUES (?, ?, ?)`,
		credential[:], int64(counter), invoice[:])
	if err != nil {
		return fmt.Errorf("insert counter of %s: %w", invoice, err)
	}
	return nil
}

// activeStatuses are the sale statuses that count against a passenger's
// limit: posted and not voided or quarantined.
const activeStatuses = `('posted', 'settled', 'collections', 'pending-retry')`

// spentOnFlightQuery sums a passenger's active sales on a flight in one
// currency, found by five columns of clearing_invoices_passenger, which
// holds the amount too.
const spentOnFlightQuery = `SELECT COALESCE(SUM(amount), 0) FROM clearing_invoices
	WHERE passenger = ? AND kind = 1 AND flight = ? AND currency = ? AND status IN ` + activeStatuses

// spentOnFlight sums the passenger's active sales on the flight in currency c.
func spentOnFlight(ctx context.Context, tx ledger.Querier, pax protocol.ID, f protocol.FlightID, c protocol.Currency) (int64, error) {
	var sum int64
	err := tx.QueryRowContext(ctx, spentOnFlightQuery, pax[:], string(f), string(c)).Scan(&sum)
	if err != nil {
		return 0, fmt.Errorf("sum spend of %s on %s: %w", pax, f, err)
	}
	return sum, nil
}

// spendKey names a passenger's spend on a flight in one currency, the sum
// spentOnFlight returns.
type spendKey struct {
	passenger protocol.ID
	flight    protocol.FlightID
	currency  protocol.Currency
}

// spendChunk is how many passengers one spentByPassenger statement asks
// for: a fixed arity (padded with the first), so it is one prepared
// statement.
const spendChunk = 64

// spendQuery sums the active sales of spendChunk passengers on one flight in
// one currency. The IN list on the first column of clearing_invoices_passenger
// is one index search per passenger, as spentOnFlight's equality is, and
// the index holds every column the query reads.
var spendQuery = `SELECT passenger, SUM(amount) FROM clearing_invoices
	WHERE passenger IN (` + strings.TrimSuffix(strings.Repeat("?, ", spendChunk), ", ") + `)
	AND kind = 1 AND flight = ? AND currency = ? AND status IN ` + activeStatuses + ` GROUP BY passenger`

// spentByPassenger returns spentOnFlight of every key, spendChunk
// passengers of a flight and currency per statement.
func spentByPassenger(ctx context.Context, tx ledger.Querier, keys []spendKey) (map[spendKey]int64, error) {
	type group struct {
		flight   protocol.FlightID
		currency protocol.Currency
	}
	byGroup := map[group][]protocol.ID{}
	var order []group
	out := make(map[spendKey]int64, len(keys))
	for _, k := range keys {
		if _, ok := out[k]; ok {
			continue
		}
		out[k] = 0
		g := group{k.flight, k.currency}
		if _, ok := byGroup[g]; !ok {
			order = append(order, g)
		}
		byGroup[g] = append(byGroup[g], k.passenger)
	}
	args := make([]any, spendChunk+2)
	for _, g := range order {
		pax := byGroup[g]
		for i := 0; i < len(pax); i += spendChunk {
			chunk := pax[i:min(i+spendChunk, len(pax))]
			for j := range spendChunk {
				id := chunk[0]
				if j < len(chunk) {
					id = chunk[j]
				}
				args[j] = id[:]
			}
			args[spendChunk], args[spendChunk+1] = string(g.flight), string(g.currency)
			if err := sumSpend(ctx, tx, args, g.flight, g.currency, out); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// sumSpend runs spendQuery with args and sets what it finds in out.
func sumSpend(ctx context.Context, tx ledger.Querier, args []any, f protocol.FlightID, c protocol.Currency, out map[spendKey]int64) error {
	rows, err := tx.QueryContext(ctx, spendQuery, args...)
	if err != nil {
		return fmt.Errorf("sum spend on %s: %w", f, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			b   []byte
			sum int64
			k   = spendKey{flight: f, currency: c}
		)
		if err := rows.Scan(&b, &sum); err != nil {
			return fmt.Errorf("sum spend on %s: %w", f, err)
		}
		copy(k.passenger[:], b)
		out[k] = sum
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sum spend on %s: %w", f, err)
	}
	return nil
}

// activeStatus reports whether a sale in status st counts against the
// passenger's limit (activeStatuses).
func activeStatus(st Status) bool {
	switch st {
	case StatusPosted, StatusSettled, StatusCollections, StatusPendingRetry:
		return true
	}
	return false
}

// voidsOf returns the void invoices that name sale, other than except.
func voidsOf(ctx context.Context, tx ledger.Querier, sale, except protocol.ID) ([]InvoiceRecord, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+invoiceColumns+` FROM clearing_invoices
		WHERE voids = ? AND kind = 2 AND id <> ? AND status NOT IN ('quarantined', 'disputed') LIMIT 16`, sale[:], except[:])
	if err != nil {
		return nil, fmt.Errorf("read voids of %s: %w", sale, err)
	}
	defer rows.Close()
	var out []InvoiceRecord
	for rows.Next() {
		r, err := scanInvoice(rows, false)
		if err != nil {
			return nil, fmt.Errorf("read voids of %s: %w", sale, err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// dueInvoices returns sales with charge or refund work due at now, oldest
// due first.
func dueInvoices(ctx context.Context, q ledger.Querier, now time.Time, limit int) ([]InvoiceRecord, error) {
	return listInvoices(ctx, q, `WHERE next_retry_at IS NOT NULL AND next_retry_at <= ? ORDER BY next_retry_at LIMIT ?`,
		now.UnixNano(), limit)
}

// arrearsDue returns invoices with a MarkArrears or ClearArrears call due.
func arrearsDue(ctx context.Context, q ledger.Querier, limit int) ([]InvoiceRecord, error) {
	return listInvoices(ctx, q, `WHERE arrears IN ('mark', 'clear') LIMIT ?`, limit)
}

func listInvoices(ctx context.Context, q ledger.Querier, where string, args ...any) ([]InvoiceRecord, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+invoiceColumns+` FROM clearing_invoices `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("list invoices: %w", err)
	}
	defer rows.Close()
	var out []InvoiceRecord
	for rows.Next() {
		r, err := scanInvoice(rows, false)
		if err != nil {
			return nil, fmt.Errorf("list invoices: %w", err)
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// setArrears records that the arrears call for id is done.
func setArrears(ctx context.Context, tx ledger.Querier, id protocol.ID, from, to ArrearsState, now time.Time) error {
	_, err := tx.ExecContext(ctx, `UPDATE clearing_invoices SET arrears = ?, updated_at = ? WHERE id = ? AND arrears = ?`,
		string(to), now.UnixNano(), id[:], string(from))
	if err != nil {
		return fmt.Errorf("set arrears of %s: %w", id, err)
	}
	return nil
}

// retryWalletQuery makes a passenger's wallet sales in collections in one
// currency due; it finds them by the passenger and kind prefix of
// clearing_invoices_passenger.
const retryWalletQuery = `UPDATE clearing_invoices SET next_retry_at = ?
	WHERE passenger = ? AND kind = 1 AND status = 'collections' AND funding = 'wallet' AND currency = ?`

// retryWalletNow makes the passenger's wallet invoices in collections due at
// once: a top-up may now cover them.
func retryWalletNow(ctx context.Context, tx ledger.Querier, pax protocol.ID, c protocol.Currency, now time.Time) error {
	_, err := tx.ExecContext(ctx, retryWalletQuery, now.UnixNano(), pax[:], string(c))
	if err != nil {
		return fmt.Errorf("schedule wallet retries of %s: %w", pax, err)
	}
	return nil
}

// RejectRecord is a message clearing could not accept as an invoice of its
// aircraft: malformed, from the wrong aircraft, with a bad aircraft
// signature, or reusing an invoice id with different content.
type RejectRecord struct {
	Hash       protocol.Hash       `json:"hash"`
	Subject    string              `json:"subject"`
	Kind       string              `json:"kind"` // "invoice" or "close"
	Aircraft   protocol.AircraftID `json:"aircraft,omitempty"`
	Flight     protocol.FlightID   `json:"flight,omitempty"`
	Invoice    protocol.ID         `json:"invoice,omitzero"` // when it parsed
	Seq        uint64              `json:"seq,omitzero"`
	Reason     protocol.Reason     `json:"reason"`
	Detail     string              `json:"detail,omitempty"`
	ReceivedAt time.Time           `json:"received_at"`
	Raw        []byte              `json:"-"`
	Receipt    []byte              `json:"-"`
}

// storedText is s as both stores can keep it in a text column: PostgreSQL
// refuses bytes that are not UTF-8, and NUL, where SQLite keeps them. A
// reject's subject is whatever bytes its publisher chose (NATS subjects
// are bytes), and an invoice's detail or decline may quote a message's
// bytes or an acquirer's error text; one that could not be stored would
// fail its whole batch's commit, again at every redelivery, and stop
// clearing behind it. The message itself is kept as it came, in raw.
func storedText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// insertReject stores r unless a reject with the same hash exists, and
// returns the receipt stored for that hash (the first one made).
func insertReject(ctx context.Context, tx ledger.Querier, r RejectRecord) ([]byte, error) {
	_, err := tx.ExecContext(ctx, `INSERT INTO clearing_rejects (hash, subject, kind, aircraft, flight, invoice, seq,
		reason, detail, raw, received_at, receipt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING`,
		r.Hash[:], storedText(r.Subject), r.Kind, string(r.Aircraft), string(r.Flight), blobOrNull(r.Invoice), int64(r.Seq),
		int64(r.Reason), storedText(r.Detail), r.Raw, r.ReceivedAt.UnixNano(), r.Receipt)
	if err != nil {
		return nil, fmt.Errorf("insert reject: %w", err)
	}
	var receipt []byte
	if err := tx.QueryRowContext(ctx, `SELECT receipt FROM clearing_rejects WHERE hash = ?`, r.Hash[:]).Scan(&receipt); err != nil {
		return nil, fmt.Errorf("read reject: %w", err)
	}
	return receipt, nil
}

// CloseRecord is a flight-close report, as verified and stored.
type CloseRecord struct {
	Hash       protocol.Hash       `json:"hash"`
	Flight     protocol.FlightID   `json:"flight"`
	Aircraft   protocol.AircraftID `json:"aircraft"`
	ClosedAt   time.Time           `json:"closed_at"`
	Sales      uint64              `json:"sales"`
	Voids      uint64              `json:"voids"`
	SalesTotal []protocol.Money    `json:"sales_total"`
	VoidsTotal []protocol.Money    `json:"voids_total"`
	LastSeq    uint64              `json:"last_seq"`
	Head       protocol.Hash       `json:"head"`
	ReceivedAt time.Time           `json:"received_at"`
	Raw        []byte              `json:"-"`
	Receipt    []byte              `json:"-"`
}

// insertClose stores c unless it is stored already, and returns the receipt
// stored for it.
func insertClose(ctx context.Context, tx ledger.Querier, c CloseRecord) ([]byte, error) {
	st, err := json.Marshal(c.SalesTotal)
	if err != nil {
		return nil, err
	}
	vt, err := json.Marshal(c.VoidsTotal)
	if err != nil {
		return nil, err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO clearing_closes (hash, flight, aircraft, closed_at, sales, voids,
		sales_total, voids_total, last_seq, head, raw, received_at, receipt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (hash) DO NOTHING`,
		c.Hash[:], string(c.Flight), string(c.Aircraft), c.ClosedAt.UnixNano(), int64(c.Sales), int64(c.Voids),
		string(st), string(vt), int64(c.LastSeq), c.Head[:], c.Raw, c.ReceivedAt.UnixNano(), c.Receipt)
	if err != nil {
		return nil, fmt.Errorf("insert flight close: %w", err)
	}
	var receipt []byte
	if err := tx.QueryRowContext(ctx, `SELECT receipt FROM clearing_closes WHERE hash = ?`, c.Hash[:]).Scan(&receipt); err != nil {
		return nil, fmt.Errorf("read flight close: %w", err)
	}
	return receipt, nil
}

// Report queries.

// maxReportRows bounds the invoices and rejects one flight report reads.
const maxReportRows = 100_000

func flightInvoices(ctx context.Context, q ledger.Querier, f protocol.FlightID) ([]InvoiceRecord, error) {
	return listInvoices(ctx, q, `WHERE flight = ? ORDER BY seq, received_at LIMIT ?`, string(f), maxReportRows)
}

func flightRejects(ctx context.Context, q ledger.Querier, f protocol.FlightID) ([]RejectRecord, error) {
	rows, err := q.QueryContext(ctx, `SELECT hash, subject, kind, aircraft, flight, invoice, seq, reason, detail, received_at
		FROM clearing_rejects WHERE flight = ? ORDER BY received_at LIMIT ?`, string(f), maxReportRows)
	if err != nil {
		return nil, fmt.Errorf("list rejects of %s: %w", f, err)
	}
	defer rows.Close()
	var out []RejectRecord
	for rows.Next() {
		var (
			r                  RejectRecord
			hash, inv          []byte
			aircraft, flight   string
			seq, reason, recvd int64
		)
		if err := rows.Scan(&hash, &r.Subject, &r.Kind, &aircraft, &flight, &inv, &seq, &reason, &r.Detail, &recvd); err != nil {
			return nil, fmt.Errorf("list rejects of %s: %w", f, err)
		}
		copy(r.Hash[:], hash)
		copy(r.Invoice[:], inv)
		r.Aircraft, r.Flight, r.Seq, r.Reason = protocol.AircraftID(aircraft), protocol.FlightID(flight), uint64(seq), protocol.Reason(reason)
		r.ReceivedAt = time.Unix(0, recvd).UTC()
		out = append(out, r)
	}
	return out, rows.Err()
}

// latestClose returns the flight's close report with the latest close time,
// and false if there is none.
func latestClose(ctx context.Context, q ledger.Querier, f protocol.FlightID) (CloseRecord, bool, error) {
	var (
		c                             CloseRecord
		hash, head                    []byte
		aircraft, st, vt              string
		closed, sales, voids, last, r int64
	)
	err := q.QueryRowContext(ctx, `SELECT hash, aircraft, closed_at, sales, voids, sales_total, voids_total, last_seq, head, received_at
		FROM clearing_closes WHERE flight = ? ORDER BY closed_at DESC, received_at DESC LIMIT 1`, string(f)).
		Scan(&hash, &aircraft, &closed, &sales, &voids, &st, &vt, &last, &head, &r)
	if errors.Is(err, sql.ErrNoRows) {
		return CloseRecord{}, false, nil
	}
	if err != nil {
		return CloseRecord{}, false, fmt.Errorf("read close of %s: %w", f, err)
	}
	copy(c.Hash[:], hash)
	copy(c.Head[:], head)
	c.Flight, c.Aircraft = f, protocol.AircraftID(aircraft)
	c.ClosedAt, c.ReceivedAt = time.Unix(0, closed).UTC(), time.Unix(0, r).UTC()
	c.Sales, c.Voids, c.LastSeq = uint64(sales), uint64(voids), uint64(last)
	if err := json.Unmarshal([]byte(st), &c.SalesTotal); err != nil {
		return CloseRecord{}, false, fmt.Errorf("read close of %s: sales total: %w", f, err)
	}
	if err := json.Unmarshal([]byte(vt), &c.VoidsTotal); err != nil {
		return CloseRecord{}, false, fmt.Errorf("read close of %s: voids total: %w", f, err)
	}
	return c, true, nil
}

// collectionsOpened sums sales that entered collections in [from, to) and
// are still there, per currency.
func collectionsOpened(ctx context.Context, q ledger.Querier, from, to time.Time) (map[protocol.Currency]bucketSum, error) {
	rows, err := q.QueryContext(ctx, `SELECT currency, COUNT(*), SUM(amount) FROM clearing_invoices
		WHERE collections_at >= ? AND collections_at < ? AND kind = 1 AND status IN ('collections', 'pending-retry')
		GROUP BY currency`, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("sum collections: %w", err)
	}
	defer rows.Close()
	out := map[protocol.Currency]bucketSum{}
	for rows.Next() {
		var (
			cur    string
			n, sum int64
		)
		if err := rows.Scan(&cur, &n, &sum); err != nil {
			return nil, fmt.Errorf("sum collections: %w", err)
		}
		out[protocol.Currency(cur)] = bucketSum{count: n, minor: sum}
	}
	return out, rows.Err()
}

type bucketSum struct{ count, minor int64 }

// upgradeCounters upgrades a database made before counters were kept per
// credential: it fills clearing_credential_counters from the payment codes
// (or order consents) of the stored sales that used a counter (every sale
// not quarantined or disputed), then drops clearing_counters, in one
// transaction. Without it a sale cleared before the upgrade, replayed from
// a second aircraft, would be charged again. Nothing happens on a database
// without clearing_counters.
func upgradeCounters(ctx context.Context, tx *sql.Tx, d store.Dialect) error {
	if d != store.SQLite {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'clearing_counters'`).Scan(&n); err != nil {
		return fmt.Errorf("upgrade counters: %w", err)
	}
	if n == 0 {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, raw, credential FROM clearing_invoices
		WHERE kind = 1 AND status NOT IN ('quarantined', 'disputed') ORDER BY flight, seq`)
	if err != nil {
		return fmt.Errorf("upgrade counters: %w", err)
	}
	type use struct {
		invoice, credential protocol.ID
		counter             uint64
	}
	var uses []use
	for rows.Next() {
		var id, raw, cred []byte
		if err := rows.Scan(&id, &raw, &cred); err != nil {
			rows.Close()
			return fmt.Errorf("upgrade counters: %w", err)
		}
		var u use
		copy(u.invoice[:], id)
		copy(u.credential[:], cred)
		inv, err := protocol.ParseInvoice(raw)
		if err != nil {
			rows.Close()
			return fmt.Errorf("upgrade counters: stored invoice %s: %v: %w", u.invoice, err, errInvariant)
		}
		pr, err := saleProof(inv)
		if err != nil {
			rows.Close()
			return fmt.Errorf("upgrade counters: stored invoice %s: payment code: %v: %w", u.invoice, err, errInvariant)
		}
		u.counter = pr.counter
		uses = append(uses, u)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return fmt.Errorf("upgrade counters: %w", err)
	}
	rows.Close()
	for _, u := range uses {
		// The first sale by flight and sequence keeps the pair, as clearing
		// would have kept it.
		if _, err := tx.ExecContext(ctx, `INSERT INTO clearing_credential_counters (credential, counter, invoice) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
			u.credential[:], int64(u.counter), u.invoice[:]); err != nil {
			return fmt.Errorf("upgrade counters: invoice %s: %w", u.invoice, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE clearing_counters`); err != nil {
		return fmt.Errorf("upgrade counters: %w", err)
	}
	return nil
}
