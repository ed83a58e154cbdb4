package walletweb

import (
	"encoding/hex"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/browsertest"
	"github.com/chromedp/chromedp"
)

// TestRefusals puts a device key made in the page and credentials signed in
// Go into the wallet's storage, and checks what the page says for an
// expired credential, an order for another flight, a QR that is not an
// order, and no camera: a clear message, and no code.
func TestRefusals(t *testing.T) {
	srv := testServer(t)
	b := browsertest.New(t, browsertest.Options{})
	live := seedWallet(t, b, srv.URL)
	t.Run("ExpiredCredential", func(t *testing.T) {
		b := b.For(t)
		b.Navigate(srv.URL + "/wallet/#/pay/XX100-2026-01-01")
		b.WaitTextIn("#pay-error", "expired")
		if browsertest.Eval[bool](b, `!!document.querySelector("#code")`) {
			t.Error("a code is shown for an expired credential")
		}
	})
	t.Run("NoCamera", func(t *testing.T) {
		b := b.For(t)
		b.Navigate(srv.URL + "/wallet/#/order/" + string(live))
		b.WaitTextIn("#camera-status", "Type or paste the order text instead")
	})
	t.Run("NotAnOrder", func(t *testing.T) {
		b := b.For(t)
		b.SetValue("#order-text", "https://example.com/menu")
		b.Click("#read-order")
		b.WaitTextIn("#notice", "not an Airtab order")
	})
	t.Run("OrderForAnotherFlight", func(t *testing.T) {
		b := b.For(t)
		o := protocol.Order{Version: 1, ID: protocol.NewID(nil), Flight: "XX999-2026-11-21", CreatedAt: time.Now().UTC().Truncate(time.Second),
			Lines: []protocol.OrderLine{{SKU: "coffee", Quantity: 1, UnitPrice: protocol.M(350, "EUR")}}, Total: protocol.M(350, "EUR")}
		text, err := protocol.OrderText(o)
		if err != nil {
			t.Fatal(err)
		}
		b.SetValue("#order-text", text)
		b.Click("#read-order")
		b.WaitTextIn("#notice", "This order is for flight XX999-2026-11-21")
		if browsertest.Eval[bool](b, `!!document.querySelector("#confirm")`) {
			t.Error("an order for another flight can be confirmed")
		}
	})
	t.Run("OrderOfANewerVersion", func(t *testing.T) {
		b := b.For(t)
		b.SetValue("#order-text", "ATO2:ABC")
		b.Click("#read-order")
		b.WaitTextIn("#notice", "newer version of Airtab")
	})
}

