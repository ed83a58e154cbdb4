package protocol

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/fxamacker/cbor/v2"
)

// Test fixtures shared by the protocol tests: deterministic keys, ids and
// times, and a valid message of every kind.

// shaCounterReader is a deterministic io.Reader: the bytes of
// SHA-256(seed || counter) for counter 0, 1, 2, ... Keys and ids made from
// it are the same on every run.
type shaCounterReader struct {
	seed string
	n    uint64
	buf  []byte
}

func (r *shaCounterReader) Read(p []byte) (int, error) {
	for i := range p {
		if len(r.buf) == 0 {
			h := sha256.New()
			io.WriteString(h, r.seed)
			binary.Write(h, binary.BigEndian, r.n)
			r.n++
			r.buf = h.Sum(nil)
		}
		p[i], r.buf = r.buf[0], r.buf[1:]
	}
	return len(p), nil
}

// seededReader returns a deterministic reader for seed.
func seededReader(seed string) io.Reader { return &shaCounterReader{seed: seed} }

// world holds the keys and names of one test flight, and makes valid
// messages of every kind for it.
type world struct {
	t        testing.TB
	rnd      io.Reader
	now      time.Time // the flight's "now": whole seconds, UTC
	flight   FlightID
	tail     AircraftID
	issuer   crypto.PrivateKey
	aircraft crypto.PrivateKey
	device   crypto.PrivateKey
}

func newWorld(t testing.TB, seed string) *world {
	t.Helper()
	w := &world{
		t:      t,
		rnd:    seededReader(seed),
		now:    time.Date(2026, 11, 21, 10, 30, 0, 0, time.UTC),
		flight: "XX123-2026-11-21",
		tail:   "D-AIUA",
	}
	w.issuer = w.key(crypto.Issuer)
	w.aircraft = w.key(crypto.Aircraft)
	w.device = w.key(crypto.Device)
	return w
}

// key returns a new private key of purpose p.
func (w *world) key(p crypto.Purpose) crypto.PrivateKey {
	w.t.Helper()
	k, err := crypto.GenerateKey(p, w.rnd)
	if err != nil {
		w.t.Fatalf("GenerateKey(%s): %v", p, err)
	}
	return k
}

// id returns a new random id.
func (w *world) id() ID { return NewID(w.rnd) }

// trust returns a trust list holding keys, each valid for a day around now.
func (w *world) trust(keys ...crypto.PublicKey) *crypto.TrustList {
	w.t.Helper()
	var tks []crypto.TrustedKey
	for _, k := range keys {
		tks = append(tks, crypto.TrustedKey{Key: k, NotBefore: w.now.Add(-12 * time.Hour), NotAfter: w.now.Add(12 * time.Hour)})
	}
	tl, err := crypto.NewTrustList(tks...)
	if err != nil {
		w.t.Fatalf("NewTrustList: %v", err)
	}
	return tl
}

func (w *world) credentialBody(dev crypto.PublicKey) Credential {
	return Credential{
		Version:   Version,
		ID:        w.id(),
		Passenger: w.id(),
		Device:    DeviceKey{dev},
		Flight:    w.flight,
		Limit:     M(50000, "EUR"),
		TxCap:     M(15000, "EUR"),
		NotBefore: w.now.Add(-6 * time.Hour),
		NotAfter:  w.now.Add(18 * time.Hour),
	}
}

// credential returns a credential for dev signed by the world's issuer.
func (w *world) credential(dev crypto.PublicKey) *SignedCredential {
	w.t.Helper()
	return mustSign(w.t, w.credentialBody(dev), w.issuer, nil)
}

