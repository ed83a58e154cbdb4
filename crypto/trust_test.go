package crypto

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	t1 = t0.Add(30 * 24 * time.Hour)
)

const testDomain Domain = "airtab/test/v1"

func TestTrustListVerify(t *testing.T) {
	issuer := testKey(t, Issuer, 20)
	tl, err := NewTrustList(TrustedKey{Key: issuer.Public(), NotBefore: t0, NotAfter: t1})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("manifest")
	sig := issuer.Sign(testDomain, msg)
	id := issuer.ID()
	tests := []struct {
		name    string
		id      KeyID
		p       Purpose
		at      time.Time
		sig     []byte
		wantErr error
	}{
		{"OK", id, Issuer, t0.Add(time.Hour), sig, nil},
		{"OKAtNotBefore", id, Issuer, t0, sig, nil},
		{"ErrKeyNotValidAtNotAfter", id, Issuer, t1, sig, ErrKeyNotValid},
		{"ErrKeyNotValidExpired", id, Issuer, t1.Add(time.Hour), sig, ErrKeyNotValid},
		{"ErrKeyNotValidNotYet", id, Issuer, t0.Add(-time.Nanosecond), sig, ErrKeyNotValid},
		{"ErrUnknownKeyWrongPurpose", id, Aircraft, t0.Add(time.Hour), sig, ErrUnknownKey},
		{"ErrUnknownKeyOtherID", testKey(t, Issuer, 21).ID(), Issuer, t0.Add(time.Hour), sig, ErrUnknownKey},
		{"ErrBadSignature", id, Issuer, t0.Add(time.Hour), issuer.Sign(testDomain, []byte("other")), ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tl.Verify(tt.id, tt.p, tt.at, testDomain, msg, tt.sig)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == nil && !got.Equal(issuer.Public()) {
				t.Fatalf("Verify key = %v, want %v", got, issuer.Public())
			}
			if tt.wantErr != nil && !strings.Contains(err.Error(), tt.id.String()) {
				t.Fatalf("Verify error %q does not name key id %s", err, tt.id)
			}
		})
	}
	t.Run("WrongDomain", func(t *testing.T) {
		if _, err := tl.Verify(id, Issuer, t0, "airtab/other/v1", msg, sig); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify under another domain: error = %v, want ErrBadSignature", err)
		}
	})
	t.Run("InvalidDomain", func(t *testing.T) {
		_, err := tl.Verify(id, Issuer, t0, "", msg, sig)
		if err == nil || errors.Is(err, ErrBadSignature) {
			t.Fatalf("Verify with empty domain: error = %v, want a domain error", err)
		}
	})
}

func TestTrustListLookup(t *testing.T) {
	a := testKey(t, Aircraft, 22).Public()
	tl, err := NewTrustList(
		TrustedKey{Key: a, NotBefore: t0, NotAfter: t1},
		// The same key again with an overlapping, longer window.
		TrustedKey{Key: a, NotBefore: t0, NotAfter: t1.Add(time.Hour)},
	)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := len(tl.Lookup(a.ID(), Aircraft, t0)), 1; got != want {
		t.Fatalf("len(Lookup inside both windows) = %d, want %d", got, want)
	}
	if got, want := len(tl.Lookup(a.ID(), Aircraft, t1)), 1; got != want {
		t.Fatalf("len(Lookup inside the longer window) = %d, want %d", got, want)
	}
	if got := tl.Lookup(a.ID(), Aircraft, t1.Add(time.Hour)); got != nil {
		t.Fatalf("Lookup after both windows = %v, want nil", got)
	}
	if got := tl.Lookup(a.ID(), Device, t0); got != nil {
		t.Fatalf("Lookup with wrong purpose = %v, want nil", got)
	}
}

