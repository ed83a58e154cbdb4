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

// BenchmarkParseInvoice measures ground clearing's strict parse of one sale
// invoice (the envelope, the body, the embedded payment code, validation),
// without the signature checks.
func BenchmarkParseInvoice(b *testing.B) {
	w := newWorld(b, "bench parse invoice")
	dev := w.key(crypto.Device)
	cred := w.credential(dev.Public())
	code, err := Sign(w.paymentCodeBody(7, cred, false), dev, cred.Body.ID[:])
	if err != nil {
		b.Fatal(err)
	}
	inv, err := Sign(w.saleBody(1, Hash{}, cred, code.Raw), w.key(crypto.Aircraft), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseInvoice(inv.Raw); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSignReceipt measures what ground clearing pays to sign one
// clearing receipt (validate, encode, Ed25519).
func BenchmarkSignReceipt(b *testing.B) {
	w := newWorld(b, "bench sign receipt")
	dev := w.key(crypto.Device)
	cred := w.credential(dev.Public())
	code, err := Sign(w.paymentCodeBody(7, cred, false), dev, cred.Body.ID[:])
	if err != nil {
		b.Fatal(err)
	}
	body := w.receiptBody(w.saleBody(1, Hash{}, cred, code.Raw))
	issuer := w.key(crypto.Issuer)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Sign(body, issuer, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateReceipt measures the validation Sign runs on a clearing
// receipt before encoding it.
func BenchmarkValidateReceipt(b *testing.B) {
	w := newWorld(b, "bench validate receipt")
	body := w.receiptBody(w.saleBody(1, Hash{}, w.credential(w.key(crypto.Device).Public()), []byte{1}))
	b.ReportAllocs()
	for b.Loop() {
		if err := body.validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseSaleAndProof measures what ground clearing pays to parse a
// sale invoice and get its payment code (SaleProof), beside parsing the code
// again after the invoice as it did before Parse kept it.
func BenchmarkParseSaleAndProof(b *testing.B) {
	w := newWorld(b, "bench parse sale")
	dev := w.key(crypto.Device)
	cred := w.credential(dev.Public())
	code, err := Sign(w.paymentCodeBody(7, cred, false), dev, cred.Body.ID[:])
	if err != nil {
		b.Fatal(err)
	}
	inv, err := Sign(w.saleBody(1, Hash{}, cred, code.Raw), w.key(crypto.Aircraft), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("SaleProof", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := ParseInvoice(inv.Raw)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := SaleProof(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ParseAgain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := ParseInvoice(inv.Raw)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ParsePaymentCode(p.Body.Code); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkParsePaymentCodeText measures the cabin server's strict parse of
// a compact code's QR text, without the signature check.
func BenchmarkParsePaymentCodeText(b *testing.B) {
	w := newWorld(b, "bench parse code text")
	dev := w.key(crypto.Device)
	cred := w.credential(dev.Public())
	code, err := Sign(w.paymentCodeBody(7, cred, false), dev, cred.Body.ID[:])
	if err != nil {
		b.Fatal(err)
	}
	text := QRText(PrefixPaymentCode, code.Raw)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParsePaymentCodeText(text); err != nil {
			b.Fatal(err)
		}
	}
}
