package httpapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
)

// Config configures a Server.
type Config struct {
	// Cabin answers the calls. Required.
	Cabin *onboard.Cabin
	// Clock gives the time for sessions and rate limits. Default: time.Now.
	Clock onboard.Clock
	// Rand is the source of session tokens. Default: crypto/rand.
	Rand io.Reader
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
	// SessionTTL is how long a crew session lasts. Default: 12 hours, a
	// long-haul flight.
	SessionTTL time.Duration
	// MaxSessions bounds the sessions held (one per handheld). Default: 256.
	MaxSessions int
	// SignInAttempts is how many failed sign-ins each crew id and each
	// handheld may have per SignInWindow; more attempts get 429 until the
	// oldest failure leaves the window. Successful sign-ins do not count.
	// Default: 5 per minute.
	SignInAttempts int
	SignInWindow   time.Duration
	// MaxBodyBytes bounds a request body. Default: 16 KiB, far above a
	// full-form payment code (1 200 QR characters) and a 32-line basket.
	MaxBodyBytes int64
	// RequestTimeout bounds how long a call may wait for the cabin server,
	// the writer's queue included. Default: 10 s.
	RequestTimeout time.Duration
	// App serves every path outside /v1/ and /healthz: the crew handheld
	// web app (onboard/web). Default: none, those paths answer 404.
	App http.Handler
}

func (c *Config) setDefaults() {
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.SessionTTL <= 0 {
		c.SessionTTL = 12 * time.Hour
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 256
	}
	if c.SignInAttempts <= 0 {
		c.SignInAttempts = 5
	}
	if c.SignInWindow <= 0 {
		c.SignInWindow = time.Minute
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 16 << 10
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
}

// maxLimiterKeys bounds the crew ids and handhelds the sign-in limiter
// tracks at once.
const maxLimiterKeys = 4096

// Server is the handheld API. It is an http.Handler.
type Server struct {
	cfg      Config
	cabin    *onboard.Cabin
	log      *slog.Logger
	mux      *http.ServeMux
	sessions *sessions
	signIns  *limiter
}

// New returns the handheld API over cfg.Cabin.
func New(cfg Config) *Server {
	cfg.setDefaults()
	s := &Server{
		cfg:      cfg,
		cabin:    cfg.Cabin,
		log:      cfg.Logger,
		mux:      http.NewServeMux(),
		sessions: newSessions(cfg.MaxSessions, cfg.SessionTTL, cfg.Rand),
		signIns:  newLimiter(cfg.SignInAttempts, cfg.SignInWindow, maxLimiterKeys),
	}
	s.mux.HandleFunc("GET "+PathHealth, s.health)
	s.mux.HandleFunc("POST "+PathSessions, s.signIn)
	s.mux.HandleFunc("DELETE "+PathSessions, s.authed(s.signOut))
	s.mux.HandleFunc("GET "+PathCatalog, s.authed(anySession(s.catalog)))
	s.mux.HandleFunc("POST "+PathSales, s.authed(jsonCall(s, http.StatusOK, s.authorize)))
	s.mux.HandleFunc("GET "+PathSales+"/{id}", s.authed(anySession(s.sale)))
	s.mux.HandleFunc("POST "+PathOrders, s.authed(jsonCall(s, http.StatusCreated, s.createOrder)))
	s.mux.HandleFunc("POST "+PathVoids, s.authed(jsonCall(s, http.StatusOK, s.void)))
	s.mux.HandleFunc("POST "+PathLimit, s.authed(jsonCall(s, http.StatusOK, s.limit)))
	s.mux.HandleFunc("POST "+PathFlightClose, s.authed(s.closeFlight))
	s.mux.HandleFunc("GET "+PathStatus, s.authed(anySession(s.status)))
	notFound := func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, onboard.Errorf(onboard.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
	}
	s.mux.HandleFunc("/v1/", notFound)
	if cfg.App != nil {
		s.mux.Handle("/", cfg.App)
	} else {
		s.mux.HandleFunc("/", notFound)
	}
	return s
}

// ServeHTTP serves the API, and the app when Config.App is set.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header()["Cache-Control"] = noStore // the app's handler may relax it for its files
	if dotted(r.URL.Path) {
		// The mux would redirect to the cleaned path (/v1/sales/../../etc/passwd
		// to /etc/passwd): nothing we serve is named like that.
		s.writeError(w, r, onboard.Errorf(onboard.CodeInvalid, "path %.80q has empty, \".\" or \"..\" segments", r.URL.Path))
		return
	}
	s.mux.ServeHTTP(w, r)
}

