// Package registry is Airtab's ground registry: passengers, their device keys,
// funding sources and credit scores; the limit policy; aircraft, flights and
// crew rosters; credential issuance; and the signed flight manifests and
// manifest deltas a cabin server syncs before and during departure.
//
// The rules are plain Go: scoring and limits in policy.go, funding checks in
// funding.go, windows, caps, catalog and crew checks and deny-list diffs in
// rules.go. Every SQL statement is in sqlite.go. The operations (passengers.go,
// flights.go, credentials.go, manifests.go, directory.go) tie the two
// together, each in one SQLite transaction, so a refused request writes
// nothing.
//
// Registry implements ground.Directory for the clearing service.
package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
)

// DefaultIssuerWindow is the validity window given to the issuer key in the
// trust list when Config.Trust is empty. It is wide: ground/keys, which keeps
// the key set of a rotating ground, gives each key its real window.
var DefaultIssuerWindow = [2]time.Time{
	time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
	time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
}

// Config configures a Registry. Only Issuer is required.
type Config struct {
	// Issuer signs credentials, manifests and deltas. Purpose crypto.Issuer.
	Issuer crypto.PrivateKey
	// Trust is the issuer trust list put into every manifest and returned
	// by IssuerTrust. It must hold Issuer's public key. Default: Issuer's
	// key alone, valid over DefaultIssuerWindow. At most
	// protocol.MaxTrustKeys entries.
	Trust []crypto.TrustedKey
	// RevokedIssuers are issuer keys revoked as compromised: every manifest
	// lists them (protocol/SPEC.md §4.2.6), and none may be Issuer or in
	// Trust. Default: none.
	RevokedIssuers []crypto.PublicKey
	// Scorer gives new passengers their score. Default: HashScorer.
	Scorer Scorer
	// Policy maps scores to limits. Default: DefaultLimitPolicy().
	Policy *LimitPolicy
	// PINParams are the argon2id costs for crew PINs given in the clear.
	// Default: crypto.DefaultPINParams. Tests pass cheap ones.
	PINParams crypto.PINParams
	// ManifestTTL is how long a manifest or delta is valid after issue.
	// Default: DefaultManifestTTL (36 h).
	ManifestTTL time.Duration
	// ReissueAfter is the age past which an aircraft's manifest request gets
	// a new manifest. Default: DefaultReissueAfter (12 h).
	ReissueAfter time.Duration
	// Clock gives the time. Default: time.Now.
	Clock func() time.Time
	// Rand is the source of passenger and credential ids and PIN salts.
	// Default: crypto/rand. Simulations pass a seeded reader.
	Rand io.Reader
	// Logger. Default: slog.Default().
	Logger *slog.Logger
	// OnAircraft, when set, is called after an aircraft is registered, so
	// the NATS server can let it in.
	OnAircraft func(ctx context.Context)
	// ReadDB, when set, is a read-only handle on the same database that
	// the lookups clearing makes (AircraftKey, Flight, Credential, Funding,
	// Credentials, Fundings) use instead of the one New is given: on
	// SQLite, whose one connection clearing's batch transaction holds, a
	// second connection lets the next batch's lookups run meanwhile (WAL
	// readers see the last commit while the writer writes). Default: none,
	// the lookups use the handle New is given.
	ReadDB *sql.DB
}

// Registry is the ground registry over one SQLite database. It is safe for
// concurrent use. Its methods open their own transactions on the database
// handle: with store.Open's one-connection pool, never call them while
// holding a transaction on the same handle.
type Registry struct {
	db           *sql.DB
	issuer       crypto.PrivateKey
	trust        []crypto.TrustedKey
	revoked      []crypto.PublicKey
	keysChecked  sync.Map // flight and manifest serial -> whether its keys are stale; see issuerkeys.go
	scorer       Scorer
	policy       LimitPolicy
	pin          crypto.PINParams
	manifestTTL  time.Duration
	reissueAfter time.Duration
	clock        func() time.Time
	log          *slog.Logger
	onAircraft   func(context.Context)
	notifier     atomic.Pointer[Notifier]         // see notify.go
	flightClosed atomic.Pointer[FlightClosedFunc] // see notify.go
	parsed       parseCache                       // see batch.go
	reads        *sql.DB                          // Config.ReadDB, or db

	randMu sync.Mutex
	rand   io.Reader // nil: crypto/rand
}

var _ ground.Directory = (*Registry)(nil)

