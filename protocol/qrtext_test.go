package protocol

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
)

func TestQRTextRoundTrip(t *testing.T) {
	w := newWorld(t, "qr-round-trip")
	cred := w.credential(w.device.Public())
	credID := cred.Body.ID[:]
	code := mustSign(t, w.paymentCodeBody(9, cred, false), w.device, credID)
	o := w.order()
	consent := mustSign(t, w.consentBody(o, 10, cred, true), w.device, credID)

	text := QRText(PrefixPaymentCode, code.Raw)
	if !strings.HasPrefix(text, "AT1:") {
		t.Fatalf("payment code text %q: want prefix AT1:", text)
	}
	pc, err := ParsePaymentCodeText(text)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pc.Raw, code.Raw) {
		t.Fatalf("payment code bytes changed through QR text")
	}
	if err := pc.Verify(w.device.Public(), credID); err != nil {
		t.Fatal(err)
	}

	ctext := QRText(PrefixOrderConsent, consent.Raw)
	oc, err := ParseOrderConsentText(ctext)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(oc.Raw, consent.Raw) {
		t.Fatalf("consent bytes changed through QR text")
	}

	otext, err := OrderText(o)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(otext, PrefixOrder) {
		t.Fatalf("order text %q: want prefix %s", otext, PrefixOrder)
	}
	got, err := ParseOrderText(otext)
	if err != nil {
		t.Fatal(err)
	}
	gotHash, _ := got.Hash()
	wantHash, _ := o.Hash()
	if gotHash != wantHash {
		t.Fatalf("order hash changed through QR text: %s, want %s", gotHash, wantHash)
	}
	for _, s := range []string{text, ctext, otext} {
		if strings.Trim(s, base45Alphabet) != "" {
			t.Errorf("QR text %q has characters outside the QR alphanumeric set", s)
		}
	}
	bad := o
	bad.Total = M(1, "EUR")
	if _, err := OrderText(bad); err == nil || !strings.Contains(err.Error(), "not the sum of the lines") {
		t.Errorf("OrderText of an order whose total is wrong: err = %v", err)
	}
}

