package onboard_test

import (
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// rotation is a flight whose issuer rotated from old to the flight's issuer
// (next): the cabin server's anchor trusts both, old until oldEnd.
type rotation struct {
	f           *ft.Flight
	old, next   crypto.PrivateKey
	oldEnd      time.Time
	byOld, byNx *ft.Passenger
}

func newRotation(t *testing.T) *rotation {
	t.Helper()
	f := ft.New(t, ft.Options{Passengers: 0})
	r := &rotation{f: f, next: f.Issuer, oldEnd: f.Now().Add(2 * time.Hour)}
	var err error
	if r.old, err = crypto.GenerateKey(crypto.Issuer, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Anchor.Add(crypto.TrustedKey{Key: r.old.Public(), NotBefore: f.Now().Add(-24 * time.Hour), NotAfter: r.oldEnd}); err != nil {
		t.Fatal(err)
	}
	f.Manifest.Trust = append(f.Manifest.Trust, protocol.TrustEntryFor(crypto.TrustedKey{Key: r.old.Public(),
		NotBefore: f.Now().Add(-24 * time.Hour), NotAfter: r.oldEnd}))
	r.byOld = f.NewPassengerWith(ft.PassengerOptions{InManifest: true, Issuer: r.old})
	r.byNx = f.NewPassengerWith(ft.PassengerOptions{InManifest: true})
	return r
}

// signedBy signs the flight's next manifest with k, after mut.
func (r *rotation) signedBy(k crypto.PrivateKey, mut func(*protocol.Manifest)) []byte {
	keep := r.f.Issuer
	r.f.Issuer = k
	defer func() { r.f.Issuer = keep }()
	return r.f.SignManifest(mut)
}

func (r *rotation) pays(t *testing.T, c *onboard.Cabin, p *ft.Passenger) onboard.Decision {
	t.Helper()
	d, err := c.Authorize(ctx, sale(p.Code(), coffee(1)...))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestIssuerRotationOverlap: during the overlap a manifest signed by either
// key loads, and credentials signed by either pay; after the old key's
// window a manifest it signs is refused and its credentials decline.
func TestIssuerRotationOverlap(t *testing.T) {
	for _, tt := range []struct {
		name   string
		signer func(r *rotation) crypto.PrivateKey
	}{
		{"ManifestByOldKey", func(r *rotation) crypto.PrivateKey { return r.old }},
		{"ManifestByNewKey", func(r *rotation) crypto.PrivateKey { return r.next }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newRotation(t)
			c, _ := r.f.OpenCabin(r.signedBy(tt.signer(r), nil), nil)
			for _, p := range []*ft.Passenger{r.byOld, r.byNx} {
				if d := r.pays(t, c, p); !d.Approved {
					t.Errorf("in the overlap, credential by %s: declined %+v", p.Credential.KeyID, d.Decline)
				}
			}
		})
	}
	t.Run("AfterTheWindow", func(t *testing.T) {
		r := newRotation(t)
		c, _ := r.f.OpenCabin(r.signedBy(r.next, nil), nil)
		r.f.Clock.Set(r.oldEnd)
		if d := r.pays(t, c, r.byOld); d.Approved || d.Decline.Reason != protocol.ReasonBadIssuerSignature {
			t.Errorf("after the window, credential by the old key: %+v, want declined %s", d.Decline, protocol.ReasonBadIssuerSignature)
		}
		if d := r.pays(t, c, r.byNx); !d.Approved {
			t.Errorf("after the window, credential by the new key: declined %+v", d.Decline)
		}
		err := c.LoadManifest(ctx, r.signedBy(r.old, nil))
		if !errors.Is(err, crypto.ErrKeyNotValid) {
			t.Errorf("manifest signed by the old key after its window: %v, want %v", err, crypto.ErrKeyNotValid)
		}
	})
}

// TestIssuerRevokedByManifest: a manifest naming the old key revoked takes
// it out of the anchor at once: its credentials decline, and a manifest or
// delta it signs is refused, after a restart too.
func TestIssuerRevokedByManifest(t *testing.T) {
	r := newRotation(t)
	c, j := r.f.OpenCabin(r.signedBy(r.old, nil), nil)
	if d := r.pays(t, c, r.byOld); !d.Approved {
		t.Fatalf("before the revocation: declined %+v", d.Decline)
	}
	revoke := func(m *protocol.Manifest) {
		m.Trust = m.Trust[:1] // the new key alone
		m.RevokedIssuers = []protocol.IssuerKey{{PublicKey: r.old.Public()}}
	}
	if err := c.LoadManifest(ctx, r.signedBy(r.next, revoke)); err != nil {
		t.Fatal(err)
	}
	if got := r.f.Anchor.Lookup(r.old.ID(), crypto.Issuer, r.f.Now()); len(got) != 0 {
		t.Fatalf("the anchor still trusts the revoked key: %v", got)
	}
	if d := r.pays(t, c, r.byOld); d.Approved {
		t.Error("credential by the revoked key: approved")
	}
	if d := r.pays(t, c, r.byNx); !d.Approved {
		t.Errorf("credential by the new key: declined %+v", d.Decline)
	}
	delta := r.f.SignDelta(1, nil)
	keep := r.f.Issuer
	r.f.Issuer = r.old
	badDelta := r.f.SignDelta(1, nil)
	r.f.Issuer = keep
	if err := c.LoadManifest(ctx, r.signedBy(r.old, nil)); !errors.Is(err, crypto.ErrUnknownKey) {
		t.Errorf("manifest signed by the revoked key: %v, want %v", err, crypto.ErrUnknownKey)
	}
	if _, err := c.ApplyDeltas(ctx, [][]byte{badDelta}); !errors.Is(err, crypto.ErrUnknownKey) {
		t.Errorf("delta signed by the revoked key: %v, want %v", err, crypto.ErrUnknownKey)
	}
	if n, err := c.ApplyDeltas(ctx, [][]byte{delta}); n != 1 || err != nil {
		t.Errorf("delta signed by the new key: applied %d, %v", n, err)
	}

	t.Run("AfterRestart", func(t *testing.T) {
		c.Close()
		j.Close()
		// A fresh anchor from the configuration trusts the old key again,
		// until the stored manifest takes it out.
		anchor, err := crypto.NewTrustList(r.f.Anchor.Keys()...)
		if err != nil {
			t.Fatal(err)
		}
		if err := anchor.Add(crypto.TrustedKey{Key: r.old.Public(), NotBefore: r.f.Now().Add(-24 * time.Hour), NotAfter: r.oldEnd}); err != nil {
			t.Fatal(err)
		}
		again, _ := r.f.OpenCabin(nil, func(cfg *onboard.Config) { cfg.Issuer = anchor })
		if got := anchor.Lookup(r.old.ID(), crypto.Issuer, r.f.Now()); len(got) != 0 {
			t.Fatal("after a restart the anchor trusts the revoked key again")
		}
		if d := r.pays(t, again, r.byOld); d.Approved {
			t.Error("after a restart, credential by the revoked key: approved")
		}
	})
}

// TestManifestSignedByKeyItRevokes: a manifest may not name its own signer
// revoked.
func TestManifestSignedByKeyItRevokes(t *testing.T) {
	r := newRotation(t)
	raw := r.signedBy(r.old, func(m *protocol.Manifest) {
		m.Trust = m.Trust[:1]
		m.RevokedIssuers = []protocol.IssuerKey{{PublicKey: r.old.Public()}}
	})
	_, err := onboard.VerifyManifest(raw, r.f.Anchor, onboard.Identity{Flight: r.f.ID, Aircraft: r.f.Aircraft,
		AircraftKey: r.f.AircraftKey.Public()}, r.f.Now(), slog.New(slog.DiscardHandler))
	if err == nil {
		t.Fatal("a manifest naming its own signer revoked was accepted")
	}
}