func (w *world) manifestBody(creds ...*SignedCredential) Manifest {
	m := Manifest{
		Version:     Version,
		Flight:      w.flight,
		Aircraft:    w.tail,
		AircraftKey: AircraftKey{w.aircraft.Public()},
		Serial:      7,
		IssuedAt:    w.now.Add(-2 * time.Hour),
		ExpiresAt:   w.now.Add(10 * time.Hour),
		Currency:    "EUR",
		Deny: []DenyEntry{
			{Passenger: w.id(), Reason: DenyArrears},
			{Credential: w.id(), Reason: DenyRevoked},
		},
		Trust: []TrustEntry{TrustEntryFor(crypto.TrustedKey{
			Key: w.issuer.Public(), NotBefore: w.now.Add(-24 * time.Hour), NotAfter: w.now.Add(24 * time.Hour),
		})},
		Crew: []CrewMember{
			{ID: "c-101", Role: "purser", PINHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaA"},
			{ID: "c-102", Role: "attendant", PINHash: "$argon2id$v=19$m=65536,t=1,p=4$c2FsdA$aGFzaQ"},
		},
		Catalog: []CatalogItem{
			{SKU: "COF", Name: "Coffee", Price: M(350, "EUR"), Category: "drink"},
			{SKU: "SAN", Name: "Sandwich", Price: M(750, "EUR"), Category: "meal"},
			{SKU: "WAT", Name: "Water", Price: M(0, "EUR"), Category: "drink"},
		},
		Caps: Caps{
			AircraftExposure:      M(5_000_000, "EUR"),
			CodeFreshSeconds:      120,
			ClockSkewSeconds:      30,
			VelocityCount:         5,
			VelocityWindowSeconds: 600,
		},
	}
	for _, c := range creds {
		m.Credentials = append(m.Credentials, c.Raw)
	}
	return m
}

func (w *world) deltaBody(creds ...*SignedCredential) ManifestDelta {
	d := ManifestDelta{
		Version:    Version,
		Flight:     w.flight,
		Aircraft:   w.tail,
		BaseSerial: 7,
		Seq:        1,
		IssuedAt:   w.now.Add(-time.Hour),
		ExpiresAt:  w.now.Add(11 * time.Hour),
		Deny:       []DenyEntry{{Passenger: w.id(), Reason: DenyFraudSuspected}},
		Undeny:     []DenyEntry{{Passenger: w.id(), Reason: DenyArrears}},
	}
	for _, c := range creds {
		d.Credentials = append(d.Credentials, c.Raw)
	}
	return d
}

// paymentCodeBody returns a payment code; full embeds cred.
func (w *world) paymentCodeBody(counter uint64, cred *SignedCredential, full bool) PaymentCode {
	pc := PaymentCode{Counter: counter, Time: w.now.Add(-10 * time.Second)}
	if full {
		pc.Credential = cred.Raw
	}
	return pc
}

// order returns a priced order of two lines: 2 coffees and a sandwich.
func (w *world) order() Order {
	return Order{
		Version: Version,
		ID:      w.id(),
		Flight:  w.flight,
		Lines: []OrderLine{
			{SKU: "COF", Quantity: 2, UnitPrice: M(350, "EUR")},
			{SKU: "SAN", Quantity: 1, UnitPrice: M(750, "EUR")},
		},
		Total:     M(1450, "EUR"),
		CreatedAt: w.now.Add(-30 * time.Second),
	}
}

func (w *world) consentBody(o Order, counter uint64, cred *SignedCredential, full bool) OrderConsent {
	w.t.Helper()
	h, err := o.Hash()
	if err != nil {
		w.t.Fatalf("order hash: %v", err)
	}
	oc := OrderConsent{Order: o.ID, OrderHash: h, Total: o.Total, Counter: counter, Time: w.now.Add(-5 * time.Second)}
	if full {
		oc.Credential = cred.Raw
	}
	return oc
}

// saleBody returns invoice seq of the flight, paid with the signed payment
// code code.
func (w *world) saleBody(seq uint64, prev Hash, cred *SignedCredential, code []byte) Invoice {
	return Invoice{
		Version:    Version,
		ID:         w.id(),
		Flight:     w.flight,
		Aircraft:   w.tail,
		Seq:        seq,
		Prev:       prev,
		Kind:       KindSale,
		Credential: cred.Body.ID,
		Passenger:  cred.Body.Passenger,
		Lines:      []OrderLine{{SKU: "COF", Quantity: 3, UnitPrice: M(350, "EUR")}},
		Total:      M(1050, "EUR"),
		CreatedAt:  w.now,
		Code:       code,
		Crew:       "c-101",
	}
}

// consentSaleBody returns a two-way-mode sale of order o.
func (w *world) consentSaleBody(seq uint64, prev Hash, cred *SignedCredential, o Order, consent []byte) Invoice {
	w.t.Helper()
	ob, err := o.Encode()
	if err != nil {
		w.t.Fatalf("encode order: %v", err)
	}
	v := w.saleBody(seq, prev, cred, nil)
	v.Lines, v.Total, v.Consent, v.Order = o.Lines, o.Total, consent, ob
	return v
}

func (w *world) voidBody(seq uint64, prev Hash, sale Invoice) Invoice {
	return Invoice{
		Version:    Version,
		ID:         w.id(),
		Flight:     w.flight,
		Aircraft:   w.tail,
		Seq:        seq,
		Prev:       prev,
		Kind:       KindVoid,
		Credential: sale.Credential,
		Passenger:  sale.Passenger,
		Total:      sale.Total,
		CreatedAt:  w.now.Add(time.Minute),
		Voids:      sale.ID,
		Crew:       "c-102",
	}
}

func (w *world) closeBody(head Hash) FlightClose {
	return FlightClose{
		Version:    Version,
		Flight:     w.flight,
		Aircraft:   w.tail,
		ClosedAt:   w.now.Add(3 * time.Hour),
		Sales:      2,
		Voids:      1,
		SalesTotal: []Money{M(2100, "EUR")},
		VoidsTotal: []Money{M(1050, "EUR")},
		LastSeq:    3,
		Head:       head,
	}
}

func (w *world) receiptBody(inv Invoice) ClearingReceipt {
	return ClearingReceipt{
		Version:  Version,
		Invoice:  inv.ID,
		Flight:   inv.Flight,
		Aircraft: inv.Aircraft,
		Seq:      inv.Seq,
		Status:   StatusSettled,
		Amount:   inv.Total,
		At:       w.now.Add(4 * time.Hour),
	}
}

// mustSign signs body or fails the test.
func mustSign[T message](t testing.TB, body T, key crypto.PrivateKey, external []byte) *Signed[T] {
	t.Helper()
	s, err := Sign(body, key, external)
	if err != nil {
		t.Fatalf("Sign %s: %v", body.kind().name, err)
	}
	return s
}

// coseBytes assembles a COSE_Sign1 from its parts, with no checks, so tests
// can build envelopes Sign would refuse to make.
func coseBytes(t testing.TB, protected, unprotected, payload, sig []byte) []byte {
	t.Helper()
	enc, err := marshal(coseSign1{Protected: protected, Unprotected: cbor.RawMessage(unprotected), Payload: payload, Signature: sig})
	if err != nil {
		t.Fatalf("marshal COSE_Sign1: %v", err)
	}
	return append([]byte{coseTag}, enc...)
}

// protectedHeader returns the canonical protected header naming key.
func protectedHeader(t testing.TB, key crypto.PrivateKey) []byte {
	t.Helper()
	kid := key.ID()
	b, err := marshal(coseHeader{Alg: coseAlgEdDSA, Kid: kid[:]})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signParts signs payload under domain with key, exactly as Sign does but
// with no checks on the payload or the protected header, and returns the
// COSE_Sign1. Tests use it to make messages whose signature is right, so
// that only the decoder's strictness can reject them.
func signParts(t testing.TB, domain crypto.Domain, key crypto.PrivateKey, protected, payload, external []byte) []byte {
	t.Helper()
	tbs, err := sigStructure(protected, ExternalAAD(domain, external), payload)
	if err != nil {
		t.Fatal(err)
	}
	return coseBytes(t, protected, []byte{emptyMapCBOR}, payload, key.SignRaw(tbs))
}

// signPayload signs a hand-made payload as a message of kind T.
func signPayload[T message](t testing.TB, key crypto.PrivateKey, payload, external []byte) []byte {
	t.Helper()
	var zero T
	return signParts(t, zero.kind().domain, key, protectedHeader(t, key), payload, external)
}

// mustMarshal encodes v canonically or fails the test.
func mustEncode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := marshal(v)
	if err != nil {
		t.Fatalf("marshal %T: %v", v, err)
	}
	return b
}

// otherPurpose returns pub's bytes as a key of another purpose.
func otherPurpose(t testing.TB, pub crypto.PublicKey) crypto.PublicKey {
	t.Helper()
	p := crypto.Issuer
	if pub.Purpose() == crypto.Issuer {
		p = crypto.Device
	}
	k, err := crypto.PublicKeyFromBytes(p, pub.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// checkSignedKind runs the checks every signed kind must pass: Sign, Parse
// and Verify round trip, and Verify and VerifyTrusted refusing every key,
// purpose, time and external_aad but the right ones.
func checkSignedKind[T message](t *testing.T, w *world, body T, key crypto.PrivateKey, external []byte, parse func([]byte) (*Signed[T], error)) {
	t.Helper()
	s := mustSign(t, body, key, external)
	if len(s.Raw) > body.kind().maxSize {
		t.Fatalf("signed %d bytes, over the cap of %d", len(s.Raw), body.kind().maxSize)
	}
	p, err := parse(s.Raw)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if !reflect.DeepEqual(p.Body, s.Body) {
		t.Fatalf("body after parse = %+v\nwant %+v", p.Body, s.Body)
	}
	if !bytes.Equal(p.Raw, s.Raw) {
		t.Fatalf("raw after parse differs from signed raw")
	}
	if got, want := p.KeyID, key.ID(); got != want {
		t.Fatalf("key id = %s, want %s", got, want)
	}
	if got, want := p.Hash(), Sum(s.Raw); got != want {
		t.Fatalf("hash = %s, want %s", got, want)
	}
	if err := p.Verify(key.Public(), external); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if err := s.Verify(key.Public(), external); err != nil {
		t.Fatalf("verify the signer's own copy: %v", err)
	}
	// Body as signed equals the body given, up to the wire's whole seconds.
	again := mustSign(t, s.Body, key, external)
	if !bytes.Equal(again.Raw, s.Raw) {
		t.Fatalf("signing the decoded body again gives other bytes")
	}

	wantSigErr := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrSignature) {
			t.Errorf("verify with %s: err = %v, want ErrSignature", what, err)
		}
	}
	wantSigErr("a key of the wrong purpose", p.Verify(otherPurpose(t, key.Public()), external))
	wantSigErr("another key of the right purpose", p.Verify(w.key(key.Purpose()).Public(), external))
	wantSigErr("another external_aad", p.Verify(key.Public(), append(bytes.Clone(external), 0x01)))
	if len(external) > 0 {
		wantSigErr("an empty external_aad", p.Verify(key.Public(), nil))
	}
	if _, err := Sign(body, otherPrivate(t, w, key), external); err == nil {
		t.Errorf("Sign with a %s key: no error", otherPrivate(t, w, key).Purpose())
	}

	// A flipped bit in the signature parses but does not verify.
	flipped := bytes.Clone(s.Raw)
	flipped[len(flipped)-1] ^= 0x01
	if fp, err := parse(flipped); err != nil {
		t.Errorf("parse with a flipped signature bit: %v", err)
	} else {
		wantSigErr("a flipped signature bit", fp.Verify(key.Public(), external))
	}

	t.Run("VerifyTrusted", func(t *testing.T) {
		tl := w.trust(key.Public())
		got, err := p.VerifyTrusted(tl, w.now, external)
		if err != nil {
			t.Fatalf("valid key: %v", err)
		}
		if !got.Equal(key.Public()) {
			t.Fatalf("verified with %s, want %s", got, key.Public())
		}
		if _, err := p.VerifyTrusted(tl, w.now, append(bytes.Clone(external), 0x02)); !errors.Is(err, crypto.ErrBadSignature) || !errors.Is(err, ErrSignature) {
			t.Errorf("other external_aad: err = %v, want ErrBadSignature and ErrSignature", err)
		}
		if _, err := p.VerifyTrusted(tl, w.now.Add(13*time.Hour), external); !errors.Is(err, crypto.ErrKeyNotValid) || !errors.Is(err, ErrSignature) {
			t.Errorf("expired key: err = %v, want ErrKeyNotValid and ErrSignature", err)
		}
		if _, err := p.VerifyTrusted(tl, w.now.Add(-13*time.Hour), external); !errors.Is(err, crypto.ErrKeyNotValid) {
			t.Errorf("not yet valid key: err = %v, want ErrKeyNotValid", err)
		}
		wrong := w.trust(otherPurpose(t, key.Public()))
		if _, err := p.VerifyTrusted(wrong, w.now, external); !errors.Is(err, crypto.ErrUnknownKey) || !errors.Is(err, ErrSignature) {
			t.Errorf("key trusted for the wrong purpose: err = %v, want ErrUnknownKey and ErrSignature", err)
		}
		others := w.trust(w.key(key.Purpose()).Public())
		if _, err := p.VerifyTrusted(others, w.now, external); !errors.Is(err, crypto.ErrUnknownKey) {
			t.Errorf("trust list without the key: err = %v, want ErrUnknownKey", err)
		}
		if _, err := p.VerifyTrusted(nil, w.now, external); !errors.Is(err, crypto.ErrUnknownKey) {
			t.Errorf("nil trust list: err = %v, want ErrUnknownKey", err)
		}
	})
}

// otherPrivate returns a private key of another purpose than key's.
func otherPrivate(t testing.TB, w *world, key crypto.PrivateKey) crypto.PrivateKey {
	t.Helper()
	if key.Purpose() == crypto.Device {
		return w.aircraft
	}
	return w.device
}

func TestSignedKinds(t *testing.T) {
	w := newWorld(t, "signed-kinds")
	cred := w.credential(w.device.Public())
	late := w.credential(w.key(crypto.Device).Public())
	credID := cred.Body.ID[:]
	code := mustSign(t, w.paymentCodeBody(1, cred, false), w.device, credID)
	o := w.order()
	consent := mustSign(t, w.consentBody(o, 2, cred, false), w.device, credID)
	sale := mustSign(t, w.saleBody(1, Hash{}, cred, code.Raw), w.aircraft, nil)
	consentSale := mustSign(t, w.consentSaleBody(2, sale.Hash(), cred, o, consent.Raw), w.aircraft, nil)
	void := mustSign(t, w.voidBody(3, consentSale.Hash(), sale.Body), w.aircraft, nil)

	t.Run("Credential", func(t *testing.T) {
		checkSignedKind(t, w, w.credentialBody(w.device.Public()), w.issuer, nil, ParseCredential)
	})
	t.Run("Manifest", func(t *testing.T) {
		checkSignedKind(t, w, w.manifestBody(cred, late), w.issuer, nil, ParseManifest)
	})
	t.Run("ManifestEmpty", func(t *testing.T) {
		m := w.manifestBody()
		m.Deny, m.Crew, m.Catalog, m.Trust = nil, nil, nil, nil
		checkSignedKind(t, w, m, w.issuer, nil, ParseManifest)
	})
	t.Run("ManifestDelta", func(t *testing.T) {
		checkSignedKind(t, w, w.deltaBody(late), w.issuer, nil, ParseManifestDelta)
	})
	t.Run("PaymentCodeCompact", func(t *testing.T) {
		checkSignedKind(t, w, w.paymentCodeBody(41, cred, false), w.device, credID, ParsePaymentCode)
	})
	t.Run("PaymentCodeFull", func(t *testing.T) {
		checkSignedKind(t, w, w.paymentCodeBody(42, cred, true), w.device, credID, ParsePaymentCode)
	})
	t.Run("OrderConsent", func(t *testing.T) {
		checkSignedKind(t, w, w.consentBody(o, 43, cred, false), w.device, credID, ParseOrderConsent)
	})
	t.Run("OrderConsentFull", func(t *testing.T) {
		checkSignedKind(t, w, w.consentBody(o, 44, cred, true), w.device, credID, ParseOrderConsent)
	})
	t.Run("InvoiceSale", func(t *testing.T) {
		checkSignedKind(t, w, sale.Body, w.aircraft, nil, ParseInvoice)
	})
	t.Run("InvoiceSaleConsent", func(t *testing.T) {
		checkSignedKind(t, w, consentSale.Body, w.aircraft, nil, ParseInvoice)
	})
	t.Run("InvoiceVoid", func(t *testing.T) {
		checkSignedKind(t, w, void.Body, w.aircraft, nil, ParseInvoice)
	})
	t.Run("FlightClose", func(t *testing.T) {
		checkSignedKind(t, w, w.closeBody(void.Hash()), w.aircraft, nil, ParseFlightClose)
	})
	t.Run("FlightCloseEmpty", func(t *testing.T) {
		checkSignedKind(t, w, FlightClose{Version: Version, Flight: w.flight, Aircraft: w.tail, ClosedAt: w.now}, w.aircraft, nil, ParseFlightClose)
	})
	t.Run("ClearingReceipt", func(t *testing.T) {
		checkSignedKind(t, w, w.receiptBody(sale.Body), w.issuer, nil, ParseReceipt)
	})
	t.Run("ClearingReceiptQuarantined", func(t *testing.T) {
		r := w.receiptBody(sale.Body)
		r.Status, r.Reason, r.Amount = StatusQuarantined, ReasonChainBroken, Money{}
		checkSignedKind(t, w, r, w.issuer, nil, ParseReceipt)
	})
	t.Run("ClearingReceiptClose", func(t *testing.T) {
		r := ClearingReceipt{Version: Version, Flight: w.flight, Aircraft: w.tail, Seq: 3, Status: StatusCloseAccepted, At: w.now}
		checkSignedKind(t, w, r, w.issuer, nil, ParseReceipt)
	})
}

// TestEmbeddedCredential checks that a full-form code and consent carry the
// credential byte for byte, and a compact code none.
func TestEmbeddedCredential(t *testing.T) {
	w := newWorld(t, "embedded")
	cred := w.credential(w.device.Public())
	full := mustSign(t, w.paymentCodeBody(1, cred, true), w.device, cred.Body.ID[:])
	if !full.Body.Full() {
		t.Fatalf("full code: Full() = false")
	}
	ec, err := full.Body.EmbeddedCredential()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ec.Raw, cred.Raw) {
		t.Fatalf("embedded credential differs from the issued one")
	}
	if err := ec.Verify(w.issuer.Public(), nil); err != nil {
		t.Fatalf("embedded credential: %v", err)
	}
	compact := mustSign(t, w.paymentCodeBody(2, cred, false), w.device, cred.Body.ID[:])
	if compact.Body.Full() {
		t.Fatalf("compact code: Full() = true")
	}
	if _, err := compact.Body.EmbeddedCredential(); err == nil {
		t.Fatalf("compact code: EmbeddedCredential gave no error")
	}
}

