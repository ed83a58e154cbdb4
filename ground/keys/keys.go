// Package keys keeps ground's issuer key set in its data directory: the key
// that signs credentials, manifests and receipts now, the keys trusted
// beside it with their validity windows (one added ahead of a rotation, one
// retired after it, until its overlap ends), and the keys revoked as
// compromised. The registry puts the trusted and revoked keys in every
// manifest (protocol/SPEC.md §4.2.6) and clearing verifies credentials
// against them.
//
// The set is the file issuer-keys.json; each private key is a key file of its
// own beside it (the first is the issuer.key of a ground that predates
// rotation). Every change also rewrites issuer.pub (the signing key) and
// issuer-trust.txt (the trusted keys with their windows, a crypto trust
// file), which is what cabin servers are given as their trust anchor.
//
// The operator commands (ground keys ...) change the set while the ground
// service is stopped; the service reads it at start.
package keys

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// File names in the data directory.
const (
	SetFile   = "issuer-keys.json"    // the key set
	PubFile   = "issuer.pub"          // the signing key's public key
	TrustFile = "issuer-trust.txt"    // the trusted keys with windows, for cabin servers
	firstFile = "issuer.key"          // the default file of the first key
	maxSetLen = protocol.MaxTrustKeys // keys a manifest's trust list can hold
)

// maxSetFileSize bounds what reading the set allocates, in bytes.
const maxSetFileSize = 1 << 16

// DefaultFirstWindow is the window of the first issuer key, made on a
// ground's first start: as wide as the registry's default, so a ground that
// never rotates behaves as before rotation existed.
var DefaultFirstWindow = [2]time.Time{
	time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
}

// DefaultValid is how long a key made by Add or Rotate stays valid unless
// told otherwise: 10 years.
const DefaultValid = 10 * 365 * 24 * time.Hour

// Status is where a key stands at a given time.
type Status string

// Key statuses, as ground keys list prints them.
const (
	StatusActive   Status = "active"   // signs now
	StatusStandby  Status = "standby"  // trusted, added ahead of a rotation, has not signed yet
	StatusRetiring Status = "retiring" // signed before, trusted until its window ends
	StatusExpired  Status = "expired"  // its window has ended: refused everywhere
	StatusRevoked  Status = "revoked"  // compromised: refused everywhere, listed in every manifest
	StatusPending  Status = "pending"  // its window has not begun
)

// Entry is one key of the set as stored.
type Entry struct {
	// ID is the key id (16 hex digits).
	ID string `json:"id"`
	// Public is the public key's text form.
	Public string `json:"public"`
	// File is the private key file, relative to the data directory unless
	// absolute.
	File string `json:"file"`
	// NotBefore and NotAfter are the window [NotBefore, NotAfter) the key
	// is trusted in.
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	// AddedAt is when the key was made.
	AddedAt time.Time `json:"added_at"`
	// ActivatedAt is when the key became the signing key; zero for a key
	// that never signed.
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	// RevokedAt is when the key was revoked; zero for none.
	RevokedAt time.Time `json:"revoked_at,omitzero"`

	pub crypto.PublicKey
}

// Key returns the entry's public key.
func (e Entry) Key() crypto.PublicKey { return e.pub }

// StatusAt says where the key stands at now, given the id of the signing key.
func (e Entry) StatusAt(now time.Time, active string) Status {
	switch {
	case !e.RevokedAt.IsZero():
		return StatusRevoked
	case e.ID == active:
		return StatusActive
	case !now.Before(e.NotAfter):
		return StatusExpired
	case now.Before(e.NotBefore):
		return StatusPending
	case e.ActivatedAt.IsZero():
		return StatusStandby
	}
	return StatusRetiring
}

// Set is the issuer key set of one data directory.
type Set struct {
	// Active is the id of the signing key.
	Active string `json:"active"`
	// Keys are every key the set ever held, oldest first.
	Keys []Entry `json:"keys"`

	dir    string
	signer crypto.PrivateKey
}

