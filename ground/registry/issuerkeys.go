package registry

import (
	"fmt"
	"slices"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// Issuer key rotation (protocol/SPEC.md §4.2.6): the registry signs with
// Config.Issuer, puts Config.Trust (the keys not yet past their window) and
// Config.RevokedIssuers in every manifest, and issues a new manifest as soon
// as a flight's latest one was signed or listed otherwise. The key set itself
// is kept by ground/keys.

// manifestTrust returns the trust entries a manifest issued at now carries:
// every trusted key whose window has not ended.
func (r *Registry) manifestTrust(now time.Time) []protocol.TrustEntry {
	var out []protocol.TrustEntry
	for _, k := range r.trust {
		if k.NotAfter.After(now) {
			out = append(out, protocol.TrustEntryFor(k))
		}
	}
	return out
}

// manifestRevoked returns the revoked issuer keys a manifest carries.
func (r *Registry) manifestRevoked() []protocol.IssuerKey {
	out := make([]protocol.IssuerKey, 0, len(r.revoked))
	for _, k := range r.revoked {
		out = append(out, protocol.IssuerKey{PublicKey: k})
	}
	return out
}

// keysStale reports whether the manifest in raw was signed by another key
// than the registry's, or carries another trust list or other revoked keys
// than one issued now would. Answers are remembered per flight and serial:
// the key set only changes when ground restarts.
func (r *Registry) keysStale(m manifestRow, f protocol.FlightID) (bool, error) {
	type ref struct {
		f protocol.FlightID
		s uint64
	}
	if v, ok := r.keysChecked.Load(ref{f, m.serial}); ok {
		return v.(bool), nil
	}
	s, err := protocol.ParseManifest(m.raw)
	if err != nil {
		return false, fmt.Errorf("stored manifest %d of %s: %w", m.serial, f, err)
	}
	b := s.Body
	stale := s.KeyID != r.issuer.ID() ||
		!slices.EqualFunc(b.RevokedIssuers, r.manifestRevoked(), func(a, b protocol.IssuerKey) bool { return a.Equal(b.PublicKey) }) ||
		!slices.EqualFunc(b.Trust, r.manifestTrust(b.IssuedAt), sameTrustEntry)
	r.keysChecked.Store(ref{f, m.serial}, stale)
	return stale, nil
}

func sameTrustEntry(a, b protocol.TrustEntry) bool {
	return a.Purpose == b.Purpose && string(a.Key) == string(b.Key) && a.NotBefore.Equal(b.NotBefore) && a.NotAfter.Equal(b.NotAfter)
}

// checkRevoked refuses a revoked key that is also the signer or trusted.
func (r *Registry) checkRevoked() error {
	if len(r.revoked) > protocol.MaxTrustKeys {
		return fmt.Errorf("registry: config: %d revoked issuer keys, over the limit of %d", len(r.revoked), protocol.MaxTrustKeys)
	}
	for i, k := range r.revoked {
		switch {
		case k.Purpose() != crypto.Issuer:
			return fmt.Errorf("registry: config: revoked key %s is a %s key, want issuer", k.ID(), k.Purpose())
		case k.Equal(r.issuer.Public()):
			return fmt.Errorf("registry: config: the signing issuer key %s is revoked", k.ID())
		case slices.ContainsFunc(r.revoked[:i], k.Equal):
			return fmt.Errorf("registry: config: revoked issuer key %s listed twice", k.ID())
		case slices.ContainsFunc(r.trust, func(t crypto.TrustedKey) bool { return t.Key.Equal(k) }):
			return fmt.Errorf("registry: config: issuer key %s is both trusted and revoked", k.ID())
		}
	}
	return nil
}
