package registry

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nkeys"
)

// Aircraft is a registered aircraft.
type Aircraft struct {
	ID protocol.AircraftID
	// Key is the aircraft's signing key: its invoices and flight-close
	// reports verify under it. One key belongs to one aircraft.
	Key crypto.PublicKey
	// NKey is the aircraft's NATS user public nkey ("U…"). The embedded
	// NATS server lets the aircraft log in with it, limited to its own
	// subjects (protocol.AircraftPermissions); an aircraft without one
	// cannot connect unless the server is open (--nats-open).
	NKey         string
	RegisteredAt time.Time
}

// NATSIdentities returns every registered aircraft that has a NATS nkey,
// with that nkey, in aircraft order.
func (r *Registry) NATSIdentities(ctx context.Context) (map[protocol.AircraftID]string, error) {
	rows, err := r.db.QueryContext(ctx, `SELECT id, nkey FROM registry_aircraft WHERE nkey != '' ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("registry: list aircraft nkeys: %w", err)
	}
	defer rows.Close()
	out := map[protocol.AircraftID]string{}
	for rows.Next() {
		var id, nkey string
		if err := rows.Scan(&id, &nkey); err != nil {
			return nil, fmt.Errorf("registry: list aircraft nkeys: %w", err)
		}
		out[protocol.AircraftID(id)] = nkey
	}
	return out, rows.Err()
}

// RegisterAircraft registers an aircraft. Registering the same aircraft
// again with the same key and nkey is a no-op (created is false); with a
// different key or nkey, or with a key that another aircraft has or had, it
// is a conflict: a new key is RotateAircraftKey's (aircraftkeys.go).
func (r *Registry) RegisterAircraft(ctx context.Context, a Aircraft) (created bool, err error) {
	if err := a.ID.Validate(); err != nil {
		return false, invalid("%v", err)
	}
	if a.Key.Purpose() != crypto.Aircraft {
		return false, invalid("aircraft %s: want an aircraft public key, got %v", a.ID, a.Key)
	}
	if err := a.Key.Check(); err != nil {
		return false, invalid("aircraft %s: %v", a.ID, err)
	}
	if a.NKey != "" && !nkeys.IsValidPublicUserKey(a.NKey) {
		return false, invalid("aircraft %s: nkey %q is not a NATS user public key (U…)", a.ID, trunc(a.NKey))
	}
	a.RegisteredAt = r.now()
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		old, err := getAircraft(ctx, tx, a.ID)
		if err == nil {
			return orConflict(nil, !old.Key.Equal(a.Key) || old.NKey != a.NKey,
				"aircraft %s is already registered with another key or nkey (a new key: POST /v1/aircraft/%s/key)", a.ID, a.ID)
		}
		if ErrorCode(err) != CodeNotFound {
			return err
		}
		if other, taken, err := aircraftByKey(ctx, tx, a.Key); err != nil || taken {
			return orConflict(err, taken, "aircraft key %s is already registered for aircraft %s", a.Key.ID(), other)
		}
		if other, had, err := retiredKeyOwner(ctx, tx, a.Key); err != nil || had {
			return orConflict(err, had, "aircraft key %s was retired from aircraft %s and cannot be used again", a.Key.ID(), other)
		}
		created = true
		return insertAircraft(ctx, tx, a)
	})
	if err == nil && created {
		r.log.Info("aircraft registered", "aircraft", a.ID, "key", a.Key.ID())
		if r.onAircraft != nil {
			r.onAircraft(ctx)
		}
	}
	return created, wrap(err, "registry: register aircraft %s", a.ID)
}

// FlightSpec describes a flight to register.
type FlightSpec struct {
	Carrier  string    // IATA airline code, two letters or digits
	Number   string    // flight number: 1 to 4 digits and an optional letter
	Date     time.Time // scheduled departure date; only its UTC date counts
	Aircraft protocol.AircraftID
	Currency protocol.Currency // the selling currency; needs a limit table
	Catalog  []protocol.CatalogItem
	Caps     protocol.Caps // zero fields take the defaults (DefaultCaps)
}

// Flight is a registered flight as the back office sees it.
type Flight struct {
	ID          protocol.FlightID
	Aircraft    protocol.AircraftID
	Currency    protocol.Currency
	Catalog     []protocol.CatalogItem
	Caps        protocol.Caps
	Crew        []protocol.CrewMember
	Serial      uint64 // of the latest manifest; 0 before the first
	Credentials int    // live credentials
	Revoked     int    // revoked credentials
}

// RegisterFlight registers a flight. Registering it again with the same
// aircraft, currency, catalog and caps (defaults filled in) changes nothing
// and answers as before (created false); with anything else it is a
// conflict naming the flight id: changes go through UpdateFlight. The
// aircraft must be registered.
func (r *Registry) RegisterFlight(ctx context.Context, spec FlightSpec) (Flight, bool, error) {
	return r.putFlight(ctx, spec, false)
}

// putFlight registers a flight (update false: one already registered must
// be the same) or changes the catalog and caps of a registered one (update
// true). A registered flight's aircraft and currency cannot change, as
// credentials and manifests already name them.
func (r *Registry) putFlight(ctx context.Context, spec FlightSpec, update bool) (Flight, bool, error) {
	id, err := protocol.NewFlightID(spec.Carrier, spec.Number, spec.Date)
	if err != nil {
		return Flight{}, false, invalid("%v", err)
	}
	if err := spec.Currency.Validate(); err != nil {
		return Flight{}, false, invalid("%v", err)
	}
	if err := r.policy.Supports(spec.Currency); err != nil {
		return Flight{}, false, err
	}
	if err := validateCatalog(spec.Catalog, spec.Currency); err != nil {
		return Flight{}, false, err
	}
	caps, err := fillCaps(spec.Caps, spec.Currency)
	if err != nil {
		return Flight{}, false, err
	}
	created := false
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := getAircraft(ctx, tx, spec.Aircraft); err != nil {
			return err
		}
		old, err := getFlight(ctx, tx, id)
		switch {
		case err == nil && (old.aircraft != spec.Aircraft || old.currency != spec.Currency):
			return conflict("flight %s is registered with aircraft %s selling in %s; they cannot change", id, old.aircraft, old.currency)
		case err == nil && !update && !sameFlight(old, spec.Catalog, caps):
			return conflict("flight id %s is already registered with another catalog or caps; change it with PUT /v1/flights/%s", id, id)
		case err == nil && !update:
			return nil // the same again
		case err != nil && ErrorCode(err) != CodeNotFound:
			return err
		case err != nil && update:
			return err
		}
		created = err != nil
		row := flightRow{id: id, aircraft: spec.Aircraft, currency: spec.Currency, catalog: spec.Catalog, caps: caps}
		if err := upsertFlight(ctx, tx, row, r.now()); err != nil {
			return err
		}
		if _, issued, err := latestManifest(ctx, tx, id); err != nil || !issued || !update {
			return err
		}
		// Deltas carry no catalog or caps: a fresh manifest does.
		_, err = r.buildManifest(ctx, tx, row)
		return err
	})
	if err != nil {
		return Flight{}, false, wrap(err, "registry: register flight %s", id)
	}
	switch {
	case update:
		r.log.Info("flight updated", "flight", id, "aircraft", spec.Aircraft)
		r.notify(flightRef{aircraft: spec.Aircraft, flight: id})
	case created:
		r.log.Info("flight registered", "flight", id, "aircraft", spec.Aircraft)
	}
	f, err := r.FlightDetails(ctx, id)
	return f, created, err
}

// FlightDetails returns a registered flight with its crew (PIN hashes
// included: strip them before showing), latest manifest serial and
// credential counts.
func (r *Registry) FlightDetails(ctx context.Context, id protocol.FlightID) (Flight, error) {
	var f Flight
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		row, err := getFlight(ctx, tx, id)
		if err != nil {
			return err
		}
		f = Flight{ID: id, Aircraft: row.aircraft, Currency: row.currency, Catalog: row.catalog, Caps: row.caps}
		if f.Crew, err = getCrew(ctx, tx, id); err != nil {
			return err
		}
		m, ok, err := latestManifest(ctx, tx, id)
		if err != nil {
			return err
		}
		if ok {
			f.Serial = m.serial
		}
		total, live, err := countCredentials(ctx, tx, id)
		f.Credentials, f.Revoked = live, total-live
		return err
	})
	return f, wrap(err, "registry: flight %s", id)
}

// SetCrew replaces a flight's crew roster. PINs given in the clear are
// hashed with argon2id (Config.PINParams) and never stored; pre-hashed PINs
// are checked for form. The next delta of the flight's manifest carries the
// new roster (ManifestDelta.Crew), and the aircraft is told at once. A
// roster emptied cannot travel in a delta: when the flight already has a
// manifest, a fresh one is issued in the same transaction.
func (r *Registry) SetCrew(ctx context.Context, f protocol.FlightID, crew []CrewInput) error {
	if err := validateCrew(crew); err != nil {
		return err
	}
	members := make([]protocol.CrewMember, 0, len(crew))
	for _, m := range crew {
		hash := m.PINHash
		if m.PIN != "" {
			h, err := crypto.HashPIN(m.PIN, r.pin, r.randReader())
			if err != nil {
				return invalid("crew member %s: %v", m.ID, err)
			}
			hash = h
		}
		members = append(members, protocol.CrewMember{ID: m.ID, Role: m.Role, PINHash: hash})
	}
	reissued := false
	var ref flightRef
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		fl, err := getFlight(ctx, tx, f)
		if err != nil {
			return err
		}
		ref = flightRef{aircraft: fl.aircraft, flight: f}
		if err := replaceCrew(ctx, tx, f, members); err != nil {
			return err
		}
		_, issued, err := latestManifest(ctx, tx, f)
		if err != nil || !issued || len(members) > 0 {
			return err
		}
		reissued = true
		_, err = r.buildManifest(ctx, tx, fl)
		return err
	})
	if err == nil {
		r.log.Info("crew roster set", "flight", f, "crew", len(members), "manifest_reissued", reissued)
		r.notify(ref)
	}
	return wrap(err, "registry: set crew of %s", f)
}

// flightFor loads flight f and checks it is flown by aircraft a: what an
// aircraft's sync request must satisfy.
func flightFor(ctx context.Context, q querier, a protocol.AircraftID, f protocol.FlightID) (flightRow, error) {
	fl, err := getFlight(ctx, q, f)
	if err != nil {
		return fl, err
	}
	if fl.aircraft != a {
		return fl, Errorf(CodeForbidden, "aircraft %s does not fly %s", a, f)
	}
	return fl, nil
}
