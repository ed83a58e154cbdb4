// Package api is the ground's HTTP JSON API: passenger registration and
// self-service, signed by the passenger's device key (see auth.go), and the
// back office's management endpoints behind a bearer token. Client is a Go
// client for both.
//
// Passenger endpoints (signed by a device key):
//
//	POST /v1/passengers            register (signed by the key it enrolls)   → 201 Account
//	GET  /v1/me                    the caller's account                      → 200 Account
//	PUT  /v1/me/funding            link a wallet or a card                   → 200 Account
//	POST /v1/me/devices            enroll another device key (+ its proof)   → 200 Account
//	POST /v1/me/wallet/topups      top up the wallet                         → 200 Balance
//	GET  /v1/me/wallet/{currency}  wallet balance                            → 200 Balance
//	POST /v1/me/credentials        opt in to a flight                        → 201 (new) or 200 (same again) Credential
//	GET  /v1/me/charges?limit=N    the passenger's charges (receipts)        → 200 ChargeList
//
// Their bodies, signing and errors are the contract in protocol/passengerapi.
//
// Back-office endpoints ("Authorization: Bearer <token>"; wrong tokens are
// limited per client address and in all, with the back office's sign-in
// form, by Config.SignIns: past a limit 429 rate_limited, whatever the
// token):
//
//	PUT  /v1/aircraft/{aircraft}             register an aircraft          → 201 or 200 AircraftView
//	GET  /v1/aircraft?limit=N                registered aircraft           → 200 AircraftList
//	GET  /v1/aircraft/{aircraft}             an aircraft                   → 200 AircraftView
//	POST /v1/flights                         register a flight (the same   → 201 or 200 FlightView
//	                                         again: 200; another body: 409)
//	GET  /v1/flights?date=&aircraft=&limit=  flights with their state      → 200 FlightList
//	GET  /v1/flights/{flight}                a flight                      → 200 FlightView
//	PUT  /v1/flights/{flight}                change catalog and caps, a    → 200 FlightView
//	                                         fresh manifest (409 if closed)
//	PUT  /v1/flights/{flight}/crew           replace the crew roster       → 200 FlightView
//	POST /v1/flights/{flight}/manifests      build and sign a manifest now → 201 ManifestView
//	GET  /v1/passengers/{passenger}          a passenger's account         → 200 Account
//	POST /v1/credentials/{credential}/revoke revoke ({"reason","note"})    → 200 Credential
//	POST /v1/credentials/{c}/reinstate       lift a revocation ({"note"})  → 200 Credential
//	GET  /v1/arrears?limit=N                 passengers in arrears         → 200 ArrearsList
//	     /v1/reports/…                       Config.Reports, when set
//	GET  /healthz                            liveness, no auth             → 200
//
// Every error is an ErrorBody {"error": {"code", "message"}} with a code
// from registry.Code and the status statusOf gives it. Request bodies are
// capped (16 KiB for passengers, 1 MiB for the back office), must be one
// JSON object, and may not hold unknown fields.
package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/ratelimit"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// Body caps, in bytes.
const (
	MaxPassengerBody  = passengerapi.MaxBody
	MaxBackOfficeBody = 1 << 20
	// MinTokenLen is the shortest back-office token accepted, in bytes.
	MinTokenLen = 16
)

