package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// Revocations. A revocation has a reason (protocol.DenyReason, SPEC §9.2)
// that says what it blocks besides the credential itself:
//
//	DenyRevoked           the passenger may not opt in to that flight again
//	DenyDeviceLost        the device key may not opt in (or enroll devices)
//	                      anywhere; every flight where it holds a credential
//	                      denies the key
//	DenyFraudSuspected    the passenger may not opt in anywhere; every flight
//	                      where they hold a credential denies the passenger
//	DenyPassengerRequest  nothing more: the passenger may opt in again
//
// A block lasts until the back office reinstates the revocation (audited:
// who asked is in the note, when in reinstated_at), which makes the
// credential live again when the passenger holds no other for the flight.

// revocationSchema holds the registry's revocation tables. The deny entries
// a flight's manifest and deltas have published are keyed by device too
// (deny entry field 4), so they moved from registry_published_deny to
// registry_published_denials; dropping the old table only makes the next
// delta publish every entry again, which a cabin server applies as a no-op.
const revocationSchema = `
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
`

// MaxNoteLen bounds a revocation's or reinstatement's note, in bytes.
const MaxNoteLen = 200

// Revocation is a credential's open revocation.
type Revocation struct {
	Credential protocol.ID
	Passenger  protocol.ID
	Device     crypto.PublicKey
	Flight     protocol.FlightID
	Reason     protocol.DenyReason
	Note       string
	RevokedAt  time.Time
}

// ParseRevokeReason maps the API's reason names to deny reasons: "revoked"
// (also ""), "device_lost", "fraud_suspected", "passenger_request".
func ParseRevokeReason(s string) (protocol.DenyReason, error) {
	switch s {
	case "", "revoked":
		return protocol.DenyRevoked, nil
	case "device_lost":
		return protocol.DenyDeviceLost, nil
	case "fraud_suspected":
		return protocol.DenyFraudSuspected, nil
	case "passenger_request":
		return protocol.DenyPassengerRequest, nil
	}
	return 0, invalid("reason %q: want revoked, device_lost, fraud_suspected or passenger_request", trunc(s))
}

// reasonName is the API name of a revocation reason.
func reasonName(r protocol.DenyReason) string {
	switch r {
	case protocol.DenyRevoked:
		return "revoked"
	case protocol.DenyDeviceLost:
		return "device_lost"
	case protocol.DenyFraudSuspected:
		return "fraud_suspected"
	case protocol.DenyPassengerRequest:
		return "passenger_request"
	}
	return fmt.Sprintf("reason %d", r)
}

// Revoke revokes a credential for the default reason (DenyRevoked); see
// RevokeFor.
func (r *Registry) Revoke(ctx context.Context, id protocol.ID) error {
	return r.RevokeFor(ctx, id, protocol.DenyRevoked, "")
}

// RevokeFor revokes a credential for reason, with an optional note for the
// audit trail: manifests and deltas built from now on deny it (and, for a
// lost device or suspected fraud, the device key or the passenger on every
// flight where they hold a credential), and the opt-ins the reason blocks
// answer CodeRevoked until ReinstateCredential. Revoking again for the same
// reason is a no-op; for another reason it changes the open revocation's
// reason.
func (r *Registry) RevokeFor(ctx context.Context, id protocol.ID, reason protocol.DenyReason, note string) error {
	if reason < protocol.DenyRevoked || reason > protocol.DenyPassengerRequest {
		return invalid("revocation reason %d: want 2 to 5 (SPEC §9.2)", reason)
	}
	if len(note) > MaxNoteLen {
		return invalid("note of %d bytes: want at most %d", len(note), MaxNoteLen)
	}
	var (
		cred    IssuedCredential
		changed bool
		ref     flightRef
	)
	now := r.now()
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if cred, err = getCredential(ctx, tx, id); err != nil {
			return err
		}
		fl, err := getFlight(ctx, tx, cred.Signed.Body.Flight)
		if err != nil {
			return err
		}
		ref = flightRef{aircraft: fl.aircraft, flight: fl.id}
		if _, err := revokeCredential(ctx, tx, id, now); err != nil {
			return err
		}
		changed, err = openRevocation(ctx, tx, cred.Signed.Body, reason, note, now)
		return err
	})
	if err != nil {
		return wrap(err, "registry: revoke credential %s", id)
	}
	if changed {
		b := cred.Signed.Body
		r.log.Warn("credential revoked", "credential", id, "passenger", b.Passenger, "device", b.Device.ID(),
			"flight", b.Flight, "reason", reasonName(reason), "note", note)
		r.notifyRevocation(ctx, reason, b.Passenger, ref)
	}
	return nil
}