// Open reads the key set of dataDir. On a data directory without one it
// makes the set from the first key: the key file at firstKeyFile (default
// <dataDir>/issuer.key), created when missing, valid over
// DefaultFirstWindow. created reports that the set is new. The set's files
// (issuer.pub, issuer-trust.txt) are rewritten either way.
func Open(dataDir, firstKeyFile string, now time.Time, rnd io.Reader) (s *Set, created bool, err error) {
	s, err = read(dataDir)
	if errors.Is(err, fs.ErrNotExist) {
		s, err = first(dataDir, firstKeyFile, now, rnd)
		created = err == nil
	}
	if err != nil {
		return nil, false, err
	}
	if created {
		err = s.Save(now)
	} else {
		err = s.writeFiles(now)
	}
	if err != nil {
		return nil, false, err
	}
	return s, created, nil
}

func first(dataDir, file string, now time.Time, rnd io.Reader) (*Set, error) {
	if file == "" {
		file = filepath.Join(dataDir, firstFile)
	}
	k, _, err := crypto.LoadOrCreateKeyFile(file, crypto.Issuer, rnd)
	if err != nil {
		return nil, err
	}
	rel := file
	if r, err := filepath.Rel(dataDir, file); err == nil && filepath.IsLocal(r) {
		rel = r
	}
	e := Entry{ID: k.ID().String(), Public: k.Public().String(), File: rel, NotBefore: DefaultFirstWindow[0],
		NotAfter: DefaultFirstWindow[1], AddedAt: now.UTC(), ActivatedAt: now.UTC(), pub: k.Public()}
	return &Set{Active: e.ID, Keys: []Entry{e}, dir: dataDir, signer: k}, nil
}

// read reads and checks the set file of dataDir and the signing key.
func read(dataDir string) (*Set, error) {
	path := filepath.Join(dataDir, SetFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("issuer key set: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSetFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("issuer key set %s: %w", path, err)
	}
	if len(b) > maxSetFileSize {
		return nil, fmt.Errorf("issuer key set %s: over the limit of %d bytes", path, maxSetFileSize)
	}
	s := &Set{dir: dataDir}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(s); err != nil {
		return nil, fmt.Errorf("issuer key set %s: %w", path, err)
	}
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("issuer key set %s: %w", path, err)
	}
	return s, nil
}

// check validates the set read from disk and loads the signing key.
func (s *Set) check() error {
	if len(s.Keys) == 0 {
		return errors.New("no keys")
	}
	seen := map[string]bool{}
	for i := range s.Keys {
		e := &s.Keys[i]
		pub, err := crypto.ParsePublicKey(crypto.Issuer, e.Public)
		if err != nil {
			return fmt.Errorf("key %d: %w", i, err)
		}
		switch {
		case pub.ID().String() != e.ID:
			return fmt.Errorf("key %d: id %s is not its public key's id %s", i, e.ID, pub.ID())
		case seen[e.ID]:
			return fmt.Errorf("key %s listed twice", e.ID)
		case !e.NotAfter.After(e.NotBefore):
			return fmt.Errorf("key %s: window ends (%s) before it begins (%s)", e.ID, e.NotAfter.Format(time.RFC3339), e.NotBefore.Format(time.RFC3339))
		}
		seen[e.ID] = true
		e.pub = pub
	}
	act := s.find(s.Active)
	if act == nil {
		return fmt.Errorf("active key %q is not in the set", s.Active)
	}
	if !act.RevokedAt.IsZero() {
		return fmt.Errorf("active key %s is revoked", act.ID)
	}
	k, err := crypto.ReadKeyFile(s.path(act.File), crypto.Issuer)
	if err != nil {
		return fmt.Errorf("active key %s: %w", act.ID, err)
	}
	if !k.Public().Equal(act.pub) {
		return fmt.Errorf("active key %s: key file %s holds key %s", act.ID, s.path(act.File), k.ID())
	}
	s.signer = k
	return nil
}

func (s *Set) path(file string) string {
	if filepath.IsAbs(file) {
		return file
	}
	return filepath.Join(s.dir, file)
}

func (s *Set) find(id string) *Entry {
	for i := range s.Keys {
		if s.Keys[i].ID == id {
			return &s.Keys[i]
		}
	}
	return nil
}

