package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/fxamacker/cbor/v2"
)

// wantDecodeErr fails unless err is an ErrDecode whose message mentions
// every one of reasons.
func wantDecodeErr(t *testing.T, err error, reasons ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", reasons)
	}
	if !errors.Is(err, ErrDecode) {
		t.Fatalf("err = %v, want ErrDecode", err)
	}
	for _, r := range reasons {
		if !strings.Contains(err.Error(), r) {
			t.Fatalf("err = %q, want it to mention %q", err, r)
		}
	}
}

// payloadMap returns body's canonical encoding as a map from field number to
// the field's raw CBOR, for tests to add, drop or replace fields.
func payloadMap(t testing.TB, body any) map[int]any {
	t.Helper()
	var raw map[int]cbor.RawMessage
	if err := cbor.Unmarshal(mustEncode(t, body), &raw); err != nil {
		t.Fatal(err)
	}
	m := make(map[int]any, len(raw))
	for k, v := range raw {
		m[k] = v
	}
	return m
}

// hexCBOR is raw CBOR written out by hand; cbor.Marshal copies it as is.
func rawCBOR(b ...byte) cbor.RawMessage { return cbor.RawMessage(b) }

// cborHead returns the CBOR head of major type major and argument n in its
// shortest form.
func cborArgHead(major byte, n uint64) []byte {
	switch {
	case n < 24:
		return []byte{major<<5 | byte(n)}
	case n <= 0xff:
		return []byte{major<<5 | 24, byte(n)}
	case n <= 0xffff:
		return []byte{major<<5 | 25, byte(n >> 8), byte(n)}
	case n <= 0xffffffff:
		return []byte{major<<5 | 26, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return []byte{major<<5 | 27, byte(n >> 56), byte(n >> 48), byte(n >> 40), byte(n >> 32), byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
}

func joinBytes(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestStrictSizeCaps feeds every decoder one byte over its cap.
func TestStrictSizeCaps(t *testing.T) {
	for _, p := range append(signedParsers(), unsignedDecoders()...) {
		t.Run(p.name, func(t *testing.T) {
			over := bytes.Repeat([]byte{coseTag}, p.maxSize+1)
			wantDecodeErr(t, p.parse(over), p.name, fmt.Sprintf("size %d bytes exceeds the cap of %d", p.maxSize+1, p.maxSize))
			// At the cap the size is fine: the input is refused for
			// something else.
			err := p.parse(over[:p.maxSize])
			if err == nil || strings.Contains(err.Error(), "exceeds the cap") {
				t.Fatalf("input at the cap: err = %v, want an error other than the size cap", err)
			}
			for _, empty := range [][]byte{nil, {}} {
				wantDecodeErr(t, p.parse(empty), p.name, "empty input")
			}
		})
	}
}

// TestStrictEnvelope checks the COSE_Sign1 structure and header checks. Every
// case is signed properly over what it carries, so only the decoder's
// strictness can reject it.
func TestStrictEnvelope(t *testing.T) {
	w := newWorld(t, "strict-envelope")
	cred := w.credential(w.device.Public())
	kid := w.issuer.ID()
	prot := protectedHeader(t, w.issuer)
	payload := cred.payload
	sign := func(protected []byte) []byte {
		return signParts(t, DomainCredential, w.issuer, protected, payload, nil)
	}
	header := func(m map[int]any) []byte { return mustEncode(t, m) }
	if !bytes.Equal(sign(prot), cred.Raw) {
		t.Fatalf("signParts does not reproduce Sign")
	}
	for _, tc := range []struct {
		name    string
		b       []byte
		reasons []string
	}{
		{"MissingTag", cred.Raw[1:], []string{"credential", "not a COSE_Sign1 message (want CBOR tag 18)"}},
		{"OtherTag", joinBytes([]byte{0xd1}, cred.Raw[1:]), []string{"want CBOR tag 18"}},
		{"TagLongForm", joinBytes([]byte{0xd8, 18}, cred.Raw[1:]), []string{"want CBOR tag 18"}},
		{"TagTwice", joinBytes([]byte{coseTag}, cred.Raw), []string{"invalid CBOR"}},
		{"UnprotectedNotEmpty", coseBytes(t, prot, header(map[int]any{4: kid[:]}), payload, cred.signature),
			[]string{"unprotected header must be empty"}},
		{"UnprotectedNotAMap", coseBytes(t, prot, rawCBOR(0x40), payload, cred.signature),
			[]string{"unprotected header must be empty"}},
		{"WrongAlg", sign(header(map[int]any{1: -7, 4: kid[:]})), []string{"algorithm -7, want EdDSA (-8)"}},
		{"NoAlg", sign(header(map[int]any{4: kid[:]})), []string{"algorithm 0, want EdDSA (-8)"}},
		{"AlgAsText", sign(header(map[int]any{1: "EdDSA", 4: kid[:]})), []string{"header", "invalid CBOR"}},
		{"KidShort", sign(header(map[int]any{1: -8, 4: kid[:7]})), []string{"bad key id", "got 7 bytes, want 8"}},
		{"KidLong", sign(header(map[int]any{1: -8, 4: append(kid[:], 0)})), []string{"bad key id", "got 9 bytes, want 8"}},
		{"NoKid", sign(header(map[int]any{1: -8})), []string{"bad key id", "got 0 bytes, want 8"}},
		{"HeaderUnknownLabel", sign(header(map[int]any{1: -8, 3: 0, 4: kid[:]})), []string{"header", "unknown field"}},
		{"HeaderEmpty", sign(nil), []string{"header", "empty input"}},
		{"HeaderNonCanonical", sign(joinBytes([]byte{0xa2, 0x01, 0x38, 0x07, 0x04, 0x48}, kid[:])), []string{"header", "not in canonical form"}},
		{"SignatureShort", coseBytes(t, prot, []byte{emptyMapCBOR}, payload, cred.signature[:63]), []string{"signature is 63 bytes, want 64"}},
		{"SignatureLong", coseBytes(t, prot, []byte{emptyMapCBOR}, payload, append(bytes.Clone(cred.signature), 0)), []string{"signature is 65 bytes, want 64"}},
		{"SignatureEmpty", coseBytes(t, prot, []byte{emptyMapCBOR}, payload, nil), []string{"signature is 0 bytes, want 64"}},
		{"TrailingByte", joinBytes(cred.Raw, []byte{0x00}), []string{"credential envelope", "extraneous data"}},
		{"TrailingMessage", joinBytes(cred.Raw, cred.Raw), []string{"extraneous data"}},
		{"Truncated", cred.Raw[:len(cred.Raw)-1], []string{"credential envelope", "invalid CBOR"}},
		{"ThreeElements", joinBytes([]byte{coseTag, 0x83}, cred.Raw[2:len(cred.Raw)-66]), []string{"credential envelope", "invalid CBOR"}},
		{"FiveElements", joinBytes([]byte{coseTag, 0x85}, cred.Raw[2:], []byte{0x00}), []string{"credential envelope", "invalid CBOR"}},
		{"IndefiniteArray", joinBytes([]byte{coseTag, 0x9f}, cred.Raw[2:], []byte{0xff}), []string{"credential envelope", "indefinite-length"}},
		{"PayloadEmpty", signParts(t, DomainCredential, w.issuer, prot, nil, nil), []string{"credential", "empty input"}},
		{"PayloadNotAByteString", joinBytes([]byte{coseTag, 0x84}, cborArgHead(2, uint64(len(prot))), prot, []byte{emptyMapCBOR}, payload, cborArgHead(2, 64), cred.signature),
			[]string{"credential envelope", "invalid CBOR"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCredential(tc.b)
			wantDecodeErr(t, err, tc.reasons...)
		})
	}
}

// strictCase is a payload that is signed properly but must be refused.
type strictCase struct {
	name    string
	b       []byte // the complete signed message, or unsigned message
	parse   func([]byte) error
	reasons []string
}

// TestStrictPayload checks that the payload decoder refuses everything but
// the one canonical encoding of a valid message. Each case is signed
// properly, so that only strictness can reject it.
func TestStrictPayload(t *testing.T) {
	w := newWorld(t, "strict-payload")
	cred := w.credential(w.device.Public())
	credID := cred.Body.ID[:]
	parseCred := func(b []byte) error { _, err := ParseCredential(b); return err }
	parseCode := func(b []byte) error { _, err := ParsePaymentCode(b); return err }
	parseClose := func(b []byte) error { _, err := ParseFlightClose(b); return err }
	parseManifest := func(b []byte) error { _, err := ParseManifest(b); return err }

	signCred := func(payload []byte) []byte { return signPayload[Credential](t, w.issuer, payload, nil) }
	signCode := func(payload []byte) []byte { return signPayload[PaymentCode](t, w.device, payload, credID) }
	credWith := func(edit func(m map[int]any)) []byte {
		m := payloadMap(t, cred.Body)
		edit(m)
		return signCred(mustEncode(t, m))
	}

	codeTime := cborArgHead(0, uint64(w.now.Unix()))
	codeKey := func(k byte) []byte { return []byte{k} }
	// A valid compact payment code payload, by hand: {1: 1, 2: time}.
	validCode := joinBytes([]byte{0xa2}, codeKey(1), []byte{0x01}, codeKey(2), codeTime)
	if err := parseCode(signCode(validCode)); err != nil {
		t.Fatalf("hand-made payment code: %v", err)
	}
	closeBody := w.closeBody(Sum([]byte("head")))
	closePayload := mustEncode(t, closeBody)
	salesTotal := mustEncode(t, closeBody.SalesTotal)
	if bytes.Count(closePayload, salesTotal) != 1 {
		t.Fatalf("sales total encoding not unique in the flight close payload")
	}
	indefTotal := joinBytes([]byte{0x9f}, salesTotal[1:], []byte{0xff})
	credPayload := mustEncode(t, cred.Body)
	flightText := mustEncode(t, string(cred.Body.Flight))
	badUTF8 := bytes.Clone(flightText)
	badUTF8[len(badUTF8)-1] = 0xff
	idBytes := mustEncode(t, cred.Body.ID[:])
	indefID := joinBytes([]byte{0x5f, 0x48}, cred.Body.ID[:8], []byte{0x48}, cred.Body.ID[8:], []byte{0xff})
	manifest := w.manifestBody(cred)

	cases := []strictCase{
		{"UnknownField", credWith(func(m map[int]any) { m[99] = 1 }), parseCred, []string{"credential", "unknown field"}},
		{"UnknownFieldZero", credWith(func(m map[int]any) { m[10] = 0 }), parseCred, []string{"unknown field"}},
		{"UnknownFieldTextKey", signCred(joinBytes([]byte{0xaa}, credPayload[1:], mustEncode(t, "x"), []byte{0x01})), parseCred, []string{"credential"}},
		{"UnknownNestedField", credWith(func(m map[int]any) {
			m[6] = map[int]any{1: 50000, 2: "EUR", 3: 1}
		}), parseCred, []string{"unknown field"}},
		{"DuplicateKey", signCode(joinBytes([]byte{0xa3}, codeKey(1), []byte{0x01}, codeKey(1), []byte{0x02}, codeKey(2), codeTime)),
			parseCode, []string{"payment code", "duplicate map key"}},
		{"DuplicateKeySameValue", signCode(joinBytes([]byte{0xa3}, codeKey(1), []byte{0x01}, codeKey(2), codeTime, codeKey(2), codeTime)),
			parseCode, []string{"duplicate map key"}},
		{"NonCanonicalInteger", signCode(joinBytes([]byte{0xa2}, codeKey(1), []byte{0x18, 0x01}, codeKey(2), codeTime)),
			parseCode, []string{"payment code", "not in canonical form"}},
		{"NonCanonicalKey", signCode(joinBytes([]byte{0xa2}, []byte{0x18, 0x01}, []byte{0x01}, codeKey(2), codeTime)),
			parseCode, []string{"not in canonical form"}},
		{"NonCanonicalMapLength", signCode(joinBytes([]byte{0xb8, 0x02}, codeKey(1), []byte{0x01}, codeKey(2), codeTime)),
			parseCode, []string{"not in canonical form"}},
		{"NonCanonicalTime", signCode(joinBytes([]byte{0xa2}, codeKey(1), []byte{0x01}, codeKey(2), []byte{0x1b, 0, 0, 0, 0}, codeTime[1:])),
			parseCode, []string{"not in canonical form"}},
		{"NonCanonicalTextLength", credWith(func(m map[int]any) {
			m[5] = rawCBOR(joinBytes([]byte{0x78, byte(len(cred.Body.Flight))}, []byte(cred.Body.Flight))...)
		}), parseCred, []string{"not in canonical form"}},
		{"UnsortedKeys", signCode(joinBytes([]byte{0xa2}, codeKey(2), codeTime, codeKey(1), []byte{0x01})),
			parseCode, []string{"not in canonical form"}},
		{"IndefiniteArray", signPayload[FlightClose](t, w.aircraft, bytes.Replace(closePayload, salesTotal, indefTotal, 1), nil),
			parseClose, []string{"flight close", "indefinite-length array"}},
		{"IndefiniteMap", signCode(joinBytes([]byte{0xbf}, codeKey(1), []byte{0x01}, codeKey(2), codeTime, []byte{0xff})),
			parseCode, []string{"indefinite-length map"}},
		{"IndefiniteByteString", signCred(bytes.Replace(credPayload, idBytes, indefID, 1)), parseCred, []string{"indefinite-length"}},
		{"PresentButZero", signCode(joinBytes([]byte{0xa2}, codeKey(1), []byte{0x00}, codeKey(2), codeTime)),
			parseCode, []string{"not in canonical form", "empty fields omitted"}},
		{"PresentButZeroID", credWith(func(m map[int]any) { m[2] = make([]byte, 16) }), parseCred, []string{"not in canonical form"}},
		{"PresentButEmptyByteString", signCode(joinBytes([]byte{0xa3}, codeKey(1), []byte{0x01}, codeKey(2), codeTime, codeKey(3), []byte{0x40})),
			parseCode, []string{"not in canonical form"}},
		{"PresentButEmptyArray", signPayload[Manifest](t, w.issuer, mustEncode(t, func() map[int]any {
			m := payloadMap(t, manifest)
			m[12] = []any{}
			return m
		}()), nil), parseManifest, []string{"manifest", "not in canonical form"}},
		{"WrongTypeTextForUint", signCode(joinBytes([]byte{0xa2}, codeKey(1), mustEncode(t, "1"), codeKey(2), codeTime)),
			parseCode, []string{"invalid CBOR", "cannot unmarshal UTF-8 text string"}},
		{"WrongTypeNegative", signCode(joinBytes([]byte{0xa2}, codeKey(1), []byte{0x20}, codeKey(2), codeTime)),
			parseCode, []string{"invalid CBOR", "cannot unmarshal negative integer"}},
		{"WrongTypeTextForID", credWith(func(m map[int]any) { m[2] = cred.Body.ID.String() }), parseCred, []string{"id: want a byte string"}},
		{"WrongTypeArrayForMap", signCode([]byte{0x82, 0x01, 0x01}), parseCode, []string{"invalid CBOR", "cannot unmarshal array"}},
		{"IDWrongLength", credWith(func(m map[int]any) { m[2] = cred.Body.ID[:15] }), parseCred, []string{"id: got 15 bytes, want 16"}},
		{"DeviceKeyWrongLength", credWith(func(m map[int]any) { m[4] = w.device.Public().Bytes()[:31] }), parseCred, []string{"got 31 bytes, want 32"}},
		{"WrongVersion", credWith(func(m map[int]any) { m[1] = 2 }), parseCred, []string{"credential", "invalid", "version 2 not supported, want 1"}},
		{"InvalidUTF8", signCred(bytes.Replace(credPayload, flightText, badUTF8, 1)), parseCred, []string{"invalid UTF-8"}},
		{"TagInPayload", signCode(joinBytes([]byte{0xa2}, codeKey(1), []byte{0x01}, codeKey(2), []byte{0xc1}, codeTime)),
			parseCode, []string{"invalid CBOR", "tag"}},
		{"FloatTime", signCode(joinBytes([]byte{0xa2}, codeKey(1), []byte{0x01}, codeKey(2), mustEncode(t, float64(w.now.Unix())))),
			parseCode, []string{"payment code"}},
		{"TimeOverflow", signCode(joinBytes([]byte{0xa2}, codeKey(1), []byte{0x01}, codeKey(2), []byte{0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})),
			parseCode, []string{"invalid CBOR", "overflows"}},
		{"CounterOverflowsUint64", signCode(joinBytes([]byte{0xa2}, codeKey(1), []byte{0x3b, 0, 0, 0, 0, 0, 0, 0, 0}, codeKey(2), codeTime)),
			parseCode, []string{"invalid CBOR"}},
		{"PayloadNull", signCode([]byte{0xf6}), parseCode, []string{"payment code"}},
		{"PayloadTrailingByte", signCode(joinBytes(validCode, []byte{0x00})), parseCode, []string{"extraneous data"}},
		{"DeepNesting", signCode(joinBytes(bytes.Repeat([]byte{0x81}, 20), []byte{0x00})), parseCode, []string{"invalid CBOR"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantDecodeErr(t, tc.parse(tc.b), tc.reasons...)
		})
	}
}

// TestStrictUnknownFieldEveryKind adds field 99 to a valid payload of every
// signed kind and signs it properly: strictness alone must reject it.
func TestStrictUnknownFieldEveryKind(t *testing.T) {
	w := newWorld(t, "strict-unknown")
	for _, s := range validSamples(t, w) {
		t.Run(s.name, func(t *testing.T) {
			var parser *signedParser
			for _, p := range append(signedParsers(), unsignedDecoders()...) {
				if p.name == s.kind {
					parser = &p
				}
			}
			if parser == nil {
				t.Fatalf("no parser for %s", s.kind)
			}
			signed := s.raw[0] == coseTag
			payload := s.raw
			if signed {
				var env coseSign1
				if err := cbor.Unmarshal(s.raw[1:], &env); err != nil {
					t.Fatal(err)
				}
				payload = env.Payload
			}
			m := map[int]any{}
			var raw map[int]cbor.RawMessage
			if err := cbor.Unmarshal(payload, &raw); err != nil {
				t.Fatal(err)
			}
			for k, v := range raw {
				m[k] = v
			}
			m[99] = 1
			edited := mustEncode(t, m)
			b := edited
			if signed {
				// Strictness is checked before any signature, so the
				// external_aad of the re-signed message does not matter.
				key := signerOf(w, s.kind)
				b = signParts(t, domainOf(s.kind), key, protectedHeader(t, key), edited, nil)
			}
			wantDecodeErr(t, parser.parse(b), "unknown field")
		})
	}
}

// signerOf and domainOf describe each signed kind of validSamples by name.
func signerOf(w *world, kind string) crypto.PrivateKey {
	switch kind {
	case "payment code", "order consent":
		return w.device
	case "invoice", "flight close":
		return w.aircraft
	}
	return w.issuer
}

func domainOf(kind string) crypto.Domain {
	return map[string]crypto.Domain{
		"credential": DomainCredential, "manifest": DomainManifest, "manifest delta": DomainManifestDelta,
		"payment code": DomainPaymentCode, "order consent": DomainOrderConsent, "invoice": DomainInvoice,
		"flight close": DomainFlightClose, "clearing receipt": DomainReceipt,
	}[kind]
}

// TestStrictValidate checks the field rules of every kind. Each invalid body
// is refused by Sign, and, encoded and signed by hand, by Parse with
// ErrDecode; both errors name the rule.
func TestStrictValidate(t *testing.T) {
	w := newWorld(t, "strict-validate")
	cred := w.credential(w.device.Public())
	credID := cred.Body.ID[:]
	code := mustSign(t, w.paymentCodeBody(1, cred, false), w.device, credID)
	o := w.order()
	consent := mustSign(t, w.consentBody(o, 2, cred, false), w.device, credID)
	sale := w.saleBody(1, Hash{}, cred, code.Raw)
	otherFlight := w.credentialBody(w.device.Public())
	otherFlight.Flight = "YY9-2026-11-21"
	otherFlightCred := mustSign(t, otherFlight, w.issuer, nil)

	credCase := func(edit func(c *Credential)) Credential {
		c := w.credentialBody(w.device.Public())
		edit(&c)
		return c
	}
	manifestCase := func(edit func(m *Manifest)) Manifest {
		m := w.manifestBody(cred)
		edit(&m)
		return m
	}
	invoiceCase := func(edit func(v *Invoice)) Invoice {
		v := sale
		v.Lines = slices.Clone(sale.Lines)
		edit(&v)
		return v
	}
	codeCase := func(edit func(p *PaymentCode)) PaymentCode {
		p := w.paymentCodeBody(7, cred, false)
		edit(&p)
		return p
	}
	closeCase := func(edit func(f *FlightClose)) FlightClose {
		f := w.closeBody(Sum([]byte("head")))
		edit(&f)
		return f
	}
	receiptCase := func(edit func(r *ClearingReceipt)) ClearingReceipt {
		r := w.receiptBody(sale)
		edit(&r)
		return r
	}

	type validateCase struct {
		name    string
		check   func(t *testing.T) (signErr, parseErr error)
		reasons []string
		is      error // also matched with errors.Is, when set
	}
	cases := []validateCase{
		{"CredentialWindowReversed", invalidBody(w, credCase(func(c *Credential) { c.NotBefore, c.NotAfter = c.NotAfter, c.NotBefore }), w.issuer, nil),
			[]string{"validity window ends", "before it starts"}, nil},
		{"CredentialWindowEmpty", invalidBody(w, credCase(func(c *Credential) { c.NotAfter = c.NotBefore }), w.issuer, nil),
			[]string{"before it starts"}, nil},
		{"CredentialNoWindow", invalidBody(w, credCase(func(c *Credential) { c.NotAfter = time.Time{} }), w.issuer, nil),
			[]string{"missing validity window"}, nil},
		{"CredentialCurrencyMismatch", invalidBody(w, credCase(func(c *Credential) { c.TxCap = M(100, "USD") }), w.issuer, nil),
			[]string{"limit in EUR but transaction cap in USD"}, ErrCurrencyMismatch},
		{"CredentialUnsupportedCurrency", invalidBody(w, credCase(func(c *Credential) { c.Limit, c.TxCap = M(100, "XTS"), M(100, "XTS") }), w.issuer, nil),
			[]string{`currency "XTS": not a supported ISO 4217 code`}, nil},
		{"CredentialLowerCaseCurrency", invalidBody(w, credCase(func(c *Credential) { c.Limit, c.TxCap = M(100, "eur"), M(100, "eur") }), w.issuer, nil),
			[]string{`currency "eur"`}, nil},
		{"CredentialZeroLimit", invalidBody(w, credCase(func(c *Credential) { c.Limit = M(0, "EUR") }), w.issuer, nil),
			[]string{"limit 0.00 EUR: must be positive"}, nil},
		{"CredentialOverMaxMinor", invalidBody(w, credCase(func(c *Credential) { c.Limit = M(MaxMinor+1, "EUR") }), w.issuer, nil),
			[]string{"beyond the limit of 1000000000000 minor units"}, nil},
		{"CredentialBadFlight", invalidBody(w, credCase(func(c *Credential) { c.Flight = "xx123-2026-11-21" }), w.issuer, nil),
			[]string{`flight "xx123-2026-11-21"`}, nil},
		{"CredentialNoDevice", invalidBody(w, credCase(func(c *Credential) { c.Device = DeviceKey{} }), w.issuer, nil),
			[]string{"missing device key"}, nil},
		{"CredentialNoPassenger", invalidBody(w, credCase(func(c *Credential) { c.Passenger = ID{} }), w.issuer, nil),
			[]string{"missing passenger"}, nil},
		{"InvoiceTotalNotSum", invalidBody(w, invoiceCase(func(v *Invoice) { v.Total = M(1051, "EUR") }), w.aircraft, nil),
			[]string{"total 10.51 EUR is not the sum of the lines 10.50 EUR"}, nil},
		{"InvoiceLineCurrency", invalidBody(w, invoiceCase(func(v *Invoice) { v.Lines[0].UnitPrice = M(350, "USD") }), w.aircraft, nil),
			[]string{"line 0"}, ErrCurrencyMismatch},
		{"InvoiceSaleCodeAndConsent", invalidBody(w, invoiceCase(func(v *Invoice) { v.Consent, v.Order = consent.Raw, mustEncode(t, o) }), w.aircraft, nil),
			[]string{"a sale carries exactly one of payment code and order consent"}, nil},
		{"InvoiceSaleNeither", invalidBody(w, invoiceCase(func(v *Invoice) { v.Code = nil }), w.aircraft, nil),
			[]string{"exactly one of payment code and order consent"}, nil},
		{"InvoiceConsentWithoutOrder", invalidBody(w, invoiceCase(func(v *Invoice) { v.Code, v.Consent = nil, consent.Raw }), w.aircraft, nil),
			[]string{"an order consent travels with its order"}, nil},
		{"InvoiceBadCode", invalidBody(w, invoiceCase(func(v *Invoice) { v.Code = cred.Raw }), w.aircraft, nil),
			[]string{"payment code"}, ErrDecode},
		{"InvoiceSeq1WithPrev", invalidBody(w, invoiceCase(func(v *Invoice) { v.Prev = Sum([]byte("x")) }), w.aircraft, nil),
			[]string{"first invoice of a flight must have a zero previous hash"}, nil},
		{"InvoiceSeqOverMax", invalidBody(w, invoiceCase(func(v *Invoice) { v.Seq, v.Prev = 1<<63, Sum([]byte("x")) }), w.aircraft, nil),
			[]string{"sequence number 9223372036854775808 is over the limit 9223372036854775807"}, nil},
		{"InvoiceSeq2WithoutPrev", invalidBody(w, invoiceCase(func(v *Invoice) { v.Seq = 2 }), w.aircraft, nil),
			[]string{"missing previous hash"}, nil},
		{"InvoiceNoSeq", invalidBody(w, invoiceCase(func(v *Invoice) { v.Seq = 0 }), w.aircraft, nil),
			[]string{"missing sequence number"}, nil},
		{"InvoiceUnknownKind", invalidBody(w, invoiceCase(func(v *Invoice) { v.Kind = 3 }), w.aircraft, nil),
			[]string{"unknown invoice kind 3"}, nil},
		{"InvoiceSaleVoids", invalidBody(w, invoiceCase(func(v *Invoice) { v.Voids = w.id() }), w.aircraft, nil),
			[]string{"unexpected voided sale"}, nil},
		{"InvoiceVoidWithCode", invalidBody(w, func() Invoice {
			v := w.voidBody(2, Sum([]byte("prev")), sale)
			v.Code = code.Raw
			return v
		}(), w.aircraft, nil), []string{"unexpected payment code"}, nil},
		{"InvoiceVoidNothing", invalidBody(w, func() Invoice {
			v := w.voidBody(2, Sum([]byte("prev")), sale)
			v.Voids = ID{}
			return v
		}(), w.aircraft, nil), []string{"missing voided sale"}, nil},
		{"InvoiceNoCrew", invalidBody(w, invoiceCase(func(v *Invoice) { v.Crew = "" }), w.aircraft, nil),
			[]string{"crew id"}, nil},
		{"InvoiceQuantity", invalidBody(w, invoiceCase(func(v *Invoice) { v.Lines[0].Quantity = MaxQuantity + 1 }), w.aircraft, nil),
			[]string{"quantity 100, want 1 to 99"}, nil},
		{"ManifestDuplicateSKU", invalidBody(w, manifestCase(func(m *Manifest) { m.Catalog = append(m.Catalog, m.Catalog[0]) }), w.issuer, nil),
			[]string{`catalog SKU "COF" listed twice`}, nil},
		{"ManifestDuplicateCrew", invalidBody(w, manifestCase(func(m *Manifest) { m.Crew = append(m.Crew, m.Crew[0]) }), w.issuer, nil),
			[]string{`crew "c-101" listed twice`}, nil},
		{"ManifestDuplicateCredential", invalidBody(w, manifestCase(func(m *Manifest) { m.Credentials = append(m.Credentials, cred.Raw) }), w.issuer, nil),
			[]string{"credential " + cred.Body.ID.String() + " listed twice"}, nil},
		{"ManifestCredentialOtherFlight", invalidBody(w, manifestCase(func(m *Manifest) { m.Credentials = append(m.Credentials, otherFlightCred.Raw) }), w.issuer, nil),
			[]string{"credential 1", "is for flight YY9-2026-11-21, not XX123-2026-11-21"}, nil},
		{"ManifestCredentialGarbage", invalidBody(w, manifestCase(func(m *Manifest) { m.Credentials = [][]byte{{0xd2, 0x00}} }), w.issuer, nil),
			[]string{"credential 0"}, ErrDecode},
		{"ManifestCatalogCurrency", invalidBody(w, manifestCase(func(m *Manifest) { m.Catalog[1].Price = M(750, "USD") }), w.issuer, nil),
			[]string{"catalog item 1", "price in USD but flight in EUR"}, ErrCurrencyMismatch},
		{"ManifestCapCurrency", invalidBody(w, manifestCase(func(m *Manifest) { m.Caps.AircraftExposure = M(1, "GBP") }), w.issuer, nil),
			[]string{"aircraft exposure cap in GBP but flight in EUR"}, nil},
		{"ManifestNoCodeFreshness", invalidBody(w, manifestCase(func(m *Manifest) { m.Caps.CodeFreshSeconds = 0 }), w.issuer, nil),
			[]string{"missing code freshness"}, nil},
		{"ManifestTrustPurpose", invalidBody(w, manifestCase(func(m *Manifest) { m.Trust[0].Purpose = 9 }), w.issuer, nil),
			[]string{"trust entry 0", "unknown purpose 9"}, nil},
		{"ManifestTrustDuplicate", invalidBody(w, manifestCase(func(m *Manifest) { m.Trust = append(m.Trust, m.Trust[0]) }), w.issuer, nil),
			[]string{"added twice"}, nil},
		{"ManifestDenyNeither", invalidBody(w, manifestCase(func(m *Manifest) { m.Deny[1].Credential = ID{} }), w.issuer, nil),
			[]string{"deny entry 1: names no passenger, credential or device"}, nil},
		{"ManifestDenyNoReason", invalidBody(w, manifestCase(func(m *Manifest) { m.Deny[0].Reason = 0 }), w.issuer, nil),
			[]string{"deny entry 0: unknown reason 0"}, nil},
		{"ManifestExpiresBeforeIssued", invalidBody(w, manifestCase(func(m *Manifest) { m.ExpiresAt = m.IssuedAt.Add(-time.Second) }), w.issuer, nil),
			[]string{"before it starts"}, nil},
		{"ManifestBadAircraft", invalidBody(w, manifestCase(func(m *Manifest) { m.Aircraft = "D.AIUA" }), w.issuer, nil),
			[]string{`aircraft "D.AIUA"`}, nil},
		{"DeltaCredentialOtherFlight", invalidBody(w, func() ManifestDelta { return w.deltaBody(otherFlightCred) }(), w.issuer, nil),
			[]string{"is for flight YY9-2026-11-21"}, nil},
		{"DeltaNoSeq", invalidBody(w, func() ManifestDelta { d := w.deltaBody(); d.Seq = 0; return d }(), w.issuer, nil),
			[]string{"missing sequence number"}, nil},
		{"PaymentCodeCounterZero", invalidBody(w, codeCase(func(p *PaymentCode) { p.Counter = 0 }), w.device, credID),
			[]string{"counter 0: want 1 to 4294967295"}, nil},
		{"PaymentCodeCounterOverMax", invalidBody(w, codeCase(func(p *PaymentCode) { p.Counter = MaxCounter + 1 }), w.device, credID),
			[]string{"counter 4294967296: want 1 to 4294967295"}, nil},
		{"PaymentCodeNoTime", invalidBody(w, codeCase(func(p *PaymentCode) { p.Time = time.Time{} }), w.device, credID),
			[]string{"missing time"}, nil},
		{"PaymentCodeTimeBefore1970", invalidBody(w, codeCase(func(p *PaymentCode) { p.Time = time.Unix(-1, 0) }), w.device, credID),
			[]string{"missing time"}, nil},
		{"PaymentCodeTimeAfter2106", invalidBody(w, codeCase(func(p *PaymentCode) { p.Time = time.Unix(maxCodeUnix+1, 0) }), w.device, credID),
			[]string{"after the latest code time 2106-02-07T06:28:15Z"}, nil},
		{"PaymentCodeBadEmbeddedCredential", invalidBody(w, codeCase(func(p *PaymentCode) { p.Credential = code.Raw }), w.device, credID),
			[]string{"embedded credential"}, ErrDecode},
		{"ConsentCounterZero", invalidBody(w, func() OrderConsent { c := w.consentBody(o, 1, cred, false); c.Counter = 0; return c }(), w.device, credID),
			[]string{"counter 0"}, nil},
		{"ConsentNoHash", invalidBody(w, func() OrderConsent { c := w.consentBody(o, 1, cred, false); c.OrderHash = Hash{}; return c }(), w.device, credID),
			[]string{"missing order hash"}, nil},
		{"CloseSeqOverflow", invalidBody(w, closeCase(func(f *FlightClose) { f.Sales, f.Voids, f.LastSeq, f.Head = 1<<64-1, 1, 0, Hash{} }), w.aircraft, nil),
			[]string{"last sequence 0 is not sales 18446744073709551615 + voids 1"}, nil},
		{"CloseSeqOverMax", invalidBody(w, closeCase(func(f *FlightClose) { f.Sales, f.Voids, f.LastSeq = 1<<63, 0, 1<<63 }), w.aircraft, nil),
			[]string{"last sequence 9223372036854775808 is over the limit 9223372036854775807"}, nil},
		{"CloseSeqMismatch", invalidBody(w, closeCase(func(f *FlightClose) { f.LastSeq = 4 }), w.aircraft, nil),
			[]string{"last sequence 4 is not sales 2 + voids 1"}, nil},
		{"CloseHeadWithoutInvoices", invalidBody(w, closeCase(func(f *FlightClose) { f.Sales, f.Voids, f.LastSeq = 0, 0, 0 }), w.aircraft, nil),
			[]string{"chain head must be zero exactly when there are no invoices"}, nil},
		{"CloseTotalsUnsorted", invalidBody(w, closeCase(func(f *FlightClose) { f.SalesTotal = []Money{M(1, "USD"), M(1, "EUR")} }), w.aircraft, nil),
			[]string{"sales total: currencies must be sorted and unique"}, nil},
		{"CloseTotalsDuplicate", invalidBody(w, closeCase(func(f *FlightClose) { f.VoidsTotal = []Money{M(1, "EUR"), M(2, "EUR")} }), w.aircraft, nil),
			[]string{"voids total: currencies must be sorted and unique"}, nil},
		{"ReceiptSettledNoAmount", invalidBody(w, receiptCase(func(r *ClearingReceipt) { r.Amount = Money{} }), w.issuer, nil),
			[]string{"amount"}, nil},
		{"ReceiptUnknownStatus", invalidBody(w, receiptCase(func(r *ClearingReceipt) { r.Status = 99 }), w.issuer, nil),
			[]string{"unknown clearing status 99"}, nil},
		{"ReceiptQuarantineNoReason", invalidBody(w, receiptCase(func(r *ClearingReceipt) { r.Status = StatusQuarantined }), w.issuer, nil),
			[]string{"missing quarantine reason"}, nil},
		{"ReceiptCloseWithInvoice", invalidBody(w, receiptCase(func(r *ClearingReceipt) { r.Status = StatusCloseAccepted }), w.issuer, nil),
			[]string{"unexpected invoice"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			signErr, parseErr := tc.check(t)
			if signErr == nil {
				t.Fatalf("Sign: no error, want one mentioning %q", tc.reasons)
			}
			for _, r := range tc.reasons {
				if !strings.Contains(signErr.Error(), r) {
					t.Fatalf("Sign: err = %q, want it to mention %q", signErr, r)
				}
			}
			wantDecodeErr(t, parseErr, tc.reasons...)
			if !strings.Contains(parseErr.Error(), "invalid") {
				t.Errorf("Parse: err = %q, want it to say invalid", parseErr)
			}
			if tc.is != nil && (!errors.Is(signErr, tc.is) || !errors.Is(parseErr, tc.is)) {
				t.Errorf("errors %q and %q, want both to match %v", signErr, parseErr, tc.is)
			}
		})
	}
}

// invalidBody returns a check that signs body with Sign, which must refuse it,
// and encodes and signs it by hand for Parse, which must refuse it too.
func invalidBody[T message](w *world, body T, key crypto.PrivateKey, external []byte) func(t *testing.T) (error, error) {
	return func(t *testing.T) (error, error) {
		t.Helper()
		_, signErr := Sign(body, key, external)
		b := signPayload[T](t, key, mustEncode(t, body), external)
		_, parseErr := Parse[T](b)
		return signErr, parseErr
	}
}