// ReinstateCredential lifts a credential's open revocation (audited with
// note, which must say who asked and why): the opt-ins it blocked are
// allowed again, and the credential is live again unless the passenger
// holds another one for its flight. Reinstating a live credential is a
// no-op.
func (r *Registry) ReinstateCredential(ctx context.Context, id protocol.ID, note string) error {
	switch {
	case note == "":
		return invalid("note: say who asked for the reinstatement and why (kept for the audit)")
	case len(note) > MaxNoteLen:
		return invalid("note of %d bytes: want at most %d", len(note), MaxNoteLen)
	}
	var (
		cred   IssuedCredential
		rev    Revocation
		open   bool
		relive bool
		ref    flightRef
	)
	now := r.now()
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		var err error
		if cred, err = getCredential(ctx, tx, id); err != nil {
			return err
		}
		b := cred.Signed.Body
		fl, err := getFlight(ctx, tx, b.Flight)
		if err != nil {
			return err
		}
		ref = flightRef{aircraft: fl.aircraft, flight: fl.id}
		if cred.RevokedAt.IsZero() {
			return nil
		}
		if rev, open, err = getOpenRevocation(ctx, tx, id); err != nil {
			return err
		}
		if open {
			if _, err := tx.ExecContext(ctx, `UPDATE registry_revocations SET reinstated_at = ?, reinstate_note = ?
				WHERE credential = ? AND reinstated_at IS NULL`, unix(now), note, idBytes(id)); err != nil {
				return err
			}
		}
		if _, held, err := liveCredential(ctx, tx, b.Passenger, b.Flight); err != nil || held {
			return err
		}
		relive = true
		_, err = tx.ExecContext(ctx, `UPDATE registry_credentials SET revoked_at = NULL WHERE id = ?`, idBytes(id))
		return err
	})
	if err != nil {
		return wrap(err, "registry: reinstate credential %s", id)
	}
	if open || relive {
		b := cred.Signed.Body
		r.log.Warn("credential reinstated", "credential", id, "passenger", b.Passenger, "flight", b.Flight,
			"revoked_for", reasonName(rev.Reason), "live_again", relive, "note", note)
		r.notifyRevocation(ctx, rev.Reason, b.Passenger, ref)
	}
	return nil
}

// notifyRevocation tells the aircraft whose manifests a revocation (or its
// lifting) changes: every flight of the passenger for a lost device or
// suspected fraud, the credential's flight otherwise.
func (r *Registry) notifyRevocation(ctx context.Context, reason protocol.DenyReason, passenger protocol.ID, ref flightRef) {
	if reason == protocol.DenyDeviceLost || reason == protocol.DenyFraudSuspected {
		r.notifyPassenger(ctx, passenger)
		return
	}
	r.notify(ref)
}

// CheckDevice returns a CodeRevoked error when device was reported lost
// (an open DenyDeviceLost revocation): a request signed by it may not opt
// in or enroll another device.
func (r *Registry) CheckDevice(ctx context.Context, device crypto.PublicKey) error {
	rev, found, err := blockingRevocation(ctx, r.db, `reason = 3 AND device = ?`, keyBytes(device))
	if err != nil {
		return wrap(err, "registry: check device %s", device.ID())
	}
	if found {
		return revokedError(rev)
	}
	return nil
}

// checkOptIn returns a CodeRevoked error when an open revocation blocks the
// passenger's opt-in to flight f with device: the device reported lost, the
// passenger suspended for suspected fraud, or a credential of theirs for f
// revoked (reason DenyRevoked).
func checkOptIn(ctx context.Context, q querier, passenger protocol.ID, device crypto.PublicKey, f protocol.FlightID) error {
	rev, found, err := blockingRevocation(ctx, q,
		`(reason = 3 AND device = ?1) OR (reason = 4 AND passenger = ?2) OR (reason = 2 AND passenger = ?2 AND flight = ?3)`,
		keyBytes(device), idBytes(passenger), string(f))
	if err != nil || !found {
		return err
	}
	return revokedError(rev)
}

