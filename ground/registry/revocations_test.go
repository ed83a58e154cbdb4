package registry

import (
	"slices"
	"testing"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// TestRevocationReasons revokes a credential for each reason and checks
// what may follow: which opt-ins answer CodeRevoked, what the next manifest
// denies, and that reinstating makes the credential live again.
func TestRevocationReasons(t *testing.T) {
	tests := []struct {
		reason protocol.DenyReason
		// Opt-ins after the revocation: the same flight with the same
		// device, another flight with the same device, a third flight
		// with a new device of the passenger's.
		sameFlight, otherFlight, newDevice bool // true: allowed
		entry                              func(c *protocol.Credential) protocol.DenyEntry
	}{
		{protocol.DenyRevoked, false, true, true, nil},
		{protocol.DenyDeviceLost, false, false, true, func(c *protocol.Credential) protocol.DenyEntry {
			return protocol.DenyEntry{Reason: protocol.DenyDeviceLost, Device: c.Device}
		}},
		{protocol.DenyFraudSuspected, false, false, false, func(c *protocol.Credential) protocol.DenyEntry {
			return protocol.DenyEntry{Reason: protocol.DenyFraudSuspected, Passenger: c.Passenger}
		}},
		{protocol.DenyPassengerRequest, true, true, true, nil},
	}
	for _, tt := range tests {
		t.Run(reasonName(tt.reason), func(t *testing.T) {
			f := newFixture(t)
			f.aircraft("D-AIUA")
			fl := f.flight("123", "D-AIUA", "EUR")
			other := f.flight("124", "D-AIUA", "EUR")
			third := f.flight("125", "D-AIUA", "EUR")
			p, dev := f.passenger(700)
			c := f.optIn(p, dev, fl)
			if err := f.reg.RevokeFor(f.ctx, c.Body.ID, tt.reason, "test"); err != nil {
				t.Fatal(err)
			}
			// Revoking again for the same reason changes nothing.
			if err := f.reg.RevokeFor(f.ctx, c.Body.ID, tt.reason, "test"); err != nil {
				t.Fatal(err)
			}

			m := f.verifyManifest(mustManifest(t, f, fl).Raw).Body
			if !slices.Contains(m.Deny, protocol.DenyEntry{Credential: c.Body.ID, Reason: tt.reason}) {
				t.Errorf("manifest deny %v lacks the credential with reason %d", m.Deny, tt.reason)
			}
			if tt.entry != nil && !slices.Contains(m.Deny, tt.entry(&c.Body)) {
				t.Errorf("manifest deny %v lacks %+v", m.Deny, tt.entry(&c.Body))
			}

			newDev, err := crypto.GenerateKey(crypto.Device, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := f.reg.EnrollDevice(f.ctx, p, newDev.Public()); err != nil {
				t.Fatal(err)
			}
			try := func(name string, d crypto.PrivateKey, fl protocol.FlightID, allowed bool) {
				_, _, err := f.reg.OptIn(f.ctx, p, d.Public(), fl)
				switch {
				case allowed && err != nil:
					t.Errorf("%s: opt-in refused: %v", name, err)
				case !allowed:
					wantCode(t, err, CodeRevoked)
				}
			}
			try("SameFlight", dev, fl, tt.sameFlight)
			try("OtherFlight", dev, other, tt.otherFlight)
			try("NewDevice", newDev, third, tt.newDevice)
			if tt.reason == protocol.DenyDeviceLost {
				wantCode(t, f.reg.CheckDevice(f.ctx, dev.Public()), CodeRevoked)
				if err := f.reg.CheckDevice(f.ctx, newDev.Public()); err != nil {
					t.Errorf("CheckDevice(new device) = %v", err)
				}
			}
			if tt.reason == protocol.DenyPassengerRequest {
				return
			}

			wantCode(t, f.reg.ReinstateCredential(f.ctx, c.Body.ID, ""), CodeInvalid)
			if err := f.reg.ReinstateCredential(f.ctx, c.Body.ID, "back office: passenger called"); err != nil {
				t.Fatal(err)
			}
			ic, err := f.reg.IssuedCredentialByID(f.ctx, c.Body.ID)
			if err != nil || !ic.RevokedAt.IsZero() {
				t.Fatalf("after reinstating: revoked at %v, err %v; want live", ic.RevokedAt, err)
			}
			again, created, err := f.reg.OptIn(f.ctx, p, dev.Public(), fl)
			if err != nil || created || again.Signed.Body.ID != c.Body.ID {
				t.Fatalf("opt-in after reinstating = %v created %v, %v; want the reinstated credential", again.Signed.Body.ID, created, err)
			}
			m = f.verifyManifest(mustManifest(t, f, fl).Raw).Body
			if len(m.Deny) != 0 {
				t.Errorf("manifest deny after reinstating = %v, want none", m.Deny)
			}
		})
	}
}

func mustManifest(t *testing.T, f *fixture, fl protocol.FlightID) *protocol.SignedManifest {
	t.Helper()
	s, err := f.reg.BuildManifest(f.ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
