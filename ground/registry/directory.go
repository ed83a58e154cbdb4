package registry

import (
	"context"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/protocol"
)

// The ground.Directory methods: what clearing reads. Lookups of unknown
// things return an *Error with CodeNotFound, which matches ground.ErrNotFound.
// MarkArrears and ClearArrears are in passengers.go.

// AircraftKey returns the signing key of a registered aircraft.
func (r *Registry) AircraftKey(ctx context.Context, a protocol.AircraftID) (crypto.PublicKey, error) {
	ac, err := getAircraft(ctx, r.reads, a)
	return ac.Key, wrap(err, "registry: aircraft key of %s", a)
}

// Flight returns a registered flight's aircraft and currency.
func (r *Registry) Flight(ctx context.Context, f protocol.FlightID) (ground.FlightInfo, error) {
	fl, err := getFlight(ctx, r.reads, f)
	if err != nil {
		return ground.FlightInfo{}, wrap(err, "registry: flight %s", f)
	}
	return ground.FlightInfo{Flight: fl.id, Aircraft: fl.aircraft, Currency: fl.currency}, nil
}

// IssuerTrust returns a new trust list of the issuer keys credentials may be
// signed with: the same keys every manifest carries.
func (r *Registry) IssuerTrust(context.Context) (*crypto.TrustList, error) {
	return crypto.NewTrustList(r.trust...)
}

// Credential returns a credential ground issued, revoked or not: clearing
// needs the ones revoked after a sale too.
func (r *Registry) Credential(ctx context.Context, id protocol.ID) (*protocol.SignedCredential, error) {
	ic, err := getCredential(ctx, r.reads, id)
	return ic.Signed, wrap(err, "registry: credential %s", id)
}

// Funding returns the passenger's funding source; a passenger without one
// is not found.
func (r *Registry) Funding(ctx context.Context, passenger protocol.ID) (ground.FundingSource, error) {
	p, err := getPassenger(ctx, r.reads, passenger)
	if err != nil {
		return ground.FundingSource{}, wrap(err, "registry: funding of %s", passenger)
	}
	if p.funding == nil {
		return ground.FundingSource{}, notFound("passenger %s has no funding source", passenger)
	}
	return *p.funding, nil
}
