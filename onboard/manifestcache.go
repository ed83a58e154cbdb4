package onboard

import (
	"bytes"
	"context"
	"fmt"
)

// LoadManifest verifies a signed manifest (see VerifyManifest), stores it
// in the journal and puts it in use, replacing the one in use and its
// deltas. A manifest older than the one in use, or another manifest under
// the same serial, is refused; the same manifest again is a no-op.
func (c *Cabin) LoadManifest(ctx context.Context, raw []byte) error {
	c.manifestMu.Lock()
	defer c.manifestMu.Unlock()
	m, err := VerifyManifest(raw, c.cfg.Issuer, c.id, c.cfg.Clock(), c.log)
	if err != nil {
		return fmt.Errorf("load manifest: %w", err)
	}
	if cur := c.manifest.Load(); cur != nil {
		switch {
		case m.Serial() < cur.Serial():
			return fmt.Errorf("load manifest: serial %d is older than serial %d in use", m.Serial(), cur.Serial())
		case m.Serial() == cur.Serial() && bytes.Equal(raw, cur.signed.Raw):
			return nil
		case m.Serial() == cur.Serial():
			return fmt.Errorf("load manifest: serial %d differs from the manifest in use under the same serial", m.Serial())
		}
	}
	c.stateMu.RLock()
	sold := c.state.currency
	c.stateMu.RUnlock()
	if sold != "" && sold != m.Currency() {
		return fmt.Errorf("load manifest: it sells in %s, but this flight has sold in %s", m.Currency(), sold)
	}
	if err := c.cfg.Journal.SaveManifest(ctx, m.Serial(), raw); err != nil {
		return fmt.Errorf("load manifest serial %d: %w", m.Serial(), err)
	}
	first := c.manifest.Load() == nil
	c.manifest.Store(m)
	c.revokeIssuers(m)
	c.logManifest("manifest loaded", m)
	if first {
		// The start-up log said "sales are off" for want of a manifest;
		// say when that is over.
		c.stateMu.RLock()
		closed, broken := c.state.close != nil, c.broken != nil
		c.stateMu.RUnlock()
		if r := sellable(m, closed, c.cfg.Clock()); r == 0 && !broken {
			c.log.Info("sales are open: the flight's manifest is loaded; crew can sign in", "flight", c.id.Flight)
		}
	}
	return nil
}

// ApplyDeltas verifies and applies manifest deltas in order (see
// Manifest.ApplyDelta), storing each before it is used. It stops at the
// first that fails and returns how many were applied.
func (c *Cabin) ApplyDeltas(ctx context.Context, raws [][]byte) (int, error) {
	c.manifestMu.Lock()
	defer c.manifestMu.Unlock()
	for i, raw := range raws {
		cur := c.manifest.Load()
		if cur == nil {
			return i, fmt.Errorf("apply manifest delta: no manifest to apply it to")
		}
		m, err := cur.ApplyDelta(raw, c.cfg.Issuer, c.cfg.Clock(), c.log)
		if err != nil {
			return i, fmt.Errorf("apply manifest delta: %w", err)
		}
		if err := c.cfg.Journal.SaveDelta(ctx, m.Serial(), m.DeltaSeq(), raw); err != nil {
			return i, fmt.Errorf("apply manifest delta %d: %w", m.DeltaSeq(), err)
		}
		c.manifest.Store(m)
		c.logManifest("manifest delta applied", m)
	}
	return len(raws), nil
}

// loadStoredManifest puts the journal's manifest and deltas back in use at
// start, verifying them again. A delta that no longer verifies is logged and
// the manifest is used as it stood before it.
func (c *Cabin) loadStoredManifest(ctx context.Context) error {
	raw, deltas, err := c.cfg.Journal.Manifest(ctx)
	if err != nil || raw == nil {
		return err
	}
	now := c.cfg.Clock()
	m, err := VerifyManifest(raw, c.cfg.Issuer, c.id, now, c.log)
	if err != nil {
		return err
	}
	for _, d := range deltas {
		n, err := m.ApplyDelta(d, c.cfg.Issuer, now, c.log)
		if err != nil {
			c.log.Error("stored manifest delta not used", "serial", m.Serial(), "after_delta", m.DeltaSeq(), "err", err)
			break
		}
		m = n
	}
	c.manifest.Store(m)
	c.revokeIssuers(m)
	c.logManifest("stored manifest in use", m)
	return nil
}

// revokeIssuers takes the issuer keys m names revoked out of the trust
// anchor, which the manifest sync, the deltas and the replayer's receipt
// checks all share: from now on nothing those keys sign is accepted. At start
// the stored manifest does it again, so a restart forgets no revocation.
func (c *Cabin) revokeIssuers(m *Manifest) {
	for _, k := range m.RevokedIssuers() {
		if n := c.cfg.Issuer.Remove(k); n > 0 {
			c.log.Warn("issuer key revoked by the manifest: refused from now on", "key", k.ID(), "serial", m.Serial())
		}
	}
}

func (c *Cabin) logManifest(msg string, m *Manifest) {
	st := m.Status(c.cfg.Clock())
	c.log.Info(msg, "serial", st.Serial, "delta_seq", st.DeltaSeq, "credentials", st.Credentials,
		"rejected", st.Rejected, "deny_entries", st.DenyEntries, "expires_at", st.ExpiresAt,
		"age_seconds", st.AgeSeconds, "expired", st.Expired)
}
