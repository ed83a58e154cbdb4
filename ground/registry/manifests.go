package registry

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/airtab/airtab/protocol"
)

// maxBatchBytes bounds the deltas of one DeltaBatch so the encoded batch
// stays under protocol.MaxDeltaBatchSize (the CBOR framing of 16 byte
// strings takes well under 256 bytes).
const maxBatchBytes = protocol.MaxDeltaBatchSize - 256

// BuildManifest builds, signs and stores a new manifest for flight f with
// the next serial: every live credential of the flight, the deny list
// (revoked credentials of the flight; passengers with a credential for it
// who are in arrears), the issuer trust list, the crew, the catalog and the
// caps, valid for Config.ManifestTTL. Deltas of earlier manifests stop:
// a request for them is answered Superseded.
func (r *Registry) BuildManifest(ctx context.Context, f protocol.FlightID) (*protocol.SignedManifest, error) {
	var out *protocol.SignedManifest
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		fl, err := getFlight(ctx, tx, f)
		if err != nil {
			return err
		}
		out, err = r.buildManifest(ctx, tx, fl)
		return err
	})
	if err == nil {
		r.notify(flightRef{aircraft: out.Body.Aircraft, flight: f})
	}
	return out, wrap(err, "registry: build manifest of %s", f)
}

func (r *Registry) buildManifest(ctx context.Context, tx *sql.Tx, fl flightRow) (*protocol.SignedManifest, error) {
	ac, err := getAircraft(ctx, tx, fl.aircraft)
	if err != nil {
		return nil, err
	}
	latest, ok, err := latestManifest(ctx, tx, fl.id)
	if err != nil {
		return nil, err
	}
	serial := uint64(1)
	if ok {
		serial = latest.serial + 1
	}
	creds, err := listCredentials(ctx, tx, "flight = ? AND revoked_at IS NULL", string(fl.id), false, protocol.MaxPassengers+1)
	if err != nil {
		return nil, err
	}
	if len(creds) > protocol.MaxPassengers {
		return nil, fmt.Errorf("flight %s holds more than %d live credentials", fl.id, protocol.MaxPassengers)
	}
	deny, err := wantedDeny(ctx, tx, fl.id)
	if err != nil {
		return nil, err
	}
	crew, err := getCrew(ctx, tx, fl.id)
	if err != nil {
		return nil, err
	}
	now := r.now()
	m := protocol.Manifest{
		Version: protocol.Version, Flight: fl.id, Aircraft: fl.aircraft, AircraftKey: protocol.AircraftKey{PublicKey: ac.Key},
		Serial: serial, IssuedAt: now, ExpiresAt: now.Add(r.manifestTTL), Currency: fl.currency,
		Deny: deny, Crew: crew, Catalog: fl.catalog, Caps: fl.caps,
	}
	ids := make([]protocol.ID, 0, len(creds))
	for _, c := range creds {
		m.Credentials = append(m.Credentials, c.Signed.Raw)
		ids = append(ids, c.Signed.Body.ID)
	}
	m.Trust, m.RevokedIssuers = r.manifestTrust(now), r.manifestRevoked()
	signed, err := protocol.Sign(m, r.issuer, nil)
	if err != nil {
		return nil, err
	}
	if err := insertManifest(ctx, tx, signed); err != nil {
		return nil, err
	}
	if err := forgetPublished(ctx, tx, fl.id, serial); err != nil {
		return nil, err
	}
	if err := publishCredentials(ctx, tx, fl.id, serial, ids); err != nil {
		return nil, err
	}
	if err := publishDeny(ctx, tx, fl.id, serial, deny, nil); err != nil {
		return nil, err
	}
	if err := publishRoster(ctx, tx, fl.id, serial, rosterHash(crew)); err != nil {
		return nil, err
	}
	r.log.Info("manifest issued", "flight", fl.id, "serial", serial, "credentials", len(ids), "deny", len(deny), "bytes", len(signed.Raw))
	return signed, nil
}

// SyncManifest answers aircraft a's manifest request for flight f: the
// latest manifest, or a newly built one when there is none, or the latest
// was issued Config.ReissueAfter ago or more, or has expired. The flight
// must be flown by a (else forbidden).
func (r *Registry) SyncManifest(ctx context.Context, a protocol.AircraftID, f protocol.FlightID) (*protocol.SignedManifest, error) {
	var out *protocol.SignedManifest
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		fl, err := flightFor(ctx, tx, a, f)
		if err != nil {
			return err
		}
		latest, ok, err := latestManifest(ctx, tx, f)
		if err != nil {
			return err
		}
		now := r.now()
		if ok && now.Before(latest.issuedAt.Add(r.reissueAfter)) && now.Before(latest.expiresAt) {
			stale, err := r.keysStale(latest, f)
			if err != nil || !stale {
				if err == nil {
					out, err = protocol.ParseManifest(latest.raw)
				}
				return err
			}
		}
		out, err = r.buildManifest(ctx, tx, fl)
		return err
	})
	return out, wrap(err, "registry: manifest of %s for %s", f, a)
}