// Signer is the signing key.
func (s *Set) Signer() crypto.PrivateKey { return s.signer }

// Trusted returns every key not revoked, with its window: what the registry
// puts in manifests (those whose window has not ended) and what clearing
// verifies credentials against, at the code's time.
func (s *Set) Trusted() []crypto.TrustedKey {
	var out []crypto.TrustedKey
	for _, e := range s.Keys {
		if e.RevokedAt.IsZero() {
			out = append(out, crypto.TrustedKey{Key: e.pub, NotBefore: e.NotBefore, NotAfter: e.NotAfter})
		}
	}
	return out
}

// Revoked returns the revoked keys.
func (s *Set) Revoked() []crypto.PublicKey {
	var out []crypto.PublicKey
	for _, e := range s.Keys {
		if !e.RevokedAt.IsZero() {
			out = append(out, e.pub)
		}
	}
	return out
}

// Add makes a new standby key, trusted from now for valid (DefaultValid when
// 0), that signs nothing until Rotate makes it the signing key. Give cabin
// servers the new issuer-trust.txt before the rotation. The caller saves.
func (s *Set) Add(now time.Time, valid time.Duration, rnd io.Reader) (*Entry, error) {
	if valid == 0 {
		valid = DefaultValid
	}
	if valid < 0 {
		return nil, fmt.Errorf("add issuer key: validity %s is negative", valid)
	}
	if n := len(s.Trusted()); n >= maxSetLen {
		return nil, fmt.Errorf("add issuer key: %d keys trusted already, the most a manifest's trust list holds (%d): revoke a key that has expired first", n, maxSetLen)
	}
	k, err := crypto.GenerateKey(crypto.Issuer, rnd)
	if err != nil {
		return nil, err
	}
	file := "issuer-" + k.ID().String() + ".key"
	if err := crypto.WriteKeyFile(s.path(file), k); err != nil {
		return nil, err
	}
	now = now.UTC().Truncate(time.Second)
	s.Keys = append(s.Keys, Entry{ID: k.ID().String(), Public: k.Public().String(), File: file,
		NotBefore: now, NotAfter: now.Add(valid), AddedAt: now, pub: k.Public()})
	return &s.Keys[len(s.Keys)-1], nil
}

// Rotate makes the newest standby key the signing key (after Add makes one
// when there is none) and retires the old signing key: its window ends
// overlap from now (or sooner, if it ended sooner), so what it signed
// verifies until then and is refused after. The caller saves.
func (s *Set) Rotate(now time.Time, overlap, valid time.Duration, rnd io.Reader) (old, next *Entry, err error) {
	if overlap < 0 {
		return nil, nil, fmt.Errorf("rotate issuer key: overlap %s is negative", overlap)
	}
	next = s.standby(now)
	if next == nil {
		if next, err = s.Add(now, valid, rnd); err != nil {
			return nil, nil, err
		}
	}
	k, err := crypto.ReadKeyFile(s.path(next.File), crypto.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("rotate issuer key to %s: %w", next.ID, err)
	}
	nextID := next.ID
	old = s.find(s.Active)
	now = now.UTC().Truncate(time.Second)
	if end := now.Add(overlap); end.Before(old.NotAfter) {
		old.NotAfter = end
		if !old.NotAfter.After(old.NotBefore) {
			old.NotAfter = old.NotBefore.Add(time.Second)
		}
	}
	next = s.find(nextID)
	next.ActivatedAt = now
	s.Active, s.signer = next.ID, k
	return old, next, nil
}

// standby returns the newest key that never signed, is not revoked and is
// valid at now, or nil.
func (s *Set) standby(now time.Time) *Entry {
	for i := len(s.Keys) - 1; i >= 0; i-- {
		if s.Keys[i].StatusAt(now, s.Active) == StatusStandby {
			return &s.Keys[i]
		}
	}
	return nil
}

