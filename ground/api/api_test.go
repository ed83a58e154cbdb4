package api

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/ground/store/storetest"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

const token = "test-back-office-token-0123456789"

// memFunder is a wallet in memory: the real one is the ledger's.
type memFunder struct {
	mu   sync.Mutex
	bal  map[protocol.ID]map[protocol.Currency]int64
	refs map[protocol.ID]bool
}

func (m *memFunder) TopUp(_ context.Context, p protocol.ID, amount protocol.Money, ref protocol.ID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refs[ref] {
		return nil
	}
	m.refs[ref] = true
	if m.bal[p] == nil {
		m.bal[p] = map[protocol.Currency]int64{}
	}
	m.bal[p][amount.Currency] += amount.Minor
	return nil
}

func (m *memFunder) WalletBalance(_ context.Context, p protocol.ID, c protocol.Currency) (protocol.Money, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return protocol.M(m.bal[p][c], c), nil
}

var flightDate = time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC)

// now is the fixed test time: the morning before the flight.
var now = flightDate.Add(-18 * time.Hour)

type env struct {
	t      *testing.T
	ctx    context.Context
	db     *sql.DB
	reg    *registry.Registry
	issuer crypto.PrivateKey
	srv    *httptest.Server
	c      *Client // back office and passengers
	scores map[string]int
}

// TestMain runs the tests once on SQLite and once on PostgreSQL.
func TestMain(m *testing.M) { storetest.Main(m) }

type envOpts struct {
	noFunder bool
	reports  http.Handler
}

