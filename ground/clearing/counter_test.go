package clearing

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/protocol"
)

// cloneWallet copies p's wallet directory and opens the copy: a cloned
// phone that hands out the same counters as p's own wallet.
func cloneWallet(t *testing.T, h *harness, p *clearingtest.Passenger) *protocol.Wallet {
	t.Helper()
	dir := t.TempDir()
	err := filepath.WalkDir(p.Dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(p.Dir, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o700)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	w, err := protocol.OpenWallet(dir, protocol.WalletOptions{Clock: func() time.Time { return h.world.Now }})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestCounterPerCredential: a counter is unique per (credential, counter),
// the rule a cabin server enforces offline. The same counter on two flights
// (two credentials of one device) is two sales, both charged; the same
// counter twice on one credential is disputed with its amount, never
// charged twice and never quarantined as a forgery.
func TestCounterPerCredential(t *testing.T) {
	h := newHarness(t)
	h.start()
	ac2, err := h.world.NewAircraft("D-AIUB")
	if err != nil {
		t.Fatal(err)
	}
	const flight2 protocol.FlightID = "XX124-2026-11-21"
	fl2 := h.world.NewFlight(ac2, flight2, "EUR")

	p := h.passenger(card, 100_00)
	// The same device opts in to the second flight too: a connection.
	cred2, err := h.world.Issue(protocol.Credential{
		Version: protocol.Version, ID: protocol.NewID(nil), Passenger: p.ID, Device: protocol.DeviceKey{PublicKey: p.Wallet.DeviceKey()},
		Flight: flight2, Limit: eur(100_00), TxCap: eur(100_00), NotBefore: h.world.Now.Add(-time.Hour), NotAfter: h.world.Now.Add(24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	// Two copies of the phone, taken at one instant: they hand out the
	// same counters (the harness's sales draw on p.Wallet's own).
	phone, clone := cloneWallet(t, h, p), cloneWallet(t, h, p)
	for _, w := range []*protocol.Wallet{p.Wallet, phone, clone} {
		if _, err := w.AddCredential(cred2.Raw, h.world.Trust); err != nil {
			t.Fatal(err)
		}
	}
	h.world.Dir.AddCredential(cred2)

	codeOf := func(w *protocol.Wallet, f protocol.FlightID) []byte {
		text, err := w.PaymentCode(f, false)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := protocol.FromQRText(protocol.PrefixPaymentCode, text)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	counterOf := func(raw []byte) uint64 {
		pc, err := protocol.ParsePaymentCode(raw)
		if err != nil {
			t.Fatal(err)
		}
		return pc.Body.Counter
	}
	withCode := func(code []byte, c protocol.ID) clearingtest.Mod {
		return func(inv *protocol.Invoice) { inv.Code, inv.Credential = code, c }
	}

	t.Run("SameCounterTwoFlights", func(t *testing.T) {
		code1 := codeOf(phone, testFlight) // counter n on flight 1
		code2 := codeOf(clone, flight2)    // the clone's counter n, on flight 2
		if counterOf(code1) != counterOf(code2) {
			t.Fatalf("counters %d and %d: the clone should repeat", counterOf(code1), counterOf(code2))
		}
		s1 := h.sale(p, 7_00, withCode(code1, p.Credential.Body.ID))
		s2, err := fl2.Sale(p, eur(9_00), withCode(code2, cred2.Body.ID))
		if err != nil {
			t.Fatal(err)
		}
		// Flight 2's invoice arrives first; the other order is covered by
		// the simulator's two-cabin test.
		h.publish(fl2.Subject(), s2.Raw, "")
		wantReceipt(t, h.receipt(s2.Body.ID), protocol.StatusSettled, 0)
		h.send(s1)
		wantReceipt(t, h.receipt(s1.Body.ID), protocol.StatusSettled, 0)
		for _, s := range []*protocol.SignedInvoice{s1, s2} {
			if got, want := h.acq.Captures(s.Body.ID), 1; got != want {
				t.Errorf("captures of %s = %d, want %d", s.Body.ID, got, want)
			}
		}
		h.checkLedger()
	})

	t.Run("SameCounterSameCredentialDisputed", func(t *testing.T) {
		code := codeOf(phone, testFlight)
		again := codeOf(clone, testFlight) // the same counter, signed again
		first := h.sale(p, 3_00, withCode(code, p.Credential.Body.ID))
		h.send(first)
		wantReceipt(t, h.receipt(first.Body.ID), protocol.StatusSettled, 0)
		second := h.sale(p, 4_00, withCode(again, p.Credential.Body.ID))
		h.send(second)
		wantReceipt(t, h.receipt(second.Body.ID), protocol.StatusQuarantined, protocol.ReasonCodeReused)
		rec := h.record(second.Body.ID)
		wantStatus(t, rec, StatusDisputed)
		if n := len(h.transfers(second.Body.ID)); n != 0 {
			t.Errorf("disputed sale has %d ledger transfers, want none", n)
		}
		rep, err := Reports{DB: h.db}.Flight(h.ctx, testFlight)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := rep.Disputed.Count, 1; got != want {
			t.Errorf("report disputed count = %d, want %d", got, want)
		}
		if len(rep.Disputed.Totals) != 1 || rep.Disputed.Totals[0] != eur(4_00) {
			t.Errorf("report disputed totals = %v, want [4.00 EUR]", rep.Disputed.Totals)
		}
		if rep.Reconciled {
			t.Error("a flight with a disputed sale reports reconciled")
		}

		// A void from the aircraft ends the dispute: nothing is owed.
		v := h.void(second)
		h.send(v)
		wantReceipt(t, h.receipt(v.Body.ID), protocol.StatusVoided, 0)
		wantStatus(t, h.record(second.Body.ID), StatusVoided)
		h.checkLedger()
	})

	t.Run("WindowAtCodeTimeDisputed", func(t *testing.T) {
		// A code made a minute before the credential's window opened,
		// approved by an aircraft whose clock was inside it: both
		// signatures verify, so disputed, not quarantined.
		q := h.passenger(card, 100_00)
		late, err := h.world.Issue(protocol.Credential{
			Version: protocol.Version, ID: protocol.NewID(nil), Passenger: q.ID, Device: protocol.DeviceKey{PublicKey: q.Wallet.DeviceKey()},
			Flight: testFlight, Limit: eur(100_00), TxCap: eur(100_00), NotBefore: h.world.Now.Add(time.Minute), NotAfter: h.world.Now.Add(24 * time.Hour),
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Wallet.AddCredential(late.Raw, nil); err != nil {
			t.Fatal(err)
		}
		h.world.Dir.AddCredential(late)
		s := h.sale(q, 5_00, func(inv *protocol.Invoice) { inv.Credential = late.Body.ID })
		h.send(s)
		wantReceipt(t, h.receipt(s.Body.ID), protocol.StatusQuarantined, protocol.ReasonCredentialNotYet)
		wantStatus(t, h.record(s.Body.ID), StatusDisputed)
	})
}
