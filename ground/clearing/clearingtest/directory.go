// Package clearingtest helps test clearing and whatever drives it (the
// simulator, the ground binary's end-to-end tests) with real parts: an
// in-memory ground.Directory, a world of issuer, aircraft, flights and
// passengers with real keys, wallets, payment codes and signed invoices
// with a proper hash chain, an embedded JetStream server and a settable
// clock.
package clearingtest

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/protocol"
)

// Directory is an in-memory ground.Directory. It is safe for concurrent use.
// It records arrears and can be told to fail, to drive clearing's
// infrastructure-failure paths.
type Directory struct {
	mu       sync.Mutex
	aircraft map[protocol.AircraftID]crypto.PublicKey
	flights  map[protocol.FlightID]ground.FlightInfo
	trust    *crypto.TrustList
	creds    map[protocol.ID]*protocol.SignedCredential
	funding  map[protocol.ID]ground.FundingSource
	arrears  map[protocol.ID]map[protocol.ID]bool // passenger → invoices in arrears
	marks    int
	clears   int
	failures []error
}

// NewDirectory returns an empty directory trusting the issuer keys of trust.
func NewDirectory(trust *crypto.TrustList) *Directory {
	return &Directory{
		aircraft: map[protocol.AircraftID]crypto.PublicKey{},
		flights:  map[protocol.FlightID]ground.FlightInfo{},
		trust:    trust,
		creds:    map[protocol.ID]*protocol.SignedCredential{},
		funding:  map[protocol.ID]ground.FundingSource{},
		arrears:  map[protocol.ID]map[protocol.ID]bool{},
	}
}

// AddAircraft registers an aircraft's signing key.
func (d *Directory) AddAircraft(a protocol.AircraftID, key crypto.PublicKey) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.aircraft[a] = key
}

// AddFlight registers a flight.
func (d *Directory) AddFlight(f ground.FlightInfo) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.flights[f.Flight] = f
}

// AddCredential records a credential as issued.
func (d *Directory) AddCredential(c *protocol.SignedCredential) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.creds[c.Body.ID] = c
}

// SetFunding sets a passenger's funding source.
func (d *Directory) SetFunding(p protocol.ID, fs ground.FundingSource) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.funding[p] = fs
}

// FailNext makes the next n lookups (of any method) fail with err, as a
// registry whose database is unavailable would.
func (d *Directory) FailNext(n int, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for range n {
		d.failures = append(d.failures, err)
	}
}

// Arrears returns how many invoices of the passenger are in arrears.
func (d *Directory) Arrears(p protocol.ID) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.arrears[p])
}

// ArrearsCalls returns how many MarkArrears and ClearArrears calls were made.
func (d *Directory) ArrearsCalls() (marks, clears int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.marks, d.clears
}

// fail returns the next injected failure, if any. Called with d.mu.
func (d *Directory) fail() error {
	if len(d.failures) == 0 {
		return nil
	}
	err := d.failures[0]
	d.failures = d.failures[1:]
	return err
}

func lookup[K comparable, V any](d *Directory, m map[K]V, k K, what string) (V, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var zero V
	if err := d.fail(); err != nil {
		return zero, err
	}
	v, ok := m[k]
	if !ok {
		return zero, fmt.Errorf("%s %v: %w", what, k, ground.ErrNotFound)
	}
	return v, nil
}

// AircraftKey implements ground.Directory.
func (d *Directory) AircraftKey(_ context.Context, a protocol.AircraftID) (crypto.PublicKey, error) {
	return lookup(d, d.aircraft, a, "aircraft")
}

// Flight implements ground.Directory.
func (d *Directory) Flight(_ context.Context, f protocol.FlightID) (ground.FlightInfo, error) {
	return lookup(d, d.flights, f, "flight")
}

// IssuerTrust implements ground.Directory.
func (d *Directory) IssuerTrust(context.Context) (*crypto.TrustList, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fail(); err != nil {
		return nil, err
	}
	return d.trust, nil
}

// Credential implements ground.Directory.
func (d *Directory) Credential(_ context.Context, id protocol.ID) (*protocol.SignedCredential, error) {
	return lookup(d, d.creds, id, "credential")
}

// Funding implements ground.Directory.
func (d *Directory) Funding(_ context.Context, p protocol.ID) (ground.FundingSource, error) {
	return lookup(d, d.funding, p, "funding of passenger")
}

// MarkArrears implements ground.Directory.
func (d *Directory) MarkArrears(_ context.Context, p, invoice protocol.ID, _ time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fail(); err != nil {
		return err
	}
	d.marks++
	if d.arrears[p] == nil {
		d.arrears[p] = map[protocol.ID]bool{}
	}
	d.arrears[p][invoice] = true
	return nil
}

// ClearArrears implements ground.Directory.
func (d *Directory) ClearArrears(_ context.Context, p, invoice protocol.ID, _ time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.fail(); err != nil {
		return err
	}
	d.clears++
	delete(d.arrears[p], invoice)
	return nil
}

var _ ground.Directory = (*Directory)(nil)

// Clock is a settable clock for the service's Config.Clock.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
