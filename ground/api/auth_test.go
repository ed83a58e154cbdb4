package api

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/registry"
)

func signed(t *testing.T, dev crypto.PrivateKey, at time.Time) signedRequest {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/v1/me", nil)
	SignRequest(req, nil, dev, at, nil)
	s, err := parseSigned(req, nil, at)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestReplayCache(t *testing.T) {
	dev, _ := crypto.GenerateKey(crypto.Device, nil)
	c := newReplayCache(2)
	t0 := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	a, b, d := signed(t, dev, t0), signed(t, dev, t0), signed(t, dev, t0)
	if err := c.accept(a, t0); err != nil {
		t.Fatal(err)
	}
	if e := c.accept(a, t0); registry.ErrorCode(e) != registry.CodeUnauthorized {
		t.Fatalf("replay = %v, want unauthorized", e)
	}
	if err := c.accept(b, t0); err != nil {
		t.Fatal(err)
	}
	if e := c.accept(d, t0); registry.ErrorCode(e) != registry.CodeUnavailable {
		t.Fatalf("third request with room for two = %v, want unavailable", e)
	}
	// Once the timestamps are out of the window the entries are dropped:
	// a replay is then refused as stale by parseSigned, not by the cache.
	later := t0.Add(MaxClockSkew + 2*time.Minute)
	if err := c.accept(signed(t, dev, later), later); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	if c.n != 1 {
		t.Fatalf("entries = %d, want 1 after the old minute was dropped", c.n)
	}
}

// FuzzSignedHeaders feeds arbitrary signing headers and bodies to the
// request authentication: it must never panic, and nothing but a real
// signature may verify.
func FuzzSignedHeaders(f *testing.F) {
	dev, _ := crypto.PrivateKeyFromSeed(crypto.Device, make([]byte, 32))
	now := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	req := httptest.NewRequest(http.MethodPost, "/v1/me/credentials", nil)
	body := []byte(`{"flight":"XX123-2026-11-21"}`)
	// A fixed nonce: fuzz workers rebuild the seeds and must get the same.
	SignRequest(req, body, dev, now, bytes.NewReader(make([]byte, 16)))
	valid := []string{req.Header.Get(HeaderDevice), req.Header.Get(HeaderTimestamp), req.Header.Get(HeaderNonce), req.Header.Get(HeaderSignature)}
	f.Add(valid[0], valid[1], valid[2], valid[3], body)
	f.Add(valid[0], valid[1], valid[2], valid[3][:10], body)                               // truncated signature
	f.Add(valid[0], strconv.FormatInt(now.Unix()+1, 10), valid[2], valid[3], body)         // timestamp moved
	f.Add("ZZ"+valid[0][2:], valid[1], valid[2], valid[3], body)                           // bad key id
	f.Add(valid[0], "-1", valid[2], valid[3], body)                                        // wrong type
	f.Add(valid[0], valid[1], valid[2], valid[3], append([]byte{}, body[:len(body)-1]...)) // body changed
	f.Add(valid[0], valid[1], "00000000000000000000000000000000", valid[3], body)          // nonce changed
	f.Add("", "", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, kid, ts, nonce, sig string, b []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/me/credentials", nil)
		r.Header.Set(HeaderDevice, kid)
		r.Header.Set(HeaderTimestamp, ts)
		r.Header.Set(HeaderNonce, nonce)
		r.Header.Set(HeaderSignature, sig)
		s, err := parseSigned(r, b, now)
		if err != nil {
			if registry.ErrorCode(err) != registry.CodeUnauthorized {
				t.Fatalf("parse error with code %s: %v", registry.ErrorCode(err), err)
			}
			return
		}
		// The key id header only chooses which enrolled key to verify with
		// (the server looks it up); verifying with a given key does not
		// read it, so a request that differs only there still verifies
		// here, and would fail against any other device's key.
		isOriginal := ts == valid[1] && nonce == valid[2] && sig == valid[3] && string(b) == string(body)
		if s.verify(dev.Public()) != isOriginal {
			t.Fatalf("verify = %v for a request that is original=%v", !isOriginal, isOriginal)
		}
	})
}
