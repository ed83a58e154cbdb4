package onboard

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// Identity is who a cabin server is: the flight it sells on, the aircraft,
// and the public key the aircraft signs invoices with. A manifest for
// anything else is refused.
type Identity struct {
	Flight      protocol.FlightID
	Aircraft    protocol.AircraftID
	AircraftKey crypto.PublicKey
}

// Manifest is a verified flight manifest with its deltas applied, indexed
// for the sale checks. It is immutable: applying a delta returns a new
// Manifest, so handlers read one without locks while the writer swaps in the
// next.
//
// Every credential in it has had its issuer signature verified once, when it
// was loaded; those that did not verify were dropped (and logged), so a sale
// on a compact code costs one Ed25519 verification, the device's.
type Manifest struct {
	signed    *protocol.SignedManifest
	expiresAt time.Time // the base manifest's, or the last delta's
	deltaSeq  uint64    // the last delta applied; 0 for none

	trust    *crypto.TrustList // the manifest's issuer trust list, for credentials
	byDevice map[crypto.KeyID][]*protocol.SignedCredential
	byID     map[protocol.ID]*protocol.SignedCredential
	deny     denyList
	catalog  map[string]protocol.CatalogItem
	crew     map[string]protocol.CrewMember
	crewList []protocol.CrewMember // the roster in order: the manifest's, or the last delta's that carried one
	crewFrom RosterSource          // where crewList came from
	rejected int                   // credentials whose issuer signature did not verify
}

// denyList is the manifest's deny list. As protocol/SPEC.md §4.2.1 says, an
// entry with a passenger refuses every credential of that passenger, an
// entry with a device key every credential bound to that key, and an entry
// with a credential that credential: an entry refuses every id it names.
// Two entries may name the same id, so each id counts its entries.
type denyList struct {
	entries    map[denyKey]protocol.DenyReason
	passengers map[protocol.ID]int
	creds      map[protocol.ID]int
	devices    map[crypto.PublicKey]int
}

type denyKey struct {
	passenger, credential protocol.ID
	device                crypto.PublicKey
}

// VerifyManifest parses raw, checks the issuer signature against anchor at
// now, checks that the manifest is for id, and verifies every credential in
// it against the manifest's own trust list. Credentials that do not verify
// are logged and left out; the manifest is refused only when its own
// signature or identity is wrong. An expired manifest is returned too:
// Expired tells, and the cabin server refuses to sell on it.
func VerifyManifest(raw []byte, anchor *crypto.TrustList, id Identity, now time.Time, log *slog.Logger) (*Manifest, error) {
	s, err := protocol.ParseManifest(raw)
	if err != nil {
		return nil, err // it names the manifest
	}
	signer, err := s.VerifyTrusted(anchor, now, nil)
	if err != nil {
		return nil, fmt.Errorf("manifest serial %d: issuer signature: %w", s.Body.Serial, err)
	}
	b := &s.Body
	if slices.ContainsFunc(b.RevokedIssuers, func(k protocol.IssuerKey) bool { return k.Equal(signer) }) {
		return nil, fmt.Errorf("manifest serial %d is signed by issuer key %s, which it names revoked", b.Serial, signer.ID())
	}
	if err := checkIdentity("manifest", b.Flight, b.Aircraft, id); err != nil {
		return nil, err
	}
	if !b.AircraftKey.Equal(id.AircraftKey) {
		return nil, fmt.Errorf("manifest names aircraft key %s, but this aircraft signs with %s: register this aircraft's key with ground",
			b.AircraftKey.ID(), id.AircraftKey.ID())
	}
	trust, err := b.TrustList()
	if err != nil {
		return nil, fmt.Errorf("manifest trust list: %w", err)
	}
	for _, k := range b.RevokedIssuers {
		trust.Remove(k.PublicKey) // ground leaves them out; never trust them for credentials
	}
	creds, err := b.ParseCredentials()
	if err != nil {
		return nil, fmt.Errorf("manifest credentials: %w", err)
	}
	m := &Manifest{
		signed:    s,
		expiresAt: b.ExpiresAt,
		trust:     trust,
		byDevice:  make(map[crypto.KeyID][]*protocol.SignedCredential, len(creds)),
		byID:      make(map[protocol.ID]*protocol.SignedCredential, len(creds)),
		deny: denyList{
			entries:    make(map[denyKey]protocol.DenyReason, len(b.Deny)),
			passengers: make(map[protocol.ID]int),
			creds:      make(map[protocol.ID]int),
			devices:    make(map[crypto.PublicKey]int),
		},
		catalog: make(map[string]protocol.CatalogItem, len(b.Catalog)),
		crew:    make(map[string]protocol.CrewMember, len(b.Crew)),
	}
	m.addCredentials(creds, now, log)
	for _, e := range b.Deny {
		m.deny.add(e)
	}
	for _, it := range b.Catalog {
		m.catalog[it.SKU] = it
	}
	m.setCrew(b.Crew, RosterSource{Serial: b.Serial, IssuedAt: b.IssuedAt})
	return m, nil
}

