package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
)

// The ledger's SQL. Times are stored as Unix nanoseconds (UTC); ids as
// 16-byte blobs; amounts as integer minor units.

const schema = `
CREATE TABLE IF NOT EXISTS ledger_accounts (
	id             BLOB PRIMARY KEY CHECK (length(id) = 16),
	name           TEXT NOT NULL UNIQUE,
	code           INTEGER NOT NULL CHECK (code > 0),
	currency       TEXT NOT NULL CHECK (length(currency) = 3),
	flags          INTEGER NOT NULL,
	debits_posted  INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
	credits_posted INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
	created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS ledger_transfers (
	id             BLOB PRIMARY KEY CHECK (length(id) = 16),
	debit_account  BLOB NOT NULL REFERENCES ledger_accounts (id),
	credit_account BLOB NOT NULL REFERENCES ledger_accounts (id),
	amount         INTEGER NOT NULL CHECK (amount > 0),
	currency       TEXT NOT NULL,
	code           INTEGER NOT NULL CHECK (code > 0),
	ref            BLOB NOT NULL CHECK (length(ref) = 16),
	reverses       BLOB UNIQUE REFERENCES ledger_transfers (id), -- NULL unless a reversal; UNIQUE: reversed once (version 3: partial)
	timestamp      INTEGER NOT NULL,
	CHECK (debit_account <> credit_account)
) STRICT;

-- No index by account: every posting would pay for it, and only Check
-- reads transfers by account, with one GROUP BY pass.
CREATE INDEX IF NOT EXISTS ledger_transfers_ref ON ledger_transfers (ref);
CREATE INDEX IF NOT EXISTS ledger_transfers_time ON ledger_transfers (timestamp);

-- Transfers are immutable, and accounts change only in their posted
-- totals, which only grow. The Go rules already hold to this; the triggers
-- make a bug or a hand-edited row fail loudly instead of corrupting money.
CREATE TRIGGER IF NOT EXISTS ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers
BEGIN SELECT RAISE(ABORT, 'ledger transfers are immutable: post a reversal'); END;
CREATE TRIGGER IF NOT EXISTS ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers
BEGIN SELECT RAISE(ABORT, 'ledger transfers are immutable: post a reversal'); END;
CREATE TRIGGER IF NOT EXISTS ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts
BEGIN SELECT RAISE(ABORT, 'ledger accounts are never deleted'); END;
CREATE TRIGGER IF NOT EXISTS ledger_accounts_totals_only BEFORE UPDATE ON ledger_accounts
WHEN NEW.id IS NOT OLD.id OR NEW.name IS NOT OLD.name OR NEW.code IS NOT OLD.code
	OR NEW.currency IS NOT OLD.currency OR NEW.flags IS NOT OLD.flags OR NEW.created_at IS NOT OLD.created_at
	OR NEW.debits_posted < OLD.debits_posted OR NEW.credits_posted < OLD.credits_posted
BEGIN SELECT RAISE(ABORT, 'ledger accounts change only by posting transfers'); END;
`

