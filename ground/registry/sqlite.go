package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
)

// This file holds every SQL statement of the registry. The tables share the
// ground database with the ledger and clearing, so each name starts with
// "registry_". Ids are 16-byte blobs, keys 32-byte blobs, times Unix seconds.

const schema = `
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
`

// querier is what *sql.DB and *sql.Tx have in common.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// schemaPostgres is the registry's whole schema (schema, revocationSchema,
// aircraftKeySchema) in PostgreSQL's dialect: BIGINT for INTEGER, BYTEA for
// BLOB, BOOLEAN where Go stores a bool, TEXT COLLATE "C" so text compares
// and sorts bytewise as in SQLite whatever the database's locale. Tables whose rows are listed in
// insertion order (SQLite's rowid) get an identity column named rowid, so
// the same ORDER BY rowid works on both.
const schemaPostgres = `
CREATE TABLE registry_passengers (
	id           BYTEA PRIMARY KEY CHECK (length(id) = 16),
	external_ref TEXT COLLATE "C" UNIQUE,
	score        BIGINT NOT NULL,
	funding      TEXT COLLATE "C",
	created_at   BIGINT NOT NULL
);

CREATE TABLE registry_scores (
	passenger BYTEA NOT NULL REFERENCES registry_passengers(id),
	seq       BIGINT NOT NULL,
	score     BIGINT NOT NULL,
	change    BIGINT NOT NULL,
	reason    TEXT COLLATE "C" NOT NULL,
	at        BIGINT NOT NULL,
	PRIMARY KEY (passenger, seq)
);

CREATE TABLE registry_devices (
	key         BYTEA PRIMARY KEY CHECK (length(key) = 32),
	key_id      BYTEA NOT NULL,
	passenger   BYTEA NOT NULL REFERENCES registry_passengers(id),
	enrolled_at BIGINT NOT NULL
);
CREATE INDEX registry_devices_key_id ON registry_devices(key_id);
CREATE INDEX registry_devices_passenger ON registry_devices(passenger);

CREATE TABLE registry_arrears (
	invoice    BYTEA PRIMARY KEY CHECK (length(invoice) = 16),
	passenger  BYTEA NOT NULL REFERENCES registry_passengers(id),
	marked_at  BIGINT NOT NULL,
	cleared_at BIGINT
);
CREATE INDEX registry_arrears_open ON registry_arrears(passenger) WHERE cleared_at IS NULL;

CREATE TABLE registry_aircraft (
	id            TEXT COLLATE "C" PRIMARY KEY,
	key           BYTEA NOT NULL UNIQUE CHECK (length(key) = 32),
	nkey          TEXT COLLATE "C" NOT NULL,
	registered_at BIGINT NOT NULL
);

CREATE TABLE registry_flights (
	id         TEXT COLLATE "C" PRIMARY KEY,
	aircraft   TEXT COLLATE "C" NOT NULL REFERENCES registry_aircraft(id),
	currency   TEXT COLLATE "C" NOT NULL,
	catalog    TEXT COLLATE "C" NOT NULL,
	caps       TEXT COLLATE "C" NOT NULL,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

CREATE TABLE registry_crew (
	flight   TEXT COLLATE "C" NOT NULL REFERENCES registry_flights(id),
	crew_id  TEXT COLLATE "C" NOT NULL,
	role     TEXT COLLATE "C" NOT NULL,
	pin_hash TEXT COLLATE "C" NOT NULL,
	PRIMARY KEY (flight, crew_id)
);

CREATE TABLE registry_credentials (
	rowid      BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
	id         BYTEA PRIMARY KEY CHECK (length(id) = 16),
	passenger  BYTEA NOT NULL REFERENCES registry_passengers(id),
	flight     TEXT COLLATE "C" NOT NULL REFERENCES registry_flights(id),
	device     BYTEA NOT NULL,
	raw        BYTEA NOT NULL,
	issued_at  BIGINT NOT NULL,
	revoked_at BIGINT
);
CREATE UNIQUE INDEX registry_credentials_live ON registry_credentials(passenger, flight) WHERE revoked_at IS NULL;
CREATE INDEX registry_credentials_flight ON registry_credentials(flight, rowid);
CREATE INDEX registry_credentials_device ON registry_credentials(device);

CREATE TABLE registry_manifests (
	flight     TEXT COLLATE "C" NOT NULL REFERENCES registry_flights(id),
	serial     BIGINT NOT NULL CHECK (serial > 0),
	raw        BYTEA NOT NULL,
	issued_at  BIGINT NOT NULL,
	expires_at BIGINT NOT NULL,
	PRIMARY KEY (flight, serial)
);

CREATE TABLE registry_deltas (
	flight      TEXT COLLATE "C" NOT NULL,
	base_serial BIGINT NOT NULL,
	seq         BIGINT NOT NULL CHECK (seq > 0),
	raw         BYTEA NOT NULL,
	issued_at   BIGINT NOT NULL,
	PRIMARY KEY (flight, base_serial, seq),
	FOREIGN KEY (flight, base_serial) REFERENCES registry_manifests(flight, serial)
);

CREATE TABLE registry_published_roster (
	flight TEXT COLLATE "C" NOT NULL,
	serial BIGINT NOT NULL,
	hash   BYTEA NOT NULL,
	PRIMARY KEY (flight, serial)
);

CREATE TABLE registry_published_credentials (
	flight     TEXT COLLATE "C" NOT NULL,
	serial     BIGINT NOT NULL,
	credential BYTEA NOT NULL,
	PRIMARY KEY (flight, serial, credential)
);

CREATE TABLE registry_revocations (
	rowid          BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
	credential     BYTEA NOT NULL CHECK (length(credential) = 16),
	passenger      BYTEA NOT NULL CHECK (length(passenger) = 16),
	device         BYTEA NOT NULL CHECK (length(device) = 32),
	flight         TEXT COLLATE "C" NOT NULL,
	reason         BIGINT NOT NULL CHECK (reason BETWEEN 2 AND 5),
	note           TEXT COLLATE "C" NOT NULL,
	revoked_at     BIGINT NOT NULL,
	reinstated_at  BIGINT,
	reinstate_note TEXT COLLATE "C" NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX registry_revocations_open ON registry_revocations(credential) WHERE reinstated_at IS NULL;
CREATE INDEX registry_revocations_device ON registry_revocations(device) WHERE reinstated_at IS NULL;
CREATE INDEX registry_revocations_passenger ON registry_revocations(passenger) WHERE reinstated_at IS NULL;

CREATE TABLE registry_published_denials (
	flight     TEXT COLLATE "C" NOT NULL,
	serial     BIGINT NOT NULL,
	passenger  BYTEA NOT NULL,
	credential BYTEA NOT NULL,
	device     BYTEA NOT NULL,
	reason     BIGINT NOT NULL,
	PRIMARY KEY (flight, serial, passenger, credential, device, reason)
);

CREATE TABLE registry_aircraft_keys (
	rowid       BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
	aircraft    TEXT COLLATE "C" NOT NULL REFERENCES registry_aircraft(id),
	key         BYTEA NOT NULL UNIQUE CHECK (length(key) = 32),
	since       BIGINT NOT NULL,
	replaced_at BIGINT NOT NULL,
	compromised BOOLEAN NOT NULL DEFAULT false
);
CREATE INDEX registry_aircraft_keys_by_aircraft ON registry_aircraft_keys(aircraft, replaced_at);
`