// revokedError says which revocation blocks an opt-in and what lifts it.
func revokedError(rev Revocation) *Error {
	at := rev.RevokedAt.Format(time.RFC3339)
	switch rev.Reason {
	case protocol.DenyDeviceLost:
		return Errorf(CodeRevoked, "device key %s was reported lost at %s (credential %s): it may not opt in again; enroll a new device",
			rev.Device.ID(), at, rev.Credential)
	case protocol.DenyFraudSuspected:
		return Errorf(CodeRevoked, "passenger %s is suspended for suspected fraud since %s (credential %s): no opt-in until the back office reinstates it",
			rev.Passenger, at, rev.Credential)
	}
	return Errorf(CodeRevoked, "credential %s for %s was revoked at %s: no new credential for this flight until the back office reinstates it",
		rev.Credential, rev.Flight, at)
}

const revocationColumns = `credential, passenger, device, flight, reason, note, revoked_at`

func scanRevocation(s interface{ Scan(...any) error }) (Revocation, error) {
	var (
		cb, pb, db []byte
		rev        Revocation
		flight     string
		at         int64
	)
	if err := s.Scan(&cb, &pb, &db, &flight, &rev.Reason, &rev.Note, &at); err != nil {
		return rev, err
	}
	var err error
	if rev.Credential, err = scanID(cb); err != nil {
		return rev, err
	}
	if rev.Passenger, err = scanID(pb); err != nil {
		return rev, err
	}
	if rev.Device, err = crypto.PublicKeyFromBytes(crypto.Device, db); err != nil {
		return rev, fmt.Errorf("registry: stored revocation device key: %w", err)
	}
	rev.Flight, rev.RevokedAt = protocol.FlightID(flight), fromUnix(at)
	return rev, nil
}

