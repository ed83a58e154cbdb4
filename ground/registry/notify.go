package registry

import (
	"context"
	"fmt"

	"github.com/airtab/airtab/ground/ledger"

	"github.com/airtab/airtab/protocol"
)

// Manifest change notices. Whenever something a flight's manifest carries
// changes (a credential issued or revoked, the deny list, the roster, the
// catalog or caps, a new manifest), the registry tells its notifier after
// the change is committed, so ground can tell the aircraft at once
// (natsvc.Notifier publishes protocol.NoticeSubject). The aircraft then
// pulls the delta or the new manifest; polling stays the fallback, so a
// notice lost on the way costs time, never correctness.

// Notifier is told that flight f, flown by aircraft a, has changes to pull.
// It must not block: it is called on the request's goroutine after the
// commit.
type Notifier func(a protocol.AircraftID, f protocol.FlightID)

// SetNotifier sets the notifier (nil for none). Safe to call while the
// registry is in use: ground sets it once NATS is up.
func (r *Registry) SetNotifier(n Notifier) {
	if n == nil {
		r.notifier.Store(nil)
		return
	}
	r.notifier.Store(&n)
}

// notify tells the notifier about each flight, if there is one.
func (r *Registry) notify(flights ...flightRef) {
	n := r.notifier.Load()
	if n == nil {
		return
	}
	for _, f := range flights {
		(*n)(f.aircraft, f.flight)
	}
}

// flightRef names a flight and the aircraft flying it.
type flightRef struct {
	aircraft protocol.AircraftID
	flight   protocol.FlightID
}

// notifyPassenger tells the notifier about every flight the passenger holds
// a credential for whose credentials are still valid: their deny lists
// change with the passenger's arrears.
func (r *Registry) notifyPassenger(ctx context.Context, passenger protocol.ID) {
	if r.notifier.Load() == nil {
		return
	}
	flights, err := passengerFlights(ctx, r.db, passenger, r.now())
	if err != nil {
		r.log.Warn("manifest change notices not sent; aircraft will see the change at their next sync", "passenger", passenger, "err", err)
		return
	}
	r.notify(flights...)
}

// FlightClosedFunc reports whether the close report of flight f is in,
// reading through q (the registry's own transaction: with a one-connection
// pool it must not open another). Ground clearing knows which flights
// closed (clearing.FlightClosed); the registry asks it so that a closed
// flight takes no new wallet hold.
type FlightClosedFunc func(ctx context.Context, q ledger.Querier, f protocol.FlightID) (bool, error)

// SetFlightClosed sets how the registry learns that a flight closed (nil:
// no flight counts as closed). Safe to call while the registry is in use:
// ground sets it once clearing is up. Once it is set, OptIn refuses a
// closed flight and RaiseWalletLimits skips the credentials of one.
func (r *Registry) SetFlightClosed(fn FlightClosedFunc) {
	if fn == nil {
		r.flightClosed.Store(nil)
		return
	}
	r.flightClosed.Store(&fn)
}

// isFlightClosed reports whether flight f closed, as the FlightClosedFunc
// says; false when none is set.
func (r *Registry) isFlightClosed(ctx context.Context, q ledger.Querier, f protocol.FlightID) (bool, error) {
	fn := r.flightClosed.Load()
	if fn == nil {
		return false, nil
	}
	closed, err := (*fn)(ctx, q, f)
	if err != nil {
		return false, fmt.Errorf("is flight %s closed: %w", f, err)
	}
	return closed, nil
}