// New checks cfg, creates the registry's tables in db if they are missing and
// returns the registry.
func New(ctx context.Context, db *sql.DB, cfg Config) (*Registry, error) {
	if cfg.Issuer.Purpose() != crypto.Issuer {
		return nil, fmt.Errorf("registry: config: want an issuer signing key, got %v", cfg.Issuer)
	}
	r := &Registry{
		db: db, issuer: cfg.Issuer, trust: cfg.Trust, revoked: cfg.RevokedIssuers, scorer: cfg.Scorer, pin: cfg.PINParams,
		manifestTTL: cfg.ManifestTTL, reissueAfter: cfg.ReissueAfter, clock: cfg.Clock, log: cfg.Logger, rand: cfg.Rand,
		onAircraft: cfg.OnAircraft, reads: cfg.ReadDB,
	}
	if r.reads == nil {
		r.reads = db
	}
	if r.scorer == nil {
		r.scorer = HashScorer{}
	}
	r.policy = DefaultLimitPolicy()
	if cfg.Policy != nil {
		r.policy = *cfg.Policy
	}
	if err := r.policy.Validate(); err != nil {
		return nil, fmt.Errorf("registry: config: %w", err)
	}
	if r.pin == (crypto.PINParams{}) {
		r.pin = crypto.DefaultPINParams
	}
	if r.manifestTTL == 0 {
		r.manifestTTL = DefaultManifestTTL
	}
	if r.reissueAfter == 0 {
		r.reissueAfter = DefaultReissueAfter
	}
	if r.clock == nil {
		r.clock = time.Now
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if err := r.checkTrust(); err != nil {
		return nil, err
	}
	if err := r.checkRevoked(); err != nil {
		return nil, err
	}
	if err := createSchema(ctx, db); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Registry) checkTrust() error {
	if len(r.trust) == 0 {
		r.trust = []crypto.TrustedKey{{Key: r.issuer.Public(), NotBefore: DefaultIssuerWindow[0], NotAfter: DefaultIssuerWindow[1]}}
	}
	if len(r.trust) > protocol.MaxTrustKeys {
		return fmt.Errorf("registry: config: %d trusted keys, over the limit of %d", len(r.trust), protocol.MaxTrustKeys)
	}
	tl, err := crypto.NewTrustList(r.trust...)
	if err != nil {
		return fmt.Errorf("registry: config: %w", err)
	}
	for _, k := range r.trust {
		if k.Key.Purpose() != crypto.Issuer {
			return fmt.Errorf("registry: config: trusted key %s is a %s key, want issuer", k.Key.ID(), k.Key.Purpose())
		}
	}
	if len(tl.Lookup(r.issuer.ID(), crypto.Issuer, r.clock())) == 0 {
		return fmt.Errorf("registry: config: the trust list holds no window valid now for the issuer key %s", r.issuer.ID())
	}
	return nil
}

// Policy returns the limit policy in force.
func (r *Registry) Policy() LimitPolicy { return r.policy }

// IssuerKey returns the public key credentials and manifests are signed with.
func (r *Registry) IssuerKey() crypto.PublicKey { return r.issuer.Public() }

// now returns the clock's time in whole seconds, UTC: what the wire carries.
func (r *Registry) now() time.Time { return r.clock().UTC().Truncate(time.Second) }

func (r *Registry) newID() protocol.ID {
	r.randMu.Lock()
	defer r.randMu.Unlock()
	return protocol.NewID(r.rand)
}

// randReader returns a reader safe to use while randMu is not held: the
// configured one is wrapped so that each Read takes the lock.
func (r *Registry) randReader() io.Reader {
	if r.rand == nil {
		return nil
	}
	return lockedReader{r}
}

type lockedReader struct{ r *Registry }

// Read reads from the registry's source under its lock.
func (l lockedReader) Read(p []byte) (int, error) {
	l.r.randMu.Lock()
	defer l.r.randMu.Unlock()
	return l.r.rand.Read(p)
}

// inTx runs fn in one transaction (BEGIN IMMEDIATE, as store.Open sets; on
// PostgreSQL under the writer lock, see ground/store/writelock.go) and commits when
// it returns nil.
func (r *Registry) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := store.BeginWrite(ctx, r.db)
	if err != nil {
		return fmt.Errorf("registry: begin: %w", err)
	}
	defer tx.Rollback() // a no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("registry: commit: %w", err)
	}
	return nil
}

// wrap adds context to an internal error and leaves a client-facing *Error
// as it is, so its message reaches the client unchanged.
func wrap(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*Error](err); ok {
		return err
	}
	return fmt.Errorf(format+": %w", append(args, err)...)
}