// TestDomainSeparation signs a payload that is valid for one kind under the
// domain of every other kind with the same signer: the message parses (its
// form is right) but never verifies. Only the domain differs, so only
// domain separation can reject it.
func TestDomainSeparation(t *testing.T) {
	w := newWorld(t, "domains")
	cred := w.credential(w.device.Public())
	credID := cred.Body.ID[:]
	code := mustSign(t, w.paymentCodeBody(1, cred, false), w.device, credID)
	sale := mustSign(t, w.saleBody(1, Hash{}, cred, code.Raw), w.aircraft, nil)

	type kindCase struct {
		name     string
		domain   crypto.Domain
		key      crypto.PrivateKey
		external []byte
		payload  []byte
		verify   func(b []byte) error // parse as the kind, verify with the right key
	}
	issuerPub, devicePub, aircraftPub := w.issuer.Public(), w.device.Public(), w.aircraft.Public()
	cases := []kindCase{
		{"Credential", DomainCredential, w.issuer, nil, mustEncode(t, w.credentialBody(devicePub)),
			parseVerify(ParseCredential, issuerPub, nil)},
		{"Manifest", DomainManifest, w.issuer, nil, mustEncode(t, w.manifestBody(cred)),
			parseVerify(ParseManifest, issuerPub, nil)},
		{"ManifestDelta", DomainManifestDelta, w.issuer, nil, mustEncode(t, w.deltaBody(cred)),
			parseVerify(ParseManifestDelta, issuerPub, nil)},
		{"Receipt", DomainReceipt, w.issuer, nil, mustEncode(t, w.receiptBody(sale.Body)),
			parseVerify(ParseReceipt, issuerPub, nil)},
		{"PaymentCode", DomainPaymentCode, w.device, credID, mustEncode(t, w.paymentCodeBody(5, cred, false)),
			parseVerify(ParsePaymentCode, devicePub, credID)},
		{"OrderConsent", DomainOrderConsent, w.device, credID, mustEncode(t, w.consentBody(w.order(), 6, cred, false)),
			parseVerify(ParseOrderConsent, devicePub, credID)},
		{"Invoice", DomainInvoice, w.aircraft, nil, mustEncode(t, sale.Body),
			parseVerify(ParseInvoice, aircraftPub, nil)},
		{"FlightClose", DomainFlightClose, w.aircraft, nil, mustEncode(t, w.closeBody(sale.Hash())),
			parseVerify(ParseFlightClose, aircraftPub, nil)},
	}
	allDomains := []crypto.Domain{DomainCredential, DomainManifest, DomainManifestDelta, DomainPaymentCode,
		DomainOrderConsent, DomainInvoice, DomainFlightClose, DomainReceipt}
	for _, tc := range cases {
		for _, d := range allDomains {
			t.Run(tc.name+"/"+string(d), func(t *testing.T) {
				b := signParts(t, d, tc.key, protectedHeader(t, tc.key), tc.payload, tc.external)
				err := tc.verify(b)
				if d == tc.domain {
					if err != nil {
						t.Fatalf("signed under its own domain: %v", err)
					}
					return
				}
				if !errors.Is(err, ErrSignature) {
					t.Fatalf("signed under %s, verified as %s: err = %v, want ErrSignature", d, tc.name, err)
				}
			})
		}
	}
}

