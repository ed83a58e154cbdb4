package protocol

import (
	"crypto/ed25519"
	"testing"

	"github.com/airtab/airtab/crypto"
)

// BenchmarkSignInvoice measures what the cabin server's writer pays to sign
// one sale invoice (validate, encode, Ed25519), beside a bare Ed25519
// signature over the same payload for scale.
func BenchmarkSignInvoice(b *testing.B) {
	w := newWorld(b, "bench sign invoice")
	dev := w.key(crypto.Device)
	cred := w.credential(dev.Public())
	code, err := Sign(w.paymentCodeBody(7, cred, false), dev, cred.Body.ID[:])
	if err != nil {
		b.Fatal(err)
	}
	body := w.saleBody(1, Hash{}, cred, code.Raw)
	aircraft := w.key(crypto.Aircraft)
	b.Run("Sign", func(b *testing.B) {
		for b.Loop() {
			if _, err := Sign(body, aircraft, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	seed := make([]byte, ed25519.SeedSize)
	priv := ed25519.NewKeyFromSeed(seed)
	payload, _ := marshal(body)
	b.Run("Ed25519Only", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(priv, payload)
		}
	})
}

// BenchmarkParseVerifyPaymentCode measures the cabin server's per-sale
// stateless work on a compact code: parse the QR text and verify the
// device signature.
func BenchmarkParseVerifyPaymentCode(b *testing.B) {
	w := newWorld(b, "bench parse code")
	dev := w.key(crypto.Device)
	cred := w.credential(dev.Public())
	code, err := Sign(w.paymentCodeBody(7, cred, false), dev, cred.Body.ID[:])
	if err != nil {
		b.Fatal(err)
	}
	text := QRText(PrefixPaymentCode, code.Raw)
	for b.Loop() {
		pc, err := ParsePaymentCodeText(text)
		if err != nil {
			b.Fatal(err)
		}
		if err := pc.Verify(dev.Public(), cred.Body.ID[:]); err != nil {
			b.Fatal(err)
		}
	}
}
