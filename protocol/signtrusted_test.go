package protocol

import (
	"bytes"
	"testing"

	"github.com/airtab/airtab/crypto"
)

// TestSignTrusted checks that SignTrusted, which skips the body's
// validation, gives exactly Sign's bytes and body for a valid invoice, and
// that what it skips is still refused by every reader's Parse.
func TestSignTrusted(t *testing.T) {
	w := newWorld(t, "sign-trusted")
	cred := w.credential(w.device.Public())
	code := mustSign(t, w.paymentCodeBody(1, cred, false), w.device, cred.Body.ID[:])
	body := w.saleBody(1, Hash{}, cred, code.Raw)

	t.Run("SameAsSign", func(t *testing.T) {
		want, err := Sign(body, w.aircraft, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := SignTrusted(body, w.aircraft, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Raw, want.Raw) {
			t.Errorf("SignTrusted bytes differ from Sign's:\n got %x\nwant %x", got.Raw, want.Raw)
		}
		if got.Hash() != want.Hash() || got.Body.CreatedAt != want.Body.CreatedAt || got.KeyID != want.KeyID {
			t.Errorf("SignTrusted body %+v, want %+v", got.Body, want.Body)
		}
		if err := got.Verify(w.aircraft.Public(), nil); err != nil {
			t.Errorf("verify: %v", err)
		}
	})
	t.Run("ErrWrongKey", func(t *testing.T) {
		if _, err := SignTrusted(body, w.key(crypto.Device), nil); err == nil {
			t.Error("SignTrusted with a device key = nil error, want the key's purpose refused")
		}
	})
	t.Run("ParseStillValidates", func(t *testing.T) {
		bad := body
		bad.Code = []byte{0xd2, 0x84} // not a payment code
		s, err := SignTrusted(bad, w.aircraft, nil)
		if err != nil {
			t.Fatalf("SignTrusted skips validation, got %v", err)
		}
		if _, err := Sign(bad, w.aircraft, nil); err == nil {
			t.Error("Sign of an invoice with a broken code = nil error, want it refused")
		}
		if _, err := ParseInvoice(s.Raw); err == nil {
			t.Error("ParseInvoice of an invoice with a broken code = nil error, want it refused")
		}
	})
}