// ApplyDelta returns a new manifest with the delta in raw applied: its
// issuer signature checked against anchor, its identity against m's, its
// base serial equal to m's serial and its sequence number the next one.
// m itself is not changed.
func (m *Manifest) ApplyDelta(raw []byte, anchor *crypto.TrustList, now time.Time, log *slog.Logger) (*Manifest, error) {
	s, err := protocol.ParseManifestDelta(raw)
	if err != nil {
		return nil, err // it names the manifest delta
	}
	d := &s.Body
	if _, err := s.VerifyTrusted(anchor, now, nil); err != nil {
		return nil, fmt.Errorf("manifest delta %d: issuer signature: %w", d.Seq, err)
	}
	if d.Flight != m.Flight() || d.Aircraft != m.signed.Body.Aircraft {
		return nil, fmt.Errorf("manifest delta %d is for %s on %s, not %s on %s",
			d.Seq, d.Flight, d.Aircraft, m.Flight(), m.signed.Body.Aircraft)
	}
	if d.BaseSerial != m.Serial() {
		return nil, fmt.Errorf("manifest delta %d applies to manifest serial %d, not %d", d.Seq, d.BaseSerial, m.Serial())
	}
	if d.Seq != m.deltaSeq+1 {
		return nil, fmt.Errorf("manifest delta %d out of order: want delta %d", d.Seq, m.deltaSeq+1)
	}
	creds, err := d.ParseCredentials()
	if err != nil {
		return nil, fmt.Errorf("manifest delta %d credentials: %w", d.Seq, err)
	}
	n := m.clone()
	n.deltaSeq = d.Seq
	n.expiresAt = d.ExpiresAt
	n.addCredentials(creds, now, log)
	for _, e := range d.Deny {
		n.deny.add(e)
	}
	for _, e := range d.Undeny {
		n.deny.remove(e)
	}
	if len(d.Crew) > 0 {
		n.setCrew(d.Crew, RosterSource{Serial: d.BaseSerial, DeltaSeq: d.Seq, IssuedAt: d.IssuedAt}) // the whole roster, replacing the one on board
		log.Info("crew roster replaced by manifest delta", "seq", d.Seq, "crew", len(d.Crew))
	}
	return n, nil
}

// RosterSource names the manifest, or the manifest delta, the roster on
// board came from, and when ground issued it.
type RosterSource struct {
	Serial   uint64
	DeltaSeq uint64 // 0: the manifest itself
	IssuedAt time.Time
}

// String names the source for a person: "manifest serial 3 issued
// 2026-11-21T08:00:00Z", or "manifest serial 3, delta 2, issued ...".
func (r RosterSource) String() string {
	at := r.IssuedAt.UTC().Format(time.RFC3339)
	if r.DeltaSeq == 0 {
		return fmt.Sprintf("manifest serial %d issued %s", r.Serial, at)
	}
	return fmt.Sprintf("manifest serial %d, delta %d, issued %s", r.Serial, r.DeltaSeq, at)
}

// setCrew makes crew the roster on board. The map is new: the one it
// replaces may be shared with the manifest this one was cloned from.
func (m *Manifest) setCrew(crew []protocol.CrewMember, from RosterSource) {
	m.crewList, m.crewFrom = crew, from
	m.crew = make(map[string]protocol.CrewMember, len(crew))
	for _, c := range crew {
		m.crew[c.ID] = c
	}
}