// parseVerify returns a function that parses b with parse and verifies it
// with pub and external.
func parseVerify[T message](parse func([]byte) (*Signed[T], error), pub crypto.PublicKey, external []byte) func([]byte) error {
	return func(b []byte) error {
		s, err := parse(b)
		if err != nil {
			return fmt.Errorf("parse: %w", err)
		}
		return s.Verify(pub, external)
	}
}

// TestWrongKindParse feeds each kind's signed bytes to every other kind's
// parser: the strict decoder refuses them all, with ErrDecode.
func TestWrongKindParse(t *testing.T) {
	w := newWorld(t, "wrong-kind")
	samples := validSamples(t, w)
	parsers := signedParsers()
	for _, s := range samples {
		for _, p := range parsers {
			if p.name == s.kind {
				if err := p.parse(s.raw); err != nil {
					t.Errorf("%s (%s) as %s: %v", s.name, s.kind, p.name, err)
				}
				continue
			}
			err := p.parse(s.raw)
			if err == nil {
				t.Errorf("%s parsed as %s", s.name, p.name)
				continue
			}
			if !errors.Is(err, ErrDecode) {
				t.Errorf("%s as %s: err = %v, want ErrDecode", s.name, p.name, err)
			}
		}
	}
	// The brief's own examples, spelled out.
	cred := w.credential(w.device.Public())
	code := mustSign(t, w.paymentCodeBody(1, cred, false), w.device, cred.Body.ID[:])
	if _, err := ParseOrderConsent(code.Raw); !errors.Is(err, ErrDecode) {
		t.Errorf("payment code as order consent: err = %v, want ErrDecode", err)
	}
	asDelta := coseBytes(t, cred.protected, []byte{emptyMapCBOR}, cred.payload, cred.signature)
	if !bytes.Equal(asDelta, cred.Raw) {
		t.Fatalf("re-wrapped credential differs from the original")
	}
	if _, err := ParseManifestDelta(asDelta); !errors.Is(err, ErrDecode) {
		t.Errorf("credential re-wrapped as manifest delta: err = %v, want ErrDecode", err)
	}
}

