package registry

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/protocol"
)

// maxListed bounds each list in a Passenger view, and ListArrears.
const maxListed = 50

// MaxArrearsListed is the most entries ListArrears returns at once.
const MaxArrearsListed = 1000

// Passenger is a registered passenger as the passenger and the back office
// see them. The id is pseudonymous; the only other identifying datum is the
// optional opaque external reference.
type Passenger struct {
	ID           protocol.ID
	ExternalRef  string
	Score        int
	Funding      *ground.FundingSource // nil until one is linked
	Devices      []crypto.PublicKey
	Arrears      []Arrears          // open ones, oldest first, at most 50
	Credentials  []IssuedCredential // newest first, at most 50
	ScoreHistory []ScoreEvent       // newest first, at most 50
	CreatedAt    time.Time
}

// CreatePassenger registers a new passenger with a fresh pseudonymous id,
// their first device key and an optional external reference, and scores
// them. The caller has checked that the requester holds the device's private
// key. A device key or external reference already registered is a conflict
// and writes nothing.
func (r *Registry) CreatePassenger(ctx context.Context, device crypto.PublicKey, externalRef string) (Passenger, error) {
	if device.Purpose() != crypto.Device {
		return Passenger{}, invalid("want a device public key, got %v", device)
	}
	if err := device.Check(); err != nil {
		return Passenger{}, invalid("device key: %v", err)
	}
	if err := validateExternalRef(externalRef); err != nil {
		return Passenger{}, err
	}
	id := r.newID()
	score, err := r.scorer.Score(ctx, Applicant{Passenger: id, Device: device, ExternalRef: externalRef})
	if err != nil {
		return Passenger{}, wrap(err, "registry: score passenger")
	}
	if score < MinScore || score > MaxScore {
		return Passenger{}, fmt.Errorf("registry: scorer returned %d, outside %d..%d", score, MinScore, MaxScore)
	}
	now := r.now()
	err = r.inTx(ctx, func(tx *sql.Tx) error {
		if _, taken, err := deviceOwner(ctx, tx, device); err != nil || taken {
			return orConflict(err, taken, "device key %s is already enrolled", device.ID())
		}
		if externalRef != "" {
			if taken, err := externalRefTaken(ctx, tx, externalRef); err != nil || taken {
				return orConflict(err, taken, "external reference %q is already registered", externalRef)
			}
		}
		if err := insertPassenger(ctx, tx, passengerRow{id: id, ref: externalRef, score: score, createdAt: now}); err != nil {
			return err
		}
		if err := insertDevice(ctx, tx, device, id, now); err != nil {
			return err
		}
		return recordScore(ctx, tx, id, score, score, "initial", now)
	})
	if err != nil {
		return Passenger{}, wrap(err, "registry: create passenger")
	}
	r.log.Info("passenger registered", "passenger", id, "score", score, "device", device.ID())
	return r.Passenger(ctx, id)
}

// orConflict returns err if it is set, else a conflict error when bad.
func orConflict(err error, bad bool, format string, args ...any) error {
	if err != nil {
		return err
	}
	if bad {
		return conflict(format, args...)
	}
	return nil
}

// EnrollDevice adds a device key to a passenger (a new phone). Enrolling a
// key the passenger already has is a no-op; a key enrolled for another
// passenger is a conflict; a passenger holds at most MaxDevicesPerPassenger.
func (r *Registry) EnrollDevice(ctx context.Context, passenger protocol.ID, device crypto.PublicKey) error {
	if device.Purpose() != crypto.Device {
		return invalid("want a device public key, got %v", device)
	}
	if err := device.Check(); err != nil {
		return invalid("device key: %v", err)
	}
	now := r.now()
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := getPassenger(ctx, tx, passenger); err != nil {
			return err
		}
		owner, taken, err := deviceOwner(ctx, tx, device)
		if err != nil || owner == passenger && taken {
			return err
		}
		if taken {
			return conflict("device key %s is already enrolled for another passenger", device.ID())
		}
		devs, err := devicesWhere(ctx, tx, "passenger = ?", idBytes(passenger), MaxDevicesPerPassenger)
		if err != nil {
			return err
		}
		if len(devs) >= MaxDevicesPerPassenger {
			return conflict("passenger already has %d device keys, the limit", MaxDevicesPerPassenger)
		}
		return insertDevice(ctx, tx, device, passenger, now)
	})
	return wrap(err, "registry: enroll device for %s", passenger)
}

// DevicesByKeyID returns the enrolled device keys with key id kid (ids may
// collide, so there may be more than one), for request authentication.
func (r *Registry) DevicesByKeyID(ctx context.Context, kid crypto.KeyID) ([]Device, error) {
	devs, err := devicesWhere(ctx, r.db, "key_id = ?", kid[:], 8)
	return devs, wrap(err, "registry: devices by key id %s", kid)
}