// migrations are the registry's schema steps (store.Migrate). Version 1 is
// the schema as it was before versions were recorded: on SQLite its
// statements are idempotent, and its upgrade of older databases
// (upgradeAircraftKeys) stays, so that it adopts any database made before.
// Add steps at the end; never edit one that has shipped.
var migrations = []store.Migration{
	{Version: 1, SQLite: schema + revocationSchema + aircraftKeySchema, Postgres: schemaPostgres, Func: upgradeAircraftKeys},
	{Version: 2, SQLite: retiringNKeySchema, Postgres: retiringNKeySchemaPostgres}, // nkeys.go
}

func createSchema(ctx context.Context, db *sql.DB) error {
	// Opting in with a prepaid wallet holds money in the ledger (holds.go),
	// in the same database and transaction.
	if err := ledger.Migrate(ctx, db); err != nil {
		return fmt.Errorf("registry: create schema: %w", err)
	}
	if err := store.Migrate(ctx, db, "registry", migrations); err != nil {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

func unix(t time.Time) int64             { return t.Unix() }
func fromUnix(s int64) time.Time         { return time.Unix(s, 0).UTC() }
func idBytes(id protocol.ID) []byte      { return id[:] }
func keyBytes(k crypto.PublicKey) []byte { return k.Bytes() }

func scanID(b []byte) (protocol.ID, error) {
	var id protocol.ID
	if len(b) != len(id) {
		return id, fmt.Errorf("registry: stored id of %d bytes", len(b))
	}
	copy(id[:], b)
	return id, nil
}

// --- passengers -----------------------------------------------------------

type passengerRow struct {
	id        protocol.ID
	ref       string
	score     int
	funding   *ground.FundingSource
	createdAt time.Time
}

func insertPassenger(ctx context.Context, q querier, p passengerRow) error {
	var ref any
	if p.ref != "" {
		ref = p.ref
	}
	_, err := q.ExecContext(ctx, `INSERT INTO registry_passengers (id, external_ref, score, created_at) VALUES (?, ?, ?, ?)`,
		idBytes(p.id), ref, p.score, unix(p.createdAt))
	return err
}

func getPassenger(ctx context.Context, q querier, id protocol.ID) (passengerRow, error) {
	var (
		p       = passengerRow{id: id}
		ref     sql.NullString
		funding sql.NullString
		created int64
	)
	err := q.QueryRowContext(ctx, `SELECT external_ref, score, funding, created_at FROM registry_passengers WHERE id = ?`,
		idBytes(id)).Scan(&ref, &p.score, &funding, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return p, notFound("unknown passenger %s", id)
	}
	if err != nil {
		return p, err
	}
	p.ref, p.createdAt = ref.String, fromUnix(created)
	if funding.Valid {
		p.funding = new(ground.FundingSource)
		if err := json.Unmarshal([]byte(funding.String), p.funding); err != nil {
			return p, fmt.Errorf("registry: stored funding of passenger %s: %w", id, err)
		}
	}
	return p, nil
}

func externalRefTaken(ctx context.Context, q querier, ref string) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, `SELECT count(*) FROM registry_passengers WHERE external_ref = ?`, ref).Scan(&n)
	return n > 0, err
}

