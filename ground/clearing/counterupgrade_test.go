package clearing

import (
	"testing"

	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/ground/store/storetest"
	"github.com/airtab/airtab/protocol"
)

// TestCounterUpgradeKeepsClearedCounters: a database made by the schema
// that kept counters per device (clearing_counters) is upgraded with the
// counters of the sales it already cleared, so the same (credential,
// counter) signed again after the upgrade is disputed, not charged twice.
func TestCounterUpgradeKeepsClearedCounters(t *testing.T) {
	if storetest.Dialect() != store.SQLite {
		t.Skip("clearing_counters existed only in SQLite databases: nothing to upgrade on PostgreSQL")
	}
	h := newHarness(t)
	h.start()
	p := h.passenger(card, 100_00)
	phone, clone := cloneWallet(t, h, p), cloneWallet(t, h, p)
	codeOf := func(w *protocol.Wallet) []byte {
		text, err := w.PaymentCode(testFlight, false)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := protocol.FromQRText(protocol.PrefixPaymentCode, text)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	withCode := func(code []byte) clearingtest.Mod {
		return func(inv *protocol.Invoice) { inv.Code, inv.Credential = code, p.Credential.Body.ID }
	}
	first := h.sale(p, 3_00, withCode(codeOf(phone)))
	h.send(first)
	wantReceipt(t, h.receipt(first.Body.ID), protocol.StatusSettled, 0)
	h.stop()

	// The previous schema: counters keyed by device, no per-credential
	// table, and no schema version recorded.
	for _, q := range []string{
		`DELETE FROM schema_migrations WHERE component = 'clearing'`,
		`DROP TABLE clearing_credential_counters`,
		`CREATE TABLE clearing_counters (device BLOB NOT NULL, counter INTEGER NOT NULL, invoice BLOB NOT NULL, PRIMARY KEY (device, counter))`,
		`INSERT INTO clearing_counters (device, counter, invoice) VALUES (x'00', 1, x'00')`,
	} {
		if _, err := h.db.ExecContext(h.ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	h.start() // New migrates

	var old int
	if err := h.db.QueryRowContext(h.ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'clearing_counters'`).Scan(&old); err != nil || old != 0 {
		t.Fatalf("clearing_counters after the upgrade: %d tables (%v), want it dropped", old, err)
	}
	owner, used, err := counterOwner(h.ctx, h.db, p.Credential.Body.ID, mustCounter(t, first))
	if err != nil || !used || owner != first.Body.ID {
		t.Fatalf("counter of the cleared sale after the upgrade: owner %s, used %v, %v; want %s", owner, used, err, first.Body.ID)
	}
	replay := h.sale(p, 4_00, withCode(codeOf(clone))) // the same counter, signed again
	h.send(replay)
	wantReceipt(t, h.receipt(replay.Body.ID), protocol.StatusQuarantined, protocol.ReasonCodeReused)
	wantStatus(t, h.record(replay.Body.ID), StatusDisputed)
	if got := h.acq.Captures(replay.Body.ID); got != 0 {
		t.Errorf("captures of the replayed counter = %d, want 0", got)
	}
}

// mustCounter returns the counter of a sale's payment code.
func mustCounter(t *testing.T, inv *protocol.SignedInvoice) uint64 {
	t.Helper()
	pr, err := saleProof(inv)
	if err != nil {
		t.Fatal(err)
	}
	return pr.counter
}