// Config configures a Server. Registry and BackOfficeToken are required.
type Config struct {
	Registry *registry.Registry
	// Funder tops up and reads wallets (ground/clearing implements it).
	// When nil, the wallet endpoints answer "unavailable".
	Funder ground.WalletFunder
	// Charges lists a passenger's charges and retries their collections
	// when they link a new card (ground/clearing implements it). When nil,
	// GET /v1/me/charges answers "unavailable".
	Charges ChargeSource
	// Wallet, when set, is the passenger web wallet, served under
	// /wallet/ (ground/walletweb).
	Wallet http.Handler
	// Reports, when set, serves everything under /v1/reports/ behind the
	// back-office token. It sees the full request path.
	Reports http.Handler
	// BackOfficeToken is the bearer token of the back-office endpoints,
	// at least MinTokenLen bytes.
	BackOfficeToken string
	// ReplayCacheSize bounds the signatures remembered against replay: at
	// most this many signed requests in any 10 minutes (about 430 a
	// second, 40 MiB at most). Default 262144.
	ReplayCacheSize int
	// RateLimits bound each client's calls (429 with Retry-After over
	// them). Default: see RateLimits.
	RateLimits RateLimits
	// SignIns bounds the wrong back-office tokens, per client address and
	// across all addresses (ratelimit.SignInLimit): past a limit a call
	// carrying a token answers 429 rate_limited with Retry-After whatever
	// the token, and a right token is never counted. It holds whatever
	// RateLimits says (Off too). Ground passes the one its back office's
	// sign-in form is limited by, so guesses through either count against
	// the same allowance. Default: one of the API's own, with
	// ratelimit.SignInConfig's defaults, its counter not exposed.
	SignIns *ratelimit.SignInLimit
	// Clock is the time request timestamps are checked against. Default
	// time.Now.
	Clock func() time.Time
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Server is the API as an http.Handler.
type Server struct {
	reg     *registry.Registry
	funder  ground.WalletFunder
	charges ChargeSource
	token   [sha256.Size]byte
	replay  *replayCache
	clock   func() time.Time
	log     *slog.Logger
	mux     *http.ServeMux
	reports http.Handler
	wallet  http.Handler
	limits  *rateLimits // nil: no limits
	signIns *ratelimit.SignInLimit
}

// New checks cfg and builds the server's routes.
func New(cfg Config) (*Server, error) {
	if cfg.Registry == nil {
		return nil, errors.New("api: Config.Registry is required")
	}
	if len(cfg.BackOfficeToken) < MinTokenLen {
		return nil, errors.New("api: Config.BackOfficeToken is required, at least 16 bytes")
	}
	if cfg.ReplayCacheSize <= 0 {
		cfg.ReplayCacheSize = 1 << 18
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SignIns == nil {
		l, err := ratelimit.NewSignInLimit(ratelimit.SignInConfig{})
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		cfg.SignIns = l
	}
	s := &Server{
		reg: cfg.Registry, funder: cfg.Funder, charges: cfg.Charges, token: sha256.Sum256([]byte(cfg.BackOfficeToken)),
		replay: newReplayCache(cfg.ReplayCacheSize), clock: cfg.Clock, log: cfg.Logger, mux: http.NewServeMux(), reports: cfg.Reports, wallet: cfg.Wallet,
		limits: newRateLimits(cfg.RateLimits), signIns: cfg.SignIns,
	}
	s.routes()
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// auth says how a route authenticates its caller.
type auth int

const (
	authNone   auth = iota
	authDevice      // a signature by an enrolled device key
	authToken       // the back-office bearer token
	authProof       // a signature by the key in the body (registration)
)

func (s *Server) routes() {
	p, b := int64(MaxPassengerBody), int64(MaxBackOfficeBody)
	s.route("POST /v1/passengers", authProof, p, s.createPassenger)
	s.route("GET /v1/me", authDevice, p, s.getMe)
	s.route("PUT /v1/me/funding", authDevice, p, s.setFunding)
	s.route("POST /v1/me/devices", authDevice, p, s.enrollDevice)
	s.route("POST /v1/me/wallet/topups", authDevice, p, s.topUp)
	s.route("GET /v1/me/wallet/{currency}", authDevice, p, s.balance)
	s.route("POST /v1/me/credentials", authDevice, p, s.optIn)
	s.route("GET /v1/me/charges", authDevice, p, s.listCharges)

	s.route("PUT /v1/aircraft/{aircraft}", authToken, b, s.putAircraft)
	s.route("POST /v1/aircraft/{aircraft}/key", authToken, b, s.postAircraftKey)
	s.route("POST /v1/flights", authToken, b, s.postFlight)
	s.route("GET /v1/flights", authToken, b, s.listFlights)
	s.route("GET /v1/flights/{flight}", authToken, b, s.getFlight)
	s.route("PUT /v1/flights/{flight}", authToken, b, s.putFlight)
	s.route("GET /v1/aircraft", authToken, b, s.listAircraft)
	s.route("GET /v1/aircraft/{aircraft}", authToken, b, s.getAircraft)
	s.route("PUT /v1/flights/{flight}/crew", authToken, b, s.putCrew)
	s.route("POST /v1/flights/{flight}/manifests", authToken, b, s.postManifest)
	s.route("GET /v1/passengers/{passenger}", authToken, b, s.getPassenger)
	s.route("POST /v1/credentials/{credential}/revoke", authToken, b, s.revoke)
	s.route("POST /v1/credentials/{credential}/reinstate", authToken, b, s.reinstate)
	s.route("GET /v1/arrears", authToken, b, s.listArrears)
	if s.reports != nil {
		s.mux.Handle("/v1/reports/", s.tokenOnly(s.reports))
	}
	if s.wallet != nil {
		s.mux.Handle("/wallet/", s.wallet)
		s.mux.Handle("GET /wallet", http.RedirectHandler("/wallet/", http.StatusMovedPermanently))
	}
	s.route("GET /healthz", authNone, p, func(c *call) error {
		return c.json(http.StatusOK, map[string]string{"status": "ok"})
	})
	s.route("/", authNone, p, func(c *call) error {
		return registry.Errorf(registry.CodeNotFound, "no such endpoint: %s %s", c.r.Method, c.r.URL.Path)
	})
}

// call is one request in hand.
type call struct {
	w         http.ResponseWriter
	r         *http.Request
	body      []byte
	passenger protocol.ID // authDevice: the caller
	device    registry.Device
	signed    signedRequest // authDevice: the verified signature
}

// json writes the response. It returns nil always, so a handler can end
// with "return c.json(...)": once the status is sent, a failed write (the
// client went away) cannot become an error response.
func (c *call) json(status int, v any) error {
	c.w.Header().Set("Content-Type", "application/json")
	c.w.WriteHeader(status)
	_ = json.NewEncoder(c.w).Encode(v)
	return nil
}

// decode parses the body as exactly one JSON object with no unknown fields.
func (c *call) decode(v any) error {
	if len(bytes.TrimSpace(c.body)) == 0 {
		return registry.Errorf(registry.CodeInvalid, "empty body: want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(c.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return registry.Errorf(registry.CodeInvalid, "%s", jsonProblem(err, c.body, v))
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return registry.Errorf(registry.CodeInvalid, "malformed JSON: data after the object")
	}
	return nil
}

type handler func(c *call) error

func (s *Server) route(pattern string, a auth, maxBody int64, h handler) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		c := &call{w: w, r: r}
		if err := s.serve(c, a, maxBody, h); err != nil {
			s.writeError(c, err)
		}
	})
}

func (s *Server) serve(c *call, a auth, maxBody int64, h handler) error {
	if a == authToken {
		if err := s.checkToken(c); err != nil {
			return err
		}
	}
	if a == authToken || a == authProof {
		if err := s.limit(c, a); err != nil {
			return err
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, maxBody))
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return registry.Errorf(registry.CodeTooLarge, "request body over the limit of %d bytes", maxBody)
	}
	if err != nil {
		return registry.Errorf(registry.CodeInvalid, "read request body: %v", err)
	}
	c.body = body
	if a == authDevice {
		if err := s.authenticate(c); err != nil {
			return err
		}
		if err := s.limit(c, a); err != nil {
			return err
		}
	}
	return h(c)
}