func setFunding(ctx context.Context, q querier, id protocol.ID, f ground.FundingSource) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	res, err := q.ExecContext(ctx, `UPDATE registry_passengers SET funding = ? WHERE id = ?`, string(b), idBytes(id))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return notFound("unknown passenger %s", id)
	}
	return nil
}

// recordScore sets the passenger's current score and appends the change to
// the history.
func recordScore(ctx context.Context, q querier, id protocol.ID, score, change int, reason string, at time.Time) error {
	if _, err := q.ExecContext(ctx, `UPDATE registry_passengers SET score = ? WHERE id = ?`, score, idBytes(id)); err != nil {
		return err
	}
	_, err := q.ExecContext(ctx, `INSERT INTO registry_scores (passenger, seq, score, change, reason, at)
		VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM registry_scores WHERE passenger = ?1), ?2, ?3, ?4, ?5)`,
		idBytes(id), score, change, reason, unix(at))
	return err
}

// ScoreEvent is one entry of a passenger's score history.
type ScoreEvent struct {
	Score  int
	Change int    // points added (negative: taken off)
	Reason string // "initial", "arrears <invoice>"
	At     time.Time
}

func scoreHistory(ctx context.Context, q querier, id protocol.ID, limit int) ([]ScoreEvent, error) {
	rows, err := q.QueryContext(ctx, `SELECT score, change, reason, at FROM registry_scores WHERE passenger = ? ORDER BY seq DESC LIMIT ?`, idBytes(id), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ScoreEvent
	for rows.Next() {
		var e ScoreEvent
		var at int64
		if err := rows.Scan(&e.Score, &e.Change, &e.Reason, &at); err != nil {
			return nil, err
		}
		e.At = fromUnix(at)
		out = append(out, e)
	}
	return out, rows.Err()
}

// --- devices --------------------------------------------------------------

func insertDevice(ctx context.Context, q querier, key crypto.PublicKey, passenger protocol.ID, at time.Time) error {
	kid := key.ID()
	_, err := q.ExecContext(ctx, `INSERT INTO registry_devices (key, key_id, passenger, enrolled_at) VALUES (?, ?, ?, ?)`,
		keyBytes(key), kid[:], idBytes(passenger), unix(at))
	return err
}

// deviceOwner returns the passenger a device key is enrolled for.
func deviceOwner(ctx context.Context, q querier, key crypto.PublicKey) (protocol.ID, bool, error) {
	var b []byte
	err := q.QueryRowContext(ctx, `SELECT passenger FROM registry_devices WHERE key = ?`, keyBytes(key)).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return protocol.ID{}, false, nil
	}
	if err != nil {
		return protocol.ID{}, false, err
	}
	id, err := scanID(b)
	return id, err == nil, err
}

