package ledger

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"

	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/storetest"
	"github.com/airtab/airtab/protocol"
)

// TestConcurrentProcessesWalletFloor charges one wallet from two database
// pools at once, as two ground processes on one database would, with every
// charge sent four times: the wallet never goes negative, each invoice is posted
// once, and the ledger balances.
func TestConcurrentProcessesWalletFloor(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.DSN(t)
	var pools []*sql.DB
	for range 2 {
		db, err := store.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		if err := Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
		pools = append(pools, db)
	}
	db := pools[0]
	f := newFixture(t, db)
	const funds, price, invoices = 1000, 30, 60 // room for 33 charges
	if _, err := post(t, db, f.topUp(protocol.NewID(nil), funds)); err != nil {
		t.Fatal(err)
	}
	ids := make([]protocol.ID, invoices)
	for i := range ids {
		ids[i] = protocol.NewID(nil)
		if _, err := post(t, db, f.sale(ids[i], price)); err != nil {
			t.Fatal(err)
		}
	}

	var (
		mu               sync.Mutex
		created, refused int
		wg               sync.WaitGroup
	)
	errs := make(chan error, 4*invoices)
	for w := range 4 { // two goroutines per pool, each charging every invoice
		pool := pools[w%2]
		wg.Go(func() {
			for _, inv := range ids {
				res, err := chargeOnce(ctx, pool, f.walletCharge(inv, price))
				mu.Lock()
				switch {
				case errors.Is(err, ErrInsufficientFunds):
					refused++
				case err != nil:
					errs <- err
				default:
					created += res.Created
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, want := created, funds/price; got != want {
		t.Errorf("charges posted = %d, want %d (the wallet's funds over the price)", got, want)
	}
	if got, want := balance(t, db, f.wallet).CreditBalance(), protocol.M(funds%price, "EUR"); got != want {
		t.Errorf("wallet = %v, want %v", got, want)
	}
	for _, inv := range ids {
		n := 0
		for _, tr := range transfersOf(t, db, inv) {
			if tr.Code == TransferWalletCharge {
				n++
			}
		}
		if n > 1 {
			t.Errorf("invoice %s charged %d times", inv, n)
		}
	}
	mustCheck(t, db)
	t.Logf("%d charges posted, %d refused for the wallet floor", created, refused)
}

func chargeOnce(ctx context.Context, db *sql.DB, tr Transfer) (Result, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return Result{}, err
	}
	defer tx.Rollback()
	res, err := Post(ctx, tx, t0, tr)
	if err != nil {
		return res, err
	}
	return res, tx.Commit()
}

func transfersOf(t *testing.T, db *sql.DB, ref protocol.ID) []Transfer {
	t.Helper()
	out, err := TransfersByRef(context.Background(), db, ref)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
