package registry

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nkeys"
)

// Aircraft key rotation: an aircraft that gets a new signing key (a new
// cabin server box, a key thought exposed) is moved to it by an explicit
// RotateAircraftKey, never by registering it again. The keys it signed with
// before stay on record with the time each was replaced, so clearing still
// verifies the invoices and close reports of flights whose credential window
// opened before then. A rotation marked compromised (the old key is thought exposed) keeps the old
// key on record only so that it is never used again: clearing accepts
// nothing it signed.

const aircraftKeySchema = `
CREATE TABLE IF NOT EXISTS registry_aircraft_keys (
	aircraft    TEXT NOT NULL REFERENCES registry_aircraft(id),
	key         BLOB NOT NULL UNIQUE CHECK (length(key) = 32),
	since       INTEGER NOT NULL,
	replaced_at INTEGER NOT NULL,
	compromised INTEGER NOT NULL DEFAULT 0 CHECK (compromised IN (0, 1))
) STRICT;
CREATE INDEX IF NOT EXISTS registry_aircraft_keys_by_aircraft ON registry_aircraft_keys(aircraft, replaced_at);
`

// upgradeAircraftKeys adds the compromised column to a SQLite database made
// before keys could be retired as compromised.
func upgradeAircraftKeys(ctx context.Context, tx *sql.Tx, d store.Dialect) error {
	if d != store.SQLite {
		return nil
	}
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info('registry_aircraft_keys') WHERE name = 'compromised'`).Scan(&n); err != nil {
		return fmt.Errorf("registry: inspect aircraft key schema: %w", err)
	}
	if n == 0 {
		if _, err := tx.ExecContext(ctx, `ALTER TABLE registry_aircraft_keys ADD COLUMN compromised INTEGER NOT NULL DEFAULT 0 CHECK (compromised IN (0, 1))`); err != nil {
			return fmt.Errorf("registry: add compromised to aircraft key schema: %w", err)
		}
	}
	return nil
}

// maxAircraftKeys bounds an aircraft's key history: far above any real
// number of rotations, and a bound on what clearing tries.
const maxAircraftKeys = 64

var _ ground.AircraftKeyHistory = (*Registry)(nil)

// RotateAircraftKey moves aircraft id to the signing key key and the NATS
// nkey nkey, both new: the new box holds both. The key it had is kept with
// the time it was replaced (see RetiredAircraftKeys); when compromised is
// set it is kept only to be refused, and clearing accepts nothing it
// signed, not even for flights already flown. The old nkey may still log in
// for a while after a plain rotation, so the old box can upload what it
// signed before (see RetiringNKeys); after a compromised one it is refused
// at once. Every flight of the aircraft whose credentials are still valid
// gets a new manifest naming the new key, told to the aircraft. Rotating to
// the key and nkey the aircraft has already changes nothing (changed
// false); no nkey is invalid; a key another aircraft has or had, or one
// this aircraft had before, and an nkey in use or in its grace, are
// conflicts; an unknown aircraft is not found.
func (r *Registry) RotateAircraftKey(ctx context.Context, id protocol.AircraftID, key crypto.PublicKey, nkey string, compromised bool) (a Aircraft, changed bool, err error) {
	if err := id.Validate(); err != nil {
		return a, false, invalid("%v", err)
	}
	if key.Purpose() != crypto.Aircraft {
		return a, false, invalid("aircraft %s: want an aircraft public key, got %v", id, key)
	}
	if err := key.Check(); err != nil {
		return a, false, invalid("aircraft %s: %v", id, err)
	}
	if nkey == "" {
		return a, false, invalid("aircraft %s: a key rotation needs the new nkey too: the box with the new key logs in to NATS with it", id)
	}
	if !nkeys.IsValidPublicUserKey(nkey) {
		return a, false, invalid("aircraft %s: nkey %q is not a NATS user public key (U…)", id, trunc(nkey))
	}
	var refs []flightRef
	var nkeyUntil time.Time
	exact := r.clock().UTC()
	now := exact.Truncate(time.Second)
	// The time of the rotation is kept in whole seconds, rounded up: what
	// the old box signed earlier in the rotation's second was signed before
	// it, and clearing must still take it.
	replacedAt := now
	if exact.After(now) {
		replacedAt = now.Add(time.Second)
	}
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		old, err := getAircraft(ctx, tx, id)
		if err != nil {
			return err
		}
		a = old
		if old.Key.Equal(key) && nkey == old.NKey {
			return nil
		}
		if old.Key.Equal(key) {
			return conflict("aircraft %s already signs with key %s: to change only the nkey, register a new key", id, key.ID())
		}
		if other, taken, err := aircraftByKey(ctx, tx, key); err != nil || taken {
			return orConflict(err, taken, "aircraft key %s is already registered for aircraft %s", key.ID(), other)
		}
		if other, had, err := retiredKeyOwner(ctx, tx, key); err != nil || had {
			return orConflict(err, had, "aircraft key %s was retired from aircraft %s and cannot be used again", key.ID(), other)
		}
		if other, taken, err := nkeyInUse(ctx, tx, nkey); err != nil || taken {
			return orConflict(err, taken, "nkey %s is aircraft %s's, now or until its grace after a rotation ends: give the new box a new nkey", trunc(nkey), other)
		}
		retired, err := retiredAircraftKeys(ctx, tx, id)
		if err != nil {
			return err
		}
		if len(retired) >= maxAircraftKeys {
			return invalid("aircraft %s has had %d keys, the limit (maxAircraftKeys)", id, len(retired)+1)
		}
		since := old.RegisteredAt
		if n := len(retired); n > 0 {
			since = retired[n-1].ReplacedAt
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO registry_aircraft_keys (aircraft, key, since, replaced_at, compromised) VALUES (?, ?, ?, ?, ?)`,
			string(id), keyBytes(old.Key), unix(since), unix(replacedAt), compromised); err != nil {
			return err
		}
		if !compromised {
			if nkeyUntil, err = retireNKey(ctx, tx, id, old.NKey, now); err != nil {
				return err
			}
		}
		a.Key, a.NKey = key, nkey
		if _, err := tx.ExecContext(ctx, `UPDATE registry_aircraft SET key = ?, nkey = ? WHERE id = ?`, keyBytes(a.Key), a.NKey, string(id)); err != nil {
			return err
		}
		changed = true
		refs, err = r.reissueForAircraft(ctx, tx, id, now)
		return err
	})
	if err != nil || !changed {
		return a, false, wrap(err, "registry: rotate key of aircraft %s", id)
	}
	r.log.Info("aircraft key rotated", "aircraft", id, "key", key.ID(), "compromised", compromised, "manifests", len(refs),
		"old_nkey_until", nkeyUntil)
	r.notify(refs...)
	if r.onAircraft != nil {
		r.onAircraft(ctx)
	}
	return a, true, nil
}