// Header values set on every answer, shared rather than allocated per
// request (a Header.Set makes a new slice each time). Nothing modifies a
// header value in place.
var (
	noStore         = []string{"no-store"}
	jsonContentType = []string{"application/json"}
)

// dotted reports whether a request path has an empty (//), "." or ".."
// segment (a trailing slash is not an empty segment). It runs on every
// request, so it walks the path without splitting it.
func dotted(p string) bool {
	p = strings.TrimPrefix(p, "/")
	for {
		seg, rest, more := strings.Cut(p, "/")
		if seg == "." || seg == ".." || (seg == "" && more) {
			return true
		}
		if !more {
			return false
		}
		p = rest
	}
}

// HTTPServer returns an http.Server for the API over TLS with cert, with
// every timeout and header size bounded. Serve it with ServeTLS(ln, "", "").
func (s *Server) HTTPServer(cert tls.Certificate) *http.Server {
	return &http.Server{
		Handler:           s,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      s.cfg.RequestTimeout + 5*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
}

// authedFunc is a handler for callers with a session: the one authed
// looked up for the request.
type authedFunc func(w http.ResponseWriter, r *http.Request, sess Session)

// anySession makes an authedFunc of a handler that needs a session but not
// what is in it.
func anySession(h http.HandlerFunc) authedFunc {
	return func(w http.ResponseWriter, r *http.Request, _ Session) { h(w, r) }
}

// authed wraps h so that it runs only for a live session on the handheld
// that made it; everything else gets 401. The session is passed to h, not
// put in the request's context: a context value means a copy of the
// request on every call.
func (s *Server) authed(h authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		handheld, err := handheldID(r)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || token == "" {
			s.writeError(w, r, onboard.Errorf(onboard.CodeUnauthorized, "%s", msgNoSession))
			return
		}
		sess, why := s.sessions.lookup(token, handheld, s.cfg.Clock())
		if why != "" {
			s.writeError(w, r, onboard.Errorf(onboard.CodeUnauthorized, "%s", why))
			return
		}
		h(w, r, sess)
	}
}

// handheldID returns the handheld's id from its header: 1 to
// MaxHandheldIDLen letters, digits, '.', '_', ':' or '-'.
func handheldID(r *http.Request) (string, error) {
	id := r.Header.Get(HandheldHeader)
	if id == "" || len(id) > MaxHandheldIDLen || !handheldChars(id) {
		return "", onboard.Errorf(onboard.CodeUnauthorized,
			"header %s must name this handheld: 1 to %d letters, digits, '.', '_', ':' or '-'", HandheldHeader, MaxHandheldIDLen)
	}
	return id, nil
}