// authenticate finds the enrolled device whose signature the request
// carries. Key ids may collide, so every key with the id is tried.
func (s *Server) authenticate(c *call) error {
	now := s.clock()
	sr, err := parseSigned(c.r, c.body, now)
	if err != nil {
		return err
	}
	devs, err := s.reg.DevicesByKeyID(c.r.Context(), sr.keyID)
	if err != nil {
		return err
	}
	if len(devs) == 0 {
		return unauthorized("unknown device key %s: register first", sr.keyID)
	}
	for _, d := range devs {
		if sr.verify(d.Key) {
			if err := s.replay.accept(sr, now); err != nil {
				return err
			}
			// A device reported lost is dead everywhere (SPEC §9.2): its
			// finder may not read the account, change its funding or
			// bring in a device of their own.
			if err := s.reg.CheckDevice(c.r.Context(), d.Key); err != nil {
				return err
			}
			c.passenger, c.device, c.signed = d.Passenger, d, sr
			return nil
		}
	}
	return unauthorized("request signature does not verify under device key %s", sr.keyID)
}

func (s *Server) tokenOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &call{w: w, r: r}
		if err := s.checkToken(c); err != nil {
			s.writeError(c, err)
			return
		}
		if err := s.limit(c, authToken); err != nil {
			s.writeError(c, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxBackOfficeBody)
		h.ServeHTTP(w, r)
	})
}