// Device is an enrolled device key and the passenger it belongs to.
type Device struct {
	Key       crypto.PublicKey
	Passenger protocol.ID
}

func devicesWhere(ctx context.Context, q querier, where string, arg any, limit int) ([]Device, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, passenger FROM registry_devices WHERE `+where+` ORDER BY enrolled_at, key LIMIT ?`, arg, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		var kb, pb []byte
		if err := rows.Scan(&kb, &pb); err != nil {
			return nil, err
		}
		k, err := crypto.PublicKeyFromBytes(crypto.Device, kb)
		if err != nil {
			return nil, fmt.Errorf("registry: stored device key: %w", err)
		}
		p, err := scanID(pb)
		if err != nil {
			return nil, err
		}
		out = append(out, Device{Key: k, Passenger: p})
	}
	return out, rows.Err()
}

// --- arrears --------------------------------------------------------------

// Arrears is an invoice a passenger owes after a declined charge.
type Arrears struct {
	Passenger protocol.ID
	Invoice   protocol.ID
	MarkedAt  time.Time
	ClearedAt time.Time // zero while the debt is open
}

// arrearsByInvoice returns the arrears recorded for an invoice, if any.
func arrearsByInvoice(ctx context.Context, q querier, invoice protocol.ID) (Arrears, bool, error) {
	var (
		a       = Arrears{Invoice: invoice}
		pb      []byte
		marked  int64
		cleared sql.NullInt64
	)
	err := q.QueryRowContext(ctx, `SELECT passenger, marked_at, cleared_at FROM registry_arrears WHERE invoice = ?`,
		idBytes(invoice)).Scan(&pb, &marked, &cleared)
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, nil
	}
	if err != nil {
		return a, false, err
	}
	if a.Passenger, err = scanID(pb); err != nil {
		return a, false, err
	}
	a.MarkedAt = fromUnix(marked)
	if cleared.Valid {
		a.ClearedAt = fromUnix(cleared.Int64)
	}
	return a, true, nil
}

func insertArrears(ctx context.Context, q querier, a Arrears) error {
	_, err := q.ExecContext(ctx, `INSERT INTO registry_arrears (invoice, passenger, marked_at) VALUES (?, ?, ?)`,
		idBytes(a.Invoice), idBytes(a.Passenger), unix(a.MarkedAt))
	return err
}

func clearArrears(ctx context.Context, q querier, invoice protocol.ID, at time.Time) error {
	_, err := q.ExecContext(ctx, `UPDATE registry_arrears SET cleared_at = ? WHERE invoice = ? AND cleared_at IS NULL`, unix(at), idBytes(invoice))
	return err
}

// openArrears lists open arrears, of one passenger when passenger is not
// zero, oldest first, at most limit.
func openArrears(ctx context.Context, q querier, passenger protocol.ID, limit int) ([]Arrears, error) {
	query := `SELECT invoice, passenger, marked_at FROM registry_arrears WHERE cleared_at IS NULL`
	args := []any{}
	if !passenger.IsZero() {
		query += ` AND passenger = ?`
		args = append(args, idBytes(passenger))
	}
	query += ` ORDER BY marked_at, invoice LIMIT ?`
	rows, err := q.QueryContext(ctx, query, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Arrears
	for rows.Next() {
		var ib, pb []byte
		var marked int64
		if err := rows.Scan(&ib, &pb, &marked); err != nil {
			return nil, err
		}
		a := Arrears{MarkedAt: fromUnix(marked)}
		if a.Invoice, err = scanID(ib); err != nil {
			return nil, err
		}
		if a.Passenger, err = scanID(pb); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// --- aircraft, flights, crew ----------------------------------------------

func getAircraft(ctx context.Context, q querier, id protocol.AircraftID) (Aircraft, error) {
	a := Aircraft{ID: id}
	var kb []byte
	var at int64
	err := q.QueryRowContext(ctx, `SELECT key, nkey, registered_at FROM registry_aircraft WHERE id = ?`, string(id)).Scan(&kb, &a.NKey, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return a, notFound("unknown aircraft %s", id)
	}
	if err != nil {
		return a, err
	}
	if a.Key, err = crypto.PublicKeyFromBytes(crypto.Aircraft, kb); err != nil {
		return a, fmt.Errorf("registry: stored key of aircraft %s: %w", id, err)
	}
	a.RegisteredAt = fromUnix(at)
	return a, nil
}

// aircraftByKey returns the aircraft registered with a signing key, if any.
func aircraftByKey(ctx context.Context, q querier, key crypto.PublicKey) (protocol.AircraftID, bool, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT id FROM registry_aircraft WHERE key = ?`, keyBytes(key)).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	return protocol.AircraftID(id), err == nil, err
}