// reissueForAircraft builds a new manifest for every flight of aircraft id
// that has one and whose credentials are still valid at now.
func (r *Registry) reissueForAircraft(ctx context.Context, tx *sql.Tx, id protocol.AircraftID, now time.Time) ([]flightRef, error) {
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT f.id FROM registry_flights f JOIN registry_manifests m ON m.flight = f.id WHERE f.aircraft = ?`, string(id))
	if err != nil {
		return nil, err
	}
	var ids []protocol.FlightID
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			rows.Close()
			return nil, err
		}
		ids = append(ids, protocol.FlightID(f))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var refs []flightRef
	for _, f := range ids {
		if !now.Before(credentialEnd(f)) {
			continue
		}
		fl, err := getFlight(ctx, tx, f)
		if err != nil {
			return nil, err
		}
		if _, err := r.buildManifest(ctx, tx, fl); err != nil {
			return nil, err
		}
		refs = append(refs, flightRef{aircraft: id, flight: f})
	}
	return refs, nil
}

// RetiredAircraftKeys returns the keys aircraft a signed with before its
// current one, oldest first, each with when it was in use and whether it was
// retired as compromised. It implements
// ground.AircraftKeyHistory for clearing.
func (r *Registry) RetiredAircraftKeys(ctx context.Context, a protocol.AircraftID) ([]ground.RetiredKey, error) {
	out, err := retiredAircraftKeys(ctx, r.db, a)
	return out, wrap(err, "registry: retired keys of aircraft %s", a)
}

func retiredAircraftKeys(ctx context.Context, q querier, a protocol.AircraftID) ([]ground.RetiredKey, error) {
	rows, err := q.QueryContext(ctx, `SELECT key, since, replaced_at, compromised FROM registry_aircraft_keys WHERE aircraft = ? ORDER BY replaced_at, rowid LIMIT ?`,
		string(a), maxAircraftKeys+1)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ground.RetiredKey
	for rows.Next() {
		var kb []byte
		var since, replaced int64
		var compromised bool
		if err := rows.Scan(&kb, &since, &replaced, &compromised); err != nil {
			return nil, err
		}
		k, err := crypto.PublicKeyFromBytes(crypto.Aircraft, kb)
		if err != nil {
			return nil, fmt.Errorf("stored retired key of aircraft %s: %w", a, err)
		}
		out = append(out, ground.RetiredKey{Key: k, Since: fromUnix(since), ReplacedAt: fromUnix(replaced), Compromised: compromised})
	}
	return out, rows.Err()
}

// retiredKeyOwner returns the aircraft that once had key, if any.
func retiredKeyOwner(ctx context.Context, q querier, key crypto.PublicKey) (protocol.AircraftID, bool, error) {
	var id string
	err := q.QueryRowContext(ctx, `SELECT aircraft FROM registry_aircraft_keys WHERE key = ?`, keyBytes(key)).Scan(&id)
	if err == sql.ErrNoRows {
		return "", false, nil
	}
	return protocol.AircraftID(id), err == nil, err
}
