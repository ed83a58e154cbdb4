package protocol

import (
	"bytes"
	"testing"
)

// TestSaleProof checks that SaleProof gives a sale's payment code or order
// consent as Parse parsed it, parses again what Parse did not parse or what
// changed since, and refuses a void.
func TestSaleProof(t *testing.T) {
	w := newWorld(t, "sale proof")
	cred := w.credential(w.device.Public())
	code := mustSign(t, w.paymentCodeBody(1, cred, false), w.device, cred.Body.ID[:])
	other := mustSign(t, w.paymentCodeBody(2, cred, false), w.device, cred.Body.ID[:])
	o := w.order()
	consent := mustSign(t, w.consentBody(o, 3, cred, false), w.device, cred.Body.ID[:])
	sale := mustSign(t, w.saleBody(1, Hash{}, cred, code.Raw), w.aircraft, nil)
	consentSale := mustSign(t, w.consentSaleBody(2, sale.Hash(), cred, o, consent.Raw), w.aircraft, nil)
	void := mustSign(t, w.voidBody(3, consentSale.Hash(), sale.Body), w.aircraft, nil)
	parse := func(t *testing.T, raw []byte) *SignedInvoice {
		t.Helper()
		inv, err := ParseInvoice(raw)
		if err != nil {
			t.Fatal(err)
		}
		return inv
	}

	t.Run("CodeKeptByParse", func(t *testing.T) {
		inv := parse(t, sale.Raw)
		pc, oc, err := SaleProof(inv)
		if err != nil || oc != nil || pc == nil {
			t.Fatalf("SaleProof = %v, %v, %v; want the payment code", pc, oc, err)
		}
		if pc != inv.parts {
			t.Error("SaleProof parsed the code again, want the one Parse kept")
		}
		if !bytes.Equal(pc.Raw, code.Raw) || pc.Body.Counter != 1 || pc.KeyID != code.KeyID {
			t.Errorf("code = %+v, want %+v", pc.Body, code.Body)
		}
		if err := pc.Verify(w.device.Public(), cred.Body.ID[:]); err != nil {
			t.Errorf("verify the kept code: %v", err)
		}
	})
	t.Run("ConsentKeptByParse", func(t *testing.T) {
		inv := parse(t, consentSale.Raw)
		pc, oc, err := SaleProof(inv)
		if err != nil || pc != nil || oc == nil {
			t.Fatalf("SaleProof = %v, %v, %v; want the consent", pc, oc, err)
		}
		if oc != inv.parts || !bytes.Equal(oc.Raw, consent.Raw) {
			t.Errorf("consent %x (kept %v), want %x as Parse kept it", oc.Raw, oc == inv.parts, consent.Raw)
		}
	})
	t.Run("NotFromParse", func(t *testing.T) {
		pc, _, err := SaleProof(sale) // from Sign: nothing kept
		if err != nil || pc == nil || !bytes.Equal(pc.Raw, code.Raw) {
			t.Fatalf("SaleProof = %v, %v; want the code parsed now", pc, err)
		}
	})
	t.Run("CodeChangedSinceParse", func(t *testing.T) {
		inv := parse(t, sale.Raw)
		inv.Body.Code = other.Raw
		pc, _, err := SaleProof(inv)
		if err != nil || pc == nil || !bytes.Equal(pc.Raw, other.Raw) || pc.Body.Counter != 2 {
			t.Fatalf("SaleProof = %v, %v; want the code Body now holds (counter 2)", pc, err)
		}
		inv.Body.Code = []byte{coseTag, 0x84}
		if _, _, err := SaleProof(inv); err == nil {
			t.Error("SaleProof of a broken code = nil error, want it refused")
		}
	})
	t.Run("ErrVoid", func(t *testing.T) {
		if _, _, err := SaleProof(parse(t, void.Raw)); err == nil {
			t.Error("SaleProof of a void = nil error, want an error")
		}
	})
}