// statusOf maps each error code to its HTTP status: the one place where this
// is decided.
func statusOf(code registry.Code) int {
	switch code {
	case registry.CodeInvalid:
		return http.StatusBadRequest
	case registry.CodeUnauthorized:
		return http.StatusUnauthorized
	case registry.CodeForbidden, registry.CodeIneligible, registry.CodeRevoked:
		return http.StatusForbidden
	case registry.CodeNotFound:
		return http.StatusNotFound
	case registry.CodeConflict:
		return http.StatusConflict
	case registry.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case registry.CodeUnavailable:
		return http.StatusServiceUnavailable
	case registry.CodeRateLimited:
		return http.StatusTooManyRequests
	}
	return http.StatusInternalServerError
}

func (s *Server) writeError(c *call, err error) {
	code := registry.ErrorCode(err)
	if code == registry.CodeInternal {
		s.log.Error("api request failed", "method", c.r.Method, "path", c.r.URL.Path, "err", err)
	} else {
		s.log.Debug("api request refused", "method", c.r.Method, "path", c.r.URL.Path, "code", code, "err", err)
	}
	if code == registry.CodeUnauthorized {
		c.w.Header().Set("WWW-Authenticate", `Airtab-Signature, Bearer realm="airtab-back-office"`)
	}
	c.json(statusOf(code), ErrorBody{Error: ErrorDetail{Code: passengerapi.Code(code), Message: registry.ErrorMessage(err)}})
}

// jsonProblem says what is wrong with a request body in the API's terms:
// field names as in the JSON, JSON types, never Go's types. A value's own
// parse error (an id, a key) does not name its field, so the field is found
// by decoding the body's fields one at a time into v's.
func jsonProblem(err error, body []byte, v any) string {
	if _, ok := errors.AsType[*json.UnmarshalTypeError](err); !ok {
		if _, ok := errors.AsType[*json.SyntaxError](err); !ok && !errors.Is(err, io.ErrUnexpectedEOF) {
			if f := failingField(body, v, err); f != "" {
				return f + ": " + strings.TrimPrefix(err.Error(), "json: ")
			}
		}
	}
	return describeJSONError(err)
}

// failingField returns the name of the field of the JSON object body whose
// value, decoded alone into the field of struct pointer v with that JSON
// name, fails with err, or "" when none does.
func failingField(body []byte, v any, err error) string {
	var fields map[string]json.RawMessage
	if json.Unmarshal(body, &fields) != nil {
		return ""
	}
	t := reflect.TypeOf(v)
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return ""
	}
	st := t.Elem()
	for i := range st.NumField() {
		name, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
		raw, ok := fields[name]
		if !ok || name == "" || name == "-" {
			continue
		}
		if e := json.Unmarshal(raw, reflect.New(st.Field(i).Type).Interface()); e != nil && e.Error() == err.Error() {
			return name
		}
	}
	return ""
}

// describeJSONError turns a decoder error into the API's words.
func describeJSONError(err error) string {
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		field := e.Field
		if field == "" {
			field = "the body"
		}
		return fmt.Sprintf("%s: got a JSON %s, want %s", field, e.Value, jsonKind(e.Type))
	}
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("malformed JSON at byte %d: %s", e.Offset, strings.TrimPrefix(e.Error(), "json: "))
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return "malformed JSON: the body ends early"
	}
	if f, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return "unknown field " + f
	}
	if _, after, ok := strings.Cut(msg, "Go value of type "); ok {
		_ = after // never show a Go type
		return "malformed JSON: a value of the wrong type"
	}
	return msg
}

// jsonKind names the JSON a Go type is read from.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "another type"
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "an array"
	case reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a string of hex characters" // ids, hashes
		}
		return "an array"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "another type"
}
