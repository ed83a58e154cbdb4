package registry

import (
	"encoding/hex"
	"testing"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// TestWeakKeysRefusedAtRegistration checks that a small-order or
// non-canonical Ed25519 key is refused as a passenger's device, a further
// device and an aircraft key, and writes nothing.
func TestWeakKeysRefusedAtRegistration(t *testing.T) {
	f := newFixture(t)
	for _, tc := range []struct{ name, hex string }{
		{"Identity", "0100000000000000000000000000000000000000000000000000000000000000"},
		{"Order8", "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"},
		{"NonCanonical", "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"},
	} {
		b, _ := hex.DecodeString(tc.hex)
		dev, err := crypto.PublicKeyFromBytes(crypto.Device, b)
		if err != nil {
			t.Fatal(err)
		}
		ac, err := crypto.PublicKeyFromBytes(crypto.Aircraft, b)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(tc.name+"/Passenger", func(t *testing.T) {
			before := f.count("registry_passengers")
			_, err := f.reg.CreatePassenger(f.ctx, dev, "")
			wantCode(t, err, CodeInvalid)
			if got := f.count("registry_passengers"); got != before {
				t.Fatalf("passengers = %d after a refused registration, want %d", got, before)
			}
		})
		t.Run(tc.name+"/FurtherDevice", func(t *testing.T) {
			good, _ := crypto.GenerateKey(crypto.Device, nil)
			p, err := f.reg.CreatePassenger(f.ctx, good.Public(), "")
			if err != nil {
				t.Fatal(err)
			}
			wantCode(t, f.reg.EnrollDevice(f.ctx, p.ID, dev), CodeInvalid)
		})
		t.Run(tc.name+"/Aircraft", func(t *testing.T) {
			_, err := f.reg.RegisterAircraft(f.ctx, Aircraft{ID: protocol.AircraftID("D-WEAK"), Key: ac})
			wantCode(t, err, CodeInvalid)
		})
	}
}