// kindSample is a valid encoding of one message kind.
type kindSample struct {
	name string // what it is
	kind string // the parser that accepts it: a signedParser name or an unsigned decoder name
	raw  []byte
}

// validSamples returns a valid encoding of every message kind, signed and
// unsigned, for wrong-kind tests and fuzz seeds.
func validSamples(t testing.TB, w *world) []kindSample {
	t.Helper()
	cred := w.credential(w.device.Public())
	credID := cred.Body.ID[:]
	code := mustSign(t, w.paymentCodeBody(1, cred, false), w.device, credID)
	fullCode := mustSign(t, w.paymentCodeBody(2, cred, true), w.device, credID)
	o := w.order()
	consent := mustSign(t, w.consentBody(o, 3, cred, false), w.device, credID)
	fullConsent := mustSign(t, w.consentBody(o, 4, cred, true), w.device, credID)
	sale := mustSign(t, w.saleBody(1, Hash{}, cred, code.Raw), w.aircraft, nil)
	consentSale := mustSign(t, w.consentSaleBody(2, sale.Hash(), cred, o, consent.Raw), w.aircraft, nil)
	void := mustSign(t, w.voidBody(3, consentSale.Hash(), sale.Body), w.aircraft, nil)
	delta := mustSign(t, w.deltaBody(cred), w.issuer, nil)
	ob, err := o.Encode()
	if err != nil {
		t.Fatal(err)
	}
	req, err := EncodeDeltaRequest(DeltaRequest{BaseSerial: 7, AfterSeq: 2})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := EncodeDeltaBatch(DeltaBatch{Deltas: [][]byte{delta.Raw}})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := EncodeHeartbeat(Heartbeat{Time: w.now})
	if err != nil {
		t.Fatal(err)
	}
	return []kindSample{
		{"credential", "credential", cred.Raw},
		{"manifest", "manifest", mustSign(t, w.manifestBody(cred), w.issuer, nil).Raw},
		{"manifest delta", "manifest delta", delta.Raw},
		{"compact payment code", "payment code", code.Raw},
		{"full payment code", "payment code", fullCode.Raw},
		{"order consent", "order consent", consent.Raw},
		{"full order consent", "order consent", fullConsent.Raw},
		{"sale", "invoice", sale.Raw},
		{"two-way sale", "invoice", consentSale.Raw},
		{"void", "invoice", void.Raw},
		{"flight close", "flight close", mustSign(t, w.closeBody(void.Hash()), w.aircraft, nil).Raw},
		{"clearing receipt", "clearing receipt", mustSign(t, w.receiptBody(sale.Body), w.issuer, nil).Raw},
		{"order", "order", ob},
		{"delta request", "delta request", req},
		{"delta batch", "delta batch", batch},
		{"heartbeat", "heartbeat", hb},
	}
}