func insertAircraft(ctx context.Context, q querier, a Aircraft) error {
	_, err := q.ExecContext(ctx, `INSERT INTO registry_aircraft (id, key, nkey, registered_at) VALUES (?, ?, ?, ?)`,
		string(a.ID), keyBytes(a.Key), a.NKey, unix(a.RegisteredAt))
	return err
}

// capsJSON is how caps are stored.
type capsJSON struct {
	Exposure       protocol.Money `json:"exposure"`
	FreshSeconds   uint32         `json:"fresh_s"`
	SkewSeconds    uint32         `json:"skew_s"`
	VelocityCount  uint32         `json:"velocity_n"`
	VelocitySecond uint32         `json:"velocity_s"`
}

type flightRow struct {
	id       protocol.FlightID
	aircraft protocol.AircraftID
	currency protocol.Currency
	catalog  []protocol.CatalogItem
	caps     protocol.Caps
}

func getFlight(ctx context.Context, q querier, id protocol.FlightID) (flightRow, error) {
	f := flightRow{id: id}
	var aircraft, currency, catalog, caps string
	err := q.QueryRowContext(ctx, `SELECT aircraft, currency, catalog, caps FROM registry_flights WHERE id = ?`, string(id)).
		Scan(&aircraft, &currency, &catalog, &caps)
	if errors.Is(err, sql.ErrNoRows) {
		return f, notFound("unknown flight %s", id)
	}
	if err != nil {
		return f, err
	}
	f.aircraft, f.currency = protocol.AircraftID(aircraft), protocol.Currency(currency)
	if err := json.Unmarshal([]byte(catalog), &f.catalog); err != nil {
		return f, fmt.Errorf("registry: stored catalog of %s: %w", id, err)
	}
	var c capsJSON
	if err := json.Unmarshal([]byte(caps), &c); err != nil {
		return f, fmt.Errorf("registry: stored caps of %s: %w", id, err)
	}
	f.caps = protocol.Caps{AircraftExposure: c.Exposure, CodeFreshSeconds: c.FreshSeconds, ClockSkewSeconds: c.SkewSeconds,
		VelocityCount: c.VelocityCount, VelocityWindowSeconds: c.VelocitySecond}
	return f, nil
}

