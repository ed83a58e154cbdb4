package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/ground/store/storetest"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// movingClock is a clock the test moves.
type movingClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *movingClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *movingClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newLimitedEnv is newEnv with rate limits and a clock the test moves.
func newLimitedEnv(t *testing.T, limits RateLimits) (*env, *movingClock) {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t)
	clock := &movingClock{t: now}
	issuer, _ := crypto.GenerateKey(crypto.Issuer, nil)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	scores := map[string]int{"mid": 700, "mid2": 700}
	reg, err := registry.New(ctx, db, registry.Config{Issuer: issuer, Clock: clock.Now, Scorer: registry.StaticScorer{ByRef: scores}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Registry: reg, BackOfficeToken: token, Clock: clock.Now, Logger: quiet, RateLimits: limits,
		Funder: &memFunder{bal: map[protocol.ID]map[protocol.Currency]int64{}, refs: map[protocol.ID]bool{}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return &env{t: t, ctx: ctx, db: db, reg: reg, issuer: issuer, srv: srv, scores: scores,
		c: &Client{BaseURL: srv.URL, Token: token, HTTP: srv.Client(), Clock: clock.Now}}, clock
}

// get sends GET path signed by dev (or with the token when dev is nil) and
// returns the status, the error code and Retry-After.
func get(t *testing.T, e *env, clock *movingClock, path string, dev crypto.PrivateKey, tok string) (int, passengerapi.Code, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !dev.IsZero() {
		SignRequest(req, nil, dev, clock.Now(), nil)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var eb ErrorBody
	if resp.StatusCode >= 300 {
		if err := json.NewDecoder(resp.Body).Decode(&eb); err != nil {
			t.Fatalf("GET %s: HTTP %d with a body that is not an ErrorBody: %v", path, resp.StatusCode, err)
		}
	}
	return resp.StatusCode, eb.Error.Code, resp.Header.Get("Retry-After")
}

func TestRateLimits(t *testing.T) {
	t.Run("PassengerByDeviceKey", func(t *testing.T) {
		e, clock := newLimitedEnv(t, RateLimits{PassengerPerMinute: 6, PassengerBurst: 3})
		_, dev := e.passenger("mid") // two calls: registration and funding
		_, other := e.passenger("mid2")
		rogue, _ := crypto.GenerateKey(crypto.Device, nil)
		// Forged calls naming dev's key are refused before they count.
		for range 5 {
			req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/v1/me", nil)
			SignRequest(req, nil, rogue, clock.Now(), nil)
			req.Header.Set(passengerapi.HeaderDevice, dev.ID().String())
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("forged call: HTTP %d, want 401", resp.StatusCode)
			}
		}
		// Funding took one call of the burst; the interval (10 s) has
		// not passed.
		var status int
		var code passengerapi.Code
		var retry string
		calls := 0
		for calls = 0; calls < 10; calls++ {
			if status, code, retry = get(t, e, clock, "/v1/me", dev, ""); status != http.StatusOK {
				break
			}
		}
		if status != http.StatusTooManyRequests || code != passengerapi.CodeRateLimited {
			t.Fatalf("after %d calls: HTTP %d %s, want 429 %s", calls, status, code, passengerapi.CodeRateLimited)
		}
		if calls < 1 || calls > 3 {
			t.Errorf("%d calls passed before the limit, want at most the burst (3)", calls)
		}
		secs, err := strconv.Atoi(retry)
		if err != nil || secs < 1 || secs > 10 {
			t.Fatalf("Retry-After %q, want 1 to 10 seconds", retry)
		}
		if status, _, _ := get(t, e, clock, "/v1/me", other, ""); status != http.StatusOK {
			t.Errorf("another passenger: HTTP %d, want 200", status)
		}
		clock.Add(time.Duration(secs) * time.Second)
		if status, code, _ := get(t, e, clock, "/v1/me", dev, ""); status != http.StatusOK {
			t.Errorf("after Retry-After: HTTP %d %s, want 200", status, code)
		}
	})
	t.Run("BackOfficeByToken", func(t *testing.T) {
		e, clock := newLimitedEnv(t, RateLimits{BackOfficePerSecond: 1, BackOfficeBurst: 2})
		for i := range 2 {
			if status, code, _ := get(t, e, clock, "/v1/arrears", crypto.PrivateKey{}, token); status != http.StatusOK {
				t.Fatalf("call %d: HTTP %d %s, want 200", i+1, status, code)
			}
		}
		status, code, retry := get(t, e, clock, "/v1/arrears", crypto.PrivateKey{}, token)
		if status != http.StatusTooManyRequests || code != passengerapi.CodeRateLimited || retry != "1" {
			t.Fatalf("third call: HTTP %d %s Retry-After %q, want 429 %s 1", status, code, retry, passengerapi.CodeRateLimited)
		}
		if status, _, _ := get(t, e, clock, "/v1/arrears", crypto.PrivateKey{}, "wrong-token-wrong-token-0000"); status != http.StatusUnauthorized {
			t.Errorf("a wrong token: HTTP %d, want 401 (never counted)", status)
		}
		clock.Add(time.Second)
		if status, _, _ := get(t, e, clock, "/v1/arrears", crypto.PrivateKey{}, token); status != http.StatusOK {
			t.Errorf("a second later: HTTP %d, want 200", status)
		}
	})
}

// postJunkRegistration sends an unsigned POST /v1/passengers naming key id
// in the device header, and returns its status.
func postJunkRegistration(t *testing.T, e *env, id string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/v1/passengers", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(passengerapi.HeaderDevice, id)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestRegistrationRateLimits: registration never counts against an
// enrolled device's allowance; before its proof verifies it is limited by
// remote address, after by the key it enrols, in a bucket of its own.
func TestRegistrationRateLimits(t *testing.T) {
	t.Run("JunkNamingVictimDoesNotLockOut", func(t *testing.T) {
		e, clock := newLimitedEnv(t, RateLimits{PassengerPerMinute: 6, PassengerBurst: 3})
		_, dev := e.passenger("mid")
		clock.Add(time.Minute)
		for range 10 {
			if got := postJunkRegistration(t, e, dev.ID().String()); got != http.StatusBadRequest && got != http.StatusUnauthorized {
				t.Fatalf("junk registration: HTTP %d, want 400 or 401", got)
			}
		}
		if status, code, _ := get(t, e, clock, "/v1/me", dev, ""); status != http.StatusOK {
			t.Fatalf("victim's GET /v1/me after 10 junk registrations naming its key: HTTP %d %s, want 200", status, code)
		}
	})
	t.Run("FreshHeadersLimitedByAddress", func(t *testing.T) {
		e, _ := newLimitedEnv(t, RateLimits{UnauthenticatedPerMinute: 6, UnauthenticatedBurst: 3})
		limited := 0
		for range 20 {
			k, _ := crypto.GenerateKey(crypto.Device, nil)
			if postJunkRegistration(t, e, k.Public().ID().String()) == http.StatusTooManyRequests {
				limited++
			}
		}
		if limited < 16 {
			t.Fatalf("%d of 20 registrations from one address, each naming a fresh key, were limited; want all past the burst (3)", limited)
		}
	})
	t.Run("RegistrationByEnrolledKey", func(t *testing.T) {
		e, clock := newLimitedEnv(t, RateLimits{PassengerPerMinute: 6, PassengerBurst: 3})
		_, dev := e.passenger("mid") // one registration, one device call
		var err error
		calls := 0
		for calls = 0; calls < 10; calls++ {
			if _, err = e.c.CreatePassenger(e.ctx, dev, "mid"); err != nil {
				break
			}
		}
		if err == nil {
			t.Fatal("10 repeated registrations of one key all passed, want the limit")
		}
		wantAPIError(t, err, registry.CodeRateLimited)
		if calls > 3 {
			t.Errorf("%d registrations passed before the limit, want at most the burst (3)", calls)
		}
		if status, code, _ := get(t, e, clock, "/v1/me", dev, ""); status != http.StatusOK {
			t.Fatalf("the device's own GET /v1/me after its registrations were limited: HTTP %d %s, want 200", status, code)
		}
	})
}
