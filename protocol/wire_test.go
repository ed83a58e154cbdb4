package protocol

import (
	"reflect"
	"testing"
	"time"
)

// decodeBack is what sign kept in Body before wireBody: the decoded
// canonical encoding of body.
func decodeBack[T message](body T) (T, bool, error) {
	var w T
	payload, err := marshal(body)
	if err != nil {
		return w, false, err
	}
	return w, true, decMode.Unmarshal(payload, &w)
}

// checkWire holds body's wire to decoding its encoding back: the same
// value, or an error where decoding fails.
func checkWire[T interface {
	message
	wireBody[T]
}](t *testing.T, body T) {
	t.Helper()
	want, encoded, wantErr := decodeBack(body)
	if !encoded {
		return // sign stops at the encoding, before either
	}
	got, err := body.wire()
	if (err == nil) != (wantErr == nil) {
		t.Fatalf("wire of %+v: error %v, decoding back: %v", body, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("wire = %#v\ndecoding back gives %#v", got, want)
	}
}

// TestWireBody checks each kind's wire against decoding back, on valid
// bodies and on what a trusted caller might hand SignTrusted: times with
// fractions and zones, empty but non-nil slices, text that is not UTF-8,
// too many lines.
func TestWireBody(t *testing.T) {
	w := newWorld(t, "wire body")
	cred := w.credential(w.device.Public())
	code := mustSign(t, w.paymentCodeBody(1, cred, false), w.device, cred.Body.ID[:])
	o := w.order()
	consent := mustSign(t, w.consentBody(o, 3, cred, false), w.device, cred.Body.ID[:])
	sale := w.saleBody(1, Hash{}, cred, code.Raw)
	invoices := map[string]Invoice{
		"Sale":        sale,
		"ConsentSale": w.consentSaleBody(2, Sum([]byte("prev")), cred, o, consent.Raw),
		"Void":        w.voidBody(3, Sum([]byte("prev")), sale),
		"Zero":        {},
	}
	edit := func(name string, f func(v *Invoice)) {
		v := sale
		v.Lines = append([]OrderLine(nil), sale.Lines...)
		f(&v)
		invoices[name] = v
	}
	edit("Nanoseconds", func(v *Invoice) { v.CreatedAt = time.Date(2026, 11, 21, 10, 0, 0, 999_999_999, time.UTC) })
	edit("OtherZone", func(v *Invoice) { v.CreatedAt = v.CreatedAt.In(time.FixedZone("X", 3600)) })
	edit("BeforeEpoch", func(v *Invoice) { v.CreatedAt = time.Date(1960, 1, 1, 0, 0, 0, 5, time.UTC) })
	edit("ZeroTime", func(v *Invoice) { v.CreatedAt = time.Time{} })
	edit("YearOne", func(v *Invoice) { v.CreatedAt = time.Time{}.Add(time.Nanosecond) })
	edit("EmptySlices", func(v *Invoice) { v.Lines, v.Code, v.Consent, v.Order = []OrderLine{}, []byte{}, []byte{}, []byte{} })
	edit("ZeroLine", func(v *Invoice) { v.Lines = append(v.Lines, OrderLine{}) })
	edit("CrewNotUTF8", func(v *Invoice) { v.Crew = "c\xff" })
	edit("SKUNotUTF8", func(v *Invoice) { v.Lines[0].SKU = "\xc3" })
	edit("CurrencyNotUTF8", func(v *Invoice) { v.Lines[0].UnitPrice.Currency = "\xe2\x82" })
	edit("FlightNotUTF8", func(v *Invoice) { v.Flight = "\x80" })
	edit("MaxLines", func(v *Invoice) { v.Lines = make([]OrderLine, maxArrayElements) })
	edit("TooManyLines", func(v *Invoice) { v.Lines = make([]OrderLine, maxArrayElements+1) })
	for name, v := range invoices {
		t.Run("Invoice"+name, func(t *testing.T) { checkWire(t, v) })
	}
	receipt := w.receiptBody(sale)
	receipts := map[string]ClearingReceipt{"Settled": receipt, "Zero": {}}
	for name, f := range map[string]func(r *ClearingReceipt){
		"Nanoseconds":     func(r *ClearingReceipt) { r.At = r.At.Add(123) },
		"OtherZone":       func(r *ClearingReceipt) { r.At = r.At.In(time.FixedZone("Y", -7200)) },
		"ZeroTime":        func(r *ClearingReceipt) { r.At = time.Time{} },
		"AircraftNotUTF8": func(r *ClearingReceipt) { r.Aircraft = "D-\xff" },
		"CurrencyNotUTF8": func(r *ClearingReceipt) { r.Amount.Currency = "\xff" },
		"Quarantined": func(r *ClearingReceipt) {
			r.Status, r.Reason, r.Amount, r.Seq = StatusQuarantined, ReasonMalformed, Money{}, 0
		},
		"CloseAccepted":    func(r *ClearingReceipt) { r.Status, r.Invoice = StatusCloseAccepted, ID{} },
		"FlightNotUTF8Too": func(r *ClearingReceipt) { r.Flight = "X\xfe" },
	} {
		r := receipt
		f(&r)
		receipts[name] = r
	}
	for name, r := range receipts {
		t.Run("Receipt"+name, func(t *testing.T) { checkWire(t, r) })
	}
}

// FuzzWireBody holds Invoice's and ClearingReceipt's wire to decoding back
// on arbitrary text, times and byte strings.
func FuzzWireBody(f *testing.F) {
	f.Add("c-101", "COF", "EUR", int64(1_795_000_000), int64(0), []byte{1}, 1)
	f.Add("c\xff", "", "", int64(-62135596800), int64(1), []byte{}, 0)
	f.Fuzz(func(t *testing.T, crew, sku, currency string, unix, nsec int64, code []byte, lines int) {
		at := time.Unix(unix, nsec)
		v := Invoice{Version: Version, Seq: 2, Crew: crew, CreatedAt: at, Code: code, Total: Money{Minor: 1, Currency: Currency(currency)}}
		for i := range lines % 4 {
			v.Lines = append(v.Lines, OrderLine{SKU: sku, Quantity: uint32(i), UnitPrice: Money{Minor: int64(i), Currency: Currency(currency)}})
		}
		checkWire(t, v)
		checkWire(t, ClearingReceipt{Version: Version, Flight: FlightID(sku), Aircraft: AircraftID(crew), At: at, Amount: v.Total})
	})
}

// BenchmarkWireInvoice compares what sign pays to keep the wire's body of
// an invoice: wire, against decoding the payload back.
func BenchmarkWireInvoice(b *testing.B) {
	w := newWorld(b, "bench wire")
	cred := w.credential(w.device.Public())
	code := mustSign(b, w.paymentCodeBody(1, cred, false), w.device, cred.Body.ID[:])
	body := w.saleBody(1, Hash{}, cred, code.Raw)
	payload, err := marshal(body)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("Wire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := body.wire(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("DecodeBack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v Invoice
			if err := decMode.Unmarshal(payload, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
