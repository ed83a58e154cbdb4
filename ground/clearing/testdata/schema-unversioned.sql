-- The ground database schema as ground made it before schema versions were
-- recorded (commit b9480f4): registry, ledger, registry revocations,
-- registry aircraft keys, clearing, in the order the code applied them.
-- Frozen: the upgrade test starts from it. Never edit.

-- ground/registry/sqlite.go schema
CREATE TABLE IF NOT EXISTS registry_passengers (
	id           BLOB PRIMARY KEY CHECK (length(id) = 16),
	external_ref TEXT UNIQUE,
	score        INTEGER NOT NULL,
	funding      TEXT,
	created_at   INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS registry_scores (
	passenger BLOB NOT NULL REFERENCES registry_passengers(id),
	seq       INTEGER NOT NULL,
	score     INTEGER NOT NULL,
	change    INTEGER NOT NULL,
	reason    TEXT NOT NULL,
	at        INTEGER NOT NULL,
	PRIMARY KEY (passenger, seq)
) STRICT;

CREATE TABLE IF NOT EXISTS registry_devices (
	key         BLOB PRIMARY KEY CHECK (length(key) = 32),
	key_id      BLOB NOT NULL,
	passenger   BLOB NOT NULL REFERENCES registry_passengers(id),
	enrolled_at INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS registry_devices_key_id ON registry_devices(key_id);
CREATE INDEX IF NOT EXISTS registry_devices_passenger ON registry_devices(passenger);

CREATE TABLE IF NOT EXISTS registry_arrears (
	invoice    BLOB PRIMARY KEY CHECK (length(invoice) = 16),
	passenger  BLOB NOT NULL REFERENCES registry_passengers(id),
	marked_at  INTEGER NOT NULL,
	cleared_at INTEGER
) STRICT;
CREATE INDEX IF NOT EXISTS registry_arrears_open ON registry_arrears(passenger) WHERE cleared_at IS NULL;

CREATE TABLE IF NOT EXISTS registry_aircraft (
	id            TEXT PRIMARY KEY,
	key           BLOB NOT NULL UNIQUE CHECK (length(key) = 32),
	nkey          TEXT NOT NULL,
	registered_at INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS registry_flights (
	id         TEXT PRIMARY KEY,
	aircraft   TEXT NOT NULL REFERENCES registry_aircraft(id),
	currency   TEXT NOT NULL,
	catalog    TEXT NOT NULL,
	caps       TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS registry_crew (
	flight   TEXT NOT NULL REFERENCES registry_flights(id),
	crew_id  TEXT NOT NULL,
	role     TEXT NOT NULL,
	pin_hash TEXT NOT NULL,
	PRIMARY KEY (flight, crew_id)
) STRICT;

CREATE TABLE IF NOT EXISTS registry_credentials (
	id         BLOB PRIMARY KEY CHECK (length(id) = 16),
	passenger  BLOB NOT NULL REFERENCES registry_passengers(id),
	flight     TEXT NOT NULL REFERENCES registry_flights(id),
	device     BLOB NOT NULL,
	raw        BLOB NOT NULL,
	issued_at  INTEGER NOT NULL,
	revoked_at INTEGER
) STRICT;
-- One live credential per passenger and flight: opt-in is idempotent.
CREATE UNIQUE INDEX IF NOT EXISTS registry_credentials_live ON registry_credentials(passenger, flight) WHERE revoked_at IS NULL;
CREATE INDEX IF NOT EXISTS registry_credentials_flight ON registry_credentials(flight);

CREATE TABLE IF NOT EXISTS registry_manifests (
	flight     TEXT NOT NULL REFERENCES registry_flights(id),
	serial     INTEGER NOT NULL CHECK (serial > 0),
	raw        BLOB NOT NULL,
	issued_at  INTEGER NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (flight, serial)
) STRICT;

CREATE TABLE IF NOT EXISTS registry_deltas (
	flight      TEXT NOT NULL,
	base_serial INTEGER NOT NULL,
	seq         INTEGER NOT NULL CHECK (seq > 0),
	raw         BLOB NOT NULL,
	issued_at   INTEGER NOT NULL,
	PRIMARY KEY (flight, base_serial, seq),
	FOREIGN KEY (flight, base_serial) REFERENCES registry_manifests(flight, serial)
) STRICT;

-- What the latest manifest of a flight and its deltas have published, so the
-- next delta carries exactly what changed since. Rows of older serials are
-- deleted when a new manifest is issued.
-- The crew roster (its hash, rosterHash) the manifest serial and its deltas
-- carried last, so a changed roster goes in the next delta.
CREATE TABLE IF NOT EXISTS registry_published_roster (
	flight TEXT NOT NULL,
	serial INTEGER NOT NULL,
	hash   BLOB NOT NULL,
	PRIMARY KEY (flight, serial)
) STRICT, WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS registry_published_credentials (
	flight     TEXT NOT NULL,
	serial     INTEGER NOT NULL,
	credential BLOB NOT NULL,
	PRIMARY KEY (flight, serial, credential)
) STRICT, WITHOUT ROWID;

-- registry_published_denials, the deny entries published, is in
-- revocations.go.

-- ground/ledger/sqlite.go schema
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
	reverses       BLOB UNIQUE REFERENCES ledger_transfers (id), -- NULL unless a reversal; UNIQUE: reversed once
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

-- ground/registry/revocations.go revocationSchema
CREATE TABLE IF NOT EXISTS registry_revocations (
	credential     BLOB NOT NULL CHECK (length(credential) = 16),
	passenger      BLOB NOT NULL CHECK (length(passenger) = 16),
	device         BLOB NOT NULL CHECK (length(device) = 32),
	flight         TEXT NOT NULL,
	reason         INTEGER NOT NULL CHECK (reason BETWEEN 2 AND 5),
	note           TEXT NOT NULL,
	revoked_at     INTEGER NOT NULL,
	reinstated_at  INTEGER,
	reinstate_note TEXT NOT NULL DEFAULT ''
) STRICT;
-- At most one open revocation per credential.
CREATE UNIQUE INDEX IF NOT EXISTS registry_revocations_open ON registry_revocations(credential) WHERE reinstated_at IS NULL;
CREATE INDEX IF NOT EXISTS registry_revocations_device ON registry_revocations(device) WHERE reinstated_at IS NULL;
CREATE INDEX IF NOT EXISTS registry_revocations_passenger ON registry_revocations(passenger) WHERE reinstated_at IS NULL;
CREATE INDEX IF NOT EXISTS registry_credentials_device ON registry_credentials(device);

DROP TABLE IF EXISTS registry_published_deny;
CREATE TABLE IF NOT EXISTS registry_published_denials (
	flight     TEXT NOT NULL,
	serial     INTEGER NOT NULL,
	passenger  BLOB NOT NULL,
	credential BLOB NOT NULL,
	device     BLOB NOT NULL,
	reason     INTEGER NOT NULL,
	PRIMARY KEY (flight, serial, passenger, credential, device, reason)
) STRICT, WITHOUT ROWID;

-- ground/registry/aircraftkeys.go aircraftKeySchema
CREATE TABLE IF NOT EXISTS registry_aircraft_keys (
	aircraft    TEXT NOT NULL REFERENCES registry_aircraft(id),
	key         BLOB NOT NULL UNIQUE CHECK (length(key) = 32),
	since       INTEGER NOT NULL,
	replaced_at INTEGER NOT NULL,
	compromised INTEGER NOT NULL DEFAULT 0 CHECK (compromised IN (0, 1))
) STRICT;
CREATE INDEX IF NOT EXISTS registry_aircraft_keys_by_aircraft ON registry_aircraft_keys(aircraft, replaced_at);

-- ground/clearing/sqlite.go schema
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
