package protocol

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	cose "github.com/veraison/go-cose"
)

// These tests use github.com/veraison/go-cose, a stock COSE library, as an
// independent oracle: it must verify every Airtab signature from nothing but
// the COSE bytes, the signer's public key and the external_aad of SPEC.md
// §3.2, and its own signatures must pass our verifier.

// coseVerify verifies raw (a tagged COSE_Sign1) with go-cose.
func coseVerify(t *testing.T, raw []byte, pub crypto.PublicKey, externalAAD []byte) {
	t.Helper()
	var msg cose.Sign1Message
	if err := msg.UnmarshalCBOR(raw); err != nil {
		t.Fatalf("go-cose does not parse the message as COSE_Sign1: %v", err)
	}
	v, err := cose.NewVerifier(cose.AlgorithmEdDSA, ed25519.PublicKey(pub.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := msg.Verify(externalAAD, v); err != nil {
		t.Fatalf("go-cose does not verify the signature: %v", err)
	}
	// The same bytes with another kind's external_aad must not verify.
	if err := msg.Verify(ExternalAAD(DomainReceipt+"x", nil), v); err == nil {
		t.Fatalf("go-cose verifies the signature under a foreign external_aad")
	}
}

// TestCOSEInteropVectors verifies every valid vector in vectors.json with
// go-cose, reading nothing but the file.
func TestCOSEInteropVectors(t *testing.T) {
	b, err := os.ReadFile(vecFilePath)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Keys []struct {
			Name, Purpose, Public string
			PublicHex             string `json:"public_hex"`
		} `json:"keys"`
		Valid []struct {
			Name, Signer, COSE string
			ExternalAAD        string `json:"external_aad"`
		} `json:"valid"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	pubs := map[string][]byte{}
	for _, k := range f.Keys {
		pubs[k.Name], _ = hex.DecodeString(k.PublicHex)
	}
	if len(f.Valid) < 15 {
		t.Fatalf("%d valid vectors, want at least 15", len(f.Valid))
	}
	for _, v := range f.Valid {
		t.Run(v.Name, func(t *testing.T) {
			raw, _ := hex.DecodeString(v.COSE)
			aad, _ := hex.DecodeString(v.ExternalAAD)
			var msg cose.Sign1Message
			if err := msg.UnmarshalCBOR(raw); err != nil {
				t.Fatalf("parse: %v", err)
			}
			ver, err := cose.NewVerifier(cose.AlgorithmEdDSA, ed25519.PublicKey(pubs[v.Signer]))
			if err != nil {
				t.Fatal(err)
			}
			if err := msg.Verify(aad, ver); err != nil {
				t.Fatalf("go-cose Verify(external_aad, verifier): %v", err)
			}
		})
	}
}

// TestCOSEInteropFresh checks messages of every kind made by the code now,
// with go-cose: a payment code and a consent from the reference wallet, and
// each issuer- and aircraft-signed kind.
func TestCOSEInteropFresh(t *testing.T) {
	w := newWorld(t, "cose interop fresh")
	cred := w.credential(w.device.Public())
	credID := cred.Body.ID[:]

	wallet, err := OpenWallet(t.TempDir(), WalletOptions{Clock: func() time.Time { return w.now }})
	if err != nil {
		t.Fatal(err)
	}
	wcred := mustSign(t, w.credentialBody(wallet.DeviceKey()), w.issuer, nil)
	if _, err := wallet.AddCredential(wcred.Raw, nil); err != nil {
		t.Fatal(err)
	}
	for _, full := range []bool{false, true} {
		text, err := wallet.PaymentCode(w.flight, full)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := FromQRText(PrefixPaymentCode, text)
		if err != nil {
			t.Fatal(err)
		}
		coseVerify(t, raw, wallet.DeviceKey(), ExternalAAD(DomainPaymentCode, wcred.Body.ID[:]))
	}
	orderText, err := OrderText(w.order())
	if err != nil {
		t.Fatal(err)
	}
	consentText, _, err := wallet.Consent(orderText, false)
	if err != nil {
		t.Fatal(err)
	}
	consentRaw, err := FromQRText(PrefixOrderConsent, consentText)
	if err != nil {
		t.Fatal(err)
	}
	coseVerify(t, consentRaw, wallet.DeviceKey(), ExternalAAD(DomainOrderConsent, wcred.Body.ID[:]))

	code := mustSign(t, w.paymentCodeBody(7, cred, false), w.device, credID)
	sale := mustSign(t, w.saleBody(1, Hash{}, cred, code.Raw), w.aircraft, nil)
	issuer, aircraft := w.issuer.Public(), w.aircraft.Public()
	for _, tc := range []struct {
		name   string
		raw    []byte
		pub    crypto.PublicKey
		domain crypto.Domain
	}{
		{"Credential", cred.Raw, issuer, DomainCredential},
		{"Manifest", mustSign(t, w.manifestBody(cred), w.issuer, nil).Raw, issuer, DomainManifest},
		{"ManifestDelta", mustSign(t, w.deltaBody(cred), w.issuer, nil).Raw, issuer, DomainManifestDelta},
		{"Invoice", sale.Raw, aircraft, DomainInvoice},
		{"FlightClose", mustSign(t, w.closeBody(sale.Hash()), w.aircraft, nil).Raw, aircraft, DomainFlightClose},
		{"Receipt", mustSign(t, w.receiptBody(sale.Body), w.issuer, nil).Raw, issuer, DomainReceipt},
	} {
		t.Run(tc.name, func(t *testing.T) { coseVerify(t, tc.raw, tc.pub, ExternalAAD(tc.domain, nil)) })
	}
}

// TestCOSEInteropSignedByGoCOSE signs a payment code with go-cose, using
// only the spec's protected header and external_aad, and checks that
// Airtab's strict parser accepts it byte for byte and its verifier approves.
func TestCOSEInteropSignedByGoCOSE(t *testing.T) {
	w := newWorld(t, "cose interop go-cose signs")
	seed := vecSHA("go-cose device")
	dev, err := crypto.PrivateKeyFromSeed(crypto.Device, seed)
	if err != nil {
		t.Fatal(err)
	}
	cred := w.credential(dev.Public())
	body := PaymentCode{Counter: 9, Time: w.now}
	raw := GoCOSEPaymentCode(t, seed, body, cred.Body.ID)
	s, err := ParsePaymentCode(raw)
	if err != nil {
		t.Fatalf("go-cose's COSE_Sign1 is refused by the strict parser: %v", err)
	}
	if err := s.Verify(dev.Public(), cred.Body.ID[:]); err != nil {
		t.Fatalf("go-cose's signature does not verify: %v", err)
	}
	ours := mustSign(t, body, dev, cred.Body.ID[:])
	if hex.EncodeToString(ours.Raw) != hex.EncodeToString(raw) {
		t.Fatalf("go-cose and protocol.Sign differ for the same input (Ed25519 is deterministic):\n go-cose %x\n ours    %x", raw, ours.Raw)
	}
}

// GoCOSEPaymentCode signs body as a payment code with go-cose from the
// device seed, following SPEC.md §3 only.
func GoCOSEPaymentCode(t testing.TB, seed []byte, body PaymentCode, credID ID) []byte {
	t.Helper()
	payload, err := marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	signer, err := cose.NewSigner(cose.AlgorithmEdDSA, priv)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := crypto.PrivateKeyFromSeed(crypto.Device, seed)
	if err != nil {
		t.Fatal(err)
	}
	kid := dev.ID()
	msg := cose.NewSign1Message()
	msg.Headers.Protected.SetAlgorithm(cose.AlgorithmEdDSA)
	msg.Headers.Protected[cose.HeaderLabelKeyID] = kid[:]
	msg.Payload = payload
	if err := msg.Sign(rand.Reader, ExternalAAD(DomainPaymentCode, credID[:]), signer); err != nil {
		t.Fatal(err)
	}
	raw, err := msg.MarshalCBOR()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
