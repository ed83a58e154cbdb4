package registry

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/store/storetest"
	"github.com/airtab/airtab/protocol"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a registry over a real SQLite file with a real issuer key.
// TestMain runs the tests once on SQLite and once on PostgreSQL.
func TestMain(m *testing.M) { storetest.Main(m) }

type fixture struct {
	t      *testing.T
	ctx    context.Context
	db     *sql.DB
	reg    *Registry
	clock  *testClock
	issuer crypto.PrivateKey
	scores map[crypto.KeyID]int
}

// flightDate is the date of the test flights; the test clock starts two
// days before it.
var flightDate = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t)
	issuer, err := crypto.GenerateKey(crypto.Issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ctx: ctx, db: db, issuer: issuer, clock: &testClock{t: flightDate.Add(-48 * time.Hour)}, scores: map[crypto.KeyID]int{}}
	f.reg, err = New(ctx, db, Config{
		Issuer:    issuer,
		Scorer:    StaticScorer{ByDevice: f.scores},
		PINParams: crypto.PINParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1},
		Clock:     f.clock.Now,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// aircraft registers an aircraft and returns its signing key.
func (f *fixture) aircraft(id protocol.AircraftID) crypto.PrivateKey {
	f.t.Helper()
	k, err := crypto.GenerateKey(crypto.Aircraft, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := f.reg.RegisterAircraft(f.ctx, Aircraft{ID: id, Key: k.Public()}); err != nil {
		f.t.Fatal(err)
	}
	return k
}

// flight registers flight XX<number> on flightDate, selling in cur.
func (f *fixture) flight(number string, a protocol.AircraftID, cur protocol.Currency) protocol.FlightID {
	f.t.Helper()
	fl, _, err := f.reg.RegisterFlight(f.ctx, FlightSpec{
		Carrier: "XX", Number: number, Date: flightDate, Aircraft: a, Currency: cur,
		Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, cur), Category: "drink"}},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return fl.ID
}

// passenger registers a passenger with the given score and a wallet
// holding far more than any band's limit in every test currency, and
// returns their id and device key.
func (f *fixture) passenger(score int) (protocol.ID, crypto.PrivateKey) {
	f.t.Helper()
	p, dev := f.walletPassenger(score)
	for _, c := range []protocol.Currency{"EUR", "USD", "GBP", "JPY", "SEK", "BRL", "CHF"} {
		f.topUp(p, protocol.M(100_000_000, c))
	}
	return p, dev
}

// walletPassenger registers a passenger with the given score and an empty
// wallet.
func (f *fixture) walletPassenger(score int) (protocol.ID, crypto.PrivateKey) {
	f.t.Helper()
	dev, err := crypto.GenerateKey(crypto.Device, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.scores[dev.ID()] = score
	p, err := f.reg.CreatePassenger(f.ctx, dev.Public(), "")
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.reg.SetFunding(f.ctx, p.ID, ground.FundingSource{Kind: ground.FundingWallet}); err != nil {
		f.t.Fatal(err)
	}
	return p.ID, dev
}

// topUp credits amount to the passenger's wallet in the ledger, as
// clearing's TopUp does.
func (f *fixture) topUp(p protocol.ID, amount protocol.Money) {
	f.t.Helper()
	tx, err := f.db.BeginTx(f.ctx, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	defer tx.Rollback()
	b := ledger.NewBatch(tx, f.clock.Now())
	from, to := ledger.TopUpAccount(amount.Currency), ledger.WalletAccount(p, amount.Currency)
	if err := b.CreateAccounts(f.ctx, from, to); err != nil {
		f.t.Fatal(err)
	}
	ref := protocol.NewID(nil)
	if _, err := b.Post(f.ctx, ledger.Transfer{ID: ledger.TransferIDFor(ledger.TransferTopUp, ref), Debit: from.ID, Credit: to.ID,
		Amount: amount, Code: ledger.TransferTopUp, Ref: ref}); err != nil {
		f.t.Fatal(err)
	}
	if err := b.Flush(f.ctx); err != nil {
		f.t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) optIn(p protocol.ID, dev crypto.PrivateKey, fl protocol.FlightID) *protocol.SignedCredential {
	f.t.Helper()
	ic, _, err := f.reg.OptIn(f.ctx, p, dev.Public(), fl)
	if err != nil {
		f.t.Fatal(err)
	}
	return ic.Signed
}

// count returns the number of rows of a table.
func (f *fixture) count(table string) int {
	f.t.Helper()
	var n int
	if err := f.db.QueryRowContext(f.ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		f.t.Fatal(err)
	}
	return n
}

// wantCode fails unless err is an *Error with code.
func wantCode(t *testing.T, err error, code Code) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want code %s", code)
	}
	e, ok := errors.AsType[*Error](err)
	if !ok {
		t.Fatalf("err = %v (%T), want an *Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("code = %s (%v), want %s", e.Code, err, code)
	}
	return e
}

// verifyManifest parses and verifies a manifest against the fixture's
// issuer key, and every credential in it against the manifest's trust list.
func (f *fixture) verifyManifest(raw []byte) *protocol.SignedManifest {
	f.t.Helper()
	m, err := protocol.ParseManifest(raw)
	if err != nil {
		f.t.Fatal(err)
	}
	tl, err := crypto.NewTrustList(crypto.TrustedKey{Key: f.issuer.Public(), NotBefore: DefaultIssuerWindow[0], NotAfter: DefaultIssuerWindow[1]})
	if err != nil {
		f.t.Fatal(err)
	}
	if _, err := m.VerifyTrusted(tl, f.clock.Now(), nil); err != nil {
		f.t.Fatal(err)
	}
	inside, err := m.Body.TrustList()
	if err != nil {
		f.t.Fatal(err)
	}
	creds, err := m.Body.ParseCredentials()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, c := range creds {
		if _, err := c.VerifyTrusted(inside, flightDate, nil); err != nil {
			f.t.Fatalf("credential %s: %v", c.Body.ID, err)
		}
	}
	return m
}

func verifyDelta(t *testing.T, issuer crypto.PublicKey, raw []byte) *protocol.SignedManifestDelta {
	t.Helper()
	d, err := protocol.ParseManifestDelta(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(issuer, nil); err != nil {
		t.Fatal(err)
	}
	return d
}
