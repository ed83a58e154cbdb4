package registry

import (
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/nats-io/nkeys"
)

// newNKey returns a fresh NATS user public nkey.
func newNKey(t *testing.T) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

func TestRotateAircraftKey(t *testing.T) {
	f := newFixture(t)
	old := f.aircraft("D-AIUA")
	other := f.aircraft("D-AIUB")
	fl := f.flight("101", "D-AIUA", "EUR")
	before, err := f.reg.BuildManifest(f.ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	next, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	nextNKey := newNKey(t)

	t.Run("ErrPlainPutStaysConflict", func(t *testing.T) {
		_, err := f.reg.RegisterAircraft(f.ctx, Aircraft{ID: "D-AIUA", Key: next.Public()})
		if ErrorCode(err) != CodeConflict {
			t.Fatalf("PUT with a new key: %v, want %s", err, CodeConflict)
		}
	})
	t.Run("ErrUnknownAircraft", func(t *testing.T) {
		_, _, err := f.reg.RotateAircraftKey(f.ctx, "D-AXXX", next.Public(), nextNKey, false)
		if ErrorCode(err) != CodeNotFound {
			t.Fatalf("rotate an unknown aircraft: %v, want %s", err, CodeNotFound)
		}
	})
	t.Run("ErrOtherAircraftsKey", func(t *testing.T) {
		_, _, err := f.reg.RotateAircraftKey(f.ctx, "D-AIUA", other.Public(), nextNKey, false)
		if ErrorCode(err) != CodeConflict {
			t.Fatalf("rotate to D-AIUB's key: %v, want %s", err, CodeConflict)
		}
	})

	f.clock.Add(time.Hour)
	rotatedAt := f.reg.now()
	a, changed, err := f.reg.RotateAircraftKey(f.ctx, "D-AIUA", next.Public(), nextNKey, false)
	if err != nil || !changed || !a.Key.Equal(next.Public()) || a.NKey != nextNKey {
		t.Fatalf("rotate: %v, changed %v, key %v; want the new key", err, changed, a.Key.ID())
	}
	if cur, err := f.reg.AircraftKey(f.ctx, "D-AIUA"); err != nil || !cur.Equal(next.Public()) {
		t.Fatalf("AircraftKey after the rotation = %v, %v; want the new key", cur.ID(), err)
	}
	retired, err := f.reg.RetiredAircraftKeys(f.ctx, "D-AIUA")
	if err != nil {
		t.Fatal(err)
	}
	if len(retired) != 1 || !retired[0].Key.Equal(old.Public()) || !retired[0].ReplacedAt.Equal(rotatedAt) || retired[0].Compromised {
		t.Fatalf("RetiredAircraftKeys = %+v, want the old key replaced at %s", retired, rotatedAt)
	}
	after, err := f.reg.SyncManifest(f.ctx, "D-AIUA", fl)
	if err != nil {
		t.Fatal(err)
	}
	if after.Body.Serial <= before.Body.Serial || !after.Body.AircraftKey.Equal(next.Public()) {
		t.Fatalf("manifest after the rotation: serial %d (before %d), aircraft key %s; want a new one naming %s",
			after.Body.Serial, before.Body.Serial, after.Body.AircraftKey.ID(), next.ID())
	}

	t.Run("SameKeyAgain", func(t *testing.T) {
		_, changed, err := f.reg.RotateAircraftKey(f.ctx, "D-AIUA", next.Public(), nextNKey, false)
		if err != nil || changed {
			t.Fatalf("rotate to the key in use: changed %v, %v; want no change", changed, err)
		}
	})
	t.Run("ErrBackToOldKey", func(t *testing.T) {
		_, _, err := f.reg.RotateAircraftKey(f.ctx, "D-AIUA", old.Public(), newNKey(t), false)
		if ErrorCode(err) != CodeConflict {
			t.Fatalf("rotate back to the retired key: %v, want %s", err, CodeConflict)
		}
	})
	t.Run("ErrRetiredKeyOnAnotherAircraft", func(t *testing.T) {
		_, err := f.reg.RegisterAircraft(f.ctx, Aircraft{ID: "D-AIUC", Key: old.Public()})
		if ErrorCode(err) != CodeConflict {
			t.Fatalf("register D-AIUC with D-AIUA's retired key: %v, want %s", err, CodeConflict)
		}
	})
	t.Run("ErrNotAnAircraftKey", func(t *testing.T) {
		dev, _ := crypto.GenerateKey(crypto.Device, nil)
		_, _, err := f.reg.RotateAircraftKey(f.ctx, "D-AIUA", dev.Public(), newNKey(t), false)
		if ErrorCode(err) != CodeInvalid {
			t.Fatalf("rotate to a device key: %v, want %s", err, CodeInvalid)
		}
	})
}

// TestRotateCompromisedAircraftKey: a rotation marked compromised keeps the
// old key on record as compromised, for clearing to refuse.
func TestRotateCompromisedAircraftKey(t *testing.T) {
	f := newFixture(t)
	old := f.aircraft("D-AIUA")
	next, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.reg.RotateAircraftKey(f.ctx, "D-AIUA", next.Public(), newNKey(t), true); err != nil {
		t.Fatal(err)
	}
	retired, err := f.reg.RetiredAircraftKeys(f.ctx, "D-AIUA")
	if err != nil {
		t.Fatal(err)
	}
	if len(retired) != 1 || !retired[0].Key.Equal(old.Public()) || !retired[0].Compromised {
		t.Fatalf("RetiredAircraftKeys = %+v, want the old key, compromised", retired)
	}
}

// TestRetiringNKeys: a key rotation needs a new nkey; a plain one keeps the
// old nkey until RetiringNKeyReplay after the credential window of the
// last flight begun before it closes (not at all when none had begun); a
// compromised one keeps nothing.
func TestRetiringNKeys(t *testing.T) {
	f := newFixture(t)
	k1, _ := crypto.GenerateKey(crypto.Aircraft, nil)
	n1 := newNKey(t)
	if _, err := f.reg.RegisterAircraft(f.ctx, Aircraft{ID: "D-AINK", Key: k1.Public(), NKey: n1}); err != nil {
		t.Fatal(err)
	}
	f.flight("301", "D-AINK", "EUR")
	rotate := func(nkey string, compromised bool) error {
		t.Helper()
		k, _ := crypto.GenerateKey(crypto.Aircraft, nil)
		_, _, err := f.reg.RotateAircraftKey(f.ctx, "D-AINK", k.Public(), nkey, compromised)
		return err
	}
	retiring := func() []RetiringNKey {
		t.Helper()
		got, err := f.reg.RetiringNKeys(f.ctx, f.reg.now())
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	t.Run("ErrNoNKey", func(t *testing.T) {
		if err := rotate("", false); ErrorCode(err) != CodeInvalid {
			t.Fatalf("rotation without an nkey: %v, want %s", err, CodeInvalid)
		}
	})
	n2 := newNKey(t)
	t.Run("NoFlightBegun", func(t *testing.T) {
		// The fixture's clock is before the flight's credential window.
		if err := rotate(n2, false); err != nil {
			t.Fatal(err)
		}
		if got := retiring(); len(got) != 0 {
			t.Fatalf("RetiringNKeys = %+v, want none: nothing the old key signed can clear", got)
		}
	})
	f.clock.Add(48 * time.Hour) // the flight's day: its window opened a day ago
	n3 := newNKey(t)
	t.Run("FlightBegun", func(t *testing.T) {
		if err := rotate(n3, false); err != nil {
			t.Fatal(err)
		}
		_, closes := CredentialWindow(flightDate)
		want := []RetiringNKey{{Aircraft: "D-AINK", NKey: n2, Until: closes.Add(RetiringNKeyReplay)}}
		if got := retiring(); len(got) != 1 || got[0] != want[0] {
			t.Fatalf("RetiringNKeys = %+v, want %+v", got, want)
		}
		after, err := f.reg.RetiringNKeys(f.ctx, want[0].Until)
		if err != nil || len(after) != 0 {
			t.Fatalf("RetiringNKeys at the end of the grace = %+v, %v; want none", after, err)
		}
	})
	t.Run("ErrNKeyInUse", func(t *testing.T) {
		for _, nk := range []string{n2, n3} {
			if err := rotate(nk, false); ErrorCode(err) != CodeConflict {
				t.Errorf("rotation to nkey %s, in use or in its grace: %v, want %s", nk, err, CodeConflict)
			}
		}
	})
	t.Run("CompromisedKeepsNothing", func(t *testing.T) {
		if err := rotate(newNKey(t), true); err != nil {
			t.Fatal(err)
		}
		got := retiring()
		if len(got) != 1 || got[0].NKey != n2 {
			t.Fatalf("RetiringNKeys = %+v, want only %s (from the plain rotation before)", got, n2)
		}
	})
}