// SyncDeltas answers aircraft a's delta request for flight f. When
// req.BaseSerial is older than the latest manifest the batch says
// Superseded; so it does, after building a fresh one, when the latest was
// issued Config.ReissueAfter ago or more and the flight's credentials are
// still valid. Otherwise any pending change since the manifest and its deltas
// (new credentials, new deny entries, lifted ones) is first issued as new
// deltas, and the batch holds the deltas after req.AfterSeq in order, at
// most protocol.MaxDeltasPerBatch and MaxDeltaBatchSize bytes; an empty batch
// means the aircraft is up to date. A serial or sequence number ground never
// issued is invalid; a flight without a manifest is not found.
func (r *Registry) SyncDeltas(ctx context.Context, a protocol.AircraftID, f protocol.FlightID, req protocol.DeltaRequest) (protocol.DeltaBatch, error) {
	var out protocol.DeltaBatch
	err := r.inTx(ctx, func(tx *sql.Tx) error {
		fl, err := flightFor(ctx, tx, a, f)
		if err != nil {
			return err
		}
		latest, ok, err := latestManifest(ctx, tx, f)
		switch {
		case err != nil:
			return err
		case !ok:
			return notFound("no manifest issued for %s yet: request the manifest", f)
		case req.BaseSerial < latest.serial:
			out.Superseded = true
			return nil
		case req.BaseSerial > latest.serial:
			return invalid("manifest serial %d was never issued for %s (latest %d)", req.BaseSerial, f, latest.serial)
		case !r.now().Before(latest.issuedAt.Add(r.reissueAfter)) && r.now().Before(credentialEnd(f)):
			// Refresh: a cabin server only refetches the manifest when
			// told, so one that keeps its link up is moved to a fresh
			// manifest (and expiry) every ReissueAfter, until the
			// flight's credentials have expired.
			if _, err := r.buildManifest(ctx, tx, fl); err != nil {
				return err
			}
			out.Superseded = true
			return nil
		}
		if stale, err := r.keysStale(latest, f); err != nil || stale {
			// The issuer keys changed (a rotation, a revocation): the
			// aircraft must learn them from a new manifest at once.
			if err == nil {
				_, err = r.buildManifest(ctx, tx, fl)
			}
			out.Superseded = err == nil
			return err
		}
		last, err := lastDeltaSeq(ctx, tx, f, latest.serial)
		if err != nil {
			return err
		}
		if req.AfterSeq > last {
			return invalid("delta %d of manifest %d of %s was never issued (latest %d)", req.AfterSeq, latest.serial, f, last)
		}
		for range protocol.MaxDeltasPerBatch {
			made, err := r.buildDelta(ctx, tx, fl, latest.serial, &last)
			if err != nil || !made {
				break
			}
		}
		out.Deltas, err = deltasAfter(ctx, tx, f, latest.serial, req.AfterSeq, protocol.MaxDeltasPerBatch, maxBatchBytes)
		return err
	})
	return out, wrap(err, "registry: deltas of %s for %s", f, a)
}

// credentialEnd is when every credential for flight f has expired.
func credentialEnd(f protocol.FlightID) time.Time {
	_, end := CredentialWindow(f.Date())
	return end
}

// buildDelta issues the next delta of manifest serial when anything changed
// since it and its deltas: credentials not yet carried (new or raised), deny
// entries to add and to lift, the crew roster. It reports whether it made
// one and advances *last.
func (r *Registry) buildDelta(ctx context.Context, tx *sql.Tx, fl flightRow, serial uint64, last *uint64) (bool, error) {
	creds, err := unpublishedCredentials(ctx, tx, fl.id, serial, maxDeltaCredentials)
	if err != nil {
		return false, err
	}
	want, err := wantedDeny(ctx, tx, fl.id)
	if err != nil {
		return false, err
	}
	have, err := publishedDeny(ctx, tx, fl.id, serial)
	if err != nil {
		return false, err
	}
	add, lift := diffDeny(want, have)
	crew, err := getCrew(ctx, tx, fl.id)
	if err != nil {
		return false, err
	}
	published, err := publishedRoster(ctx, tx, fl.id, serial)
	if err != nil {
		return false, err
	}
	roster := rosterHash(crew)
	rosterChanged := len(crew) > 0 && !bytes.Equal(roster, published) // an emptied roster is a new manifest (SetCrew)
	if len(creds) == 0 && len(add) == 0 && len(lift) == 0 && !rosterChanged {
		return false, nil
	}
	add, lift = add[:min(len(add), maxDeltaDeny)], lift[:min(len(lift), maxDeltaDeny)]
	now := r.now()
	d := protocol.ManifestDelta{
		Version: protocol.Version, Flight: fl.id, Aircraft: fl.aircraft, BaseSerial: serial, Seq: *last + 1,
		IssuedAt: now, ExpiresAt: now.Add(r.manifestTTL), Deny: add, Undeny: lift,
	}
	if rosterChanged {
		d.Crew = crew
	}
	ids := make([]protocol.ID, 0, len(creds))
	for _, c := range creds {
		d.Credentials = append(d.Credentials, c.Signed.Raw)
		ids = append(ids, c.Signed.Body.ID)
	}
	signed, err := protocol.Sign(d, r.issuer, nil)
	if err != nil {
		return false, err
	}
	if err := insertDelta(ctx, tx, signed); err != nil {
		return false, err
	}
	if err := publishCredentials(ctx, tx, fl.id, serial, ids); err != nil {
		return false, err
	}
	if err := publishDeny(ctx, tx, fl.id, serial, add, lift); err != nil {
		return false, err
	}
	if rosterChanged {
		if err := publishRoster(ctx, tx, fl.id, serial, roster); err != nil {
			return false, err
		}
	}
	*last = d.Seq
	r.log.Info("manifest delta issued", "flight", fl.id, "serial", serial, "seq", d.Seq,
		"credentials", len(ids), "deny", len(add), "undeny", len(lift), "crew", len(d.Crew))
	return true, nil
}