// blockingRevocation returns the most recent open revocation matching where.
func blockingRevocation(ctx context.Context, q querier, where string, args ...any) (Revocation, bool, error) {
	rev, err := scanRevocation(q.QueryRowContext(ctx, `SELECT `+revocationColumns+` FROM registry_revocations
		WHERE reinstated_at IS NULL AND (`+where+`) ORDER BY revoked_at DESC, rowid DESC LIMIT 1`, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return rev, false, nil
	}
	return rev, err == nil, err
}

func getOpenRevocation(ctx context.Context, q querier, credential protocol.ID) (Revocation, bool, error) {
	return blockingRevocation(ctx, q, `credential = ?`, idBytes(credential))
}

// openRevocation records credential c's revocation for reason, or changes
// the reason of its open one. It reports whether anything changed.
func openRevocation(ctx context.Context, q querier, c protocol.Credential, reason protocol.DenyReason, note string, at time.Time) (bool, error) {
	old, open, err := getOpenRevocation(ctx, q, c.ID)
	switch {
	case err != nil:
		return false, err
	case open && old.Reason == reason:
		return false, nil
	case open:
		_, err := q.ExecContext(ctx, `UPDATE registry_revocations SET reason = ?, note = ? WHERE credential = ? AND reinstated_at IS NULL`,
			uint(reason), note, idBytes(c.ID))
		return err == nil, err
	}
	_, err = q.ExecContext(ctx, `INSERT INTO registry_revocations (credential, passenger, device, flight, reason, note, revoked_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, idBytes(c.ID), idBytes(c.Passenger), c.Device.Bytes(), string(c.Flight), uint(reason), note, unix(at))
	return err == nil, err
}

// wantedDeny returns the deny list a flight should carry now: every revoked
// credential of the flight (with its revocation's reason), every device
// reported lost and every passenger suspended for suspected fraud that
// holds a credential for it, and every passenger holding one who has open
// arrears.
func wantedDeny(ctx context.Context, q querier, f protocol.FlightID) ([]protocol.DenyEntry, error) {
	var out []protocol.DenyEntry
	add := func(query string, scan func(b []byte, reason protocol.DenyReason) (protocol.DenyEntry, error)) error {
		rows, err := q.QueryContext(ctx, query, string(f), protocol.MaxDenyEntries+1)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b []byte
			var reason protocol.DenyReason
			if err := rows.Scan(&b, &reason); err != nil {
				return err
			}
			e, err := scan(b, reason)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	}
	byID := func(set func(*protocol.DenyEntry, protocol.ID)) func([]byte, protocol.DenyReason) (protocol.DenyEntry, error) {
		return func(b []byte, reason protocol.DenyReason) (protocol.DenyEntry, error) {
			id, err := scanID(b)
			e := protocol.DenyEntry{Reason: reason}
			set(&e, id)
			return e, err
		}
	}
	byDevice := func(b []byte, reason protocol.DenyReason) (protocol.DenyEntry, error) {
		k, err := crypto.PublicKeyFromBytes(crypto.Device, b)
		return protocol.DenyEntry{Reason: reason, Device: protocol.DeviceKey{PublicKey: k}}, err
	}
	queries := []struct {
		query string
		scan  func([]byte, protocol.DenyReason) (protocol.DenyEntry, error)
	}{
		{`SELECT c.id, coalesce(r.reason, 2) FROM registry_credentials c
			LEFT JOIN registry_revocations r ON r.credential = c.id AND r.reinstated_at IS NULL
			WHERE c.flight = ? AND c.revoked_at IS NOT NULL LIMIT ?`,
			byID(func(e *protocol.DenyEntry, id protocol.ID) { e.Credential = id })},
		{`SELECT DISTINCT r.device, 3 FROM registry_revocations r JOIN registry_credentials c ON c.device = r.device
			WHERE c.flight = ? AND r.reason = 3 AND r.reinstated_at IS NULL LIMIT ?`, byDevice},
		{`SELECT DISTINCT r.passenger, 4 FROM registry_revocations r JOIN registry_credentials c ON c.passenger = r.passenger
			WHERE c.flight = ? AND r.reason = 4 AND r.reinstated_at IS NULL LIMIT ?`,
			byID(func(e *protocol.DenyEntry, id protocol.ID) { e.Passenger = id })},
		{`SELECT DISTINCT c.passenger, 1 FROM registry_credentials c
			JOIN registry_arrears a ON a.passenger = c.passenger AND a.cleared_at IS NULL
			WHERE c.flight = ? LIMIT ?`,
			byID(func(e *protocol.DenyEntry, id protocol.ID) { e.Passenger = id })},
	}
	for _, qq := range queries {
		if err := add(qq.query, qq.scan); err != nil {
			return nil, err
		}
	}
	if len(out) > protocol.MaxDenyEntries {
		return nil, fmt.Errorf("registry: flight %s: deny list over the limit of %d entries", f, protocol.MaxDenyEntries)
	}
	sortDeny(out)
	return out, nil
}

// denyDeviceBytes is how a deny entry's device is stored: its 32 bytes, or
// none.
func denyDeviceBytes(e protocol.DenyEntry) []byte {
	if e.Device.IsZero() {
		return []byte{}
	}
	return e.Device.Bytes()
}

func publishDeny(ctx context.Context, q querier, f protocol.FlightID, serial uint64, add, lift []protocol.DenyEntry) error {
	for _, e := range add {
		if _, err := q.ExecContext(ctx, `INSERT INTO registry_published_denials (flight, serial, passenger, credential, device, reason)
			VALUES (?, ?, ?, ?, ?, ?)`, string(f), serial, idBytes(e.Passenger), idBytes(e.Credential), denyDeviceBytes(e), uint(e.Reason)); err != nil {
			return err
		}
	}
	for _, e := range lift {
		if _, err := q.ExecContext(ctx, `DELETE FROM registry_published_denials
			WHERE flight = ? AND serial = ? AND passenger = ? AND credential = ? AND device = ? AND reason = ?`,
			string(f), serial, idBytes(e.Passenger), idBytes(e.Credential), denyDeviceBytes(e), uint(e.Reason)); err != nil {
			return err
		}
	}
	return nil
}

func publishedDeny(ctx context.Context, q querier, f protocol.FlightID, serial uint64) ([]protocol.DenyEntry, error) {
	rows, err := q.QueryContext(ctx, `SELECT passenger, credential, device, reason FROM registry_published_denials WHERE flight = ? AND serial = ?`,
		string(f), serial)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []protocol.DenyEntry
	for rows.Next() {
		var pb, cb, db []byte
		var e protocol.DenyEntry
		if err := rows.Scan(&pb, &cb, &db, &e.Reason); err != nil {
			return nil, err
		}
		if e.Passenger, err = scanID(pb); err != nil {
			return nil, err
		}
		if e.Credential, err = scanID(cb); err != nil {
			return nil, err
		}
		if len(db) > 0 {
			k, err := crypto.PublicKeyFromBytes(crypto.Device, db)
			if err != nil {
				return nil, fmt.Errorf("registry: published deny entry device: %w", err)
			}
			e.Device = protocol.DeviceKey{PublicKey: k}
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
