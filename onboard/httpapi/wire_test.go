package httpapi

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
)

func testID(b byte) protocol.ID {
	var id protocol.ID
	for i := range id {
		id[i] = b + byte(i)
	}
	return id
}

// decisions are answers of every shape the sale endpoint gives.
func decisions() map[string]onboard.Decision {
	at := time.Date(2026, 12, 3, 12, 34, 56, 789_000_000, time.UTC)
	sale := &onboard.Sale{
		InvoiceID: testID(1), Seq: 42, Kind: "sale", Passenger: testID(2), Credential: testID(3),
		Lines: []protocol.OrderLine{
			{SKU: "COFFEE", Quantity: 2, UnitPrice: protocol.M(350, "EUR")},
			{SKU: "WATER", Quantity: 1, UnitPrice: protocol.M(200, "EUR")},
		},
		Total: protocol.M(900, "EUR"), CreatedAt: at, Crew: "FA-07",
		Hash: protocol.Sum([]byte("x")), Status: onboard.StatusPending,
	}
	void := *sale
	void.Kind, void.Lines, void.Voids, void.VoidedBy = "void", nil, testID(9), testID(10)
	odd := *sale
	odd.Crew = "<b>\"Zoë\" & \\ \u2028\x01"
	odd.Lines = []protocol.OrderLine{{SKU: "SKU<>&", Quantity: 4_000_000_000}}
	odd.CreatedAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600+30*60))
	odd.Total = protocol.M(-9_223_372_036_854_775_808, "")
	odd.Seq = 18_446_744_073_709_551_615
	over := onboard.NewDecline(protocol.ReasonOverPassengerLimit)
	over.Amount = protocol.M(1250, "EUR")
	return map[string]onboard.Decision{
		"Approved":      {Approved: true, Sale: sale, Remaining: protocol.M(99_100, "EUR")},
		"Void":          {Approved: true, Sale: &void},
		"OddStrings":    {Approved: true, Sale: &odd, Remaining: protocol.M(1, "X")},
		"ZeroTime":      {Approved: true, Sale: &onboard.Sale{}},
		"Declined":      {Decline: onboard.NewDecline(protocol.ReasonCodeReused)},
		"DeclinedLimit": {Decline: over, Remaining: protocol.M(1250, "EUR")},
		"Zero":          {},
	}
}

func TestAppendDecision(t *testing.T) {
	for name, d := range decisions() {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(d)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := appendDecision(nil, &d)
			if !ok {
				t.Fatal("appendDecision refused")
			}
			if string(got) != string(want) {
				t.Errorf("appendDecision =\n%s\nwant (json.Marshal)\n%s", got, want)
			}
		})
	}
	t.Run("TimeOutOfRange", func(t *testing.T) {
		d := onboard.Decision{Approved: true, Sale: &onboard.Sale{CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}
		if b, ok := appendDecision([]byte("x"), &d); ok || string(b) != "x" {
			t.Errorf("appendDecision = %q, %v; want x unchanged and false, as json.Marshal fails", b, ok)
		}
	})
}

func FuzzAppendDecision(f *testing.F) {
	f.Add(true, uint64(7), "sale", "COFFEE", uint32(1), int64(300), "EUR", "FA-1", int64(1_700_000_000), uint16(0), "msg")
	f.Add(false, uint64(0), "", "", uint32(0), int64(0), "", "", int64(0), uint16(17), "over <limit> & \"x\"")
	f.Add(true, uint64(1), "void", "é\xff", uint32(9), int64(-5), "\x00", "\u2029", int64(-62135596801), uint16(3), "")
	f.Fuzz(func(t *testing.T, approved bool, seq uint64, kind, sku string, qty uint32, minor int64, cur, crew string,
		unix int64, reason uint16, msg string) {
		d := onboard.Decision{Approved: approved, Remaining: protocol.M(minor, protocol.Currency(cur))}
		if approved {
			d.Sale = &onboard.Sale{InvoiceID: testID(byte(seq)), Seq: seq, Kind: kind, Crew: crew,
				Lines:     []protocol.OrderLine{{SKU: sku, Quantity: qty, UnitPrice: protocol.M(minor, protocol.Currency(cur))}},
				Total:     protocol.M(minor, protocol.Currency(cur)),
				CreatedAt: time.Unix(unix, int64(seq%1e9)).UTC(), Status: onboard.InvoiceStatus(kind)}
		} else {
			d.Decline = &onboard.Decline{Reason: protocol.Reason(reason), Name: kind, Message: msg}
		}
		want, err := json.Marshal(d)
		got, ok := appendDecision(nil, &d)
		if err != nil {
			if ok {
				t.Fatalf("appendDecision = %s, but json.Marshal fails: %v", got, err)
			}
			return
		}
		if !ok || string(got) != string(want) {
			t.Fatalf("appendDecision = %s, %v\nwant %s", got, ok, want)
		}
	})
}

