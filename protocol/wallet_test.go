package protocol

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
)

// openWallet opens the wallet in dir with w's clock and randomness.
func openWallet(t *testing.T, w *world, dir string) *Wallet {
	t.Helper()
	wal, err := OpenWallet(dir, WalletOptions{Rand: w.rnd, Clock: func() time.Time { return w.now }})
	if err != nil {
		t.Fatalf("OpenWallet: %v", err)
	}
	return wal
}

// codeCounter parses a payment code's QR text, verifies it against the
// wallet's device key and credential, and returns its counter.
func codeCounter(t *testing.T, wal *Wallet, cred *SignedCredential, text string) uint64 {
	t.Helper()
	pc, err := ParsePaymentCodeText(text)
	if err != nil {
		t.Fatalf("parse payment code: %v", err)
	}
	if err := pc.Verify(wal.DeviceKey(), cred.Body.ID[:]); err != nil {
		t.Fatalf("verify payment code: %v", err)
	}
	return pc.Body.Counter
}

func TestOpenWalletFiles(t *testing.T) {
	w := newWorld(t, "wallet-files")
	dir := filepath.Join(t.TempDir(), "phone", "wallet")
	wal := openWallet(t, w, dir)
	if got, want := wal.DeviceKey().Purpose(), crypto.Device; got != want {
		t.Fatalf("device key purpose = %s, want %s", got, want)
	}
	for _, tc := range []struct {
		path string
		mode os.FileMode
		dir  bool
	}{
		{dir, 0o700, true},
		{filepath.Join(dir, "credentials"), 0o700, true},
		{filepath.Join(dir, "device.key"), 0o600, false},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != tc.mode {
			t.Errorf("%s: mode %04o, want %04o", tc.path, got, tc.mode)
		}
		if fi.IsDir() != tc.dir {
			t.Errorf("%s: IsDir = %v, want %v", tc.path, fi.IsDir(), tc.dir)
		}
	}
	// The file holds the device key the wallet uses.
	k, err := crypto.ReadKeyFile(filepath.Join(dir, "device.key"), crypto.Device)
	if err != nil {
		t.Fatal(err)
	}
	if !k.Public().Equal(wal.DeviceKey()) {
		t.Fatalf("device.key holds %s, wallet uses %s", k.Public(), wal.DeviceKey())
	}

	again, err := OpenWallet(dir, WalletOptions{}) // crypto/rand: must not be used
	if err != nil {
		t.Fatal(err)
	}
	if !again.DeviceKey().Equal(wal.DeviceKey()) {
		t.Fatalf("reopened wallet has device key %s, want %s", again.DeviceKey(), wal.DeviceKey())
	}

	other := openWallet(t, w, filepath.Join(t.TempDir(), "other"))
	if other.DeviceKey().Equal(wal.DeviceKey()) {
		t.Fatalf("two new wallets share a device key")
	}
}

