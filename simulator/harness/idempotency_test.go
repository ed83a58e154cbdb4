package harness

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
)

// answer is what one call got: the HTTP status and the body.
type answer struct {
	status int
	body   []byte
}

// errorBody is the error answer's code and message, if any.
func (a answer) errorBody() api.ErrorDetail {
	var eb api.ErrorBody
	_ = json.Unmarshal(a.body, &eb)
	return eb.Error
}

// groundCall sends a request to the ground API: signed by dev, or with the
// back-office token when dev is nil.
func (f *fleet) groundCall(method, path string, body any, dev api.Signer) answer {
	f.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		f.t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(f.ctx, method, f.g.API.BaseURL+path, bytes.NewReader(raw))
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if dev != nil {
		api.SignRequest(req, raw, dev, time.Now(), nil)
	} else {
		req.Header.Set("Authorization", "Bearer "+f.g.API.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		f.t.Fatal(err)
	}
	return answer{resp.StatusCode, b.Bytes()}
}

// idField returns a top-level field of a JSON answer, as text.
func idField(t *testing.T, a answer, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(a.body, &m); err != nil {
		t.Fatalf("answer %d %s: %v", a.status, a.body, err)
	}
	s, _ := m[name].(string)
	return s
}

// TestIdempotencyKeys: every idempotency key of the system, on a real
// ground and cabin server. The same key with the same body again gets the
// original answer; the same key with a different body is refused 409
// conflict with a message naming the key, and changes nothing.
func TestIdempotencyKeys(t *testing.T) {
	f := newFleet(t, "D-AIUA")
	fl := f.flights[0]
	p := f.passenger("idem")
	wallet := f.g.Main.Clearing() // top-ups go to clearing's ledger

	type call func() answer
	tests := []struct {
		name      string
		key       string // how the conflict message names the key
		first     call
		same      call
		different call
		field     string // a field of the answer that must be the same again
	}{
		{
			name: "TopUpRef",
			first: func() answer {
				return f.groundCall(http.MethodPost, "/v1/me/wallet/topups", api.TopUpRequest{Amount: protocol.M(20_00, "EUR"), Ref: idemRef}, p.Wallet)
			},
			same: func() answer {
				return f.groundCall(http.MethodPost, "/v1/me/wallet/topups", api.TopUpRequest{Amount: protocol.M(20_00, "EUR"), Ref: idemRef}, p.Wallet)
			},
			different: func() answer {
				return f.groundCall(http.MethodPost, "/v1/me/wallet/topups", api.TopUpRequest{Amount: protocol.M(25_00, "EUR"), Ref: idemRef}, p.Wallet)
			},
			key: idemRef.String(),
		},
		{
			name: "Registration",
			first: func() answer {
				return f.groundCall(http.MethodPost, "/v1/passengers", api.CreatePassengerRequest{DeviceKey: idemDevice.Public().String(), ExternalRef: "first"}, idemDevice)
			},
			same: func() answer {
				return f.groundCall(http.MethodPost, "/v1/passengers", api.CreatePassengerRequest{DeviceKey: idemDevice.Public().String(), ExternalRef: "first"}, idemDevice)
			},
			different: func() answer {
				return f.groundCall(http.MethodPost, "/v1/passengers", api.CreatePassengerRequest{DeviceKey: idemDevice.Public().String(), ExternalRef: "second"}, idemDevice)
			},
			key: idemDevice.ID().String(), field: "passenger",
		},
		{
			name: "FlightID",
			first: func() answer {
				return f.groundCall(http.MethodPost, "/v1/flights", idemFlight(350), nil)
			},
			same: func() answer {
				return f.groundCall(http.MethodPost, "/v1/flights", idemFlight(350), nil)
			},
			different: func() answer {
				return f.groundCall(http.MethodPost, "/v1/flights", idemFlight(400), nil)
			},
			key: "XX499-", field: "flight",
		},
		{
			name: "OptIn",
			first: func() answer {
				return f.groundCall(http.MethodPost, "/v1/me/credentials", api.OptInRequest{Flight: fl}, p.Wallet)
			},
			same: func() answer {
				return f.groundCall(http.MethodPost, "/v1/me/credentials", api.OptInRequest{Flight: fl}, p.Wallet)
			},
			different: func() answer { // the same passenger and flight from another of their devices
				return f.groundCall(http.MethodPost, "/v1/me/credentials", api.OptInRequest{Flight: fl}, idemPhone)
			},
			key: string(fl), field: "id",
		},
	}
	if _, err := f.g.API.EnrollDevice(f.ctx, p.Wallet, idemPhone); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := tt.first()
			if first.status >= 300 {
				t.Fatalf("first call: HTTP %d %s", first.status, first.body)
			}
			same := tt.same()
			if same.status >= 300 {
				t.Fatalf("same key, same body: HTTP %d %s, want the original answer", same.status, same.body)
			}
			if tt.field != "" && idField(t, same, tt.field) != idField(t, first, tt.field) {
				t.Errorf("same key, same body: %s %q, first answer had %q", tt.field, idField(t, same, tt.field), idField(t, first, tt.field))
			}
			diff := tt.different()
			if e := diff.errorBody(); diff.status != http.StatusConflict || e.Code != "conflict" || !strings.Contains(e.Message, tt.key) {
				t.Fatalf("same key, different body: HTTP %d %s; want 409 conflict naming %s", diff.status, diff.body, tt.key)
			}
		})
	}
	t.Run("TopUpCreditedOnce", func(t *testing.T) {
		bal, err := wallet.WalletBalance(f.ctx, p.Account.Passenger, "EUR")
		if err != nil || bal != protocol.M(20_00, "EUR") {
			t.Fatalf("wallet balance = %v, %v; want 20.00 EUR", bal, err)
		}
	})

	t.Run("InvoiceIDOnBoard", func(t *testing.T) {
		code, err := p.Wallet.PaymentCode(fl, true)
		if err != nil {
			t.Fatal(err)
		}
		req := onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: []onboard.Line{{SKU: "coffee", Quantity: 1}}}
		first, err := f.hh[0].Authorize(f.ctx, req)
		if err != nil || !first.Approved {
			t.Fatalf("first sale: %+v, %v", first, err)
		}
		same, err := f.hh[0].Authorize(f.ctx, req)
		if err != nil || !same.Approved || same.Sale.InvoiceID != first.Sale.InvoiceID || same.Sale.Seq != first.Sale.Seq {
			t.Fatalf("same invoice id, same request: %+v, %v; want the original approval", same, err)
		}
		other := req
		other.Lines = []onboard.Line{{SKU: "coffee", Quantity: 2}}
		_, err = f.hh[0].Authorize(f.ctx, other)
		oe, ok := errors.AsType[*onboard.Error](err)
		if !ok || oe.Code != onboard.CodeConflict || !strings.Contains(oe.Error(), req.InvoiceID.String()) {
			t.Fatalf("same invoice id, another basket: err = %v; want conflict naming %s", err, req.InvoiceID)
		}
	})
}

var (
	idemRef    = protocol.ID{0x1d, 0xe4}
	idemDevice = mustDeviceKey()
	idemPhone  = mustDeviceKey()
)

func mustDeviceKey() crypto.PrivateKey {
	k, err := crypto.GenerateKey(crypto.Device, nil)
	if err != nil {
		panic(err)
	}
	return k
}

func idemFlight(priceMinor int64) api.FlightRequest {
	return api.FlightRequest{Carrier: "XX", Number: "499", Date: time.Now().UTC().Format(time.DateOnly), Aircraft: "D-AIUA", Currency: "EUR",
		Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(priceMinor, "EUR"), Category: "drink"}}}
}