// handheldChars reports whether id has only letters, digits, '.', '_', ':'
// and '-' (a loop: strings.Trim with a cutset builds its set on every call).
func handheldChars(id string) bool {
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '.', c == '_', c == ':', c == '-':
		default:
			return false
		}
	}
	return true
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, map[string]bool{"ok": true})
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	handheld, err := handheldID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req SignInRequest
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.CrewID == "" || len(req.CrewID) > 32 {
		s.writeError(w, r, onboard.Errorf(onboard.CodeInvalid, "crew_id: want 1 to 32 bytes"))
		return
	}
	now := s.cfg.Clock()
	keys := []string{"crew:" + req.CrewID, "handheld:" + handheld}
	if wait := s.signIns.allow(now, keys...); wait > 0 {
		seconds := int((wait + time.Second - 1) / time.Second) // rounded up: never too early
		w.Header().Set("Retry-After", strconv.Itoa(seconds))
		s.log.Warn("sign-in rate limited", "crew", req.CrewID, "handheld", handheld, "retry_after_s", seconds)
		s.writeError(w, r, onboard.Errorf(onboard.CodeRateLimited,
			"too many failed sign-ins: at most %d per %v for each crew id and handheld; try again in %d s", s.cfg.SignInAttempts, s.cfg.SignInWindow, seconds))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
	defer cancel()
	member, err := s.cabin.CheckCrew(ctx, req.CrewID, req.PIN)
	if err != nil {
		s.log.Warn("sign-in refused", "crew", req.CrewID, "handheld", handheld, "err", err)
		s.writeError(w, r, err)
		return
	}
	s.signIns.release(now, keys...) // only failures count
	sess, err := s.sessions.create(member.ID, member.Role, handheld, now)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.log.Info("crew signed in", "crew", member.ID, "role", member.Role, "handheld", handheld)
	s.writeJSON(w, http.StatusCreated, sess)
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request, _ Session) {
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	s.sessions.remove(token)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) catalog(w http.ResponseWriter, r *http.Request) {
	m := s.cabin.Manifest()
	if m == nil {
		s.writeError(w, r, onboard.ReasonErrorf(onboard.CodeUnavailable, protocol.ReasonNoManifest, "no flight manifest"))
		return
	}
	s.writeJSON(w, http.StatusOK, Catalog{Currency: m.Currency(), Items: m.Catalog()})
}

// jsonCall makes a handler that decodes the request body into Req, calls
// fn, and answers with its result and status, or with its error.
func jsonCall[Req, Resp any](s *Server, status int, fn func(r *http.Request, sess Session, req Req) (Resp, error)) authedFunc {
	return func(w http.ResponseWriter, r *http.Request, sess Session) {
		var req Req
		if err := s.decode(w, r, &req); err != nil {
			s.writeError(w, r, err)
			return
		}
		resp, err := fn(r, sess, req)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeJSON(w, status, resp)
	}
}

// withTimeout bounds a call that waits for the journal writer.
func (s *Server) withTimeout(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), s.cfg.RequestTimeout)
}

func (s *Server) authorize(r *http.Request, sess Session, req onboard.SaleRequest) (onboard.Decision, error) {
	req.Crew = sess.CrewID
	ctx, cancel := s.withTimeout(r)
	defer cancel()
	return s.cabin.Authorize(ctx, req)
}

func (s *Server) sale(w http.ResponseWriter, r *http.Request) {
	id, err := protocol.ParseID(r.PathValue("id"))
	if err != nil {
		s.writeError(w, r, onboard.Errorf(onboard.CodeInvalid, "invoice id: %v", err))
		return
	}
	sale, err := s.cabin.Sale(r.Context(), id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, sale)
}

func (s *Server) createOrder(r *http.Request, _ Session, req onboard.OrderRequest) (onboard.OrderQR, error) {
	return s.cabin.CreateOrder(r.Context(), req)
}

func (s *Server) void(r *http.Request, sess Session, req onboard.VoidRequest) (*onboard.Sale, error) {
	req.Crew = sess.CrewID
	ctx, cancel := s.withTimeout(r)
	defer cancel()
	return s.cabin.Void(ctx, req)
}

func (s *Server) limit(r *http.Request, _ Session, req onboard.LimitRequest) (onboard.LimitAnswer, error) {
	return s.cabin.Limit(r.Context(), req)
}

// purser is the crew role that may close the flight.
const purser = "purser"

func (s *Server) closeFlight(w http.ResponseWriter, r *http.Request, sess Session) {
	if sess.Role != purser {
		s.writeError(w, r, onboard.Errorf(onboard.CodeForbidden, "closing the flight takes a purser; %s is %s", sess.CrewID, sess.Role))
		return
	}
	ctx, cancel := s.withTimeout(r)
	defer cancel()
	rep, err := s.cabin.CloseFlight(ctx, sess.CrewID)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, rep)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	st, err := s.cabin.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeJSON(w, http.StatusOK, st)
}