// signedParser is one signed kind's parser with the error dropped to its
// essentials.
type signedParser struct {
	name    string
	maxSize int
	parse   func([]byte) error
}

func signedParsers() []signedParser {
	return []signedParser{
		{"credential", MaxCredentialSize, func(b []byte) error { _, err := ParseCredential(b); return err }},
		{"manifest", MaxManifestSize, func(b []byte) error { _, err := ParseManifest(b); return err }},
		{"manifest delta", MaxManifestDeltaSize, func(b []byte) error { _, err := ParseManifestDelta(b); return err }},
		{"payment code", MaxPaymentCodeSize, func(b []byte) error { _, err := ParsePaymentCode(b); return err }},
		{"order consent", MaxOrderConsentSize, func(b []byte) error { _, err := ParseOrderConsent(b); return err }},
		{"invoice", MaxInvoiceSize, func(b []byte) error { _, err := ParseInvoice(b); return err }},
		{"flight close", MaxFlightCloseSize, func(b []byte) error { _, err := ParseFlightClose(b); return err }},
		{"clearing receipt", MaxReceiptSize, func(b []byte) error { _, err := ParseReceipt(b); return err }},
	}
}

// unsignedDecoders are the decoders of the messages that are not signed.
func unsignedDecoders() []signedParser {
	return []signedParser{
		{"order", MaxOrderSize, func(b []byte) error { _, err := DecodeOrder(b); return err }},
		{"delta request", MaxDeltaRequestSize, func(b []byte) error { _, err := DecodeDeltaRequest(b); return err }},
		{"delta batch", MaxDeltaBatchSize, func(b []byte) error { _, err := DecodeDeltaBatch(b); return err }},
		{"heartbeat", MaxHeartbeatSize, func(b []byte) error { _, err := DecodeHeartbeat(b); return err }},
	}
}

