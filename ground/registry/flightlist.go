package registry

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/airtab/airtab/protocol"
)

// Flight changes and the back office's flight and aircraft listings.

// MaxListed bounds the flights or aircraft one listing returns.
const MaxListed = 500

// UpdateFlight changes a registered flight's catalog and caps (the id, the
// aircraft and the currency must match what is registered). When the
// flight already has a manifest, a fresh one is issued in the same
// transaction and the aircraft is told: deltas carry no catalog or caps.
// Refusing a change to a flight that has closed is the caller's job: the
// registry does not know which flights closed (ground/clearing does).
func (r *Registry) UpdateFlight(ctx context.Context, spec FlightSpec) (Flight, error) {
	f, _, err := r.putFlight(ctx, spec, true)
	return f, err
}

// sameFlight reports whether a registered flight has exactly this catalog
// and these caps (defaults filled in).
func sameFlight(old flightRow, catalog []protocol.CatalogItem, caps protocol.Caps) bool {
	return old.caps == caps && slices.Equal(old.catalog, catalog)
}

// FlightFilter selects flights to list: zero fields select everything.
type FlightFilter struct {
	Date     time.Time // the flight date (UTC day)
	Aircraft protocol.AircraftID
}

// FlightSummary is one flight in a listing.
type FlightSummary struct {
	ID          protocol.FlightID
	Aircraft    protocol.AircraftID
	Currency    protocol.Currency
	Serial      uint64 // of the latest manifest; 0 before the first
	Credentials int    // live
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// ListFlights lists registered flights matching filter, by date then id,
// at most limit (1 to MaxListed); more reports whether more matched.
func (r *Registry) ListFlights(ctx context.Context, filter FlightFilter, limit int) (out []FlightSummary, more bool, err error) {
	if limit < 1 || limit > MaxListed {
		return nil, false, invalid("limit %d: want 1 to %d", limit, MaxListed)
	}
	// Flight ids end with the date (CC123-2026-11-21): a suffix match.
	date := "%"
	if !filter.Date.IsZero() {
		date = "%-" + filter.Date.UTC().Format(time.DateOnly)
	}
	rows, err := r.db.QueryContext(ctx, `SELECT f.id, f.aircraft, f.currency, f.created_at, f.updated_at,
			coalesce((SELECT max(serial) FROM registry_manifests m WHERE m.flight = f.id), 0),
			(SELECT count(*) FROM registry_credentials c WHERE c.flight = f.id AND c.revoked_at IS NULL)
		FROM registry_flights f
		WHERE f.id LIKE ?1 AND (?2 = '' OR f.aircraft = ?2)
		ORDER BY substr(f.id, length(f.id) - 9), f.id LIMIT ?3`, date, string(filter.Aircraft), limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("registry: list flights: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var s FlightSummary
		var id, aircraft, currency string
		var created, updated int64
		if err := rows.Scan(&id, &aircraft, &currency, &created, &updated, &s.Serial, &s.Credentials); err != nil {
			return nil, false, fmt.Errorf("registry: list flights: %w", err)
		}
		s.ID, s.Aircraft, s.Currency = protocol.FlightID(id), protocol.AircraftID(aircraft), protocol.Currency(currency)
		s.CreatedAt, s.UpdatedAt = fromUnix(created), fromUnix(updated)
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("registry: list flights: %w", err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// AircraftDetails returns a registered aircraft.
func (r *Registry) AircraftDetails(ctx context.Context, id protocol.AircraftID) (Aircraft, error) {
	a, err := getAircraft(ctx, r.db, id)
	return a, wrap(err, "registry: aircraft %s", id)
}

// ListAircraft lists registered aircraft by id, at most limit (1 to
// MaxListed); more reports whether there are more.
func (r *Registry) ListAircraft(ctx context.Context, limit int) (out []Aircraft, more bool, err error) {
	if limit < 1 || limit > MaxListed {
		return nil, false, invalid("limit %d: want 1 to %d", limit, MaxListed)
	}
	rows, err := r.db.QueryContext(ctx, `SELECT id FROM registry_aircraft ORDER BY id LIMIT ?`, limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("registry: list aircraft: %w", err)
	}
	var ids []protocol.AircraftID
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, false, fmt.Errorf("registry: list aircraft: %w", err)
		}
		ids = append(ids, protocol.AircraftID(id))
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("registry: list aircraft: %w", err)
	}
	if len(ids) > limit {
		ids, more = ids[:limit], true
	}
	for _, id := range ids {
		// One connection: each aircraft is read after the listing closed.
		a, err := getAircraft(ctx, r.db, id)
		if ErrorCode(err) == CodeNotFound {
			continue // removed in between
		}
		if err != nil {
			return nil, false, fmt.Errorf("registry: list aircraft: %w", err)
		}
		out = append(out, a)
	}
	return out, more, nil
}
