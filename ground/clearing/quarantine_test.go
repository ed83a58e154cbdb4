package clearing

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/protocol"
)

// rejectRow returns the reason and raw bytes stored for a rejected message.
func (h *harness) rejectRow(raw []byte) (protocol.Reason, []byte, error) {
	var (
		reason int64
		stored []byte
	)
	hash := protocol.Sum(raw)
	err := h.db.QueryRow(`SELECT reason, raw FROM clearing_rejects WHERE hash = ?`, hash[:]).Scan(&reason, &stored)
	return protocol.Reason(reason), stored, err
}

// withCredential gives p a new credential for the flight that ground never
// recorded in the Directory, signed by issuer.
func withCredential(t *testing.T, h *harness, p *clearingtest.Passenger, issuer crypto.PrivateKey) {
	t.Helper()
	c := p.Credential.Body
	c.ID = protocol.NewID(nil)
	cred, err := protocol.Sign(c, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Wallet.AddCredential(cred.Raw, nil); err != nil {
		t.Fatal(err)
	}
	p.Credential = cred
}

func TestQuarantine(t *testing.T) {
	h := newHarness(t)
	h.start()
	rogueAircraft, err := h.world.NewAircraft("N-ROGUE")
	if err != nil {
		t.Fatal(err)
	}
	rogueIssuer, err := crypto.GenerateKey(crypto.Issuer, nil)
	if err != nil {
		t.Fatal(err)
	}

	type msg struct {
		inv     *protocol.SignedInvoice
		subject string // when not the flight's
	}
	tests := []struct {
		name     string
		make     func(t *testing.T) msg
		reason   protocol.Reason
		rejected bool // not authenticated: kept with the rejects, not as an invoice record
		disputed bool // both signatures verify: disputed with its amount, not quarantined
	}{
		{"BadAircraftSignature", func(t *testing.T) msg {
			s := h.sale(h.passenger(card, 100_00), 5_00)
			forged, err := protocol.Sign(s.Body, rogueAircraft.Key, nil) // signed by a key that is not D-AIUA's
			if err != nil {
				t.Fatal(err)
			}
			return msg{inv: forged}
		}, protocol.ReasonBadAircraftSignature, true, false},
		{"WrongAircraftSubject", func(t *testing.T) msg {
			s := h.sale(h.passenger(card, 100_00), 5_00)
			return msg{inv: s, subject: protocol.InvoiceSubject(rogueAircraft.ID, testFlight)} // published by N-ROGUE
		}, protocol.ReasonWrongAircraft, true, false},
		{"BadDeviceSignature", func(t *testing.T) msg {
			other, err := h.passenger(card, 100_00).PaymentCode(testFlight, false)
			if err != nil {
				t.Fatal(err)
			}
			return msg{inv: h.sale(h.passenger(card, 100_00), 5_00, func(inv *protocol.Invoice) { inv.Code = other })}
		}, protocol.ReasonBadDeviceSignature, false, false},
		{"BitFlippedPaymentCode", func(t *testing.T) msg {
			return msg{inv: h.sale(h.passenger(card, 100_00), 5_00, func(inv *protocol.Invoice) {
				inv.Code = bytes.Clone(inv.Code)
				inv.Code[len(inv.Code)-1] ^= 0x01
			})}
		}, protocol.ReasonBadDeviceSignature, false, false},
		{"OverPassengerLimit", func(t *testing.T) msg {
			p := h.passenger(card, 20_00)
			first := h.sale(p, 15_00)
			h.send(first)
			wantReceipt(t, h.receipt(first.Body.ID), protocol.StatusSettled, 0)
			return msg{inv: h.sale(p, 10_00)}
		}, protocol.ReasonOverPassengerLimit, false, true},
		{"OverTransactionCap", func(t *testing.T) msg {
			p, err := h.world.NewPassenger(h.fl, card, eur(100_00), eur(10_00))
			if err != nil {
				t.Fatal(err)
			}
			return msg{inv: h.sale(p, 10_01)}
		}, protocol.ReasonOverTransactionCap, false, true},
		{"ReusedCounter", func(t *testing.T) msg {
			p := h.passenger(card, 100_00)
			first := h.sale(p, 3_00)
			h.send(first)
			wantReceipt(t, h.receipt(first.Body.ID), protocol.StatusSettled, 0)
			return msg{inv: h.sale(p, 4_00, func(inv *protocol.Invoice) { inv.Code = first.Body.Code })}
		}, protocol.ReasonCodeReused, false, true},
		{"UnknownCredential", func(t *testing.T) msg {
			p := h.passenger(card, 100_00)
			withCredential(t, h, p, h.world.Issuer) // issued, but ground has no record of it
			return msg{inv: h.sale(p, 5_00)}
		}, protocol.ReasonUnknownCredential, false, false},
		{"ForgedEmbeddedCredential", func(t *testing.T) msg {
			p := h.passenger(card, 100_00)
			withCredential(t, h, p, rogueIssuer)
			full, err := p.PaymentCode(testFlight, true)
			if err != nil {
				t.Fatal(err)
			}
			return msg{inv: h.sale(p, 5_00, func(inv *protocol.Invoice) { inv.Code = full })}
		}, protocol.ReasonBadIssuerSignature, false, false},
		{"UnknownFlight", func(t *testing.T) msg {
			const other protocol.FlightID = "XX999-2026-11-21"
			s := h.sale(h.passenger(card, 100_00), 5_00, func(inv *protocol.Invoice) { inv.Flight = other })
			return msg{inv: s, subject: protocol.InvoiceSubject(h.ac.ID, other)}
		}, protocol.ReasonUnknownFlight, false, false},
		{"DuplicateIDDifferentBytes", func(t *testing.T) msg {
			p := h.passenger(card, 100_00)
			orig := h.sale(p, 6_00)
			h.send(orig)
			wantReceipt(t, h.receipt(orig.Body.ID), protocol.StatusSettled, 0)
			return msg{inv: h.sale(p, 60_00, func(inv *protocol.Invoice) { inv.ID = orig.Body.ID })}
		}, protocol.ReasonDuplicateConflict, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.make(t)
			raw, subject, id := m.inv.Raw, m.subject, m.inv.Body.ID
			if subject == "" {
				subject = h.fl.Subject()
			}
			h.publish(subject, raw, "")
			var r *protocol.SignedReceipt
			waitFor(t, func() error {
				for _, x := range h.receipts()[id] {
					if x.Body.Status == protocol.StatusQuarantined {
						r = x
						return nil
					}
				}
				return errors.New("no quarantine receipt")
			})
			wantReceipt(t, r, protocol.StatusQuarantined, tt.reason)
			if tt.rejected {
				reason, stored, err := h.rejectRow(raw)
				if err != nil || reason != tt.reason || !bytes.Equal(stored, raw) {
					t.Fatalf("reject row: reason %s, raw stored %v, err %v", reason, bytes.Equal(stored, raw), err)
				}
			} else {
				rec := h.record(id)
				want := StatusQuarantined
				if tt.disputed {
					want = StatusDisputed
				}
				wantStatus(t, rec, want)
				if rec.Reason != tt.reason || !bytes.Equal(rec.Raw, raw) {
					t.Fatalf("record: reason %s, raw stored %v", rec.Reason, bytes.Equal(rec.Raw, raw))
				}
			}
			if tt.name == "DuplicateIDDifferentBytes" {
				// The original stands: posted and charged once, at its amount.
				rec := h.record(id)
				wantStatus(t, rec, StatusSettled)
				if rec.Total != eur(6_00) || h.saleTransfers(id) != 1 || h.acq.Captures(id) != 1 {
					t.Fatalf("original: total %v, sale transfers %d, captures %d", rec.Total, h.saleTransfers(id), h.acq.Captures(id))
				}
				return
			}
			if n := len(h.transfers(id)); n != 0 {
				t.Errorf("quarantined invoice has %d ledger transfers, want none", n)
			}
			if n := h.acq.Calls(id); n != 0 {
				t.Errorf("quarantined invoice reached the acquirer %d times", n)
			}
			h.checkLedger()
		})
	}

	t.Run("Malformed", func(t *testing.T) {
		garbage := []byte("not an invoice at all")
		h.publish(h.fl.Subject(), garbage, "")
		waitFor(t, func() error {
			reason, stored, err := h.rejectRow(garbage)
			if err != nil {
				return err
			}
			if reason != protocol.ReasonMalformed || !bytes.Equal(stored, garbage) {
				return fmt.Errorf("reason %s", reason)
			}
			return nil
		})
	})
	t.Run("FullFormCodeAccepted", func(t *testing.T) {
		// A late registrant: the credential travels inside the code, is
		// signed by a trusted issuer, and ground has no record of it.
		p := h.passenger(card, 100_00)
		withCredential(t, h, p, h.world.Issuer)
		full, err := p.PaymentCode(testFlight, true)
		if err != nil {
			t.Fatal(err)
		}
		s := h.sale(p, 5_00, func(inv *protocol.Invoice) { inv.Code = full })
		h.send(s)
		wantReceipt(t, h.receipt(s.Body.ID), protocol.StatusSettled, 0)
	})
	if got := h.balance(ledger.RevenueAccount(testFlight, "EUR")); got != eur(15_00+3_00+6_00+5_00) {
		t.Errorf("revenue = %v: only the good sales", got)
	}
}