func TestOpenWalletRefusesExposedKey(t *testing.T) {
	w := newWorld(t, "wallet-exposed")
	dir := filepath.Join(t.TempDir(), "wallet")
	openWallet(t, w, dir)
	if err := os.Chmod(filepath.Join(dir, "device.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenWallet(dir, WalletOptions{}); err == nil {
		t.Fatalf("opened a wallet whose device key others may read")
	}
}

func TestOpenWalletCorruptCounter(t *testing.T) {
	w := newWorld(t, "wallet-corrupt")
	dir := filepath.Join(t.TempDir(), "wallet")
	openWallet(t, w, dir)
	for _, content := range []string{"lots\n", "-1\n", strconv.FormatUint(MaxCounter+1, 10)} {
		if err := os.WriteFile(filepath.Join(dir, "counter"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := OpenWallet(dir, WalletOptions{}); err == nil {
			t.Errorf("counter file %q: opened, want an error", content)
		}
	}
}

func TestAddCredential(t *testing.T) {
	w := newWorld(t, "wallet-add")
	dir := filepath.Join(t.TempDir(), "wallet")
	wal := openWallet(t, w, dir)
	trust := w.trust(w.issuer.Public())

	t.Run("OK", func(t *testing.T) {
		raw := w.credential(wal.DeviceKey()).Raw
		c, err := wal.AddCredential(raw, trust)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := wal.Credential(w.flight)
		if !ok || !bytes.Equal(got.Raw, raw) || !bytes.Equal(c.Raw, raw) {
			t.Fatalf("stored credential differs from the one added")
		}
		if _, ok := wal.Credential("YY1-2026-11-21"); ok {
			t.Fatalf("credential found for a flight never added")
		}
		// It survives a restart.
		re := openWallet(t, w, dir)
		got, ok = re.Credential(w.flight)
		if !ok || !bytes.Equal(got.Raw, raw) {
			t.Fatalf("credential lost across reopen")
		}
		if all := re.Credentials(); len(all) != 1 || !bytes.Equal(all[0].Raw, raw) {
			t.Fatalf("Credentials() = %d credentials, want the one added", len(all))
		}
	})
	t.Run("ErrOtherDevice", func(t *testing.T) {
		raw := w.credential(w.key(crypto.Device).Public()).Raw
		if _, err := wal.AddCredential(raw, trust); err == nil {
			t.Fatalf("added a credential issued to another device")
		}
	})
	t.Run("ErrUntrustedIssuer", func(t *testing.T) {
		rogue := w.key(crypto.Issuer)
		raw := mustSign(t, w.credentialBody(wal.DeviceKey()), rogue, nil).Raw
		_, err := wal.AddCredential(raw, trust)
		if !errors.Is(err, ErrSignature) || !errors.Is(err, crypto.ErrUnknownKey) {
			t.Fatalf("credential from an untrusted issuer: err = %v, want ErrSignature and ErrUnknownKey", err)
		}
	})
	t.Run("ErrExpiredIssuerKey", func(t *testing.T) {
		old, err := crypto.NewTrustList(crypto.TrustedKey{Key: w.issuer.Public(), NotBefore: w.now.Add(-48 * time.Hour), NotAfter: w.now.Add(-24 * time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = wal.AddCredential(w.credential(wal.DeviceKey()).Raw, old)
		if !errors.Is(err, crypto.ErrKeyNotValid) {
			t.Fatalf("credential under an expired issuer key: err = %v, want ErrKeyNotValid", err)
		}
	})
	t.Run("ErrBadSignature", func(t *testing.T) {
		raw := bytes.Clone(w.credential(wal.DeviceKey()).Raw)
		raw[len(raw)-1] ^= 0x80
		if _, err := wal.AddCredential(raw, trust); !errors.Is(err, crypto.ErrBadSignature) {
			t.Fatalf("tampered credential: err = %v, want ErrBadSignature", err)
		}
	})
	t.Run("ErrMalformed", func(t *testing.T) {
		if _, err := wal.AddCredential([]byte("not a credential"), trust); !errors.Is(err, ErrDecode) {
			t.Fatalf("garbage: err = %v, want ErrDecode", err)
		}
	})
	t.Run("NilTrustSkipsVerification", func(t *testing.T) {
		rogue := w.key(crypto.Issuer)
		body := w.credentialBody(wal.DeviceKey())
		body.Flight = "XX9-2026-11-22"
		if _, err := wal.AddCredential(mustSign(t, body, rogue, nil).Raw, nil); err != nil {
			t.Fatalf("nil trust list: %v", err)
		}
	})
}

func TestPaymentCodeNoCredential(t *testing.T) {
	w := newWorld(t, "wallet-nocred")
	wal := openWallet(t, w, filepath.Join(t.TempDir(), "wallet"))
	for _, full := range []bool{false, true} {
		if _, err := wal.PaymentCode(w.flight, full); !errors.Is(err, ErrNoCredential) {
			t.Errorf("PaymentCode(full=%v) without credential: err = %v, want ErrNoCredential", full, err)
		}
	}
	otext, err := OrderText(w.order())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := wal.Consent(otext, false); !errors.Is(err, ErrNoCredential) {
		t.Errorf("Consent without credential: err = %v, want ErrNoCredential", err)
	}
	// A credential for another flight does not help.
	body := w.credentialBody(wal.DeviceKey())
	body.Flight = "XX124-2026-11-22"
	if _, err := wal.AddCredential(mustSign(t, body, w.issuer, nil).Raw, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := wal.PaymentCode(w.flight, false); !errors.Is(err, ErrNoCredential) {
		t.Errorf("PaymentCode with a credential for another flight: err = %v, want ErrNoCredential", err)
	}
}

func TestPaymentCodeCounters(t *testing.T) {
	w := newWorld(t, "wallet-counters")
	wal, cred := newTestWallet(t, w)
	var last uint64
	for i := range 200 {
		text, err := wal.PaymentCode(w.flight, i%10 == 0)
		if err != nil {
			t.Fatal(err)
		}
		n := codeCounter(t, wal, cred, text)
		if n <= last {
			t.Fatalf("code %d: counter %d after %d, want strictly increasing", i, n, last)
		}
		last = n
	}
	pc, err := ParsePaymentCodeText(mustPaymentCode(t, wal, w.flight, false))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := pc.Body.Time, w.now; !got.Equal(want) {
		t.Errorf("code time = %s, want the wallet clock's %s", got, want)
	}
}

func mustPaymentCode(t *testing.T, wal *Wallet, f FlightID, full bool) string {
	t.Helper()
	text, err := wal.PaymentCode(f, full)
	if err != nil {
		t.Fatal(err)
	}
	return text
}

// TestPaymentCodeCountersAcrossCrash drops a wallet without closing it, as a
// crash or a killed app would, and checks that the reopened wallet never
// reuses a counter.
func TestPaymentCodeCountersAcrossCrash(t *testing.T) {
	w := newWorld(t, "wallet-crash")
	dir := filepath.Join(t.TempDir(), "wallet")
	wal := openWallet(t, w, dir)
	cred, err := wal.AddCredential(w.credential(wal.DeviceKey()).Raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	var seen []uint64
	for round := range 4 {
		for range 3 + round*40 {
			seen = append(seen, codeCounter(t, wal, cred, mustPaymentCode(t, wal, w.flight, false)))
		}
		// Crash: no close, no flush; the next process opens the directory.
		wal = openWallet(t, w, dir)
		var max uint64
		for _, n := range seen {
			max = maxOf(max, n)
		}
		for range 3 {
			n := codeCounter(t, wal, cred, mustPaymentCode(t, wal, w.flight, false))
			if n <= max {
				t.Fatalf("round %d: counter %d after reopen, but %d was used before", round, n, max)
			}
			seen = append(seen, n)
		}
	}
	assertUnique(t, seen)
}

func maxOf(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func assertUnique(t *testing.T, counters []uint64) {
	t.Helper()
	set := make(map[uint64]bool, len(counters))
	for _, n := range counters {
		if set[n] {
			t.Fatalf("counter %d handed out twice", n)
		}
		set[n] = true
	}
}

// TestPaymentCodeCountersConcurrent makes codes from 8 goroutines at once;
// run with -race.
func TestPaymentCodeCountersConcurrent(t *testing.T) {
	w := newWorld(t, "wallet-concurrent")
	wal, cred := newTestWallet(t, w)
	const workers, perWorker = 8, 50
	otext, err := OrderText(w.order())
	if err != nil {
		t.Fatal(err)
	}
	texts := make([][]string, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Go(func() {
			for j := range perWorker {
				var text string
				var err error
				if j%5 == 4 {
					text, _, err = wal.Consent(otext, false)
				} else {
					text, err = wal.PaymentCode(w.flight, false)
				}
				if err != nil {
					t.Error(err)
					return
				}
				texts[i] = append(texts[i], text)
			}
		})
	}
	wg.Wait()
	var counters []uint64
	for _, ts := range texts {
		for _, text := range ts {
			if pc, err := ParsePaymentCodeText(text); err == nil {
				if err := pc.Verify(wal.DeviceKey(), cred.Body.ID[:]); err != nil {
					t.Fatal(err)
				}
				counters = append(counters, pc.Body.Counter)
				continue
			}
			oc, err := ParseOrderConsentText(text)
			if err != nil {
				t.Fatal(err)
			}
			counters = append(counters, oc.Body.Counter)
		}
	}
	if got, want := len(counters), workers*perWorker; got != want {
		t.Fatalf("%d codes, want %d", got, want)
	}
	assertUnique(t, counters)
}

func TestWalletCounterExhausted(t *testing.T) {
	w := newWorld(t, "wallet-exhausted")
	dir := filepath.Join(t.TempDir(), "wallet")
	wal := openWallet(t, w, dir)
	cred, err := wal.AddCredential(w.credential(wal.DeviceKey()).Raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "counter"), []byte(strconv.FormatUint(MaxCounter-2, 10)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	wal = openWallet(t, w, dir)
	for _, want := range []uint64{MaxCounter - 1, MaxCounter} {
		if got := codeCounter(t, wal, cred, mustPaymentCode(t, wal, w.flight, false)); got != want {
			t.Fatalf("counter = %d, want %d", got, want)
		}
	}
	if _, err := wal.PaymentCode(w.flight, false); err == nil {
		t.Fatalf("code made past MaxCounter")
	}
	if _, err := wal.PaymentCode(w.flight, false); err == nil {
		t.Fatalf("second code made past MaxCounter")
	}
}

// TestConsentRoundTrip walks the two-way mode: a handheld shows an order,
// the wallet signs consent to it, the cabin server reads and verifies it.
func TestConsentRoundTrip(t *testing.T) {
	w := newWorld(t, "wallet-consent")
	wal, cred := newTestWallet(t, w)
	order := w.order() // what the handheld made
	wantHash, err := order.Hash()
	if err != nil {
		t.Fatal(err)
	}
	otext, err := OrderText(order)
	if err != nil {
		t.Fatal(err)
	}
	before := codeCounter(t, wal, cred, mustPaymentCode(t, wal, w.flight, false))
	for _, full := range []bool{false, true} {
		ctext, shown, err := wal.Consent(otext, full)
		if err != nil {
			t.Fatal(err)
		}
		if h, err := shown.Hash(); err != nil || h != wantHash {
			t.Fatalf("order shown to the passenger hashes to %s (%v), want %s", h, err, wantHash)
		}
		if shown.Total != order.Total || shown.ID != order.ID {
			t.Fatalf("order shown = %s %s, want %s %s", shown.ID, shown.Total, order.ID, order.Total)
		}
		c, err := ParseOrderConsentText(ctext)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Verify(wal.DeviceKey(), cred.Body.ID[:]); err != nil {
			t.Fatalf("verify consent: %v", err)
		}
		if c.Body.OrderHash != wantHash {
			t.Fatalf("consent order hash = %s, want %s", c.Body.OrderHash, wantHash)
		}
		if c.Body.Order != order.ID || c.Body.Total != order.Total {
			t.Fatalf("consent = order %s total %s, want %s %s", c.Body.Order, c.Body.Total, order.ID, order.Total)
		}
		if c.Body.Counter <= before {
			t.Fatalf("consent counter %d not after the payment code's %d: they share one counter", c.Body.Counter, before)
		}
		before = c.Body.Counter
		if !c.Body.Time.Equal(w.now) {
			t.Errorf("consent time = %s, want %s", c.Body.Time, w.now)
		}
		if full {
			if !bytes.Equal(c.Body.Credential, cred.Raw) {
				t.Fatalf("full consent does not embed the credential")
			}
		} else if len(c.Body.Credential) != 0 {
			t.Fatalf("compact consent embeds a credential")
		}
		// A consent to one order says nothing about another.
		other := w.order()
		otherHash, _ := other.Hash()
		if otherHash == c.Body.OrderHash {
			t.Fatalf("two orders with one hash")
		}
	}
	// A tampered order text is refused before anything is signed.
	if _, _, err := wal.Consent(otext[:len(otext)-3], false); !errors.Is(err, ErrDecode) {
		t.Errorf("truncated order text: err = %v, want ErrDecode", err)
	}
	if _, _, err := wal.Consent(QRText(PrefixPaymentCode, cred.Raw), false); !errors.Is(err, ErrDecode) {
		t.Errorf("payment code text as order: err = %v, want ErrDecode", err)
	}
}

func TestFullPaymentCodeEmbedsCredential(t *testing.T) {
	w := newWorld(t, "wallet-full")
	wal, cred := newTestWallet(t, w)
	pc, err := ParsePaymentCodeText(mustPaymentCode(t, wal, w.flight, true))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pc.Body.Credential, cred.Raw) {
		t.Fatalf("full code does not embed the credential byte for byte")
	}
	if got, want := pc.KeyID, wal.DeviceKey().ID(); got != want {
		t.Fatalf("code key id = %s, want the device key's %s", got, want)
	}
	compact, err := ParsePaymentCodeText(mustPaymentCode(t, wal, w.flight, false))
	if err != nil {
		t.Fatal(err)
	}
	if compact.Body.Full() {
		t.Fatalf("compact code embeds a credential")
	}
}
