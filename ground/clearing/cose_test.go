package clearing

import (
	"crypto/ed25519"
	"testing"

	"github.com/airtab/airtab/protocol"
	cose "github.com/veraison/go-cose"
)

// TestReceiptVerifiesWithGoCOSE checks that a clearing receipt made by the
// running service verifies with a stock COSE library
// (github.com/veraison/go-cose) under the issuer key, with the external_aad
// of SPEC.md §3.2: len(domain) || domain.
func TestReceiptVerifiesWithGoCOSE(t *testing.T) {
	h := newHarness(t)
	h.start()
	p := h.passenger(card, 100_00)
	s := h.sale(p, 4_20)
	h.send(s)
	r := h.receipt(s.Body.ID)

	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(r.Raw); err != nil {
		t.Fatalf("go-cose does not parse the receipt: %v", err)
	}
	ver, err := cose.NewVerifier(cose.AlgorithmEdDSA, ed25519.PublicKey(h.world.Issuer.Public().Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	aad := append([]byte{byte(len(protocol.DomainReceipt))}, protocol.DomainReceipt...)
	if err := msg.Verify(aad, ver); err != nil {
		t.Fatalf("go-cose does not verify the receipt: %v", err)
	}
	if err := msg.Verify(append([]byte{byte(len(protocol.DomainInvoice))}, protocol.DomainInvoice...), ver); err == nil {
		t.Fatal("the receipt verifies under the invoice domain")
	}
}