// schemaPostgres is schema in PostgreSQL's dialect: BIGINT for INTEGER,
// BYTEA for BLOB, TEXT COLLATE "C" so names compare and sort bytewise as in
// SQLite whatever the database's locale, and the triggers as PL/pgSQL.
// hex() is SQLite's, for Check's messages.
const schemaPostgres = `
CREATE TABLE ledger_accounts (
	id             BYTEA PRIMARY KEY CHECK (length(id) = 16),
	name           TEXT COLLATE "C" NOT NULL UNIQUE,
	code           BIGINT NOT NULL CHECK (code > 0),
	currency       TEXT COLLATE "C" NOT NULL CHECK (length(currency) = 3),
	flags          BIGINT NOT NULL,
	debits_posted  BIGINT NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
	credits_posted BIGINT NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
	created_at     BIGINT NOT NULL
);

CREATE TABLE ledger_transfers (
	id             BYTEA PRIMARY KEY CHECK (length(id) = 16),
	debit_account  BYTEA NOT NULL REFERENCES ledger_accounts (id),
	credit_account BYTEA NOT NULL REFERENCES ledger_accounts (id),
	amount         BIGINT NOT NULL CHECK (amount > 0),
	currency       TEXT COLLATE "C" NOT NULL,
	code           BIGINT NOT NULL CHECK (code > 0),
	ref            BYTEA NOT NULL CHECK (length(ref) = 16),
	reverses       BYTEA UNIQUE REFERENCES ledger_transfers (id),
	timestamp      BIGINT NOT NULL,
	CHECK (debit_account <> credit_account)
);
CREATE INDEX ledger_transfers_ref ON ledger_transfers (ref);
CREATE INDEX ledger_transfers_time ON ledger_transfers (timestamp);

CREATE OR REPLACE FUNCTION hex(b BYTEA) RETURNS TEXT LANGUAGE sql IMMUTABLE AS $$ SELECT upper(encode(b, 'hex')) $$;

CREATE FUNCTION ledger_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION '%', TG_ARGV[0]; END $$;
CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers
FOR EACH ROW EXECUTE FUNCTION ledger_refuse('ledger transfers are immutable: post a reversal');
CREATE TRIGGER ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers
FOR EACH ROW EXECUTE FUNCTION ledger_refuse('ledger transfers are immutable: post a reversal');
CREATE TRIGGER ledger_accounts_no_delete BEFORE DELETE ON ledger_accounts
FOR EACH ROW EXECUTE FUNCTION ledger_refuse('ledger accounts are never deleted');
CREATE TRIGGER ledger_accounts_totals_only BEFORE UPDATE ON ledger_accounts
FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id OR NEW.name IS DISTINCT FROM OLD.name OR NEW.code IS DISTINCT FROM OLD.code
	OR NEW.currency IS DISTINCT FROM OLD.currency OR NEW.flags IS DISTINCT FROM OLD.flags OR NEW.created_at IS DISTINCT FROM OLD.created_at
	OR NEW.debits_posted < OLD.debits_posted OR NEW.credits_posted < OLD.credits_posted)
EXECUTE FUNCTION ledger_refuse('ledger accounts change only by posting transfers');
`

// migrations are the ledger's schema steps (store.Migrate). Version 1 is
// the schema as it was before versions were recorded: on SQLite its
// statements are idempotent so that it adopts such a database. Add steps at
// the end; never edit one that has shipped.
var migrations = []store.Migration{
	{Version: 1, SQLite: schema, Postgres: schemaPostgres},
	{Version: 2, Postgres: truncateTriggersPostgres},
	{Version: 3, SQLite: partialReversesSQLite, Postgres: partialReversesPostgres},
}

// partialReversesSQLite rebuilds ledger_transfers so that only a reversal
// has an entry in the index that lets a transfer be reversed once: the
// column's UNIQUE constraint indexed every transfer, NULL reverses
// included, and SQLite cannot drop a column constraint. Copy, drop, rename
// (the self-reference names the new table, which the rename carries over),
// then the indexes and triggers as version 1 made them. DROP TABLE drops
// the triggers before it empties the table, so they refuse nothing here;
// the rebuild runs in the migration's transaction, all or nothing.
const partialReversesSQLite = `
CREATE TABLE ledger_transfers_v3 (
	id             BLOB PRIMARY KEY CHECK (length(id) = 16),
	debit_account  BLOB NOT NULL REFERENCES ledger_accounts (id),
	credit_account BLOB NOT NULL REFERENCES ledger_accounts (id),
	amount         INTEGER NOT NULL CHECK (amount > 0),
	currency       TEXT NOT NULL,
	code           INTEGER NOT NULL CHECK (code > 0),
	ref            BLOB NOT NULL CHECK (length(ref) = 16),
	reverses       BLOB REFERENCES ledger_transfers_v3 (id), -- NULL unless a reversal
	timestamp      INTEGER NOT NULL,
	CHECK (debit_account <> credit_account)
) STRICT;
INSERT INTO ledger_transfers_v3 (id, debit_account, credit_account, amount, currency, code, ref, reverses, timestamp)
	SELECT id, debit_account, credit_account, amount, currency, code, ref, reverses, timestamp FROM ledger_transfers ORDER BY rowid;
DROP TABLE ledger_transfers;
ALTER TABLE ledger_transfers_v3 RENAME TO ledger_transfers;
CREATE INDEX ledger_transfers_ref ON ledger_transfers (ref);
CREATE INDEX ledger_transfers_time ON ledger_transfers (timestamp);
-- A transfer is reversed at most once.
CREATE UNIQUE INDEX ledger_transfers_reverses ON ledger_transfers (reverses) WHERE reverses IS NOT NULL;
CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE ON ledger_transfers
BEGIN SELECT RAISE(ABORT, 'ledger transfers are immutable: post a reversal'); END;
CREATE TRIGGER ledger_transfers_no_delete BEFORE DELETE ON ledger_transfers
BEGIN SELECT RAISE(ABORT, 'ledger transfers are immutable: post a reversal'); END;
`