func TestQRTextErrors(t *testing.T) {
	w := newWorld(t, "qr-errors")
	cred := w.credential(w.device.Public())
	code := mustSign(t, w.paymentCodeBody(9, cred, false), w.device, cred.Body.ID[:])
	consent := mustSign(t, w.consentBody(w.order(), 10, cred, false), w.device, cred.Body.ID[:])
	b45 := Base45Encode(code.Raw)
	otext, err := OrderText(w.order())
	if err != nil {
		t.Fatal(err)
	}
	parseCode := func(s string) error { _, err := ParsePaymentCodeText(s); return err }
	parseConsent := func(s string) error { _, err := ParseOrderConsentText(s); return err }
	parseOrder := func(s string) error { _, err := ParseOrderText(s); return err }
	for _, tc := range []struct {
		name    string
		parse   func(string) error
		text    string
		reasons []string
	}{
		{"NoPrefix", parseCode, b45, []string{"payment code QR", `want prefix "AT1:"`}},
		{"ConsentPrefix", parseCode, PrefixOrderConsent + b45, []string{`want prefix "AT1:"`}},
		{"OrderPrefix", parseCode, otext, []string{`want prefix "AT1:"`}},
		{"LowerCasePrefix", parseCode, "at1:" + b45, []string{`want prefix "AT1:"`}},
		{"LeadingSpace", parseCode, " AT1:" + b45, []string{`want prefix "AT1:"`}},
		{"OtherVersion", parseCode, "AT2:" + b45, []string{"payment code QR", `unsupported version "AT2:", want "AT1:"`}},
		{"VersionZero", parseCode, "AT0:" + b45, []string{`unsupported version "AT0:"`}},
		{"VersionTwoDigits", parseCode, "AT10:" + b45, []string{`unsupported version "AT10:"`}},
		{"OrderOtherVersion", parseOrder, "ATO2:" + b45, []string{"order QR", `unsupported version "ATO2:", want "ATO1:"`}},
		{"ConsentOtherVersion", parseConsent, "ATC7:" + b45, []string{"order consent QR", `unsupported version "ATC7:", want "ATC1:"`}},
		{"PaymentCodeAsConsent", parseConsent, QRText(PrefixPaymentCode, code.Raw), []string{`want prefix "ATC1:"`}},
		{"Base45Garbage", parseCode, "AT1:abc", []string{"payment code QR", "bad Base45", `character 'a' is outside the Base45 alphabet`}},
		{"Base45Dangling", parseCode, "AT1:AAAA", []string{"bad Base45", "dangling"}},
		{"Base45TripleTooBig", parseCode, "AT1:::::::", []string{"bad Base45", "exceeds 65535"}},
		{"TooLong", parseCode, "AT1:" + strings.Repeat("0", MaxQRTextSize-3), []string{"length 1201 exceeds the cap of 1200 characters"}},
		{"TooLongOtherVersion", parseCode, "AT2:" + strings.Repeat("0", MaxQRTextSize), []string{"exceeds the cap"}},
		{"EmptyPayload", parseCode, "AT1:", []string{"payment code", "empty input"}},
		{"NotCOSE", parseCode, "AT1:" + Base45Encode([]byte{1, 2, 3}), []string{"want CBOR tag 18"}},
		{"ConsentInsidePaymentCodeText", parseCode, QRText(PrefixPaymentCode, consent.Raw), []string{"payment code"}},
		{"OrderGarbage", parseOrder, PrefixOrder + Base45Encode([]byte{0xa0}), []string{"order", "invalid", "version 0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantDecodeErr(t, tc.parse(tc.text), tc.reasons...)
		})
	}
	// The Base45 error stays reachable for a caller that wants the offset.
	_, err = ParsePaymentCodeText("AT1:00a")
	var b45err *Base45Error
	if !errors.As(err, &b45err) || b45err.Offset != 2 {
		t.Errorf("err = %v, want a *Base45Error at offset 2", err)
	}
}

// newTestWallet opens a wallet in a fresh directory with a fixed clock and a
// credential for w's flight, issued by w's issuer.
func newTestWallet(t *testing.T, w *world) (*Wallet, *SignedCredential) {
	t.Helper()
	wal, err := OpenWallet(filepath.Join(t.TempDir(), "wallet"), WalletOptions{Rand: w.rnd, Clock: func() time.Time { return w.now }})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := wal.AddCredential(w.credential(wal.DeviceKey()).Raw, w.trust(w.issuer.Public()))
	if err != nil {
		t.Fatal(err)
	}
	return wal, cred
}

// TestQRVersionWalletCode checks the performance target: a compact payment
// code made by a real wallet fits QR version 6 at error correction M, and so
// does the largest compact code there can be.
func TestQRVersionWalletCode(t *testing.T) {
	w := newWorld(t, "qr-version")
	wal, cred := newTestWallet(t, w)
	text, err := wal.PaymentCode(w.flight, false)
	if err != nil {
		t.Fatal(err)
	}
	assertV6 := func(what, text string) {
		t.Helper()
		v, err := QRVersion(text)
		if err != nil {
			t.Fatal(err)
		}
		if v > 6 {
			t.Fatalf("%s: %d characters need QR version %d-%s, want at most 6", what, len(text), v, QRLevel)
		}
		t.Logf("%s: %d characters, QR version %d-%s", what, len(text), v, QRLevel)
	}
	assertV6("wallet compact code", text)

	largest := PaymentCode{Counter: MaxCounter, Time: time.Unix(maxCodeUnix, 0)}
	s := mustSign(t, largest, w.device, cred.Body.ID[:])
	ltext := QRText(PrefixPaymentCode, s.Raw)
	assertV6("largest compact code", ltext)
	if len(ltext) < len(text) {
		t.Errorf("largest compact code (%d chars) is shorter than a wallet's (%d)", len(ltext), len(text))
	}
	// One second later the time takes a 9-byte integer and would need
	// version 7: such a code is refused.
	if _, err := Sign(PaymentCode{Counter: MaxCounter, Time: time.Unix(maxCodeUnix+1, 0)}, w.device, cred.Body.ID[:]); err == nil {
		t.Errorf("code with a time after 2106 signed; it would not fit QR version 6")
	}

	full, err := wal.PaymentCode(w.flight, true)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := QRVersion(full); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("wallet full code: %d characters, QR version %d-%s", len(full), v, QRLevel)
	}
}