// Crew returns the roster on board, in order.
func (m *Manifest) Crew() []protocol.CrewMember { return m.crewList }

// RosterFrom says which manifest or delta the roster on board came from.
func (m *Manifest) RosterFrom() RosterSource { return m.crewFrom }

func checkIdentity(what string, f protocol.FlightID, a protocol.AircraftID, id Identity) error {
	if f != id.Flight || a != id.Aircraft {
		return fmt.Errorf("%s is for flight %s on aircraft %s, but this cabin server is flight %s on %s",
			what, f, a, id.Flight, id.Aircraft)
	}
	return nil
}

// addCredentials verifies each credential's issuer signature and indexes
// those that verify. A credential already held (same id) is replaced only
// by the same one with limits at least as high (ground raised a prepaid
// passenger's limit after a top-up: protocol.Credential.RaisedFrom);
// identical bytes change nothing, and any other credential under a known id
// is refused.
func (m *Manifest) addCredentials(creds []*protocol.SignedCredential, now time.Time, log *slog.Logger) {
	for _, c := range creds {
		old, held := m.byID[c.Body.ID]
		switch {
		case held && bytes.Equal(old.Raw, c.Raw):
			continue
		case held && !c.Body.RaisedFrom(old.Body):
			m.rejected++
			log.Warn("credential refused: id already held with other content", "credential", c.Body.ID)
			continue
		}
		if _, err := c.VerifyTrusted(m.trust, now, nil); err != nil {
			m.rejected++
			log.Warn("credential refused: issuer signature", "credential", c.Body.ID, "passenger", c.Body.Passenger, "err", err)
			continue
		}
		kid := c.Body.Device.ID()
		m.byID[c.Body.ID] = c
		if !held {
			m.byDevice[kid] = append(m.byDevice[kid], c)
			continue
		}
		// A copy: the slice may be shared with the manifest this one was
		// cloned from, which must not change.
		list := slices.Clone(m.byDevice[kid])
		for i := range list {
			if list[i] == old {
				list[i] = c
			}
		}
		m.byDevice[kid] = list
		log.Info("credential limit raised", "credential", c.Body.ID, "limit", c.Body.Limit.String(), "was", old.Body.Limit.String())
	}
}

// clone copies m deeply enough that applying a delta to the copy leaves m
// unchanged. Credentials themselves are immutable and shared.
func (m *Manifest) clone() *Manifest {
	n := *m
	n.byDevice = make(map[crypto.KeyID][]*protocol.SignedCredential, len(m.byDevice))
	for k, v := range m.byDevice {
		n.byDevice[k] = v[:len(v):len(v)] // appending copies
	}
	n.byID = maps.Clone(m.byID)
	n.deny = denyList{
		entries:    maps.Clone(m.deny.entries),
		passengers: maps.Clone(m.deny.passengers),
		creds:      maps.Clone(m.deny.creds),
		devices:    maps.Clone(m.deny.devices),
	}
	return &n
}

func (d *denyList) add(e protocol.DenyEntry) {
	k := denyKey{e.Passenger, e.Credential, e.Device.PublicKey}
	if _, ok := d.entries[k]; ok {
		d.entries[k] = e.Reason
		return
	}
	d.entries[k] = e.Reason
	if !e.Passenger.IsZero() {
		d.passengers[e.Passenger]++
	}
	if !e.Credential.IsZero() {
		d.creds[e.Credential]++
	}
	if !e.Device.IsZero() {
		d.devices[e.Device.PublicKey]++
	}
}

// remove lifts the entry naming the same passenger, credential and device
// as e, whatever its reason.
func (d *denyList) remove(e protocol.DenyEntry) {
	k := denyKey{e.Passenger, e.Credential, e.Device.PublicKey}
	if _, ok := d.entries[k]; !ok {
		return
	}
	delete(d.entries, k)
	dec := func(m map[protocol.ID]int, id protocol.ID) {
		if id.IsZero() {
			return
		}
		if m[id]--; m[id] <= 0 {
			delete(m, id)
		}
	}
	dec(d.passengers, e.Passenger)
	dec(d.creds, e.Credential)
	if !e.Device.IsZero() {
		if d.devices[e.Device.PublicKey]--; d.devices[e.Device.PublicKey] <= 0 {
			delete(d.devices, e.Device.PublicKey)
		}
	}
}

