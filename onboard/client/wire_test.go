package client

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

func TestAppendSaleRequest(t *testing.T) {
	for name, req := range map[string]onboard.SaleRequest{
		"Basket":  {InvoiceID: testID(1), Code: "AT1:" + strings.Repeat("Q", 100), Lines: []onboard.Line{{SKU: "COFFEE", Quantity: 2}, {SKU: "WATER", Quantity: -1}}},
		"Consent": {InvoiceID: testID(1), Code: "ATC1:X", OrderID: testID(7)},
		"Odd":     {Code: "<é>\"\\\x00\u2028", Crew: "not sent", Lines: []onboard.Line{{SKU: "&"}}},
		"Empty":   {Lines: []onboard.Line{}},
	} {
		t.Run(name, func(t *testing.T) {
			want, err := json.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			if got := appendSaleRequest(nil, &req); string(got) != string(want) {
				t.Errorf("appendSaleRequest =\n%s\nwant (json.Marshal)\n%s", got, want)
			}
		})
	}
}

func FuzzAppendSaleRequest(f *testing.F) {
	f.Add([]byte{1}, "AT1:ABC", "COFFEE", int64(1), false)
	f.Add([]byte{}, "é\xff<", "\x00", int64(-9), true)
	f.Fuzz(func(t *testing.T, id []byte, code, sku string, qty int64, order bool) {
		req := onboard.SaleRequest{Code: code, Lines: []onboard.Line{{SKU: sku, Quantity: qty}}}
		copy(req.InvoiceID[:], id)
		if order {
			req.OrderID, req.Lines = req.InvoiceID, nil
		}
		want, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendSaleRequest(nil, &req); string(got) != string(want) {
			t.Fatalf("appendSaleRequest = %s, want %s", got, want)
		}
	})
}

// answers are decision bodies: the cabin server's forms and others.
func answers(t testing.TB) []string {
	at := time.Date(2026, 12, 3, 12, 34, 56, 789_000_000, time.FixedZone("", -3*3600))
	over := onboard.NewDecline(protocol.ReasonOverPassengerLimit)
	over.Amount = protocol.M(1250, "EUR")
	var out []string
	for _, d := range []onboard.Decision{
		{Approved: true, Remaining: protocol.M(99_100, "EUR"), Sale: &onboard.Sale{
			InvoiceID: testID(1), Seq: 42, Kind: "sale", Passenger: testID(2), Credential: testID(3),
			Lines: []protocol.OrderLine{{SKU: "COFFEE", Quantity: 2, UnitPrice: protocol.M(350, "EUR")}, {SKU: "W", Quantity: 1}},
			Total: protocol.M(700, "EUR"), CreatedAt: at, Crew: "FA-07", Hash: protocol.Sum([]byte("x")), Status: onboard.StatusPending,
			Voids: testID(4), VoidedBy: testID(5)}},
		{Approved: true, Sale: &onboard.Sale{}},
		{Decline: over, Remaining: protocol.M(1250, "EUR")},
		{Decline: onboard.NewDecline(protocol.ReasonCodeReused)},
		{},
	} {
		b, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b)+"\n")
	}
	return append(out,
		`{"approved":true,"sale":null}`,
		`{"approved":true,"Approved":false}`,
		`{"approved":true,"approved":false}`,
		`{"approved":true,"extra":1}`,
		`{"approved":true,"sale":{"seq":-1}}`,
		`{"approved":true,"sale":{"seq":1.5}}`,
		`{"approved":true,"sale":{"lines":[{"quantity":4294967296}]}}`,
		`{"approved":true,"sale":{"lines":[]}}`,
		`{"approved":true,"sale":{"created_at":"2026-13-01T00:00:00Z"}}`,
		`{"approved":true,"sale":{"hash":"AB"}}`,
		`{"approved":true,"sale":{"crew":"\u0041"}}`,
		`{"decline":{"reason":70000}}`,
		`{"remaining":{"minor":1,"currency":"EUR"}} x`,
		`{"approved":tru}`,
		``,
	)
}

// TestDecodeDecision holds the fast path to encoding/json: whenever it
// decodes an answer, encoding/json decodes it too, to the same decision.
func TestDecodeDecision(t *testing.T) {
	fast := 0
	for _, b := range answers(t) {
		if checkDecision(t, []byte(b)) {
			fast++
		}
	}
	if fast < 5 {
		t.Errorf("the fast path decoded %d answers, want the server's 5 at least", fast)
	}
}

func checkDecision(t *testing.T, b []byte) (fast bool) {
	t.Helper()
	var got, want onboard.Decision
	if !decodeDecision(b, &got) {
		return false
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("fast path decoded %q, but encoding/json refuses it: %v", b, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("fast path decoded %q to %+v, encoding/json to %+v", b, got, want)
	}
	return true
}

func FuzzDecodeDecision(f *testing.F) {
	for _, b := range answers(f) {
		f.Add([]byte(b))
		if len(b) > 2 {
			f.Add([]byte(b[:len(b)/2]))
			flipped := []byte(b)
			flipped[len(b)/3] ^= 0x20
			f.Add(flipped)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) { checkDecision(t, b) })
}