// TestQRImageRoundTrip renders a wallet's payment code as a PNG, reads it
// back with an independent decoder (gozxing), and verifies what it read.
func TestQRImageRoundTrip(t *testing.T) {
	w := newWorld(t, "qr-image")
	wal, cred := newTestWallet(t, w)
	for _, full := range []bool{false, true} {
		text, err := wal.PaymentCode(w.flight, full)
		if err != nil {
			t.Fatal(err)
		}
		pngBytes, version, err := RenderQR(text, 320)
		if err != nil {
			t.Fatal(err)
		}
		if !full && version > 6 {
			t.Fatalf("compact code rendered at version %d, want at most 6", version)
		}
		img, err := png.Decode(bytes.NewReader(pngBytes))
		if err != nil {
			t.Fatal(err)
		}
		var scanned string
		if full {
			// gozxing's finder-pattern detector misreads this particular
			// version 13 symbol at 4 px per module (it reads it at 1 px,
			// and reads random version 13 texts at any size); decoding it
			// as a pure barcode, which our clean render is, skips the
			// detector and checks the symbol itself.
			scanned = scanPureQR(t, img)
		} else {
			scan := scanQR(t, img)
			if scan.version != version || scan.ecLevel != QRLevel {
				t.Errorf("scanned version %d-%s, rendered %d-%s", scan.version, scan.ecLevel, version, QRLevel)
			}
			scanned = scan.text
		}
		if scanned != text {
			t.Fatalf("scanned %q, want %q", scanned, text)
		}
		pc, err := ParsePaymentCodeText(scanned)
		if err != nil {
			t.Fatal(err)
		}
		if err := pc.Verify(wal.DeviceKey(), cred.Body.ID[:]); err != nil {
			t.Fatalf("scanned code: %v", err)
		}
		if got := pc.Body.Full(); got != full {
			t.Fatalf("scanned code Full() = %v, want %v", got, full)
		}
		if full {
			ec, err := pc.Body.EmbeddedCredential()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ec.VerifyTrusted(w.trust(w.issuer.Public()), w.now, nil); err != nil {
				t.Fatalf("scanned embedded credential: %v", err)
			}
		}
		// The device signature is bound to the credential id.
		other := w.id()
		if err := pc.Verify(wal.DeviceKey(), other[:]); !errors.Is(err, ErrSignature) {
			t.Errorf("verify with another credential id: err = %v, want ErrSignature", err)
		}
		if err := pc.Verify(otherPurpose(t, wal.DeviceKey()), cred.Body.ID[:]); !errors.Is(err, ErrSignature) {
			t.Errorf("verify with a %s key: err = %v, want ErrSignature", crypto.Issuer, err)
		}
	}
}

// scanPureQR decodes img with gozxing as a pure barcode: an unrotated,
// unskewed symbol with a quiet zone, as RenderQR draws it.
func scanPureQR(t *testing.T, img image.Image) string {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatalf("gozxing bitmap: %v", err)
	}
	hints := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, hints)
	if err != nil {
		t.Fatalf("gozxing decode: %v", err)
	}
	return res.GetText()
}
