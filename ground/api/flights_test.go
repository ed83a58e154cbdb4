package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

var testCard = ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: "tok_ok_1", Last4: "4242", ExpMonth: 12, ExpYear: 2030}

func flightReq(number string, catalog ...protocol.CatalogItem) FlightRequest {
	return FlightRequest{Carrier: "XX", Number: number, Date: "2026-11-21", Aircraft: "D-AIUA", Currency: "EUR", Catalog: catalog}
}

var coffee = protocol.CatalogItem{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"}

func TestFlightsAPI(t *testing.T) {
	e := newEnv(t, envOpts{})
	fl := e.setupFlight() // XX123 with coffee

	t.Run("PostSameAgain", func(t *testing.T) {
		status, _ := e.raw(http.MethodPost, "/v1/flights", mustJSON(t, flightReq("123", coffee)), nil, now, bearer)
		if status != http.StatusOK {
			t.Fatalf("the same flight again: HTTP %d, want 200", status)
		}
	})
	t.Run("PostOtherBodyConflict", func(t *testing.T) {
		tea := protocol.CatalogItem{SKU: "tea", Name: "Tea", Price: protocol.M(300, "EUR")}
		status, ed := e.raw(http.MethodPost, "/v1/flights", mustJSON(t, flightReq("123", tea)), nil, now, bearer)
		if status != http.StatusConflict || string(ed.Code) != string(registry.CodeConflict) || !strings.Contains(ed.Message, string(fl)) {
			t.Fatalf("another catalog: HTTP %d %+v, want 409 conflict naming %s", status, ed, fl)
		}
		got, err := e.c.Flight(e.ctx, fl)
		if err != nil || len(got.Catalog) != 1 || got.Catalog[0].SKU != "coffee" {
			t.Fatalf("after the refused POST: %+v, %v; want the catalog unchanged", got.Catalog, err)
		}
	})
	t.Run("PutReissuesManifest", func(t *testing.T) {
		if _, err := e.c.BuildManifest(e.ctx, fl); err != nil {
			t.Fatal(err)
		}
		tea := protocol.CatalogItem{SKU: "tea", Name: "Tea", Price: protocol.M(300, "EUR")}
		got, err := e.c.UpdateFlight(e.ctx, flightReq("123", coffee, tea))
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Catalog) != 2 || got.Serial != 2 || got.State != FlightOpen {
			t.Fatalf("after PUT: catalog %d items, manifest serial %d, state %s; want 2, 2, open", len(got.Catalog), got.Serial, got.State)
		}
	})
	t.Run("PutPathMismatch", func(t *testing.T) {
		status, ed := e.raw(http.MethodPut, "/v1/flights/"+string(fl), mustJSON(t, flightReq("124", coffee)), nil, now, bearer)
		if status != http.StatusBadRequest {
			t.Fatalf("body for another flight: HTTP %d %+v, want 400", status, ed)
		}
	})
	t.Run("PutUnknown", func(t *testing.T) {
		_, err := e.c.UpdateFlight(e.ctx, flightReq("999", coffee))
		wantAPIError(t, err, registry.CodeNotFound)
	})
	t.Run("List", func(t *testing.T) {
		ak, _ := crypto.GenerateKey(crypto.Aircraft, nil)
		if _, err := e.c.RegisterAircraft(e.ctx, "D-AIUB", ak.Public(), ""); err != nil {
			t.Fatal(err)
		}
		other := flightReq("456", coffee)
		other.Aircraft = "D-AIUB"
		if _, err := e.c.RegisterFlight(e.ctx, other); err != nil {
			t.Fatal(err)
		}
		next := flightReq("789", coffee)
		next.Date = "2026-11-22"
		if _, err := e.c.RegisterFlight(e.ctx, next); err != nil {
			t.Fatal(err)
		}
		ids := func(l FlightList) (out []string) {
			for _, f := range l.Flights {
				out = append(out, string(f.ID)+":"+string(f.State))
			}
			return out
		}
		for _, tt := range []struct {
			name, date string
			aircraft   protocol.AircraftID
			state      FlightState
			want       string
		}{
			{"All", "", "", "", "XX123-2026-11-21:open XX456-2026-11-21:planned XX789-2026-11-22:planned"},
			{"Date", "2026-11-22", "", "", "XX789-2026-11-22:planned"},
			{"Aircraft", "", "D-AIUB", "", "XX456-2026-11-21:planned"},
			{"State", "", "", FlightOpen, "XX123-2026-11-21:open"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				l, err := e.c.Flights(e.ctx, tt.date, tt.aircraft, tt.state, 0)
				if err != nil {
					t.Fatal(err)
				}
				if got := strings.Join(ids(l), " "); got != tt.want {
					t.Errorf("flights = %s, want %s", got, tt.want)
				}
			})
		}
		status, _ := e.raw(http.MethodGet, "/v1/flights?date=tomorrow", nil, nil, now, bearer)
		if status != http.StatusBadRequest {
			t.Errorf("bad date: HTTP %d, want 400", status)
		}
	})
	t.Run("Aircraft", func(t *testing.T) {
		l, err := e.c.AircraftList(e.ctx, 0)
		if err != nil || len(l.Aircraft) != 2 || l.Aircraft[0].ID != "D-AIUA" || l.Aircraft[1].ID != "D-AIUB" {
			t.Fatalf("aircraft = %+v, %v", l, err)
		}
		a, err := e.c.Aircraft(e.ctx, "D-AIUB")
		if err != nil || a.ID != "D-AIUB" || !strings.HasPrefix(a.Key, "airtab-aircraft-pub:") {
			t.Fatalf("aircraft D-AIUB = %+v, %v", a, err)
		}
		_, err = e.c.Aircraft(e.ctx, "N-NONE")
		wantAPIError(t, err, registry.CodeNotFound)
	})
}

