package registry

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/storetest"
	"github.com/airtab/airtab/protocol"
)

// TestBatchLookups checks that Credentials and Fundings answer what
// Credential and Funding answer one id at a time, over more ids than one
// statement asks for, with repeats, revoked credentials, unknown ids and a
// passenger without a funding source, and that a raised credential is read
// anew.
func TestBatchLookups(t *testing.T) {
	f := newFixture(t)
	f.aircraft("D-AIUA")
	fl := f.flight("100", "D-AIUA", "EUR")
	var creds, pax []protocol.ID
	for range store.InChunk + 6 {
		p, dev := f.passenger(700)
		creds = append(creds, f.optIn(p, dev, fl).Body.ID)
		pax = append(pax, p)
	}
	if err := f.reg.Revoke(f.ctx, creds[3]); err != nil {
		t.Fatal(err)
	}
	dev, err := crypto.GenerateKey(crypto.Device, nil)
	if err != nil {
		t.Fatal(err)
	}
	bare, err := f.reg.CreatePassenger(f.ctx, dev.Public(), "")
	if err != nil {
		t.Fatal(err)
	}
	unknown := protocol.NewID(nil)
	askCreds := append(slices.Clone(creds), unknown, creds[0], creds[store.InChunk+1])
	askPax := append(slices.Clone(pax), unknown, bare.ID, pax[0])

	check := func(t *testing.T) {
		t.Helper()
		gotCreds, err := f.reg.Credentials(f.ctx, askCreds)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(gotCreds), len(creds); got != want {
			t.Errorf("Credentials answered %d ids, want %d", got, want)
		}
		for _, id := range askCreds {
			want, werr := f.reg.Credential(f.ctx, id)
			got, ok := gotCreds[id]
			switch {
			case errors.Is(werr, ground.ErrNotFound):
				if ok {
					t.Errorf("credential %s: batch answered one, Credential says not found", id)
				}
			case werr != nil:
				t.Fatal(werr)
			case !ok:
				t.Errorf("credential %s: batch answered none, Credential found it", id)
			case !slices.Equal(got.Raw, want.Raw) || got.Body != want.Body:
				t.Errorf("credential %s: batch answered %+v, Credential %+v", id, got.Body, want.Body)
			}
		}
		gotFunds, err := f.reg.Fundings(f.ctx, askPax)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := len(gotFunds), len(pax); got != want {
			t.Errorf("Fundings answered %d passengers, want %d", got, want)
		}
		for _, id := range askPax {
			want, werr := f.reg.Funding(f.ctx, id)
			got, ok := gotFunds[id]
			switch {
			case errors.Is(werr, ground.ErrNotFound):
				if ok {
					t.Errorf("passenger %s: batch answered a funding source, Funding says not found", id)
				}
			case werr != nil:
				t.Fatal(werr)
			case !ok || got != want:
				t.Errorf("passenger %s: batch answered %+v (%v), Funding %+v", id, got, ok, want)
			}
		}
	}
	t.Run("Fresh", check)
	t.Run("Cached", check) // the second read parses nothing anew

	t.Run("Raised", func(t *testing.T) {
		p, dev := f.walletPassenger(600)
		f.topUp(p, protocol.M(30_00, "EUR"))
		first := f.optIn(p, dev, fl)
		if _, err := f.reg.Credentials(f.ctx, []protocol.ID{first.Body.ID}); err != nil {
			t.Fatal(err)
		}
		f.topUp(p, protocol.M(200_00, "EUR"))
		if n, err := f.reg.RaiseWalletLimits(f.ctx, p, "EUR"); err != nil || n != 1 {
			t.Fatalf("raise = %d, %v; want 1 credential raised", n, err)
		}
		got, err := f.reg.Credentials(f.ctx, []protocol.ID{first.Body.ID})
		if err != nil {
			t.Fatal(err)
		}
		if c := got[first.Body.ID]; c == nil || c.Body.Limit == first.Body.Limit {
			t.Errorf("after the raise, batch answered %+v, want the raised credential (first limit %s)", c, first.Body.Limit)
		}
	})
}

// TestReadDB checks that on SQLite, whose one read-write connection a
// transaction may hold, the lookups clearing makes go through
// Config.ReadDB and answer meanwhile, seeing what was committed.
func TestReadDB(t *testing.T) {
	if storetest.Dialect() != store.SQLite {
		t.Skip("PostgreSQL's pool has connections to spare: no read-only handle")
	}
	ctx := context.Background()
	path := storetest.DSN(t)
	db, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ro, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ro.Close() })
	f := newFixture(t)
	f.db = db
	if f.reg, err = New(ctx, db, Config{Issuer: f.issuer, Scorer: StaticScorer{ByDevice: f.scores}, Clock: f.clock.Now,
		PINParams: crypto.PINParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}, ReadDB: ro}); err != nil {
		t.Fatal(err)
	}
	f.aircraft("D-AIUA")
	fl := f.flight("100", "D-AIUA", "EUR")
	p, dev := f.passenger(700)
	cred := f.optIn(p, dev, fl)

	tx, err := db.BeginTx(ctx, nil) // holds the one read-write connection
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := f.reg.Credentials(lctx, []protocol.ID{cred.Body.ID})
	if err != nil {
		t.Fatalf("Credentials while a transaction holds the database: %v", err)
	}
	if c := got[cred.Body.ID]; c == nil || !slices.Equal(c.Raw, cred.Raw) {
		t.Errorf("Credentials = %v, want the credential issued", got)
	}
	if _, err := f.reg.Funding(lctx, p); err != nil {
		t.Errorf("Funding while a transaction holds the database: %v", err)
	}
	if _, err := f.reg.AircraftKey(lctx, "D-AIUA"); err != nil {
		t.Errorf("AircraftKey while a transaction holds the database: %v", err)
	}
	if _, err := ro.ExecContext(ctx, `DELETE FROM registry_credentials`); err == nil {
		t.Error("the read-only handle took a write")
	}
}