// Retire ends key id's window at at, so it is refused from then on. Retire
// only shortens a window: an at after the key's NotAfter, which would trust
// the key longer or bring an expired one back, is refused, and so is a
// revoked key, which no window brings back. The signing key cannot be
// retired: rotate first. The caller saves.
func (s *Set) Retire(id string, at time.Time) (*Entry, error) {
	e, err := s.other(id, "retire")
	if err != nil {
		return nil, err
	}
	at = at.UTC().Truncate(time.Second)
	if !e.RevokedAt.IsZero() {
		return nil, fmt.Errorf("retire issuer key %s: it was revoked at %s", id, e.RevokedAt.Format(time.RFC3339))
	}
	if at.After(e.NotAfter) {
		return nil, fmt.Errorf("retire issuer key %s at %s: its window ends already at %s, and retire only shortens a window", id, at.Format(time.RFC3339), e.NotAfter.Format(time.RFC3339))
	}
	if !at.After(e.NotBefore) {
		return nil, fmt.Errorf("retire issuer key %s at %s: its window begins only at %s", id, at.Format(time.RFC3339), e.NotBefore.Format(time.RFC3339))
	}
	e.NotAfter = at
	return e, nil
}

// Revoke revokes key id at now: it leaves the trust list and every manifest
// from then on names it revoked, so a cabin server refuses it as soon as it
// accepts the next manifest, and clearing refuses credentials it signed.
// The signing key cannot be revoked: rotate first. The caller saves.
func (s *Set) Revoke(id string, now time.Time) (*Entry, error) {
	e, err := s.other(id, "revoke")
	if err != nil {
		return nil, err
	}
	if !e.RevokedAt.IsZero() {
		return nil, fmt.Errorf("revoke issuer key %s: revoked already at %s", id, e.RevokedAt.Format(time.RFC3339))
	}
	if n := len(s.Revoked()); n >= maxSetLen {
		return nil, fmt.Errorf("revoke issuer key %s: %d keys revoked already, the most a manifest lists (%d)", id, n, maxSetLen)
	}
	e.RevokedAt = now.UTC().Truncate(time.Second)
	return e, nil
}

// other returns key id, refusing the signing key and an unknown id.
func (s *Set) other(id, verb string) (*Entry, error) {
	e := s.find(id)
	switch {
	case e == nil:
		ids := make([]string, 0, len(s.Keys))
		for _, k := range s.Keys {
			ids = append(ids, k.ID)
		}
		return nil, fmt.Errorf("%s issuer key %q: no such key (the set holds %v)", verb, id, ids)
	case e.ID == s.Active:
		return nil, fmt.Errorf("%s issuer key %s: it is the signing key; run \"ground keys rotate\" first", verb, id)
	}
	return e, nil
}

// Save writes the set (atomically: a reader sees the old set or the new one)
// and then issuer.pub and issuer-trust.txt.
func (s *Set) Save(now time.Time) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	if err := crypto.WriteFileAtomic(filepath.Join(s.dir, SetFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save issuer key set: %w", err)
	}
	return s.writeFiles(now)
}

// writeFiles writes issuer.pub and issuer-trust.txt: the trusted keys
// whose window has not ended at now.
func (s *Set) writeFiles(now time.Time) error {
	if err := crypto.WritePublicKeyFile(filepath.Join(s.dir, PubFile), s.signer.Public()); err != nil {
		return err
	}
	var keys []crypto.TrustedKey
	for _, k := range s.Trusted() {
		if k.NotAfter.After(now) {
			keys = append(keys, k)
		}
	}
	heading := "Airtab issuer trust list for cabin servers (onboard --issuer-key " + TrustFile + ").\n" +
		"Written by ground; each line: key, valid from, valid until (UTC). Signing key " + s.Active + "."
	return crypto.WriteTrustFile(filepath.Join(s.dir, TrustFile), heading, keys)
}

// List returns the keys with their status at now, oldest first.
func (s *Set) List(now time.Time) []Listed {
	out := make([]Listed, 0, len(s.Keys))
	for _, e := range s.Keys {
		out = append(out, Listed{Entry: e, Status: e.StatusAt(now, s.Active)})
	}
	return slices.Clip(out)
}

// Listed is a key and its status.
type Listed struct {
	Entry
	Status Status
}