// Denied reports whether the deny list refuses credential c: its passenger
// (all their credentials), its device key (every credential bound to it)
// or the credential itself.
func (m *Manifest) Denied(c *protocol.Credential) bool {
	return m.deny.passengers[c.Passenger] > 0 || m.deny.creds[c.ID] > 0 || m.deny.devices[c.Device.PublicKey] > 0
}

// Signed returns the signed base manifest.
func (m *Manifest) Signed() *protocol.SignedManifest { return m.signed }

// Flight returns the manifest's flight.
func (m *Manifest) Flight() protocol.FlightID { return m.signed.Body.Flight }

// Serial returns the base manifest's serial number.
func (m *Manifest) Serial() uint64 { return m.signed.Body.Serial }

// DeltaSeq returns the sequence number of the last delta applied, 0 for
// none.
func (m *Manifest) DeltaSeq() uint64 { return m.deltaSeq }

// IssuedAt returns when ground issued the base manifest.
func (m *Manifest) IssuedAt() time.Time { return m.signed.Body.IssuedAt }

// ExpiresAt returns when the manifest expires, as moved by the last delta.
func (m *Manifest) ExpiresAt() time.Time { return m.expiresAt }

// Expired reports whether the manifest has expired at now.
func (m *Manifest) Expired(now time.Time) bool { return !now.Before(m.expiresAt) }

// Age returns how long ago ground issued the manifest, never negative.
func (m *Manifest) Age(now time.Time) time.Duration {
	return max(now.Sub(m.signed.Body.IssuedAt), 0)
}

// Currency returns the flight's selling currency.
func (m *Manifest) Currency() protocol.Currency { return m.signed.Body.Currency }

// Caps returns the flight's risk limits.
func (m *Manifest) Caps() protocol.Caps { return m.signed.Body.Caps }

// RevokedIssuers returns the issuer keys the manifest names revoked
// (protocol/SPEC.md §4.2.6): the cabin server takes them out of its trust
// anchor once it uses the manifest.
func (m *Manifest) RevokedIssuers() []crypto.PublicKey {
	out := make([]crypto.PublicKey, 0, len(m.signed.Body.RevokedIssuers))
	for _, k := range m.signed.Body.RevokedIssuers {
		out = append(out, k.PublicKey)
	}
	return out
}

// Trust returns the manifest's issuer trust list, for credentials.
func (m *Manifest) Trust() *crypto.TrustList { return m.trust }

// Catalog returns the catalog in the manifest's order.
func (m *Manifest) Catalog() []protocol.CatalogItem { return m.signed.Body.Catalog }

// Item returns the catalog item with sku.
func (m *Manifest) Item(sku string) (protocol.CatalogItem, bool) {
	it, ok := m.catalog[sku]
	return it, ok
}

// CrewMember returns the crew sign-in record for id.
func (m *Manifest) CrewMember(id string) (protocol.CrewMember, bool) {
	c, ok := m.crew[id]
	return c, ok
}

// CredentialsFor returns the verified credentials whose device key has id
// kid. Key ids can collide, and a device can hold a reissued credential, so
// there may be more than one.
func (m *Manifest) CredentialsFor(kid crypto.KeyID) []*protocol.SignedCredential {
	return m.byDevice[kid]
}

// Credential returns the verified credential with id.
func (m *Manifest) Credential(id protocol.ID) (*protocol.SignedCredential, bool) {
	c, ok := m.byID[id]
	return c, ok
}

// Status describes the manifest at now.
func (m *Manifest) Status(now time.Time) *ManifestStatus {
	return &ManifestStatus{
		Serial:      m.Serial(),
		DeltaSeq:    m.deltaSeq,
		IssuedAt:    m.IssuedAt(),
		ExpiresAt:   m.expiresAt,
		AgeSeconds:  int64(m.Age(now) / time.Second),
		Expired:     m.Expired(now),
		Credentials: len(m.byID),
		Rejected:    m.rejected,
		DenyEntries: len(m.deny.entries),
	}
}