func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t)
	issuer, _ := crypto.GenerateKey(crypto.Issuer, nil)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	scores := map[string]int{"low": 540, "mid": 700, "high": 800}
	reg, err := registry.New(ctx, db, registry.Config{Issuer: issuer, Clock: func() time.Time { return now },
		Scorer: registry.StaticScorer{ByRef: scores}, Logger: quiet,
		PINParams: crypto.PINParams{MemoryKiB: 64, Iterations: 1, Parallelism: 1}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Registry: reg, BackOfficeToken: token, Clock: func() time.Time { return now }, Logger: quiet, Reports: o.reports}
	if !o.noFunder {
		cfg.Funder = &memFunder{bal: map[protocol.ID]map[protocol.Currency]int64{}, refs: map[protocol.ID]bool{}}
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &env{t: t, ctx: ctx, db: db, reg: reg, issuer: issuer, srv: srv, scores: scores,
		c: &Client{BaseURL: srv.URL, Token: token, HTTP: srv.Client(), Clock: func() time.Time { return now }}}
}

// setupFlight registers aircraft D-AIUA and flight XX123 over the API.
func (e *env) setupFlight() protocol.FlightID {
	e.t.Helper()
	ak, _ := crypto.GenerateKey(crypto.Aircraft, nil)
	if _, err := e.c.RegisterAircraft(e.ctx, "D-AIUA", ak.Public(), ""); err != nil {
		e.t.Fatal(err)
	}
	f, err := e.c.RegisterFlight(e.ctx, FlightRequest{Carrier: "XX", Number: "123", Date: "2026-11-21", Aircraft: "D-AIUA", Currency: "EUR",
		Catalog: []protocol.CatalogItem{{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"}}})
	if err != nil {
		e.t.Fatal(err)
	}
	return f.ID
}

// passenger registers a passenger whose score is scores[ref], with a wallet.
func (e *env) passenger(ref string) (Account, crypto.PrivateKey) {
	e.t.Helper()
	dev, _ := crypto.GenerateKey(crypto.Device, nil)
	if _, err := e.c.CreatePassenger(e.ctx, dev, ref); err != nil {
		e.t.Fatal(err)
	}
	a, err := e.c.SetFunding(e.ctx, dev, ground.FundingSource{Kind: ground.FundingWallet})
	if err != nil {
		e.t.Fatal(err)
	}
	return a, dev
}

func (e *env) count(table string) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow("SELECT count(*) FROM " + table).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// raw sends a request by hand: signed by dev at time at when dev is set.
func (e *env) raw(method, path string, body []byte, dev Signer, at time.Time, mod func(*http.Request)) (int, ErrorDetail) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if dev != nil {
		SignRequest(req, body, dev, at, nil)
	}
	if mod != nil {
		mod(req)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb ErrorBody
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		if err := json.Unmarshal(data, &eb); err != nil {
			e.t.Fatalf("%s %s: HTTP %d with a body that is not an ErrorBody: %q", method, path, resp.StatusCode, data)
		}
	}
	return resp.StatusCode, eb.Error
}

func wantAPIError(t *testing.T, err error, code registry.Code) *registry.Error {
	t.Helper()
	e, ok := errors.AsType[*registry.Error](err)
	if !ok {
		t.Fatalf("err = %v, want an API error with code %s", err, code)
	}
	if e.Code != code {
		t.Fatalf("code = %s (%s), want %s", e.Code, e.Message, code)
	}
	return e
}

func TestRegistrationToCredential(t *testing.T) {
	e := newEnv(t, envOpts{})
	fl := e.setupFlight()
	if _, err := e.c.SetCrew(e.ctx, fl, []CrewEntry{{ID: "c1", Role: "purser", PIN: "2468"}}); err != nil {
		t.Fatal(err)
	}

	// The passenger's phone: the reference wallet makes the device key.
	wdir := t.TempDir()
	wallet, err := protocol.OpenWallet(wdir, protocol.WalletOptions{Clock: func() time.Time { return flightDate.Add(3 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := crypto.ReadKeyFile(filepath.Join(wdir, "device.key"), crypto.Device)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := e.c.CreatePassenger(e.ctx, dev, "mid")
	if err != nil {
		t.Fatal(err)
	}
	if acct.Score != 700 || acct.Eligible || acct.Ineligible != "no funding source linked" {
		t.Fatalf("new account = score %d eligible %v (%s)", acct.Score, acct.Eligible, acct.Ineligible)
	}
	card := ground.FundingSource{Kind: ground.FundingCard, Network: ground.Mastercard, Token: "tok_mc_77aa", Last4: "5454", ExpMonth: 8, ExpYear: 2029}
	if acct, err = e.c.SetFunding(e.ctx, dev, card); err != nil {
		t.Fatal(err)
	}
	if !acct.Eligible || acct.Funding == nil || acct.Funding.Last4 != "5454" || acct.Funding.Token != "" {
		t.Fatalf("account after funding = %+v", acct)
	}
	if got, want := acct.Limits[slices.IndexFunc(acct.Limits, func(l Limits) bool { return l.Limit.Currency == "EUR" })],
		(Limits{Limit: protocol.M(250_00, "EUR"), TxCap: protocol.M(100_00, "EUR")}); got != want {
		t.Fatalf("EUR limits = %+v, want %+v", got, want)
	}

	cred, err := e.c.OptIn(e.ctx, dev, fl)
	if err != nil {
		t.Fatal(err)
	}
	s, err := cred.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(e.issuer.Public(), nil); err != nil {
		t.Fatal(err)
	}
	if s.Body.Passenger != acct.Passenger || !s.Body.Device.Equal(dev.Public()) || s.Body.Limit != protocol.M(250_00, "EUR") {
		t.Fatalf("credential body = %+v", s.Body)
	}
	again, err := e.c.OptIn(e.ctx, dev, fl)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again.COSE, cred.COSE) {
		t.Fatal("second opt-in returned a different credential")
	}
	// The wallet takes it, verifying against the issuer key, and pays.
	tl, _ := crypto.NewTrustList(crypto.TrustedKey{Key: e.issuer.Public(), NotBefore: registry.DefaultIssuerWindow[0], NotAfter: registry.DefaultIssuerWindow[1]})
	if _, err := wallet.AddCredential(cred.COSE, tl); err != nil {
		t.Fatal(err)
	}
	if _, err := wallet.PaymentCode(fl, false); err != nil {
		t.Fatal(err)
	}

	// The back office builds a manifest holding it.
	mv, err := e.c.BuildManifest(e.ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	m, err := protocol.ParseManifest(mv.COSE)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.VerifyTrusted(tl, now, nil); err != nil {
		t.Fatal(err)
	}
	if mv.Serial != 1 || mv.Credentials != 1 || len(m.Body.Crew) != 1 {
		t.Fatalf("manifest = %+v", mv)
	}
	fv, err := e.c.Flight(e.ctx, fl)
	if err != nil || fv.Serial != 1 || fv.Credentials != 1 || fv.Crew[0] != (CrewView{ID: "c1", Role: "purser"}) {
		t.Fatalf("flight view = %+v, %v", fv, err)
	}
}

func TestRequestSigning(t *testing.T) {
	e := newEnv(t, envOpts{})
	_, dev := e.passenger("mid")
	stranger, _ := crypto.GenerateKey(crypto.Device, nil)

	cases := []struct {
		name string
		dev  Signer
		at   time.Time
		mod  func(*http.Request)
	}{
		{"ErrUnknownDevice", stranger, now, nil},
		{"ErrStaleTimestamp", dev, now.Add(-MaxClockSkew - time.Second), nil},
		{"ErrFutureTimestamp", dev, now.Add(MaxClockSkew + time.Second), nil},
		{"ErrBadSignature", stranger, now, func(r *http.Request) { r.Header.Set(HeaderDevice, dev.ID().String()) }},
		{"ErrTamperedPath", dev, now, func(r *http.Request) { r.URL.Path = "/v1/me/wallet/EUR" }},
		{"ErrTamperedNonce", dev, now, func(r *http.Request) { r.Header.Set(HeaderNonce, strings.Repeat("0", 32)) }},
		{"ErrNoNonce", dev, now, func(r *http.Request) { r.Header.Del(HeaderNonce) }},
		{"ErrNotSigned", nil, now, nil},
		{"ErrGarbageSignature", dev, now, func(r *http.Request) { r.Header.Set(HeaderSignature, "not base64!") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, ed := e.raw(http.MethodGet, "/v1/me", nil, tc.dev, tc.at, tc.mod)
			if status != http.StatusUnauthorized || ed.Code != passengerapi.CodeUnauthorized || ed.Message == "" {
				t.Fatalf("got %d %+v, want 401 unauthorized", status, ed)
			}
		})
	}
	t.Run("ErrReplayed", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/me", nil)
		SignRequest(req, nil, dev, now, nil)
		for i, want := range []int{http.StatusOK, http.StatusUnauthorized} {
			again := req.Clone(context.Background())
			resp, err := e.srv.Client().Do(again)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != want {
				t.Fatalf("send %d: status %d, want %d", i+1, resp.StatusCode, want)
			}
		}
	})
	t.Run("ErrProofOfPossession", func(t *testing.T) {
		victim, _ := crypto.GenerateKey(crypto.Device, nil)
		body, _ := json.Marshal(CreatePassengerRequest{DeviceKey: victim.Public().String()})
		// Signed by the attacker's own key: does not prove the victim's.
		status, ed := e.raw(http.MethodPost, "/v1/passengers", body, stranger, now, nil)
		if status != http.StatusUnauthorized {
			t.Fatalf("got %d %+v, want 401", status, ed)
		}
		status, _ = e.raw(http.MethodPost, "/v1/passengers", body, stranger, now,
			func(r *http.Request) { r.Header.Set(HeaderDevice, victim.ID().String()) })
		if status != http.StatusUnauthorized {
			t.Fatalf("forged key id: got %d, want 401", status)
		}
		if got := e.count("registry_passengers"); got != 1 {
			t.Fatalf("passengers = %d, want 1", got)
		}
	})
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, envOpts{})
	fl := e.setupFlight()
	acct, dev := e.passenger("mid")

	t.Run("ErrMalformedJSON", func(t *testing.T) {
		for name, body := range map[string]string{
			"Syntax":       `{"flight": `,
			"UnknownField": `{"flight": "` + string(fl) + `", "limit": 1}`,
			"Trailing":     `{"flight": "` + string(fl) + `"} {}`,
			"Empty":        ``,
			"WrongType":    `{"flight": 7}`,
		} {
			status, ed := e.raw(http.MethodPost, "/v1/me/credentials", []byte(body), dev, now, nil)
			if status != http.StatusBadRequest || ed.Code != passengerapi.CodeInvalid {
				t.Errorf("%s: got %d %+v, want 400 invalid", name, status, ed)
			}
		}
		if got := e.count("registry_credentials"); got != 0 {
			t.Fatalf("credentials = %d after bad requests, want 0", got)
		}
	})
	t.Run("ErrTooLarge", func(t *testing.T) {
		body := []byte(`{"flight": "` + strings.Repeat("x", MaxPassengerBody) + `"}`)
		status, ed := e.raw(http.MethodPost, "/v1/me/credentials", body, dev, now, nil)
		if status != http.StatusRequestEntityTooLarge || ed.Code != passengerapi.CodeTooLarge {
			t.Fatalf("got %d %+v, want 413", status, ed)
		}
	})
	t.Run("ErrUnknownFlight", func(t *testing.T) {
		_, err := e.c.OptIn(e.ctx, dev, "XX999-2026-11-21")
		wantAPIError(t, err, registry.CodeNotFound)
	})
	t.Run("ErrBadFlightID", func(t *testing.T) {
		_, err := e.c.OptIn(e.ctx, dev, "not a flight")
		wantAPIError(t, err, registry.CodeInvalid)
	})
	t.Run("ErrUnknownPassenger", func(t *testing.T) {
		_, err := e.c.Passenger(e.ctx, protocol.ID{1})
		wantAPIError(t, err, registry.CodeNotFound)
		status, ed := e.raw(http.MethodGet, "/v1/passengers/xyz", nil, nil, now, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) })
		if status != http.StatusBadRequest || ed.Code != passengerapi.CodeInvalid {
			t.Fatalf("bad id: got %d %+v", status, ed)
		}
	})
	t.Run("ErrDuplicateRegistration", func(t *testing.T) {
		before := [2]int{e.count("registry_passengers"), e.count("registry_devices")}
		_, err := e.c.CreatePassenger(e.ctx, dev, "")
		wantAPIError(t, err, registry.CodeConflict)
		other, _ := crypto.GenerateKey(crypto.Device, nil)
		_, err = e.c.CreatePassenger(e.ctx, other, "mid") // external reference taken
		wantAPIError(t, err, registry.CodeConflict)
		if after := [2]int{e.count("registry_passengers"), e.count("registry_devices")}; after != before {
			t.Fatalf("passengers, devices = %v after duplicates, want %v", after, before)
		}
	})
	t.Run("ErrCardNumber", func(t *testing.T) {
		_, err := e.c.SetFunding(e.ctx, dev, ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: "4111111111111111", Last4: "1111", ExpMonth: 1, ExpYear: 2030})
		ae := wantAPIError(t, err, registry.CodeInvalid)
		if !strings.Contains(ae.Message, "card number") {
			t.Fatalf("message %q", ae.Message)
		}
		got, err := e.c.Account(e.ctx, dev)
		if err != nil || got.Funding == nil || got.Funding.Kind != passengerapi.FundingWallet {
			t.Fatalf("funding after a refused card = %+v, %v; want the wallet unchanged", got.Funding, err)
		}
	})
	t.Run("ErrIneligible", func(t *testing.T) {
		_, low := e.passenger("low")
		_, err := e.c.OptIn(e.ctx, low, fl)
		ae := wantAPIError(t, err, registry.CodeIneligible)
		if !strings.Contains(ae.Message, "540") || !strings.Contains(ae.Message, "550") {
			t.Fatalf("refusal %q does not name the score and threshold", ae.Message)
		}
	})
	t.Run("ErrUnknownEndpoint", func(t *testing.T) {
		status, ed := e.raw(http.MethodGet, "/v1/nothing", nil, nil, now, nil)
		if status != http.StatusNotFound || ed.Code != passengerapi.CodeNotFound {
			t.Fatalf("got %d %+v", status, ed)
		}
	})
	_ = acct
}

func TestBackOfficeToken(t *testing.T) {
	reports := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "report "+r.URL.Path) })
	e := newEnv(t, envOpts{reports: reports})
	for name, h := range map[string]string{"Missing": "", "Wrong": "Bearer nope", "NotBearer": token} {
		for _, path := range []string{"/v1/arrears", "/v1/reports/flights/XX1-2026-11-21"} {
			status, ed := e.raw(http.MethodGet, path, nil, nil, now, func(r *http.Request) {
				if h != "" {
					r.Header.Set("Authorization", h)
				}
			})
			if status != http.StatusUnauthorized || ed.Code != passengerapi.CodeUnauthorized {
				t.Errorf("%s %s: got %d %+v, want 401", name, path, status, ed)
			}
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/reports/flights/XX1-2026-11-21", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "report /v1/reports/flights/XX1-2026-11-21" {
		t.Fatalf("reports = %d %q", resp.StatusCode, body)
	}
	if status, _ := e.raw(http.MethodGet, "/healthz", nil, nil, now, nil); status != http.StatusOK {
		t.Fatalf("healthz = %d", status)
	}
	if _, err := New(Config{Registry: e.reg, BackOfficeToken: "short"}); err == nil {
		t.Fatal("New with a short token = nil error")
	}
}

func TestWallet(t *testing.T) {
	e := newEnv(t, envOpts{})
	_, dev := e.passenger("mid")
	ref := protocol.ID{0x70}
	for range 2 {
		bal, err := e.c.TopUp(e.ctx, dev, protocol.M(50_00, "EUR"), ref)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := bal, protocol.M(50_00, "EUR"); got != want {
			t.Fatalf("balance = %v, want %v (the same ref twice credits once)", got, want)
		}
	}
	if bal, err := e.c.WalletBalance(e.ctx, dev, "EUR"); err != nil || bal != protocol.M(50_00, "EUR") {
		t.Fatalf("balance = %v, %v", bal, err)
	}
	for name, req := range map[string]TopUpRequest{
		"ErrZero":      {Amount: protocol.M(0, "EUR"), Ref: protocol.ID{1}},
		"ErrTooMuch":   {Amount: protocol.M(10_000_01, "EUR"), Ref: protocol.ID{1}},
		"ErrNoRef":     {Amount: protocol.M(100, "EUR")},
		"ErrCurrency":  {Amount: protocol.M(100, "SEK"), Ref: protocol.ID{1}},
		"ErrNegative":  {Amount: protocol.M(-100, "EUR"), Ref: protocol.ID{1}},
		"ErrNotMoney1": {Amount: protocol.M(100, "XYZ"), Ref: protocol.ID{1}},
	} {
		_, err := e.c.TopUp(e.ctx, dev, req.Amount, req.Ref)
		if ae, ok := errors.AsType[*registry.Error](err); !ok || ae.Code != registry.CodeInvalid {
			t.Errorf("%s: err = %v, want invalid", name, err)
		}
	}
	t.Run("ErrNoFunder", func(t *testing.T) {
		e2 := newEnv(t, envOpts{noFunder: true})
		_, dev := e2.passenger("mid")
		_, err := e2.c.TopUp(e2.ctx, dev, protocol.M(100, "EUR"), protocol.ID{1})
		wantAPIError(t, err, registry.CodeUnavailable)
	})
}

func TestEnrollDeviceAndRevoke(t *testing.T) {
	e := newEnv(t, envOpts{})
	fl := e.setupFlight()
	acct, dev := e.passenger("high")
	// A card: a wallet's limit is its balance, and this test's funder
	// holds none the registry can see.
	if _, err := e.c.SetFunding(e.ctx, dev, ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: "tok_sim_high",
		Last4: "4242", ExpMonth: 12, ExpYear: now.Year() + 2}); err != nil {
		t.Fatal(err)
	}
	phone, _ := crypto.GenerateKey(crypto.Device, nil)

	status, ed := e.raw(http.MethodPost, "/v1/me/devices", mustJSON(t, DeviceRequest{DeviceKey: phone.Public().String()}), dev, now, nil)
	if status != http.StatusUnauthorized {
		t.Fatalf("enroll without proof: %d %+v, want 401", status, ed)
	}
	got, err := e.c.EnrollDevice(e.ctx, dev, phone)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Devices) != 2 {
		t.Fatalf("devices = %v", got.Devices)
	}
	// The new phone signs its own requests and gets its own credential.
	cred, err := e.c.OptIn(e.ctx, phone, fl)
	if err != nil {
		t.Fatal(err)
	}
	if cred.Device != phone.Public().String() || cred.Limit != protocol.M(600_00, "EUR") {
		t.Fatalf("credential = %+v", cred)
	}
	// The old phone is refused the same flight until the back office
	// withdraws the new phone's credential at the passenger's request.
	_, err = e.c.OptIn(e.ctx, dev, fl)
	wantAPIError(t, err, registry.CodeConflict)
	rv, err := e.c.RevokeFor(e.ctx, cred.ID, "passenger_request", "moving back to the old phone")
	if err != nil || rv.RevokedAt == nil {
		t.Fatalf("revoke = %+v, %v", rv, err)
	}
	if _, err := e.c.OptIn(e.ctx, dev, fl); err != nil {
		t.Fatal(err)
	}
	mv, err := e.c.BuildManifest(e.ctx, fl)
	if err != nil {
		t.Fatal(err)
	}
	if mv.Credentials != 1 || mv.Deny != 1 {
		t.Fatalf("manifest after a revocation = %d credentials, %d deny; want 1 and 1", mv.Credentials, mv.Deny)
	}

	// Arrears show in the account and the back office's list.
	if err := e.reg.MarkArrears(e.ctx, acct.Passenger, protocol.ID{0xab}, time.Time{}); err != nil {
		t.Fatal(err)
	}
	list, err := e.c.Arrears(e.ctx, 10)
	if err != nil || len(list.Arrears) != 1 || list.Arrears[0].Passenger != acct.Passenger {
		t.Fatalf("arrears = %+v, %v", list, err)
	}
	a, err := e.c.Account(e.ctx, dev)
	if err != nil || a.Eligible || len(a.Arrears) != 1 || a.Score != 800-registry.ArrearsPenalty {
		t.Fatalf("account in arrears = %+v, %v", a, err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