// saleRequests are bodies the sale endpoint may get, well formed or not.
var saleRequests = []string{
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"AT1:ABC","lines":[{"sku":"COFFEE","quantity":2},{"sku":"WATER","quantity":1}]}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"ATC1:XYZ","order_id":"1112131415161718191a1b1c1d1e1f20"}` + "\n",
	` { "code" : "AT1:A" , "invoice_id" : "0102030405060708090a0b0c0d0e0f10" , "lines" : [ ] } `,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"AT1:A","lines":[{"sku":"A","quantity":-0}]}`,
	`{}`,
	``,
	`{"invoice_id":"0102030405060708090A0B0C0D0E0F10","code":"AT1:A"}`,
	`{"invoice_id":"0102","code":"AT1:A"}`,
	`{"Invoice_ID":"0102030405060708090a0b0c0d0e0f10","code":"AT1:A"}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"AT1:\u0041"}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"AT1:é"}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":null}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a","code":"b"}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a","crew":"FA-1"}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a","Crew":"FA-1"}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a","lines":[{"sku":"A","quantity":1.0}]}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a","lines":[{"sku":"A","quantity":1e2}]}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a","lines":[{"sku":"A","quantity":9223372036854775808}]}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a","lines":[{"sku":"A","quantity":01}]}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a","lines":[{"sku":"A","quantity":"1"}]}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a","lines":null}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a"} {}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a"}x`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a",}`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a"`,
	`{"invoice_id":"0102030405060708090a0b0c0d0e0f10","code":"a","lines":[{"sku":"A","quantity":1},]}`,
	`[]`,
	`"x"`,
}

// TestDecodeSaleRequest holds the fast path to encoding/json: whenever it
// decodes a body, encoding/json decodes it too, to the same request.
func TestDecodeSaleRequest(t *testing.T) {
	fast := 0
	for _, body := range saleRequests {
		if checkDecode(t, []byte(body)) {
			fast++
		}
	}
	if fast < 4 {
		t.Errorf("the fast path decoded %d of the bodies, want the 4 well-formed ones at least", fast)
	}
	t.Run("Handheld", func(t *testing.T) {
		// What onboard/client sends: json.Marshal of a SaleRequest.
		req := onboard.SaleRequest{InvoiceID: testID(1), Code: "AT1:" + strings.Repeat("Q", 200), Lines: []onboard.Line{{SKU: "COFFEE", Quantity: 3}}}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		var got onboard.SaleRequest
		if !decodeSaleRequest(b, &got) {
			t.Fatalf("fast path refused %s", b)
		}
		if !reflect.DeepEqual(got, req) {
			t.Errorf("decoded %+v, want %+v", got, req)
		}
	})
}

func checkDecode(t *testing.T, body []byte) (fast bool) {
	t.Helper()
	var got, want onboard.SaleRequest
	if !decodeSaleRequest(body, &got) {
		return false
	}
	if err := decodeStrict(body, &want); err != nil {
		t.Fatalf("fast path decoded %q, but encoding/json refuses it: %v", body, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fast path decoded %q to %+v, encoding/json to %+v", body, got, want)
	}
	return true
}

func FuzzDecodeSaleRequest(f *testing.F) {
	for _, b := range saleRequests {
		f.Add([]byte(b))
		if len(b) > 2 {
			f.Add([]byte(b[:len(b)/2]))        // truncated
			f.Add(append([]byte(b[1:]), b[0])) // rotated
			flipped := []byte(b)
			flipped[len(b)/3] ^= 0x20 // a bit flipped
			f.Add(flipped)
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkDecode(t, body) })
}
