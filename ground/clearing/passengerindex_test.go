package clearing

import (
	"context"
	"database/sql"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/storetest"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// passengerIndexQueries are the statements that find a passenger's
// invoices, with arguments for a plan, and whether the index must hold
// every column they read.
func passengerIndexQueries() []struct {
	name     string
	query    string
	args     []any
	covering bool
} {
	pax := protocol.NewID(nil)
	spendArgs := make([]any, spendChunk+2)
	for i := range spendChunk {
		p := protocol.NewID(nil)
		spendArgs[i] = p[:]
	}
	spendArgs[spendChunk], spendArgs[spendChunk+1] = string(testFlight), "EUR"
	return []struct {
		name     string
		query    string
		args     []any
		covering bool
	}{
		{"PassengerCharges", passengerChargesQuery, []any{pax[:], 51}, false},
		{"SpentOnFlight", spentOnFlightQuery, []any{pax[:], string(testFlight), "EUR"}, true},
		{"SpentByPassenger", spendQuery, spendArgs, true},
		{"RetryWallet", retryWalletQuery, []any{int64(1), pax[:], "EUR"}, false},
		{"RetryPassenger", retryPassengerQuery, []any{int64(1), pax[:]}, false},
	}
}

// TestPassengerIndexPlans checks that every statement finding a
// passenger's invoices searches clearing_invoices_passenger rather than
// reading the whole table or a whole flight, on a table holding a big
// flight (512 passengers, ten sales each): on SQLite by EXPLAIN QUERY PLAN,
// without statistics as ground runs it; on PostgreSQL by EXPLAIN after
// ANALYZE, as autovacuum leaves it, with sequential scans priced out for
// this transaction (enable_seqscan off) so that the plan does not hang on
// the table's size.
func TestPassengerIndexPlans(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	if err := Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	fillFlight(t, db, 512, 10)
	if storetest.Dialect() == store.Postgres {
		if _, err := db.ExecContext(ctx, `ANALYZE clearing_invoices`); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range passengerIndexQueries() {
		t.Run(q.name, func(t *testing.T) {
			plan := queryPlan(t, db, q.query, q.args)
			switch storetest.Dialect() {
			case store.SQLite:
				want := "USING INDEX clearing_invoices_passenger (passenger=?"
				if q.covering {
					want = "USING COVERING INDEX clearing_invoices_passenger (passenger=? AND kind=? AND flight=? AND currency=? AND status=?)"
				}
				if !strings.Contains(plan, want) || strings.Contains(plan, "SCAN clearing_invoices") {
					t.Errorf("plan:\n%s\nwant a search %s and no scan of clearing_invoices", plan, want)
				}
			case store.Postgres:
				if !strings.Contains(plan, "clearing_invoices_passenger") || strings.Contains(plan, "Seq Scan") ||
					!strings.Contains(plan, "Index Cond: (") || !strings.Contains(plan, "passenger") {
					t.Errorf("plan:\n%s\nwant an index condition on clearing_invoices_passenger and no sequential scan", plan)
				}
			}
		})
	}
}

// fillFlight stores perPassenger settled card sales of each of passengers
// on testFlight, in one transaction.
func fillFlight(t *testing.T, db *sql.DB, passengers, perPassenger int) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	seq := uint64(0)
	for range passengers {
		pax := protocol.NewID(nil)
		for range perPassenger {
			seq++
			id := protocol.NewID(nil)
			at := t0.Add(time.Duration(seq) * time.Second)
			r := InvoiceRecord{ID: id, Hash: protocol.Sum(id[:]), Raw: id[:], Flight: testFlight, Aircraft: "D-AIUA", Seq: seq,
				Kind: protocol.KindSale, Passenger: pax, Credential: protocol.NewID(nil), Total: eur(5_00),
				CreatedAt: at, ReceivedAt: at, UpdatedAt: at, Status: StatusSettled, Funding: ground.FundingCard, SettledAt: at}
			if err := insertInvoice(ctx, tx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
}

// queryPlan returns the store's plan of query with args, one line per
// step.
func queryPlan(t *testing.T, db *sql.DB, query string, args []any) string {
	t.Helper()
	ctx := context.Background()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	explain := "EXPLAIN QUERY PLAN "
	if storetest.Dialect() == store.Postgres {
		explain = "EXPLAIN "
		if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := tx.QueryContext(ctx, explain+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		// SQLite's detail is its last column, PostgreSQL's plan line its
		// only one.
		switch v := vals[len(vals)-1].(type) {
		case string:
			b.WriteString(v)
		case []byte:
			b.Write(v)
		}
		b.WriteByte('\n')
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestPassengerIndexUpgrade stores invoices as clearing does on the schema
// of version 1 (the partial spend index), records what a passenger's
// receipt listing and the spend queries answer, migrates to the last
// version, and checks that every invoice is still there and that the
// answers are the same, now from clearing_invoices_passenger.
func TestPassengerIndexUpgrade(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t)
	if err := ledger.Migrate(ctx, db); err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, db, "clearing", migrations[:1]); err != nil {
		t.Fatal(err)
	}
	world, err := clearingtest.NewWorld(t.TempDir(), t0)
	if err != nil {
		t.Fatal(err)
	}
	ac, err := world.NewAircraft("D-AIUA")
	if err != nil {
		t.Fatal(err)
	}
	fl1, fl2 := world.NewFlight(ac, testFlight, "EUR"), world.NewFlight(ac, "XX124-2026-11-22", "EUR")
	passenger := func(fl *clearingtest.Flight, fs ground.FundingSource) *clearingtest.Passenger {
		p, err := world.NewPassenger(fl, fs, eur(500_00), eur(500_00))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	alice, bob := passenger(fl1, card), passenger(fl1, wallet)
	// Alice again on her next flight: her invoice there names her.
	aliceNext := passenger(fl2, card)
	asAlice := func(inv *protocol.Invoice) { inv.Passenger = alice.ID }
	var recs []InvoiceRecord
	store1 := func(fl *clearingtest.Flight, inv *protocol.SignedInvoice, st Status, fund ground.FundingKind, at time.Duration) *protocol.SignedInvoice {
		b := inv.Body
		now := t0.Add(at)
		recs = append(recs, InvoiceRecord{
			ID: b.ID, Hash: protocol.Sum(inv.Raw), Raw: inv.Raw, Flight: b.Flight, Aircraft: b.Aircraft, Seq: b.Seq, Prev: b.Prev,
			Kind: b.Kind, Passenger: b.Passenger, Credential: b.Credential, Total: b.Total, Voids: b.Voids,
			CreatedAt: b.CreatedAt.UTC(), ReceivedAt: now, UpdatedAt: now, Status: st, Funding: fund,
		})
		return inv
	}
	mustSale := func(fl *clearingtest.Flight, p *clearingtest.Passenger, minor int64, mods ...clearingtest.Mod) *protocol.SignedInvoice {
		inv, err := fl.Sale(p, eur(minor), mods...)
		if err != nil {
			t.Fatal(err)
		}
		return inv
	}
	store1(fl1, mustSale(fl1, alice, 12_00), StatusSettled, ground.FundingCard, time.Hour)
	store1(fl1, mustSale(fl1, alice, 7_50), StatusCollections, ground.FundingCard, time.Hour)
	voided := store1(fl1, mustSale(fl1, alice, 3_00), StatusVoided, ground.FundingCard, time.Hour)
	v, err := fl1.Void(voided)
	if err != nil {
		t.Fatal(err)
	}
	store1(fl1, v, StatusSettled, "", time.Hour)
	store1(fl1, mustSale(fl1, bob, 4_20), StatusSettled, ground.FundingWallet, time.Hour)
	store1(fl2, mustSale(fl2, aliceNext, 9_99, asAlice), StatusPendingRetry, ground.FundingCard, 25*time.Hour)
	for _, r := range recs {
		if err := insertInvoice(ctx, db, r); err != nil {
			t.Fatal(err)
		}
	}

	svc := &Service{db: db}
	type answers struct {
		Charges map[protocol.ID][]passengerapi.Charge
		More    map[protocol.ID]bool
		Spent   map[spendKey]int64
		One     int64
	}
	answer := func() answers {
		a := answers{Charges: map[protocol.ID][]passengerapi.Charge{}, More: map[protocol.ID]bool{}}
		for _, p := range []protocol.ID{alice.ID, bob.ID} {
			for _, limit := range []int{2, passengerapi.MaxCharges} {
				cs, more, err := svc.PassengerCharges(ctx, p, limit)
				if err != nil {
					t.Fatal(err)
				}
				if limit == 2 {
					a.More[p] = more
					continue
				}
				a.Charges[p] = cs
			}
		}
		a.Spent, err = spentByPassenger(ctx, db, []spendKey{
			{alice.ID, testFlight, "EUR"}, {bob.ID, testFlight, "EUR"}, {alice.ID, fl2.ID, "EUR"}, {alice.ID, testFlight, "USD"},
		})
		if err != nil {
			t.Fatal(err)
		}
		if a.One, err = spentOnFlight(ctx, db, alice.ID, testFlight, "EUR"); err != nil {
			t.Fatal(err)
		}
		return a
	}
	before := answer()
	if got, want := len(before.Charges[alice.ID]), 5; got != want {
		t.Fatalf("alice's charges before the upgrade = %d, want %d", got, want)
	}
	if got, want := before.Spent[spendKey{alice.ID, testFlight, "EUR"}], int64(12_00+7_50); got != want || before.One != want {
		t.Fatalf("alice's spend on %s before the upgrade = %d (%d alone), want %d", testFlight, got, before.One, want)
	}

	if err := Migrate(ctx, db); err != nil {
		t.Fatalf("Migrate from version 1: %v", err)
	}
	if v, err := store.SchemaVersion(ctx, db, "clearing"); err != nil || v != len(migrations) {
		t.Errorf("clearing schema version after the upgrade = %d (%v), want %d", v, err, len(migrations))
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM clearing_invoices`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != len(recs) {
		t.Errorf("invoices after the upgrade = %d, want %d", n, len(recs))
	}
	if after := answer(); !reflect.DeepEqual(after, before) {
		t.Errorf("answers after the upgrade:\n%+v\nwant, as before:\n%+v", after, before)
	}
	for _, r := range recs {
		got, ok, err := getInvoice(ctx, db, r.ID)
		if err != nil || !ok {
			t.Fatalf("invoice %s after the upgrade: %v, %v", r.ID, ok, err)
		}
		if got.Status != r.Status || got.Total != r.Total || got.Passenger != r.Passenger {
			t.Errorf("invoice %s after the upgrade = %s %v of %s, want %s %v of %s", r.ID, got.Status, got.Total, got.Passenger, r.Status, r.Total, r.Passenger)
		}
	}
	if got, want := invoiceIndexes(t, db), "clearing_invoices_arrears clearing_invoices_collections clearing_invoices_due clearing_invoices_flight clearing_invoices_passenger clearing_invoices_voids"; got != want {
		t.Errorf("indexes of clearing_invoices after the upgrade = %s, want %s", got, want)
	}
}

// invoiceIndexes lists the indexes of clearing_invoices by name but for the
// primary key's.
func invoiceIndexes(t *testing.T, db *sql.DB) string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'clearing_invoices' AND name NOT LIKE 'sqlite_%' ORDER BY name`
	if storetest.Dialect() == store.Postgres {
		q = `SELECT indexname FROM pg_indexes WHERE tablename = 'clearing_invoices' AND indexname <> 'clearing_invoices_pkey' ORDER BY indexname`
	}
	rows, err := db.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(names, " ")
}
