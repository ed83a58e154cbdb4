package crypto

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Errors from TrustList.Verify. They are wrapped with the key id, purpose
// and time; test for them with errors.Is.
var (
	// ErrUnknownKey means the trust list has no key with that id and
	// purpose.
	ErrUnknownKey = errors.New("unknown key")
	// ErrKeyNotValid means keys with that id and purpose exist, but none
	// is valid at the time asked about: expired or not yet valid.
	ErrKeyNotValid = errors.New("key not valid at this time")
	// ErrBadSignature means keys with that id and purpose are valid at
	// that time, but the signature verifies under none of them.
	ErrBadSignature = errors.New("bad signature")
)

// MaxTrustListLen is the most keys a trust list holds. It is a bound against
// hostile or broken input, far above any real fleet's key count.
const MaxTrustListLen = 1 << 16

// TrustedKey is a public key (its purpose comes from the key) with a
// validity window [NotBefore, NotAfter): valid from NotBefore inclusive
// until NotAfter exclusive.
type TrustedKey struct {
	Key                 PublicKey
	NotBefore, NotAfter time.Time
}

// ValidAt reports whether at lies inside the key's window
// [NotBefore, NotAfter).
func (k TrustedKey) ValidAt(at time.Time) bool {
	return !at.Before(k.NotBefore) && at.Before(k.NotAfter)
}

func (k TrustedKey) check() error {
	if k.Key.IsZero() {
		return errors.New("trusted key: zero public key")
	}
	if !k.NotAfter.After(k.NotBefore) {
		return fmt.Errorf("trusted %s key %s: NotAfter %s is not after NotBefore %s",
			k.Key.Purpose(), k.Key.ID(), fmtTime(k.NotAfter), fmtTime(k.NotBefore))
	}
	return nil
}

func (k TrustedKey) same(o TrustedKey) bool {
	return k.Key.Equal(o.Key) && k.NotBefore.Equal(o.NotBefore) && k.NotAfter.Equal(o.NotAfter)
}

// TrustList is a set of trusted public keys looked up by key id. Key ids
// are only 8 bytes and may collide, so a lookup returns, and Verify tries,
// every key that has the id.
//
// A nil *TrustList behaves as an empty list. A TrustList is safe for
// concurrent use, including Add while others read (an RWMutex guards it);
// the zero value is an empty list ready to use. Do not copy a TrustList.
type TrustList struct {
	mu   sync.RWMutex
	byID map[KeyID][]TrustedKey
	n    int
}