// upsertFlight inserts the flight, or replaces its catalog and caps.
func upsertFlight(ctx context.Context, q querier, f flightRow, at time.Time) error {
	if f.catalog == nil {
		f.catalog = []protocol.CatalogItem{}
	}
	catalog, err := json.Marshal(f.catalog)
	if err != nil {
		return err
	}
	caps, err := json.Marshal(capsJSON{Exposure: f.caps.AircraftExposure, FreshSeconds: f.caps.CodeFreshSeconds,
		SkewSeconds: f.caps.ClockSkewSeconds, VelocityCount: f.caps.VelocityCount, VelocitySecond: f.caps.VelocityWindowSeconds})
	if err != nil {
		return err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO registry_flights (id, aircraft, currency, catalog, caps, created_at, updated_at)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
		ON CONFLICT (id) DO UPDATE SET catalog = excluded.catalog, caps = excluded.caps, updated_at = excluded.updated_at`,
		string(f.id), string(f.aircraft), string(f.currency), string(catalog), string(caps), unix(at))
	return err
}

func replaceCrew(ctx context.Context, q querier, f protocol.FlightID, crew []protocol.CrewMember) error {
	if _, err := q.ExecContext(ctx, `DELETE FROM registry_crew WHERE flight = ?`, string(f)); err != nil {
		return err
	}
	for _, m := range crew {
		if _, err := q.ExecContext(ctx, `INSERT INTO registry_crew (flight, crew_id, role, pin_hash) VALUES (?, ?, ?, ?)`,
			string(f), m.ID, m.Role, m.PINHash); err != nil {
			return err
		}
	}
	return nil
}

func getCrew(ctx context.Context, q querier, f protocol.FlightID) ([]protocol.CrewMember, error) {
	rows, err := q.QueryContext(ctx, `SELECT crew_id, role, pin_hash FROM registry_crew WHERE flight = ? ORDER BY crew_id LIMIT ?`,
		string(f), protocol.MaxCrew)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []protocol.CrewMember
	for rows.Next() {
		var m protocol.CrewMember
		if err := rows.Scan(&m.ID, &m.Role, &m.PINHash); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// --- credentials ----------------------------------------------------------

// IssuedCredential is a credential ground issued, with its signed bytes and
// whether it was revoked.
type IssuedCredential struct {
	Signed    *protocol.SignedCredential
	IssuedAt  time.Time
	RevokedAt time.Time // zero while live
}

func insertCredential(ctx context.Context, q querier, c *protocol.SignedCredential, at time.Time) error {
	b := c.Body
	_, err := q.ExecContext(ctx, `INSERT INTO registry_credentials (id, passenger, flight, device, raw, issued_at) VALUES (?, ?, ?, ?, ?, ?)`,
		idBytes(b.ID), idBytes(b.Passenger), string(b.Flight), b.Device.Bytes(), c.Raw, unix(at))
	return err
}

const credentialColumns = `raw, issued_at, revoked_at`

func scanCredential(s interface{ Scan(...any) error }) (IssuedCredential, error) {
	var (
		raw     []byte
		issued  int64
		revoked sql.NullInt64
	)
	if err := s.Scan(&raw, &issued, &revoked); err != nil {
		return IssuedCredential{}, err
	}
	// Pair check: what was validated before it was written is parsed
	// again after it is read back.
	c, err := protocol.ParseCredential(raw)
	if err != nil {
		return IssuedCredential{}, fmt.Errorf("registry: stored credential: %w", err)
	}
	ic := IssuedCredential{Signed: c, IssuedAt: fromUnix(issued)}
	if revoked.Valid {
		ic.RevokedAt = fromUnix(revoked.Int64)
	}
	return ic, nil
}

func getCredential(ctx context.Context, q querier, id protocol.ID) (IssuedCredential, error) {
	ic, err := scanCredential(q.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM registry_credentials WHERE id = ?`, idBytes(id)))
	if errors.Is(err, sql.ErrNoRows) {
		return ic, notFound("unknown credential %s", id)
	}
	return ic, err
}

// liveCredential returns the passenger's unrevoked credential for a flight.
func liveCredential(ctx context.Context, q querier, passenger protocol.ID, f protocol.FlightID) (IssuedCredential, bool, error) {
	ic, err := scanCredential(q.QueryRowContext(ctx, `SELECT `+credentialColumns+` FROM registry_credentials
		WHERE passenger = ? AND flight = ? AND revoked_at IS NULL`, idBytes(passenger), string(f)))
	if errors.Is(err, sql.ErrNoRows) {
		return ic, false, nil
	}
	return ic, err == nil, err
}

