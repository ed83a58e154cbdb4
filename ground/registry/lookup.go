package registry

import (
	"context"
	"database/sql"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/protocol"
)

// LookupFlight returns flight f's aircraft and currency from the registry
// tables in db, for a reader without a Registry (ground report has no
// issuer key): an *Error with CodeNotFound, which matches
// ground.ErrNotFound, when no flight is registered with that id. It creates
// the registry's tables if they are missing, as New does.
func LookupFlight(ctx context.Context, db *sql.DB, f protocol.FlightID) (ground.FlightInfo, error) {
	if err := createSchema(ctx, db); err != nil {
		return ground.FlightInfo{}, err
	}
	fl, err := getFlight(ctx, db, f)
	if err != nil {
		return ground.FlightInfo{}, wrap(err, "registry: flight %s", f)
	}
	return ground.FlightInfo{Flight: fl.id, Aircraft: fl.aircraft, Currency: fl.currency}, nil
}
