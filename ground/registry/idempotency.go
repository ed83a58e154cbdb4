package registry

import (
	"context"

	"github.com/airtab/airtab/crypto"
)

// ExistingRegistration is the idempotency rule of registration, whose key is
// the device key: it returns the passenger already registered with device
// when the external reference is the same too (registering again answers
// the original account), a conflict naming the key when it differs, and
// found false when the key is not registered.
func (r *Registry) ExistingRegistration(ctx context.Context, device crypto.PublicKey, externalRef string) (p Passenger, found bool, err error) {
	owner, taken, err := deviceOwner(ctx, r.db, device)
	if err != nil || !taken {
		return Passenger{}, false, wrap(err, "registry: registration of %s", device.ID())
	}
	row, err := getPassenger(ctx, r.db, owner)
	if err != nil {
		return Passenger{}, false, wrap(err, "registry: registration of %s", device.ID())
	}
	if row.ref != externalRef {
		return Passenger{}, false, conflict("device key %s is already registered with another external reference; the first registration stands", device.ID())
	}
	p, err = r.Passenger(ctx, owner)
	return p, err == nil, err
}
