package onboard_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"testing"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
	"github.com/fxamacker/cbor/v2"
	cose "github.com/veraison/go-cose"
)

// TestGoCOSEPaymentCodeApproved signs a full payment code with a stock COSE
// library (github.com/veraison/go-cose), from SPEC.md alone: a canonical
// CBOR map {1: counter, 2: time, 3: credential}, protected header
// {1: -8, 4: kid}, external_aad = len(domain) || domain || credential id.
// The cabin server must approve it, and the invoice it signs must verify
// with go-cose under the aircraft key.
func TestGoCOSEPaymentCodeApproved(t *testing.T) {
	f := ft.New(t, ft.Options{})
	cabin, journal := f.OpenCabin(f.SignManifest(nil), nil)

	seed := sha256.Sum256([]byte("go-cose wallet"))
	priv := ed25519.NewKeyFromSeed(seed[:])
	dev, err := crypto.PrivateKeyFromSeed(crypto.Device, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	cred := f.SignCredential(dev.Public(), protocol.NewID(nil), nil)

	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	payload, err := enc.Marshal(map[uint64]any{1: uint64(1), 2: uint64(f.Now().Unix()), 3: cred.Raw})
	if err != nil {
		t.Fatal(err)
	}
	signer, err := cose.NewSigner(cose.AlgorithmEdDSA, priv)
	if err != nil {
		t.Fatal(err)
	}
	kid := dev.ID()
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(cose.AlgorithmEdDSA)
	msg.Headers.Protected[cose.HeaderLabelKeyID] = kid[:]
	msg.Payload = payload
	aad := append([]byte{byte(len(protocol.DomainPaymentCode))}, protocol.DomainPaymentCode...)
	aad = append(aad, cred.Body.ID[:]...)
	if err := msg.Sign(rand.Reader, aad, signer); err != nil {
		t.Fatal(err)
	}
	raw, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}

	d, err := cabin.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Crew: ft.Attendant.ID,
		Code: protocol.QRText(protocol.PrefixPaymentCode, raw), Lines: ft.Basket("COFFEE", 1)})
	if err != nil || !d.Approved {
		t.Fatalf("authorize a go-cose payment code = %+v, %v; want approved", d, err)
	}

	rec, err := journal.Invoice(ctx, d.Sale.InvoiceID)
	if err != nil {
		t.Fatal(err)
	}
	var inv cose.Sign1Message
	if err := inv.UnmarshalCBOR(rec.Raw); err != nil {
		t.Fatalf("go-cose does not parse the cabin server's invoice: %v", err)
	}
	ver, err := cose.NewVerifier(cose.AlgorithmEdDSA, ed25519.PublicKey(f.AircraftKey.Public().Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	invAAD := append([]byte{byte(len(protocol.DomainInvoice))}, protocol.DomainInvoice...)
	if err := inv.Verify(invAAD, ver); err != nil {
		t.Fatalf("go-cose does not verify the cabin server's invoice: %v", err)
	}
}