// TestUnsignedWrongKind feeds every sample to the unsigned decoders.
func TestUnsignedWrongKind(t *testing.T) {
	w := newWorld(t, "unsigned-wrong-kind")
	for _, s := range validSamples(t, w) {
		for _, d := range unsignedDecoders() {
			err := d.parse(s.raw)
			if d.name == s.kind {
				if err != nil {
					t.Errorf("%s: %v", s.name, err)
				}
				continue
			}
			// Sync messages carry no kind marker (their NATS subject tells
			// them apart), and a heartbeat {1: time} is also a well-formed
			// delta request {1: base serial}.
			if err == nil && s.kind == "heartbeat" && d.name == "delta request" {
				continue
			}
			if !errors.Is(err, ErrDecode) {
				t.Errorf("%s as %s: err = %v, want ErrDecode", s.name, d.name, err)
			}
		}
	}
}

// TestSignChecks checks what Sign refuses before signing anything.
func TestSignChecks(t *testing.T) {
	w := newWorld(t, "sign-checks")
	if _, err := Sign(w.credentialBody(w.device.Public()), w.device, nil); err == nil || !strings.Contains(err.Error(), "device key, want issuer") {
		t.Errorf("credential signed by a device key: err = %v", err)
	}
	bad := w.credentialBody(w.device.Public())
	bad.Version = 0
	if _, err := Sign(bad, w.issuer, nil); err == nil || !strings.Contains(err.Error(), "version 0 not supported") {
		t.Errorf("credential of version 0: err = %v", err)
	}
	// A delta over its size cap is refused by Sign, naming the cap: 8000
	// deny entries of about 40 bytes each are over 256 KiB.
	d := w.deltaBody()
	d.Deny, d.Undeny = nil, nil
	for range MaxDenyEntries {
		d.Deny = append(d.Deny, DenyEntry{Passenger: w.id(), Credential: w.id(), Reason: DenyRevoked})
		d.Undeny = append(d.Undeny, DenyEntry{Passenger: w.id(), Credential: w.id(), Reason: DenyArrears})
	}
	if _, err := Sign(d, w.issuer, nil); err == nil || !strings.Contains(err.Error(), "exceeds the cap of 262144") {
		t.Errorf("oversize delta: err = %v, want the size cap", err)
	}
}