func bearer(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }

// TestRevokeReasonsAPI: after each revocation reason an opt-in answers
// 403 with the stable code "revoked" (or is allowed, for a passenger's own
// request); reinstating allows it again.
func TestRevokeReasonsAPI(t *testing.T) {
	for _, reason := range []string{"revoked", "device_lost", "fraud_suspected", "passenger_request"} {
		t.Run(reason, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			fl := e.setupFlight()
			dev, _ := crypto.GenerateKey(crypto.Device, nil)
			if _, err := e.c.CreatePassenger(e.ctx, dev, "high"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.c.SetFunding(e.ctx, dev, testCard); err != nil {
				t.Fatal(err)
			}
			cred, err := e.c.OptIn(e.ctx, dev, fl)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.c.RevokeFor(e.ctx, cred.ID, reason, "test"); err != nil {
				t.Fatal(err)
			}
			status, ed := e.raw(http.MethodPost, "/v1/me/credentials", mustJSON(t, OptInRequest{Flight: fl}), dev, now, nil)
			if reason == "passenger_request" {
				if status != http.StatusCreated {
					t.Fatalf("opt-in after the passenger's own request: HTTP %d %+v, want 201", status, ed)
				}
				return
			}
			if status != http.StatusForbidden || string(ed.Code) != string(registry.CodeRevoked) || !strings.Contains(ed.Message, cred.ID.String()) {
				t.Fatalf("opt-in after %s: HTTP %d %+v, want 403 revoked naming the credential", reason, status, ed)
			}
			if reason == "device_lost" {
				// The lost device is dead for every call, not only opt-ins.
				if status, ed := e.raw(http.MethodGet, "/v1/me", nil, dev, now, nil); status != http.StatusForbidden || string(ed.Code) != "revoked" {
					t.Fatalf("GET /v1/me from the lost device: HTTP %d %+v, want 403 revoked", status, ed)
				}
			}
			_, err = e.c.Reinstate(e.ctx, cred.ID, "")
			wantAPIError(t, err, registry.CodeInvalid)
			got, err := e.c.Reinstate(e.ctx, cred.ID, "passenger called the back office")
			if err != nil || got.RevokedAt != nil {
				t.Fatalf("reinstate = %+v, %v; want live", got, err)
			}
			again, err := e.c.OptIn(e.ctx, dev, fl)
			if err != nil || again.ID != cred.ID {
				t.Fatalf("opt-in after reinstating = %v, %v; want credential %s", again.ID, err, cred.ID)
			}
		})
	}
	t.Run("BadReason", func(t *testing.T) {
		e := newEnv(t, envOpts{})
		_, err := e.c.RevokeFor(e.ctx, protocol.ID{1}, "bored", "")
		wantAPIError(t, err, registry.CodeInvalid)
	})
}