// TestTrustListCollision files two different keys under one key id (SHA-256
// will not give us a real 8-byte collision) and checks that Verify finds
// whichever one signed.
func TestTrustListCollision(t *testing.T) {
	a := testKey(t, Issuer, 23)
	b := testKey(t, Issuer, 24)
	c := testKey(t, Aircraft, 25)
	id := a.ID()
	tl := &TrustList{}
	for _, k := range []TrustedKey{
		{Key: a.Public(), NotBefore: t0, NotAfter: t1},
		{Key: b.Public(), NotBefore: t0, NotAfter: t1},
		{Key: c.Public(), NotBefore: t0, NotAfter: t1},
	} {
		if err := tl.add(id, k); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := len(tl.Lookup(id, Issuer, t0)), 2; got != want {
		t.Fatalf("len(Lookup) = %d, want %d", got, want)
	}
	msg := []byte("clearing receipt")
	for _, signer := range []PrivateKey{a, b} {
		got, err := tl.Verify(id, Issuer, t0, testDomain, msg, signer.Sign(testDomain, msg))
		if err != nil {
			t.Fatalf("Verify signature by %v: %v", signer, err)
		}
		if !got.Equal(signer.Public()) {
			t.Fatalf("Verify key = %v, want %v", got, signer.Public())
		}
	}
	// The aircraft key shares the id but not the purpose: never tried.
	if _, err := tl.Verify(id, Issuer, t0, testDomain, msg, c.Sign(testDomain, msg)); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("Verify aircraft signature as issuer: error = %v, want ErrBadSignature", err)
	}
	// One colliding key expired, the other valid: still found.
	tl2 := &TrustList{}
	if err := tl2.add(id, TrustedKey{Key: a.Public(), NotBefore: t0, NotAfter: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := tl2.add(id, TrustedKey{Key: b.Public(), NotBefore: t0, NotAfter: t1}); err != nil {
		t.Fatal(err)
	}
	if _, err := tl2.Verify(id, Issuer, t1.Add(-time.Hour), testDomain, msg, b.Sign(testDomain, msg)); err != nil {
		t.Fatalf("Verify with one colliding key expired: %v", err)
	}
}

func TestTrustListAddRejects(t *testing.T) {
	k := testKey(t, Issuer, 26).Public()
	tests := map[string][]TrustedKey{
		"ZeroKey":      {{NotBefore: t0, NotAfter: t1}},
		"EmptyWindow":  {{Key: k, NotBefore: t0, NotAfter: t0}},
		"Inverted":     {{Key: k, NotBefore: t1, NotAfter: t0}},
		"NoWindow":     {{Key: k}},
		"SameTwice":    {{Key: k, NotBefore: t0, NotAfter: t1}, {Key: k, NotBefore: t0, NotAfter: t1}},
		"SameTwiceLoc": {{Key: k, NotBefore: t0, NotAfter: t1}, {Key: k, NotBefore: t0.In(time.FixedZone("X", 3600)), NotAfter: t1}},
	}
	for name, keys := range tests {
		t.Run(name, func(t *testing.T) {
			if tl, err := NewTrustList(keys...); err == nil {
				t.Fatalf("NewTrustList = %d keys, want error", tl.Len())
			}
		})
	}
	t.Run("SameKeyOtherWindow", func(t *testing.T) {
		tl, err := NewTrustList(
			TrustedKey{Key: k, NotBefore: t0, NotAfter: t1},
			TrustedKey{Key: k, NotBefore: t1, NotAfter: t1.Add(time.Hour)},
		)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := tl.Len(), 2; got != want {
			t.Fatalf("Len = %d, want %d", got, want)
		}
	})
}

func TestTrustListKeysOrder(t *testing.T) {
	var keys []TrustedKey
	for i := range 6 {
		k := testKey(t, allPurposes[i%3], uint64(30+i)).Public()
		keys = append(keys,
			TrustedKey{Key: k, NotBefore: t1, NotAfter: t1.Add(time.Hour)},
			TrustedKey{Key: k, NotBefore: t0, NotAfter: t1})
	}
	a, err := NewTrustList(keys...)
	if err != nil {
		t.Fatal(err)
	}
	rev := append([]TrustedKey(nil), keys...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	b, err := NewTrustList(rev...)
	if err != nil {
		t.Fatal(err)
	}
	ka, kb := a.Keys(), b.Keys()
	if got, want := len(ka), len(keys); got != want {
		t.Fatalf("len(Keys) = %d, want %d", got, want)
	}
	for i := range ka {
		if !ka[i].same(kb[i]) {
			t.Fatalf("Keys()[%d] differs with insertion order: %v vs %v", i, ka[i], kb[i])
		}
		if i == 0 {
			continue
		}
		prev, cur := ka[i-1].Key.ID(), ka[i].Key.ID()
		if string(prev[:]) > string(cur[:]) {
			t.Fatalf("Keys()[%d] id %s after %s: not sorted by id", i, cur, prev)
		}
		if prev == cur && !ka[i-1].NotBefore.Before(ka[i].NotBefore) {
			t.Fatalf("Keys()[%d]: same key not sorted by NotBefore", i)
		}
	}
}

func TestTrustListNil(t *testing.T) {
	var tl *TrustList
	k := testKey(t, Issuer, 40)
	if got := tl.Len(); got != 0 {
		t.Fatalf("Len = %d, want 0", got)
	}
	if got := tl.Keys(); got != nil {
		t.Fatalf("Keys = %v, want nil", got)
	}
	if got := tl.Lookup(k.ID(), Issuer, t0); got != nil {
		t.Fatalf("Lookup = %v, want nil", got)
	}
	if _, err := tl.Verify(k.ID(), Issuer, t0, testDomain, nil, k.Sign(testDomain, nil)); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("Verify error = %v, want ErrUnknownKey", err)
	}
	if err := tl.Add(TrustedKey{Key: k.Public(), NotBefore: t0, NotAfter: t1}); err == nil {
		t.Fatal("Add to nil list succeeded")
	}
}

// TestTrustListConcurrent is for the race detector: readers and a writer at
// once.
func TestTrustListConcurrent(t *testing.T) {
	signer := testKey(t, Issuer, 41)
	tl, err := NewTrustList(TrustedKey{Key: signer.Public(), NotBefore: t0, NotAfter: t1})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("m")
	sig := signer.Sign(testDomain, msg)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if _, err := tl.Verify(signer.ID(), Issuer, t0, testDomain, msg, sig); err != nil {
					t.Error(err)
					return
				}
				_ = tl.Keys()
			}
		})
	}
	var more []PublicKey
	for i := range 20 {
		more = append(more, testKey(t, Aircraft, uint64(100+i)).Public())
	}
	wg.Go(func() {
		for _, k := range more {
			if err := tl.Add(TrustedKey{Key: k, NotBefore: t0, NotAfter: t1}); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	if got, want := tl.Len(), 21; got != want {
		t.Fatalf("Len = %d, want %d", got, want)
	}
}
