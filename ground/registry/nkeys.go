package registry

import (
	"context"
	"database/sql"
	"time"

	"github.com/airtab/airtab/protocol"
)

// Retiring nkeys. Every aircraft key rotation gives the aircraft a new NATS
// nkey as well: the new box logs in with it. A plain rotation keeps the old
// nkey for a while, because the old box may still hold invoices and a
// flight-close report it signed, before the rotation, for flights clearing
// still accepts from the old key (those whose credential window opened
// before the rotation, see clearing's verifyRetired): it must be able to
// upload them and read their receipts. It keeps the old nkey, with the same
// rights, until RetiringNKeyReplay after the last of those windows closes;
// with no such flight, the old nkey goes at once. A rotation marked
// compromised drops the old nkey at once: the box is thought in the wrong
// hands.

// RetiringNKeyReplay is how long after the credential window of the last
// flight begun before a rotation the aircraft's old nkey may still log in:
// time for an aircraft that was offline for days after that flight to
// replay it.
const RetiringNKeyReplay = 7 * 24 * time.Hour

// retiringNKeySchema is migration step 2 (sqlite.go).
const retiringNKeySchema = `
CREATE TABLE registry_retiring_nkeys (
	aircraft TEXT NOT NULL REFERENCES registry_aircraft(id),
	nkey     TEXT NOT NULL UNIQUE,
	until    INTEGER NOT NULL
) STRICT;
CREATE INDEX registry_retiring_nkeys_until ON registry_retiring_nkeys(until);
`

const retiringNKeySchemaPostgres = `
CREATE TABLE registry_retiring_nkeys (
	aircraft TEXT COLLATE "C" NOT NULL REFERENCES registry_aircraft(id),
	nkey     TEXT COLLATE "C" NOT NULL UNIQUE,
	until    BIGINT NOT NULL
);
CREATE INDEX registry_retiring_nkeys_until ON registry_retiring_nkeys(until);
`

// RetiringNKey is an aircraft's nkey from before its last key rotation,
// still allowed to log in until Until.
type RetiringNKey struct {
	Aircraft protocol.AircraftID
	NKey     string
	Until    time.Time
}

// RetiringNKeys returns the nkeys replaced by a plain rotation that may
// still log in at now, soonest to expire first. The embedded NATS server
// lets them in beside each aircraft's current nkey, with the same rights.
func (r *Registry) RetiringNKeys(ctx context.Context, now time.Time) ([]RetiringNKey, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT aircraft, nkey, until FROM registry_retiring_nkeys WHERE until > ? ORDER BY until, nkey LIMIT ?`,
		unix(now), maxRetiringNKeys)
	if err != nil {
		return nil, wrap(err, "registry: retiring nkeys")
	}
	defer rows.Close()
	var out []RetiringNKey
	for rows.Next() {
		var k RetiringNKey
		var a string
		var until int64
		if err := rows.Scan(&a, &k.NKey, &until); err != nil {
			return nil, wrap(err, "registry: retiring nkeys")
		}
		k.Aircraft, k.Until = protocol.AircraftID(a), fromUnix(until)
		out = append(out, k)
	}
	return out, wrap(rows.Err(), "registry: retiring nkeys")
}

// maxRetiringNKeys bounds the nkeys in their grace at once, over all
// aircraft: a fleet rotating every key at once stays far below it.
const maxRetiringNKeys = 10_000

// retireNKey keeps aircraft id's old nkey after a plain rotation at now,
// until RetiringNKeyReplay after the credential window closes of the last
// of its flights whose window opened before now; with no such flight whose
// grace is still ahead, it keeps nothing. It returns the time kept until
// (zero when nothing is kept).
func retireNKey(ctx context.Context, tx *sql.Tx, id protocol.AircraftID, nkey string, now time.Time) (time.Time, error) {
	if nkey == "" {
		return time.Time{}, nil
	}
	rows, err := tx.QueryContext(ctx, `SELECT id FROM registry_flights WHERE aircraft = ?`, string(id))
	if err != nil {
		return time.Time{}, err
	}
	var until time.Time
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			rows.Close()
			return time.Time{}, err
		}
		date := protocol.FlightID(f).Date()
		if date.IsZero() {
			continue
		}
		opens, closes := CredentialWindow(date)
		if !opens.Before(now) { // begun after the rotation: the new key's
			continue
		}
		if end := closes.Add(RetiringNKeyReplay); end.After(until) {
			until = end
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return time.Time{}, err
	}
	if !until.After(now) {
		return time.Time{}, nil
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO registry_retiring_nkeys (aircraft, nkey, until) VALUES (?, ?, ?)`, string(id), nkey, unix(until))
	return until, err
}

// nkeyInUse reports whether nkey is, or was, any aircraft's nkey that is
// still on record: a rotation must not hand an aircraft an nkey another box
// holds.
func nkeyInUse(ctx context.Context, tx *sql.Tx, nkey string) (protocol.AircraftID, bool, error) {
	var id string
	err := tx.QueryRowContext(ctx, `SELECT id FROM registry_aircraft WHERE nkey = ?
		UNION ALL SELECT aircraft FROM registry_retiring_nkeys WHERE nkey = ? LIMIT 1`, nkey, nkey).Scan(&id)
	if err == sql.ErrNoRows {
		return "", false, nil
	}
	return protocol.AircraftID(id), err == nil, err
}