// seedWallet puts a device key made in the page into the wallet's storage,
// with a credential signed in Go that expired an hour ago (flight
// XX100-2026-01-01) and one valid now, whose flight it returns; codes are
// fresh for 20 s, so the page shows a new one every 10 s.
func seedWallet(t *testing.T, b *browsertest.Browser, url string) protocol.FlightID {
	t.Helper()
	b.SetViewport(360, 740)
	b.Navigate(url + "/wallet/")
	b.WaitVisible("#register")
	devHex := browsertest.Eval[string](b, `(async () => {
		const k = await import("./js/keys.js"), s = await import("./js/store.js"), by = await import("./js/bytes.js");
		const d = await k.generateDeviceKey();
		await s.putDevice(d);
		return by.hex(d.raw);
	})()`)
	raw, err := hex.DecodeString(devHex)
	if err != nil {
		t.Fatal(err)
	}
	dev, err := crypto.ParsePublicKey(crypto.Device, "airtab-device-pub:"+hex.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	issuer := fixedKey(t, crypto.Issuer, "walletweb refusals issuer")
	now := time.Now().UTC().Truncate(time.Second)
	credential := func(f protocol.FlightID, from, to time.Time) []byte {
		s, err := protocol.Sign(protocol.Credential{Version: 1, ID: protocol.NewID(nil), Passenger: protocol.NewID(nil),
			Device: protocol.DeviceKey{PublicKey: dev}, Flight: f, Limit: protocol.M(25000, "EUR"), TxCap: protocol.M(10000, "EUR"),
			NotBefore: from, NotAfter: to}, issuer, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s.Raw
	}
	put := func(f protocol.FlightID, raw []byte) {
		browsertest.Eval[bool](b, fmt.Sprintf(`(async () => {
			const s = await import("./js/store.js"), by = await import("./js/bytes.js");
			await s.putCredential({ flight: %q, raw: by.fromHex(%q), fresh_seconds: 20 });
			return true;
		})()`, f, hex.EncodeToString(raw)))
	}
	put("XX100-2026-01-01", credential("XX100-2026-01-01", now.Add(-72*time.Hour), now.Add(-time.Hour)))
	live := protocol.FlightID("XX200-" + now.Format(time.DateOnly))
	put(live, credential(live, now.Add(-time.Hour), now.Add(24*time.Hour)))
	b.Navigate(url + "/wallet/#/home")
	b.Do("reload", chromedp.Reload())

	return live
}

// TestOrderByCamera shows the page a fake camera playing the handheld's
// order QR: the page reads it, shows the lines and total, and on confirm
// shows a consent that verifies and answers that order.
func TestOrderByCamera(t *testing.T) {
	srv := testServer(t)
	now := time.Now().UTC().Truncate(time.Second)
	flight := protocol.FlightID("XX200-" + now.Format(time.DateOnly))
	o := protocol.Order{Version: 1, ID: protocol.NewID(nil), Flight: flight, CreatedAt: now,
		Lines: []protocol.OrderLine{{SKU: "coffee", Quantity: 2, UnitPrice: protocol.M(350, "EUR")}, {SKU: "sandwich", Quantity: 1, UnitPrice: protocol.M(790, "EUR")}},
		Total: protocol.M(1490, "EUR")}
	text, err := protocol.OrderText(o)
	if err != nil {
		t.Fatal(err)
	}
	png, _, err := protocol.RenderQR(text, 400)
	if err != nil {
		t.Fatal(err)
	}
	video := filepath.Join(t.TempDir(), "order.y4m")
	if err := browsertest.WriteQRVideo(video, png); err != nil {
		t.Fatal(err)
	}
	b := browsertest.New(t, browsertest.Options{FakeCamera: video})
	if got := seedWallet(t, b, srv.URL); got != flight {
		t.Fatalf("seeded flight %s, want %s", got, flight)
	}
	b.Navigate(srv.URL + "/wallet/#/order/" + string(flight))
	b.WaitTextIn("#order-total", "14.90 EUR")
	b.WaitTextIn("#order-lines", "2 × coffee")
	b.Click("#confirm")
	b.WaitTrue(`!!document.querySelector("#consent")?.dataset.qr`)
	consent, err := protocol.ParseOrderConsentText(browsertest.Eval[string](b, `document.querySelector("#consent").dataset.qr`))
	if err != nil {
		t.Fatal(err)
	}
	h, _ := o.Hash()
	if consent.Body.Order != o.ID || consent.Body.OrderHash != h || consent.Body.Total != o.Total {
		t.Errorf("consent %+v does not answer order %s", consent.Body, o.ID)
	}
}

// TestCodeRefreshes waits on the pay screen, without a reload, for the code
// to be replaced within the freshness period: a new counter, a later time.
func TestCodeRefreshes(t *testing.T) {
	srv := testServer(t)
	b := browsertest.New(t, browsertest.Options{})
	flight := seedWallet(t, b, srv.URL)
	b.Navigate(srv.URL + "/wallet/#/pay/" + string(flight))
	b.WaitTrue(`!!document.querySelector("#code")?.dataset.qr`)
	first := browsertest.Eval[string](b, `document.querySelector("#code").dataset.qr`)
	b.WaitTextIn("#code-status", "new code every 10 s")
	b.WaitTrue(fmt.Sprintf(`document.querySelector("#code").dataset.qr !== %q`, first))
	second := browsertest.Eval[string](b, `document.querySelector("#code").dataset.qr`)
	a, err := protocol.ParsePaymentCodeText(first)
	if err != nil {
		t.Fatal(err)
	}
	c, err := protocol.ParsePaymentCodeText(second)
	if err != nil {
		t.Fatal(err)
	}
	if c.Body.Counter <= a.Body.Counter || c.Body.Time.Before(a.Body.Time) {
		t.Errorf("refreshed code: counter %d at %s after %d at %s", c.Body.Counter, c.Body.Time, a.Body.Counter, a.Body.Time)
	}
}

// TestCountersAcrossTabs takes counters from two Counters at once, as two
// tabs of the wallet would, and checks none is handed out twice.
func TestCountersAcrossTabs(t *testing.T) {
	srv := testServer(t)
	b := browsertest.New(t, browsertest.Options{})
	b.Navigate(srv.URL + "/test/blank.html")
	got := browsertest.Eval[[]int](b, `(async () => {
		const s = await import("/wallet/js/store.js");
		const tabs = [new s.Counters(), new s.Counters(), new s.Counters()];
		const takes = [];
		for (let i = 0; i < 60; i++) for (const c of tabs) takes.push(c.take());
		return Promise.all(takes);
	})()`)
	seen := map[int]bool{}
	for _, c := range got {
		if c < 1 || seen[c] {
			t.Fatalf("counter %d handed out twice or out of range: %v", c, got)
		}
		seen[c] = true
	}
	if len(seen) != 180 {
		t.Fatalf("%d distinct counters, want 180", len(seen))
	}
}
