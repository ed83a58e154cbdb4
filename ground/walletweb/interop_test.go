package walletweb

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/browsertest"
)

// fixedKey returns the key of purpose p whose seed is SHA-256(name).
func fixedKey(t *testing.T, p crypto.Purpose, name string) crypto.PrivateKey {
	t.Helper()
	seed := sha256.Sum256([]byte(name))
	k, err := crypto.PrivateKeyFromSeed(p, seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestCodesMatchGo makes a payment code (compact and full) and an order
// consent in the browser with a device key imported from a known seed, and
// checks that each parses and verifies in Go and is byte for byte what the
// Go protocol package signs for the same inputs.
func TestCodesMatchGo(t *testing.T) {
	issuer := fixedKey(t, crypto.Issuer, "walletweb interop issuer")
	device := fixedKey(t, crypto.Device, "walletweb interop device")
	seed := sha256.Sum256([]byte("walletweb interop device"))
	now := time.Date(2026, 11, 21, 9, 30, 0, 0, time.UTC)
	cred, err := protocol.Sign(protocol.Credential{Version: 1, ID: protocol.NewID(nil), Passenger: protocol.NewID(nil),
		Device: protocol.DeviceKey{PublicKey: device.Public()}, Flight: "XX123-2026-11-21",
		Limit: protocol.M(25000, "EUR"), TxCap: protocol.M(10000, "EUR"),
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(6 * time.Hour)}, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	order := protocol.Order{Version: 1, ID: protocol.NewID(nil), Flight: "XX123-2026-11-21", CreatedAt: now,
		Lines: []protocol.OrderLine{{SKU: "coffee", Quantity: 2, UnitPrice: protocol.M(350, "EUR")}, {SKU: "water", Quantity: 1, UnitPrice: protocol.M(0, "EUR")}},
		Total: protocol.M(700, "EUR")}
	orderText, err := protocol.OrderText(order)
	if err != nil {
		t.Fatal(err)
	}
	srv := testServer(t)
	b := browsertest.New(t, browsertest.Options{})
	b.Navigate(srv.URL + "/test/blank.html")
	cases := []struct {
		name    string
		counter uint64
		full    bool
		consent bool
	}{
		{"CompactSmallCounter", 1, false, false},
		{"CompactLargeCounter", 4_000_000_000, false, false},
		{"Full", 70_000, true, false},
		{"Consent", 17, false, true},
		{"ConsentFull", 300, true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := b.For(t)
			js := fmt.Sprintf(`(async () => {
				const m = await import("/wallet/js/messages.js");
				const k = await import("/wallet/js/keys.js");
				const by = await import("/wallet/js/bytes.js");
				const cred = m.parseCredential(by.fromHex(%q));
				const privateKey = await k.importSeed(by.fromHex(%q));
				const kid = await k.keyId(cred.device);
				const args = { cred, privateKey, kid, counter: %d, time: %d, full: %t };
				if (%t) {
					const order = await m.readOrderQR(%q);
					return m.toQR("order-consent", await m.makeConsent({ ...args, order }));
				}
				return m.toQR("payment-code", await m.makePaymentCode(args));
			})()`, hex.EncodeToString(cred.Raw), hex.EncodeToString(seed[:]), c.counter, now.Unix(), c.full, c.consent, orderText)
			text := browsertest.Eval[string](b, js)
			var full []byte
			if c.full {
				full = cred.Raw
			}
			var want string
			if c.consent {
				h, _ := order.Hash()
				s, err := protocol.Sign(protocol.OrderConsent{Order: order.ID, OrderHash: h, Total: order.Total, Counter: c.counter, Time: now, Credential: full}, device, cred.Body.ID[:])
				if err != nil {
					t.Fatal(err)
				}
				want = protocol.QRText(protocol.PrefixOrderConsent, s.Raw)
				got, err := protocol.ParseOrderConsentText(text)
				if err != nil {
					t.Fatalf("consent from the browser: %v", err)
				}
				if err := got.Verify(device.Public(), cred.Body.ID[:]); err != nil {
					t.Fatalf("consent from the browser: %v", err)
				}
			} else {
				s, err := protocol.Sign(protocol.PaymentCode{Counter: c.counter, Time: now, Credential: full}, device, cred.Body.ID[:])
				if err != nil {
					t.Fatal(err)
				}
				want = protocol.QRText(protocol.PrefixPaymentCode, s.Raw)
				got, err := protocol.ParsePaymentCodeText(text)
				if err != nil {
					t.Fatalf("code from the browser: %v", err)
				}
				if err := got.Verify(device.Public(), cred.Body.ID[:]); err != nil {
					t.Fatalf("code from the browser: %v", err)
				}
				if got.Body.Counter != c.counter || !got.Body.Time.Equal(now) {
					t.Errorf("code says counter %d at %s, want %d at %s", got.Body.Counter, got.Body.Time, c.counter, now)
				}
			}
			if text != want {
				t.Errorf("browser made\n%s\nGo makes\n%s", text, want)
			}
		})
	}
}