// partialReversesPostgres is partialReversesSQLite on PostgreSQL, where the
// constraint can be dropped: its index, too, had an entry for every
// transfer.
const partialReversesPostgres = `
ALTER TABLE ledger_transfers DROP CONSTRAINT ledger_transfers_reverses_key;
CREATE UNIQUE INDEX ledger_transfers_reverses ON ledger_transfers (reverses) WHERE reverses IS NOT NULL;
`

// truncateTriggersPostgres refuses TRUNCATE of the ledger's tables, which
// fires no row trigger on PostgreSQL (SQLite has no TRUNCATE: its DELETE
// fires the row triggers above).
const truncateTriggersPostgres = `
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('ledger transfers are immutable: post a reversal');
CREATE TRIGGER ledger_accounts_no_truncate BEFORE TRUNCATE ON ledger_accounts
FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse('ledger accounts are never deleted');
`

// Migrate brings the ledger's tables, indexes and triggers up to date
// (store.Migrate, component "ledger"). It is idempotent.
func Migrate(ctx context.Context, db *sql.DB) error {
	if err := store.Migrate(ctx, db, "ledger", migrations); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// Querier is what the read functions need: a *sql.DB or a *sql.Tx.
type Querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// CreateAccounts creates accounts inside tx. An account that exists with the
// same name, code, currency and flags is left as it is (idempotent); one that
// exists with other fields is an *AccountError wrapping
// ErrExistsWithDifferentFields. Nothing is written unless every account is
// acceptable.
func CreateAccounts(ctx context.Context, tx *sql.Tx, now time.Time, accounts ...Account) error {
	return NewBatch(tx, now).CreateAccounts(ctx, accounts...)
}

// Post posts batch atomically inside tx at time now: every transfer is
// checked against the rules (see rules.go) before anything is written, so a
// refused batch returns a *TransferError and writes nothing, and the caller
// may go on using tx. Transfers that exist with identical fields are
// success. The caller commits.
func Post(ctx context.Context, tx *sql.Tx, now time.Time, batch ...Transfer) (Result, error) {
	b := NewBatch(tx, now)
	res, err := b.Post(ctx, batch...)
	if err != nil {
		return Result{}, err
	}
	return res, b.Flush(ctx)
}

// Batch posts many calls' worth of transfers in one transaction and keeps
// the accounts they touch in memory, writing each account's posted totals
// once, at Flush, instead of once per transfer: a clearing batch moves the
// same flight-revenue account hundreds of times. Each Post is atomic, as
// the package-level Post is. The transfers a Post creates are written at
// Flush too, insertChunk rows per INSERT; until then the batch's own reads
// (Account, Transfer, Post) see them and the database does not. Preload
// reads what later Posts will touch in a few statements, instead of one
// account and one transfer at a time.
//
// Flush must be called before the transaction commits; until then the
// accounts' stored totals lag the transfers and the transfers are not
// stored (Check would fail). A Batch is not safe for concurrent use.
type Batch struct {
	q    Querier
	now  time.Time
	st   *state
	orig map[AccountID]totals // totals as loaded, to update only unchanged rows
	// noAccount and noTransfer are ids the batch read and found not
	// stored, so it does not ask again; what the batch creates is in st.
	noAccount  map[AccountID]bool
	noTransfer map[TransferID]bool
	// pending are the transfers Post created, in order, for Flush to
	// write.
	pending []Transfer
	done    bool
}

// NewBatch starts a batch in tx at time now (the transfers' timestamp).
// It prepares each statement once per transaction.
func NewBatch(tx *sql.Tx, now time.Time) *Batch {
	return NewBatchOn(txQuerier{tx}, now)
}

// NewBatchOn starts a batch at time now that runs its statements through
// q: a transaction, or a wrapper of one that prepares its statements as the
// caller sees fit (clearing keeps them across its transactions). All of
// the batch's statements run through q, inside one transaction.
func NewBatchOn(q Querier, now time.Time) *Batch {
	return &Batch{q: q, now: at(now), st: newState(), orig: map[AccountID]totals{},
		noAccount: map[AccountID]bool{}, noTransfer: map[TransferID]bool{}}
}

// Preload reads into the batch the accounts and transfers with the given
// ids (duplicates and ids it holds already are skipped), store.InChunk ids
// per statement, and remembers the ones not stored, so that later calls ask
// the database nothing about any of them. It changes no rule: Post checks
// the same state whether it was preloaded or read one id at a time.
func (b *Batch) Preload(ctx context.Context, accounts []AccountID, transfers []TransferID) error {
	var as [][]byte
	seenA := make(map[AccountID]bool, len(accounts))
	for _, id := range accounts {
		if id.IsZero() || seenA[id] || b.noAccount[id] || b.st.accounts[id] != nil {
			continue
		}
		seenA[id] = true
		as = append(as, id[:])
	}
	_, err := queryIn(ctx, b.q, `SELECT `+accountColumns+` FROM ledger_accounts WHERE id IN `+store.InList, as, func(rows *sql.Rows) error {
		a, err := scanAccount(rows)
		if err != nil {
			return err
		}
		b.st.accounts[a.ID] = &a
		b.orig[a.ID] = totals{a.DebitsPosted, a.CreditsPosted}
		return nil
	})
	if err != nil {
		return fmt.Errorf("ledger: preload accounts: %w", err)
	}
	for id := range seenA {
		if b.st.accounts[id] == nil {
			b.noAccount[id] = true
		}
	}
	var ts [][]byte
	seenT := make(map[TransferID]bool, len(transfers))
	for _, id := range transfers {
		if id.IsZero() || seenT[id] || b.noTransfer[id] {
			continue
		}
		if _, ok := b.st.transfers[id]; ok {
			continue
		}
		seenT[id] = true
		ts = append(ts, id[:])
	}
	_, err = queryIn(ctx, b.q, `SELECT `+transferColumns+` FROM ledger_transfers WHERE id IN `+store.InList, ts, func(rows *sql.Rows) error {
		t, err := scanTransfer(rows)
		if err != nil {
			return err
		}
		b.st.transfers[t.ID] = t
		return nil
	})
	if err != nil {
		return fmt.Errorf("ledger: preload transfers: %w", err)
	}
	for id := range seenT {
		if _, ok := b.st.transfers[id]; !ok {
			b.noTransfer[id] = true
		}
	}
	return nil
}

// queryIn runs query, whose one parameter list is store.InList, over ids in
// chunks of store.InChunk, calling row for every row. It returns how many
// rows there were.
func queryIn(ctx context.Context, q Querier, query string, ids [][]byte, row func(*sql.Rows) error) (int, error) {
	n := 0
	for i := 0; i < len(ids); i += store.InChunk {
		chunk := ids[i:min(i+store.InChunk, len(ids))]
		rows, err := q.QueryContext(ctx, query, store.InArgs(chunk, func(id []byte) any { return id })...)
		if err != nil {
			return n, err
		}
		for rows.Next() {
			if err := row(rows); err != nil {
				rows.Close()
				return n, err
			}
			n++
		}
		if err := rows.Close(); err != nil {
			return n, err
		}
		if err := rows.Err(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Transfer returns the transfer with id as the batch sees it (posted in
// the batch or stored before), and false if there is none.
func (b *Batch) Transfer(ctx context.Context, id TransferID) (Transfer, bool, error) {
	if t, ok := b.st.transfers[id]; ok {
		return t, true, nil
	}
	if b.noTransfer[id] {
		return Transfer{}, false, nil
	}
	t, err := loadTransfer(ctx, b.q, id)
	if errors.Is(err, errTransferNotFound) {
		b.noTransfer[id] = true
		return Transfer{}, false, nil
	}
	if err != nil {
		return Transfer{}, false, err
	}
	b.st.transfers[id] = t
	return t, true, nil
}

// CreateAccounts is the package-level CreateAccounts inside the batch.
func (b *Batch) CreateAccounts(ctx context.Context, accounts ...Account) error {
	if len(accounts) > MaxBatch {
		return &AccountError{Err: fmt.Errorf("%d accounts exceed the limit of %d (MaxBatch): %w", len(accounts), MaxBatch, ErrBatchTooLarge)}
	}
	var missing []Account
	for _, a := range accounts {
		if err := a.validate(); err != nil {
			return &AccountError{Name: a.Name, Err: err}
		}
		old, err := b.account(ctx, a.ID)
		if errors.Is(err, ErrAccountNotFound) {
			if !slices.ContainsFunc(missing, func(m Account) bool { return m.ID == a.ID }) {
				missing = append(missing, a)
			}
			continue
		}
		if err != nil {
			return err
		}
		if !old.sameFields(a) {
			return &AccountError{Name: a.Name, Err: ErrExistsWithDifferentFields}
		}
	}
	for _, a := range missing {
		_, err := b.q.ExecContext(ctx, `INSERT INTO ledger_accounts (id, name, code, currency, flags, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`,
			a.ID[:], a.Name, int64(a.Code), string(a.Currency), int64(a.Flags), b.now.UnixNano())
		if err != nil {
			return fmt.Errorf("ledger: create account %q: %w", a.Name, err)
		}
		a.CreatedAt = b.now
		b.st.accounts[a.ID] = &a
		b.orig[a.ID] = totals{}
		delete(b.noAccount, a.ID)
	}
	return nil
}

// Post posts transfers atomically, as the package-level Post does: a
// refused call writes nothing and changes nothing in the batch.
func (b *Batch) Post(ctx context.Context, transfers ...Transfer) (Result, error) {
	if b.done {
		return Result{}, errors.New("ledger: post to a flushed batch")
	}
	if len(transfers) == 0 {
		return Result{}, nil
	}
	if len(transfers) > MaxBatch {
		return Result{}, &TransferError{Index: MaxBatch, Err: fmt.Errorf("%d transfers exceed the limit of %d (MaxBatch): %w", len(transfers), MaxBatch, ErrBatchTooLarge)}
	}
	if err := b.load(ctx, transfers); err != nil {
		return Result{}, err
	}
	undo := b.st.snapshot(transfers)
	created, existed, err := plan(b.st, transfers, b.now)
	if err != nil {
		b.st.restore(undo)
		return Result{}, err
	}
	b.pending = append(b.pending, created...)
	return Result{Created: len(created), Existed: existed}, nil
}

// Flush writes the transfers the batch created and the posted totals of
// every account it changed. An
// account whose stored totals changed since the batch loaded it means a
// second writer inside the transaction: a broken invariant, so it fails
// with ErrChangedUnderTransaction. Any other error is the database's (a
// lost connection): the transaction is lost, nothing is broken.
func (b *Batch) Flush(ctx context.Context) error {
	b.done = true
	if err := b.insert(ctx, b.pending); err != nil {
		return err
	}
	b.pending = nil
	for id, o := range b.orig {
		a := b.st.accounts[id]
		if a.DebitsPosted == o.debits && a.CreditsPosted == o.credits {
			continue
		}
		res, err := b.q.ExecContext(ctx, `UPDATE ledger_accounts SET debits_posted = ?, credits_posted = ?
			WHERE id = ? AND debits_posted = ? AND credits_posted = ?`,
			a.DebitsPosted, a.CreditsPosted, id[:], o.debits, o.credits)
		if err != nil {
			return fmt.Errorf("ledger: update account %q: %w", a.Name, err)
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return fmt.Errorf("ledger: account %q (rows %d, %v): %w", a.Name, n, err, ErrChangedUnderTransaction)
		}
	}
	return nil
}

// totals are an account's posted totals as read, to update them only if no
// one else has.
type totals struct{ debits, credits int64 }

// Account returns the account with id as the batch sees it, with the
// transfers posted in the batch so far, or an error wrapping
// ErrAccountNotFound.
func (b *Batch) Account(ctx context.Context, id AccountID) (Account, error) {
	a, err := b.account(ctx, id)
	if err != nil {
		return Account{}, err
	}
	return *a, nil
}

// account returns the account with id from the batch, loading it once.
func (b *Batch) account(ctx context.Context, id AccountID) (*Account, error) {
	if a, ok := b.st.accounts[id]; ok {
		return a, nil
	}
	if b.noAccount[id] {
		return nil, fmt.Errorf("ledger: account %s: %w", id, ErrAccountNotFound)
	}
	a, err := loadAccount(ctx, b.q, id)
	if errors.Is(err, ErrAccountNotFound) {
		b.noAccount[id] = true
	}
	if err != nil {
		return nil, err
	}
	b.st.accounts[id] = &a
	b.orig[id] = totals{a.DebitsPosted, a.CreditsPosted}
	return &a, nil
}

// load reads into the batch's state what transfers touch and it lacks.
func (b *Batch) load(ctx context.Context, transfers []Transfer) error {
	addTransfer := func(id TransferID) error {
		if _, ok := b.st.transfers[id]; ok || id.IsZero() || b.noTransfer[id] {
			return nil
		}
		t, err := loadTransfer(ctx, b.q, id)
		if errors.Is(err, errTransferNotFound) {
			b.noTransfer[id] = true
			return nil
		}
		if err != nil {
			return err
		}
		b.st.transfers[id] = t
		return nil
	}
	for _, t := range transfers {
		if err := addTransfer(t.ID); err != nil {
			return err
		}
		if t.IsReversal() {
			if err := addTransfer(t.Reverses); err != nil {
				return err
			}
			if _, ok := b.st.reversed[t.Reverses]; !ok {
				by, err := reversedBy(ctx, b.q, t.Reverses)
				if err != nil {
					return err
				}
				if !by.IsZero() {
					b.st.reversed[t.Reverses] = by
				}
			}
		}
		for _, id := range []AccountID{t.Debit, t.Credit} {
			if id.IsZero() {
				continue
			}
			if _, err := b.account(ctx, id); err != nil && !errors.Is(err, ErrAccountNotFound) {
				return err
			}
		}
	}
	return nil
}

// insertChunk is how many transfers one INSERT writes (9 parameters
// each). On SQLite a statement writing several rows keeps a statement
// journal of the pages it changes (to undo the statement alone), and
// spills it to a file beyond 64 KiB: 16 rows, whose random ids put each on
// other index pages, cost less than 16 statements; 32 cost more.
const insertChunk = 16

// insertQueries[n] is the INSERT of n transfers.
var insertQueries = func() [insertChunk + 1]string {
	var qs [insertChunk + 1]string
	for n := 1; n <= insertChunk; n++ {
		qs[n] = `INSERT INTO ledger_transfers
			(id, debit_account, credit_account, amount, currency, code, ref, reverses, timestamp) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?, ?, ?, ?), ", n), ", ")
	}
	return qs
}()

// insert writes created transfers, in order, insertChunk per statement.
func (b *Batch) insert(ctx context.Context, created []Transfer) error {
	args := make([]any, 0, 9*min(len(created), insertChunk))
	for i := 0; i < len(created); i += insertChunk {
		chunk := created[i:min(i+insertChunk, len(created))]
		args = args[:0]
		for _, t := range chunk {
			var rev []byte
			if t.IsReversal() {
				rev = t.Reverses[:]
			}
			args = append(args, t.ID[:], t.Debit[:], t.Credit[:], t.Amount.Minor, string(t.Amount.Currency), int64(t.Code), t.Ref[:], rev, t.Timestamp.UnixNano())
		}
		if _, err := b.q.ExecContext(ctx, insertQueries[len(chunk)], args...); err != nil {
			return fmt.Errorf("ledger: insert transfers %s to %s: %w", chunk[0].ID, chunk[len(chunk)-1].ID, err)
		}
	}
	return nil
}

var errTransferNotFound = errors.New("transfer not found")

const accountColumns = `id, name, code, currency, flags, debits_posted, credits_posted, created_at`

func scanAccount(sc interface{ Scan(...any) error }) (Account, error) {
	var (
		a                 Account
		id                []byte
		code, flags, nsec int64
		cur               string
	)
	if err := sc.Scan(&id, &a.Name, &code, &cur, &flags, &a.DebitsPosted, &a.CreditsPosted, &nsec); err != nil {
		return Account{}, err
	}
	copy(a.ID[:], id)
	a.Code, a.Currency, a.Flags = AccountCode(code), protocol.Currency(cur), AccountFlags(flags)
	a.CreatedAt = time.Unix(0, nsec).UTC()
	return a, nil
}

func loadAccount(ctx context.Context, q Querier, id AccountID) (Account, error) {
	a, err := scanAccount(q.QueryRowContext(ctx, `SELECT `+accountColumns+` FROM ledger_accounts WHERE id = ?`, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return Account{}, fmt.Errorf("ledger: account %s: %w", id, ErrAccountNotFound)
	}
	if err != nil {
		return Account{}, fmt.Errorf("ledger: read account %s: %w", id, err)
	}
	return a, nil
}

// LookupAccount returns the account with id, or an error wrapping
// ErrAccountNotFound.
func LookupAccount(ctx context.Context, q Querier, id AccountID) (Account, error) {
	return loadAccount(ctx, q, id)
}

// MaxAccountsListed bounds what AccountsByPrefix returns.
const MaxAccountsListed = 2000

// prefixEnd is the least string above every string starting with prefix,
// as both stores compare names (bytewise: PostgreSQL's column is COLLATE
// "C"). A bound of prefix+"\xff" would be invalid UTF-8 to PostgreSQL.
func prefixEnd(prefix string) string {
	b := []byte(prefix)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return prefix + "\U0010FFFF" // unreachable for account names, which are ASCII
}

// AccountsByPrefix returns the accounts whose name starts with prefix, in
// name order, at most MaxAccountsListed (an error beyond).
func AccountsByPrefix(ctx context.Context, q Querier, prefix string) ([]Account, error) {
	if prefix == "" {
		return nil, errors.New("ledger: accounts by prefix: empty prefix")
	}
	rows, err := q.QueryContext(ctx, `SELECT `+accountColumns+` FROM ledger_accounts
		WHERE name >= ? AND name < ? ORDER BY name LIMIT ?`, prefix, prefixEnd(prefix), MaxAccountsListed+1)
	if err != nil {
		return nil, fmt.Errorf("ledger: accounts %q: %w", prefix, err)
	}
	defer rows.Close()
	var out []Account
	for rows.Next() {
		a, err := scanAccount(rows)
		if err != nil {
			return nil, fmt.Errorf("ledger: accounts %q: %w", prefix, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger: accounts %q: %w", prefix, err)
	}
	if len(out) > MaxAccountsListed {
		return nil, fmt.Errorf("ledger: accounts %q: more than %d (MaxAccountsListed)", prefix, MaxAccountsListed)
	}
	return out, nil
}

const transferColumns = `id, debit_account, credit_account, amount, currency, code, ref, reverses, timestamp`

func scanTransfer(sc interface{ Scan(...any) error }) (Transfer, error) {
	var (
		t                       Transfer
		id, deb, cred, ref, rev []byte
		amount, code, nsec      int64
		cur                     string
	)
	if err := sc.Scan(&id, &deb, &cred, &amount, &cur, &code, &ref, &rev, &nsec); err != nil {
		return Transfer{}, err
	}
	copy(t.ID[:], id)
	copy(t.Debit[:], deb)
	copy(t.Credit[:], cred)
	copy(t.Ref[:], ref)
	copy(t.Reverses[:], rev)
	t.Amount = protocol.Money{Minor: amount, Currency: protocol.Currency(cur)}
	t.Code = TransferCode(code)
	t.Timestamp = time.Unix(0, nsec).UTC()
	return t, nil
}

func loadTransfer(ctx context.Context, q Querier, id TransferID) (Transfer, error) {
	t, err := scanTransfer(q.QueryRowContext(ctx, `SELECT `+transferColumns+` FROM ledger_transfers WHERE id = ?`, id[:]))
	if errors.Is(err, sql.ErrNoRows) {
		return Transfer{}, errTransferNotFound
	}
	if err != nil {
		return Transfer{}, fmt.Errorf("ledger: read transfer %s: %w", id, err)
	}
	return t, nil
}

// LookupTransfer returns the transfer with id, and false if there is none.
func LookupTransfer(ctx context.Context, q Querier, id TransferID) (Transfer, bool, error) {
	t, err := loadTransfer(ctx, q, id)
	if errors.Is(err, errTransferNotFound) {
		return Transfer{}, false, nil
	}
	return t, err == nil, err
}

func reversedBy(ctx context.Context, q Querier, orig TransferID) (TransferID, error) {
	var id []byte
	err := q.QueryRowContext(ctx, `SELECT id FROM ledger_transfers WHERE reverses = ?`, orig[:]).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return TransferID{}, nil
	}
	if err != nil {
		return TransferID{}, fmt.Errorf("ledger: read reversal of %s: %w", orig, err)
	}
	var out TransferID
	copy(out[:], id)
	return out, nil
}

// MaxListed bounds the transfers TransfersByRef returns.
const MaxListed = 1000

// TransfersByRef returns the transfers with reference ref, oldest first, at
// most MaxListed.
func TransfersByRef(ctx context.Context, q Querier, ref protocol.ID) ([]Transfer, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+transferColumns+` FROM ledger_transfers WHERE ref = ?
		ORDER BY timestamp, id LIMIT ?`, ref[:], MaxListed)
	if err != nil {
		return nil, fmt.Errorf("ledger: transfers of %s: %w", ref, err)
	}
	defer rows.Close()
	var out []Transfer
	for rows.Next() {
		t, err := scanTransfer(rows)
		if err != nil {
			return nil, fmt.Errorf("ledger: transfers of %s: %w", ref, err)
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// CodeTotal is the sum of the transfers of one code and currency in a time
// range, reversals apart from originals.
type CodeTotal struct {
	Code     TransferCode   `json:"code"`
	Reversal bool           `json:"reversal"`
	Count    int64          `json:"count"`
	Amount   protocol.Money `json:"amount"`
}

// TotalsByCode sums the transfers posted in [from, to) by code, currency and
// whether they are reversals, ordered by code, reversal, currency.
func TotalsByCode(ctx context.Context, q Querier, from, to time.Time) ([]CodeTotal, error) {
	rows, err := q.QueryContext(ctx, `SELECT code, reverses IS NOT NULL, currency, COUNT(*), SUM(amount)
		FROM ledger_transfers WHERE timestamp >= ? AND timestamp < ?
		GROUP BY code, reverses IS NOT NULL, currency ORDER BY 1, 2, 3`, from.UnixNano(), to.UnixNano())
	if err != nil {
		return nil, fmt.Errorf("ledger: totals by code: %w", err)
	}
	defer rows.Close()
	var out []CodeTotal
	for rows.Next() {
		var (
			c         CodeTotal
			code, sum int64
			cur       string
		)
		if err := rows.Scan(&code, &c.Reversal, &cur, &c.Count, &sum); err != nil {
			return nil, fmt.Errorf("ledger: totals by code: %w", err)
		}
		c.Code, c.Amount = TransferCode(code), protocol.Money{Minor: sum, Currency: protocol.Currency(cur)}
		out = append(out, c)
	}
	return out, rows.Err()
}
