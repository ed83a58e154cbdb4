package api

import (
	"testing"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/registry"
	"github.com/nats-io/nkeys"
)

// TestRotateAircraftKeyAPI: a PUT with another key stays 409; POST
// /v1/aircraft/{id}/key moves the aircraft to it, and the same call again
// answers the same.
func TestRotateAircraftKeyAPI(t *testing.T) {
	e := newEnv(t, envOpts{})
	old, _ := crypto.GenerateKey(crypto.Aircraft, nil)
	next, _ := crypto.GenerateKey(crypto.Aircraft, nil)
	if _, err := e.c.RegisterAircraft(e.ctx, "D-AIUA", old.Public(), ""); err != nil {
		t.Fatal(err)
	}
	_, err := e.c.RegisterAircraft(e.ctx, "D-AIUA", next.Public(), "")
	wantAPIError(t, err, registry.CodeConflict)
	nk := testNKey(t)
	for range 2 {
		v, err := e.c.RotateAircraftKey(e.ctx, "D-AIUA", next.Public(), nk)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := v.Key, next.Public().String(); got != want {
			t.Fatalf("rotated key = %s, want %s", got, want)
		}
	}
	_, err = e.c.RotateAircraftKey(e.ctx, "D-AIUA", old.Public(), testNKey(t))
	wantAPIError(t, err, registry.CodeConflict)
	_, err = e.c.RotateAircraftKey(e.ctx, "D-AXXX", old.Public(), testNKey(t))
	wantAPIError(t, err, registry.CodeNotFound)
}

// testNKey returns a fresh NATS user public nkey.
func testNKey(t *testing.T) string {
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