// listCredentials lists credentials matching where (one argument), in issue
// order or newest first, at most limit.
func listCredentials(ctx context.Context, q querier, where string, arg any, newestFirst bool, limit int) ([]IssuedCredential, error) {
	order := "rowid"
	if newestFirst {
		order = "rowid DESC"
	}
	rows, err := q.QueryContext(ctx, `SELECT `+credentialColumns+` FROM registry_credentials WHERE `+where+` ORDER BY `+order+` LIMIT ?`, arg, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []IssuedCredential
	for rows.Next() {
		ic, err := scanCredential(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ic)
	}
	return out, rows.Err()
}

func countCredentials(ctx context.Context, q querier, f protocol.FlightID) (total, live int, err error) {
	err = q.QueryRowContext(ctx, `SELECT count(*), count(*) FILTER (WHERE revoked_at IS NULL) FROM registry_credentials WHERE flight = ?`,
		string(f)).Scan(&total, &live)
	return total, live, err
}

// revokeCredential marks a credential revoked; it reports false when it
// already was.
func revokeCredential(ctx context.Context, q querier, id protocol.ID, at time.Time) (bool, error) {
	res, err := q.ExecContext(ctx, `UPDATE registry_credentials SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, unix(at), idBytes(id))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// --- manifests and deltas -------------------------------------------------

type manifestRow struct {
	serial    uint64
	raw       []byte
	issuedAt  time.Time
	expiresAt time.Time
}

// latestManifest returns the flight's manifest with the highest serial.
func latestManifest(ctx context.Context, q querier, f protocol.FlightID) (manifestRow, bool, error) {
	var m manifestRow
	var issued, expires int64
	err := q.QueryRowContext(ctx, `SELECT serial, raw, issued_at, expires_at FROM registry_manifests WHERE flight = ? ORDER BY serial DESC LIMIT 1`,
		string(f)).Scan(&m.serial, &m.raw, &issued, &expires)
	if errors.Is(err, sql.ErrNoRows) {
		return m, false, nil
	}
	if err != nil {
		return m, false, err
	}
	m.issuedAt, m.expiresAt = fromUnix(issued), fromUnix(expires)
	return m, true, nil
}

func insertManifest(ctx context.Context, q querier, s *protocol.SignedManifest) error {
	m := s.Body
	_, err := q.ExecContext(ctx, `INSERT INTO registry_manifests (flight, serial, raw, issued_at, expires_at) VALUES (?, ?, ?, ?, ?)`,
		string(m.Flight), m.Serial, s.Raw, unix(m.IssuedAt), unix(m.ExpiresAt))
	return err
}

// forgetPublished drops the published state of every serial of f but keep.
func forgetPublished(ctx context.Context, q querier, f protocol.FlightID, keep uint64) error {
	for _, table := range []string{"registry_published_credentials", "registry_published_denials"} {
		if _, err := q.ExecContext(ctx, `DELETE FROM `+table+` WHERE flight = ? AND serial <> ?`, string(f), keep); err != nil {
			return err
		}
	}
	return nil
}

func publishCredentials(ctx context.Context, q querier, f protocol.FlightID, serial uint64, ids []protocol.ID) error {
	for _, id := range ids {
		if _, err := q.ExecContext(ctx, `INSERT INTO registry_published_credentials (flight, serial, credential) VALUES (?, ?, ?)`,
			string(f), serial, idBytes(id)); err != nil {
			return err
		}
	}
	return nil
}

// unpublishedCredentials returns up to limit live credentials of f that the
// manifest serial and its deltas have not carried yet, in issue order.
func unpublishedCredentials(ctx context.Context, q querier, f protocol.FlightID, serial uint64, limit int) ([]IssuedCredential, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+credentialColumns+` FROM registry_credentials c
		WHERE c.flight = ?1 AND c.revoked_at IS NULL AND NOT EXISTS (
			SELECT 1 FROM registry_published_credentials p WHERE p.flight = ?1 AND p.serial = ?2 AND p.credential = c.id)
		ORDER BY c.rowid LIMIT ?3`, string(f), serial, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []IssuedCredential
	for rows.Next() {
		ic, err := scanCredential(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, ic)
	}
	return out, rows.Err()
}

func lastDeltaSeq(ctx context.Context, q querier, f protocol.FlightID, serial uint64) (uint64, error) {
	var seq uint64
	err := q.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM registry_deltas WHERE flight = ? AND base_serial = ?`,
		string(f), serial).Scan(&seq)
	return seq, err
}

func insertDelta(ctx context.Context, q querier, s *protocol.SignedManifestDelta) error {
	d := s.Body
	_, err := q.ExecContext(ctx, `INSERT INTO registry_deltas (flight, base_serial, seq, raw, issued_at) VALUES (?, ?, ?, ?, ?)`,
		string(d.Flight), d.BaseSerial, d.Seq, s.Raw, unix(d.IssuedAt))
	return err
}

// deltasAfter returns the raw deltas of manifest serial after seq, in order,
// at most limit of them and at most maxBytes in total (always at least one
// when there is one).
func deltasAfter(ctx context.Context, q querier, f protocol.FlightID, serial, after uint64, limit, maxBytes int) ([][]byte, error) {
	rows, err := q.QueryContext(ctx, `SELECT seq, raw FROM registry_deltas WHERE flight = ? AND base_serial = ? AND seq > ? ORDER BY seq LIMIT ?`,
		string(f), serial, after, limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]byte
	size, want := 0, after+1
	for rows.Next() {
		var seq uint64
		var raw []byte
		if err := rows.Scan(&seq, &raw); err != nil {
			return nil, err
		}
		if seq != want {
			// The primary key and buildDelta (seq = last + 1, in one
			// transaction) make this impossible short of corruption.
			return nil, fmt.Errorf("registry: deltas of %s serial %d not gapless: got seq %d, want %d", f, serial, seq, want)
		}
		want++
		if len(out) > 0 && size+len(raw) > maxBytes {
			break
		}
		size += len(raw)
		out = append(out, raw)
	}
	return out, rows.Err()
}

// passengerFlights lists the flights (with their aircraft) the passenger
// holds a credential for, live or revoked, on dates whose credentials are
// still valid at now, at most maxPassengerFlights.
func passengerFlights(ctx context.Context, q querier, passenger protocol.ID, now time.Time) ([]flightRef, error) {
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT f.id, f.aircraft FROM registry_credentials c
		JOIN registry_flights f ON f.id = c.flight WHERE c.passenger = ? ORDER BY f.id LIMIT ?`, idBytes(passenger), maxPassengerFlights)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []flightRef
	for rows.Next() {
		var f, a string
		if err := rows.Scan(&f, &a); err != nil {
			return nil, err
		}
		ref := flightRef{aircraft: protocol.AircraftID(a), flight: protocol.FlightID(f)}
		if now.Before(credentialEnd(ref.flight)) {
			out = append(out, ref)
		}
	}
	return out, rows.Err()
}

// maxPassengerFlights bounds the flights one change notifies about.
const maxPassengerFlights = 256

// replaceCredential stores a credential signed anew under an id already
// issued (a limit raised after a top-up) and forgets that any manifest or
// delta carried it, so the next delta carries the new bytes.
func replaceCredential(ctx context.Context, q querier, c *protocol.SignedCredential) error {
	b := c.Body
	res, err := q.ExecContext(ctx, `UPDATE registry_credentials SET raw = ? WHERE id = ? AND revoked_at IS NULL`, c.Raw, idBytes(b.ID))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("replace credential %s: no live credential with this id", b.ID)
	}
	_, err = q.ExecContext(ctx, `DELETE FROM registry_published_credentials WHERE flight = ? AND credential = ?`, string(b.Flight), idBytes(b.ID))
	return err
}

// publishRoster records the roster hash the manifest serial of f carries now.
func publishRoster(ctx context.Context, q querier, f protocol.FlightID, serial uint64, hash []byte) error {
	_, err := q.ExecContext(ctx, `INSERT INTO registry_published_roster (flight, serial, hash) VALUES (?, ?, ?)
		ON CONFLICT (flight, serial) DO UPDATE SET hash = excluded.hash`, string(f), serial, hash)
	return err
}

// publishedRoster returns the roster hash the manifest serial of f and its
// deltas carried last, or nil for none recorded.
func publishedRoster(ctx context.Context, q querier, f protocol.FlightID, serial uint64) ([]byte, error) {
	var h []byte
	err := q.QueryRowContext(ctx, `SELECT hash FROM registry_published_roster WHERE flight = ? AND serial = ?`, string(f), serial).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	return h, err
}