// NewTrustList makes a trust list holding keys. It rejects zero keys, empty
// or inverted windows (NotAfter <= NotBefore), and the same key with the same
// window twice.
func NewTrustList(keys ...TrustedKey) (*TrustList, error) {
	t := &TrustList{}
	for _, k := range keys {
		if err := t.Add(k); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// Add adds k to the list. The same key may appear with several windows (for
// example after its validity was extended), but never twice with the same
// window.
func (t *TrustList) Add(k TrustedKey) error {
	return t.add(k.Key.ID(), k)
}

// add files k under id. Add always passes k.Key.ID(); tests pass another id
// to build the id collisions that SHA-256 will not give us.
func (t *TrustList) add(id KeyID, k TrustedKey) error {
	if t == nil {
		return errors.New("trust list: add to nil list")
	}
	if err := k.check(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.n >= MaxTrustListLen {
		return fmt.Errorf("trust list: over the limit of %d keys (MaxTrustListLen)", MaxTrustListLen)
	}
	for _, o := range t.byID[id] {
		if o.same(k) {
			return fmt.Errorf("trust list: %s key %s with window [%s, %s) added twice",
				k.Key.Purpose(), id, fmtTime(k.NotBefore), fmtTime(k.NotAfter))
		}
	}
	if t.byID == nil {
		t.byID = make(map[KeyID][]TrustedKey)
	}
	t.byID[id] = append(t.byID[id], k)
	t.n++
	return nil
}

// Len returns the number of entries in the list.
func (t *TrustList) Len() int {
	if t == nil {
		return 0
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.n
}

// Keys returns every entry, ordered by key id, then key bytes, then purpose,
// NotBefore and NotAfter, so the same list always lists the same way.
func (t *TrustList) Keys() []TrustedKey {
	if t == nil {
		return nil
	}
	t.mu.RLock()
	out := make([]TrustedKey, 0, t.n)
	for _, ks := range t.byID {
		out = append(out, ks...)
	}
	t.mu.RUnlock()
	slices.SortFunc(out, compareTrusted)
	return out
}

func compareTrusted(a, b TrustedKey) int {
	ida, idb := a.Key.ID(), b.Key.ID()
	if c := bytes.Compare(ida[:], idb[:]); c != 0 {
		return c
	}
	if c := bytes.Compare(a.Key.k[:], b.Key.k[:]); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Key.purpose, b.Key.purpose); c != 0 {
		return c
	}
	if c := a.NotBefore.Compare(b.NotBefore); c != 0 {
		return c
	}
	return a.NotAfter.Compare(b.NotAfter)
}

// Lookup returns every key with id and purpose p whose window holds at, in
// the order they were added. It returns nil when there is none.
func (t *TrustList) Lookup(id KeyID, p Purpose, at time.Time) []PublicKey {
	keys, _ := t.candidates(id, p, at)
	return keys
}

// candidates returns the keys with id and purpose p valid at at, and whether
// any key with id and purpose p exists at all.
func (t *TrustList) candidates(id KeyID, p Purpose, at time.Time) (valid []PublicKey, known bool) {
	if t == nil {
		return nil, false
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, k := range t.byID[id] {
		if k.Key.Purpose() != p {
			continue
		}
		known = true
		if k.ValidAt(at) && !slices.ContainsFunc(valid, k.Key.Equal) {
			valid = append(valid, k.Key)
		}
	}
	return valid, known
}

// Verify checks sig over msg under domain d against every key with id and
// purpose p that is valid at at, and returns the key that verified. Because
// ids can collide it never stops at the first candidate that fails.
//
// The error wraps ErrUnknownKey, ErrKeyNotValid or ErrBadSignature, or
// reports an invalid domain (a programming error).
func (t *TrustList) Verify(id KeyID, p Purpose, at time.Time, d Domain, msg, sig []byte) (PublicKey, error) {
	if err := d.check(); err != nil {
		return PublicKey{}, fmt.Errorf("verify %s key %s: %w", p, id, err)
	}
	return t.verify(id, p, at, func(k PublicKey) bool { return k.Verify(d, msg, sig) })
}

// VerifyRaw is Verify for a plain signature with no domain framing (see
// PublicKey.VerifyRaw): the signed bytes must carry the domain themselves.
func (t *TrustList) VerifyRaw(id KeyID, p Purpose, at time.Time, msg, sig []byte) (PublicKey, error) {
	return t.verify(id, p, at, func(k PublicKey) bool { return k.VerifyRaw(msg, sig) })
}

func (t *TrustList) verify(id KeyID, p Purpose, at time.Time, ok func(PublicKey) bool) (PublicKey, error) {
	keys, known := t.candidates(id, p, at)
	switch {
	case !known:
		return PublicKey{}, fmt.Errorf("verify %s key %s at %s: %w", p, id, fmtTime(at), ErrUnknownKey)
	case len(keys) == 0:
		return PublicKey{}, fmt.Errorf("verify %s key %s at %s: %w", p, id, fmtTime(at), ErrKeyNotValid)
	}
	for _, k := range keys {
		if ok(k) {
			return k, nil
		}
	}
	return PublicKey{}, fmt.Errorf("verify %s key %s at %s (%d candidate keys): %w", p, id, fmtTime(at), len(keys), ErrBadSignature)
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Remove takes every entry of key k (any window) out of the list and
// returns how many it removed. A cabin server removes an issuer key this way
// when a manifest says it is revoked, so that every holder of the list
// refuses it from then on.
func (t *TrustList) Remove(k PublicKey) int {
	if t == nil {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	id := k.ID()
	kept := t.byID[id][:0:0]
	for _, o := range t.byID[id] {
		if !o.Key.Equal(k) {
			kept = append(kept, o)
		}
	}
	n := len(t.byID[id]) - len(kept)
	if len(kept) == 0 {
		delete(t.byID, id)
	} else {
		t.byID[id] = kept
	}
	t.n -= n
	return n
}