// Passenger returns a passenger's account.
func (r *Registry) Passenger(ctx context.Context, id protocol.ID) (Passenger, error) {
	var p Passenger
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		row, err := getPassenger(ctx, tx, id)
		if err != nil {
			return err
		}
		p = Passenger{ID: id, ExternalRef: row.ref, Score: row.score, Funding: row.funding, CreatedAt: row.createdAt}
		devs, err := devicesWhere(ctx, tx, "passenger = ?", idBytes(id), MaxDevicesPerPassenger)
		if err != nil {
			return err
		}
		for _, d := range devs {
			p.Devices = append(p.Devices, d.Key)
		}
		if p.Arrears, err = openArrears(ctx, tx, id, maxListed); err != nil {
			return err
		}
		if p.Credentials, err = listCredentials(ctx, tx, "passenger = ?", idBytes(id), true, maxListed); err != nil {
			return err
		}
		p.ScoreHistory, err = scoreHistory(ctx, tx, id, maxListed)
		return err
	})
	return p, wrap(err, "registry: passenger %s", id)
}

// SetFunding links (or replaces) the passenger's funding source after
// checking it with ValidateFunding.
func (r *Registry) SetFunding(ctx context.Context, id protocol.ID, f ground.FundingSource) error {
	if err := ValidateFunding(f, r.now()); err != nil {
		return err
	}
	err := r.inTx(ctx, func(tx *sql.Tx) error { return setFunding(ctx, tx, id, f) })
	if err == nil {
		r.log.Info("funding source set", "passenger", id, "kind", f.Kind, "network", f.Network)
	}
	return wrap(err, "registry: set funding of %s", id)
}

// MarkArrears records that the passenger owes an invoice after a declined
// charge: the passenger loses ArrearsPenalty points (the change is in the
// score history) and is deny-listed (protocol.DenyArrears) in every manifest
// and delta of a flight they hold a credential for, built from now on, and
// may not opt in to flights, until every arrears of theirs is cleared.
// Idempotent per invoice: an invoice already recorded, open or cleared,
// changes nothing (a redelivered decline must not re-open a paid debt).
func (r *Registry) MarkArrears(ctx context.Context, passenger, invoice protocol.ID, at time.Time) error {
	if passenger.IsZero() || invoice.IsZero() {
		return invalid("mark arrears: passenger and invoice ids are required")
	}
	at = r.timeOr(at)
	var score int
	marked := false
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		p, err := getPassenger(ctx, tx, passenger)
		if err != nil {
			return err
		}
		a, found, err := arrearsByInvoice(ctx, tx, invoice)
		if err != nil || found {
			return orConflict(err, found && a.Passenger != passenger, "invoice %s is in arrears for another passenger", invoice)
		}
		if err := insertArrears(ctx, tx, Arrears{Passenger: passenger, Invoice: invoice, MarkedAt: at}); err != nil {
			return err
		}
		score = max(MinScore, p.score-ArrearsPenalty)
		marked = true
		return recordScore(ctx, tx, passenger, score, score-p.score, "arrears "+invoice.String(), at)
	})
	if err == nil && marked {
		r.log.Warn("passenger in arrears", "passenger", passenger, "invoice", invoice, "score", score)
		r.notifyPassenger(ctx, passenger)
	}
	return wrap(err, "registry: mark arrears of %s for invoice %s", passenger, invoice)
}

// ClearArrears records that the invoice's debt was paid. The passenger
// leaves the deny list (the next delta of each of their flights lifts the
// entry) once no arrears of theirs remain open. Idempotent; an invoice never
// marked is not found.
func (r *Registry) ClearArrears(ctx context.Context, passenger, invoice protocol.ID, at time.Time) error {
	at = r.timeOr(at)
	cleared := false
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		a, found, err := arrearsByInvoice(ctx, tx, invoice)
		switch {
		case err != nil:
			return err
		case !found:
			return notFound("no arrears recorded for invoice %s", invoice)
		case a.Passenger != passenger:
			return conflict("invoice %s is in arrears for another passenger", invoice)
		case !a.ClearedAt.IsZero():
			return nil
		}
		cleared = true
		return clearArrears(ctx, tx, invoice, at)
	})
	if err == nil && cleared {
		r.log.Info("arrears cleared", "passenger", passenger, "invoice", invoice)
		r.notifyPassenger(ctx, passenger)
	}
	return wrap(err, "registry: clear arrears of %s for invoice %s", passenger, invoice)
}

// ListArrears returns open arrears, oldest first, at most limit (1 to
// MaxArrearsListed), and whether there are more.
func (r *Registry) ListArrears(ctx context.Context, limit int) ([]Arrears, bool, error) {
	if limit < 1 || limit > MaxArrearsListed {
		return nil, false, invalid("limit %d: want 1 to %d", limit, MaxArrearsListed)
	}
	out, err := openArrears(ctx, r.db, protocol.ID{}, limit+1)
	if err != nil {
		return nil, false, wrap(err, "registry: list arrears")
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// timeOr returns t in whole seconds, UTC, or the clock's time when t is zero.
func (r *Registry) timeOr(t time.Time) time.Time {
	if t.IsZero() {
		return r.now()
	}
	return t.UTC().Truncate(time.Second)
}
