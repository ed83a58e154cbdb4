package harness

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
)

// revocationBound is how long a revocation (or its lifting) may take to
// reach the cabin server with the link up: generous; the notice makes it
// about a second.
const revocationBound = 30 * time.Second

// try presents a fresh payment code of p (full: the credential inside) and
// returns the decision.
func (f *fleet) try(p *Passenger, full bool) onboard.Decision {
	f.t.Helper()
	code, err := p.Wallet.PaymentCode(f.flights[0], full)
	if err != nil {
		f.t.Fatal(err)
	}
	d, err := f.hh[0].Authorize(f.ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code,
		Lines: []onboard.Line{{SKU: "coffee", Quantity: 1}}})
	if err != nil {
		f.t.Fatal(err)
	}
	return d
}

// waitDenied waits until the cabin server refuses (or, want false, takes)
// p's credential as deny listed, asking the limit check (which sells
// nothing) with full codes, which name the credential exactly.
func (f *fleet) waitDenied(p *Passenger, want bool) {
	f.t.Helper()
	err := Poll(f.ctx, revocationBound, fmt.Sprintf("deny listed = %v on board", want), func() (bool, error) {
		code, err := p.Wallet.PaymentCode(f.flights[0], true)
		if err != nil {
			return false, err
		}
		ans, err := f.hh[0].Limit(f.ctx, code)
		if err != nil {
			return false, err
		}
		denied := ans.Decline != nil && ans.Decline.Reason == protocol.ReasonDenyListed
		return denied == want && (want || ans.Valid), nil
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// waitKnown waits until the cabin server holds p's credential (the delta
// with it arrived), so a compact code pays.
func (f *fleet) waitKnown(p *Passenger) {
	f.t.Helper()
	err := Poll(f.ctx, revocationBound, "the credential on board", func() (bool, error) {
		code, err := p.Wallet.PaymentCode(f.flights[0], false)
		if err != nil {
			return false, err
		}
		ans, err := f.hh[0].Limit(f.ctx, code)
		return err == nil && ans.Valid, err
	})
	if err != nil {
		f.t.Fatal(err)
	}
}

// TestRevocationReasons revokes a paying passenger's credential for each
// reason, over the back-office API, with a real ground and cabin server:
// the passenger tries to opt in again, and to pay with a full code (the
// credential inside) and a compact one. A revocation the reason makes
// binding refuses all three until the back office reinstates it; then the
// passenger pays again.
func TestRevocationReasons(t *testing.T) {
	f := newFleet(t, "D-AIUA")
	for _, tt := range []struct {
		reason    string
		mayOptIn  bool // the reason leaves the passenger free to opt in again
		reinstate bool
	}{
		{"revoked", false, true},
		{"device_lost", false, true},
		{"fraud_suspected", false, true},
		{"passenger_request", true, false},
	} {
		t.Run(tt.reason, func(t *testing.T) {
			p := f.passenger("pax-" + tt.reason)
			f.waitKnown(p)
			if d := f.try(p, false); !d.Approved {
				t.Fatalf("before revoking: declined %+v", d.Decline)
			}
			cred, _ := p.Wallet.Credential(f.flights[0])
			if _, err := f.g.API.RevokeFor(f.ctx, cred.Body.ID, tt.reason, "test"); err != nil {
				t.Fatal(err)
			}

			again, err := f.g.API.OptIn(f.ctx, p.Wallet, f.flights[0])
			if tt.mayOptIn {
				if err != nil || again.ID == cred.Body.ID {
					t.Fatalf("opt-in after %s = %v, %v; want a new credential", tt.reason, again.ID, err)
				}
			} else if ae, ok := errors.AsType[*registry.Error](err); !ok || ae.Code != registry.CodeRevoked {
				t.Fatalf("opt-in after %s: err = %v, want code %s", tt.reason, err, registry.CodeRevoked)
			}

			f.waitDenied(p, true)
			for _, full := range []bool{true, false} {
				d := f.try(p, full)
				switch {
				case d.Approved:
					t.Errorf("pay with the revoked credential (full code %v): approved", full)
				case !tt.mayOptIn && d.Decline.Reason != protocol.ReasonDenyListed:
					t.Errorf("pay with the revoked credential (full code %v): %+v, want deny_listed", full, d.Decline)
				}
				// With a new credential for the same device on board, a
				// compact code of the old one may be refused by the new
				// one's device signature (the candidate that got furthest,
				// SPEC §12.1): refused either way.
			}
			if tt.mayOptIn {
				if _, err := p.Wallet.AddCredential(again.COSE, nil); err != nil {
					t.Fatal(err)
				}
				if d := f.try(p, true); !d.Approved {
					t.Fatalf("pay with the new credential: declined %+v", d.Decline)
				}
				return
			}

			if _, err := f.g.API.Reinstate(f.ctx, cred.Body.ID, "back office: cleared after a call"); err != nil {
				t.Fatal(err)
			}
			back, err := f.g.API.OptIn(f.ctx, p.Wallet, f.flights[0])
			if err != nil || back.ID != cred.Body.ID {
				t.Fatalf("opt-in after reinstating = %v, %v; want credential %s", back.ID, err, cred.Body.ID)
			}
			f.waitKnown(p)
			for _, full := range []bool{true, false} {
				if d := f.try(p, full); !d.Approved {
					t.Errorf("pay after reinstating (full code %v): declined %+v", full, d.Decline)
				}
			}
		})
	}
}