// decode reads one JSON value of at most MaxBodyBytes into v, refusing
// unknown fields and trailing data. The body is read whole into a pooled
// buffer first; a sale request in the form handhelds send is decoded
// without reflection (decodeSaleRequest), anything else by encoding/json.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) error {
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	e := getEncoder() // for its buffer
	defer putEncoder(e)
	_, err := e.buf.ReadFrom(r.Body)
	if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
		return onboard.Errorf(onboard.CodeTooLarge, "request body over the limit of %d bytes", s.cfg.MaxBodyBytes)
	}
	if err == nil {
		if sr, ok := v.(*onboard.SaleRequest); ok {
			if decodeSaleRequest(e.buf.Bytes(), sr) {
				return nil
			}
			*sr = onboard.SaleRequest{}
		}
		err = decodeStrict(e.buf.Bytes(), v)
	}
	if err != nil {
		return onboard.ReasonErrorf(onboard.CodeInvalid, protocol.ReasonMalformed, "request body: %v", err)
	}
	return nil
}

// decodeStrict decodes the one JSON value in b into v, refusing unknown
// fields and trailing data.
func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		var extra json.RawMessage
		switch err = dec.Decode(&extra); {
		case err == io.EOF:
			err = nil
		case err == nil:
			err = errors.New("data after the JSON value")
		}
	}
	return err
}

// writeJSON answers with v in JSON and a newline, encoded into a pooled
// buffer and written at once.
func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	e := getEncoder()
	defer putEncoder(e)
	if err := e.encode(v); err != nil {
		s.log.Error("encode response", "err", err)
		http.Error(w, `{"error":{"code":"internal","message":"internal error"}}`, http.StatusInternalServerError)
		return
	}
	w.Header()["Content-Type"] = jsonContentType
	w.WriteHeader(status)
	w.Write(e.buf.Bytes())
}

// encode writes v into the buffer as json.Marshal does, and a newline. The
// sale endpoint's answer is written without reflection (appendDecision).
func (e *encoder) encode(v any) error {
	if d, ok := v.(onboard.Decision); ok {
		if b, ok := appendDecision(e.buf.AvailableBuffer(), &d); ok {
			e.buf.Write(append(b, '\n'))
			return nil
		}
	}
	return e.enc.Encode(v)
}

// encoder is a response buffer with a JSON encoder writing into it.
type encoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

// maxPooledBytes bounds the buffers kept for reuse: a rare large answer
// (a status, a catalog) does not pin its buffer.
const maxPooledBytes = 16 << 10

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.buf)
	return e
}}

func getEncoder() *encoder { return encoders.Get().(*encoder) }

func putEncoder(e *encoder) {
	if e.buf.Cap() > maxPooledBytes {
		return
	}
	e.buf.Reset()
	encoders.Put(e)
}

// writeError writes err as an ErrorBody with the status of its code. An
// error that is not an *onboard.Error is logged and shown as "internal
// error".
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := onboard.PublicError(err)
	status := statusOf(e.Code)
	if e.Code == onboard.CodeInternal {
		s.log.Error("internal error", "method", r.Method, "path", r.URL.Path, "err", err)
	} else {
		s.log.Debug("request refused", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	s.writeJSON(w, status, ErrorBody{Error: e})
}

// statusOf is the one place error codes become HTTP statuses.
func statusOf(c onboard.Code) int {
	switch c {
	case onboard.CodeInvalid:
		return http.StatusBadRequest
	case onboard.CodeUnauthorized:
		return http.StatusUnauthorized
	case onboard.CodeForbidden:
		return http.StatusForbidden
	case onboard.CodeNotFound:
		return http.StatusNotFound
	case onboard.CodeConflict:
		return http.StatusConflict
	case onboard.CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case onboard.CodeRateLimited:
		return http.StatusTooManyRequests
	case onboard.CodeUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// String describes the server for logs.
func (s *Server) String() string {
	id := s.cabin.Identity()
	return fmt.Sprintf("handheld API for %s on %s", id.Flight, id.Aircraft)
}
