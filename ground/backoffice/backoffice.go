// Package backoffice is the airline back office's web app, served by ground
// at /backoffice/: server-rendered pages (html/template) over the same
// report, ledger and registry functions the JSON API and the `ground report`
// command use, so every number on a page is the report's number.
//
// Screens (GET unless noted; every POST carries the session's CSRF token):
//
//	/backoffice/signin                 sign in with the back-office token (POST)
//	/backoffice/signout                sign out (POST)
//	/backoffice/flights                one row per flight, refreshed by polling
//	/backoffice/flights/rows           the table body alone, for the poll
//	/backoffice/flights/{flight}       reconciliation to the cent, gaps, breaks,
//	                                   quarantine reasons, every invoice
//	/backoffice/flights/{flight}.csv   the report's CSV (clearing.FlightReport.WriteCSV)
//	/backoffice/flights/{flight}.json  the report's JSON (clearing.FlightReport.WriteJSON)
//	/backoffice/flights/{flight}/dispute  charge or void a disputed sale, with a note (POST)
//	/backoffice/collections            open arrears: who owes what since when
//	/backoffice/collections/retry      retry a passenger's charges now (POST)
//	/backoffice/settlement?date=D      settlement per day and currency, charts
//	/backoffice/settlement/{date}.csv  the day's settlement CSV (and .json)
//	/backoffice/setup                  aircraft, flights, crew, manifests, revocation
//	/backoffice/setup/{what}           the set-up forms (POST)
//	/backoffice/static/…               CSS and the small JS modules, embedded
//
// Security: the token is exchanged for a random session id in an HttpOnly,
// SameSite=Strict cookie (Secure when the request came over TLS) that
// expires after Config.SessionTTL; each session has its own CSRF token,
// checked on every POST; every response carries the headers set in
// security.go, a strict Content-Security-Policy among them. Wrong tokens
// are limited per client address and in all (Config.SignIns, shared with
// the API's bearer token): past the limit the sign-in answers 429 with
// Retry-After without looking at the token, and the token is compared in
// constant time.
package backoffice

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/ratelimit"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// Prefix is the path the back office is mounted at.
const Prefix = "/backoffice/"

// MinTokenLen is the shortest back-office token accepted, in bytes (the
// API's rule).
const MinTokenLen = 16

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Retrier makes a passenger's charges in collections due now and runs the
// retry round; clearing.Service implements it.
type Retrier interface {
	RetryPassenger(ctx context.Context, passenger protocol.ID) error
	RetryCollections(ctx context.Context) (clearing.RetryStats, error)
}

// DisputeResolver ends a disputed sale: charged down the normal sale path
// or voided, with a note; clearing.Service implements it.
type DisputeResolver interface {
	ResolveDispute(ctx context.Context, invoice protocol.ID, charge bool, note string) (clearing.InvoiceRecord, error)
}

// FlightOutcomes says whether a flight has closed and reconciled;
// clearing.Service implements it. A closed flight's catalog and caps can no
// longer change.
type FlightOutcomes interface {
	FlightOutcome(ctx context.Context, f protocol.FlightID) (closed, reconciled bool, err error)
}

// Config configures a Server. Token, Registry and DB are required.
type Config struct {
	// Token is the back-office token a person signs in with, at least
	// MinTokenLen bytes.
	Token string
	// Registry holds aircraft, flights, crews, credentials and arrears.
	Registry *registry.Registry
	// DB is the ground database, which the reports read
	// (clearing.Reports, clearing.LookupInvoice).
	DB *sql.DB
	// Retrier retries charges from the collections screen. When nil, the
	// screen shows no retry button.
	Retrier Retrier
	// Disputes resolves disputed sales from the flight page. When nil, the
	// page shows no dispute buttons.
	Disputes DisputeResolver
	// Outcomes tells the set-up screen whether a flight has closed. When
	// nil, a registered flight cannot be changed from here.
	Outcomes FlightOutcomes
	// Clock is the time sessions expire by and reports are stamped with.
	// Default time.Now.
	Clock func() time.Time
	// Rand is the source of session ids and CSRF tokens. Default
	// crypto/rand.
	Rand io.Reader
	// Logger receives internal errors. Default slog.Default().
	Logger *slog.Logger
	// SessionTTL is how long a session lasts after sign-in. Default 8 h.
	SessionTTL time.Duration
	// MaxSessions bounds the live sessions; the oldest is dropped beyond
	// it. Default 256.
	MaxSessions int
	// PollSeconds is how often the flights list refreshes itself, in
	// seconds. Default 5.
	PollSeconds int
	// MaxFlights bounds the flights listed, newest first. Default 200.
	MaxFlights int
	// SignIns bounds the wrong tokens the sign-in takes, per client
	// address and across all addresses (ratelimit.SignInLimit): past a
	// limit the sign-in answers 429 with Retry-After without looking at
	// the token, and a right token is never counted. Ground passes the one
	// its API's bearer token is limited by, so guesses through either
	// count against the same allowance. Default: one of the back office's
	// own, with ratelimit.SignInConfig's defaults (10 wrong tokens a
	// minute per address, 60 in all), its counter registered on Metrics.
	SignIns *ratelimit.SignInLimit
	// Metrics is where the back office registers its counter of sign-in
	// attempts, airtab_ground_backoffice_signins_total{door,outcome}, when
	// it makes its own SignIns (whoever makes a shared one registers it).
	// When nil the counter is kept but not exposed.
	Metrics prometheus.Registerer
}

// Server is the back office as an http.Handler, to mount at Prefix.
type Server struct {
	cfg      Config
	token    [sha256.Size]byte
	reports  clearing.Reports
	reg      *registry.Registry
	log      *slog.Logger
	sessions *sessionStore
	pages    map[string]*template.Template
	mux      *http.ServeMux
	rows     rowsCache
	signIns  *ratelimit.SignInLimit // wrong sign-in tokens, by client address and in all
}

// New checks cfg and builds the server.
func New(cfg Config) (*Server, error) {
	switch {
	case len(cfg.Token) < MinTokenLen:
		return nil, fmt.Errorf("backoffice: Config.Token is required, at least %d bytes", MinTokenLen)
	case cfg.Registry == nil:
		return nil, errors.New("backoffice: Config.Registry is required")
	case cfg.DB == nil:
		return nil, errors.New("backoffice: Config.DB is required")
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.MaxSessions <= 0 {
		cfg.MaxSessions = 256
	}
	if cfg.PollSeconds <= 0 {
		cfg.PollSeconds = 5
	}
	if cfg.MaxFlights <= 0 {
		cfg.MaxFlights = 200
	}
	if cfg.SignIns == nil {
		l, err := ratelimit.NewSignInLimit(ratelimit.SignInConfig{Metrics: cfg.Metrics})
		if err != nil {
			return nil, fmt.Errorf("backoffice: %w", err)
		}
		cfg.SignIns = l
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:      cfg,
		token:    sha256.Sum256([]byte(cfg.Token)),
		reports:  clearing.Reports{DB: cfg.DB, Clock: cfg.Clock, Logger: cfg.Logger},
		reg:      cfg.Registry,
		log:      cfg.Logger,
		sessions: newSessionStore(cfg.MaxSessions, cfg.Rand),
		pages:    pages,
		mux:      http.NewServeMux(),
		signIns:  cfg.SignIns,
	}
	s.routes()
	return s, nil
}

// ServeHTTP serves the back office, every response with the security
// headers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setSecurityHeaders(w)
	s.mux.ServeHTTP(w, r)
}

func (s *Server) routes() {
	static, _ := fs.Sub(staticFS, "static")
	s.mux.Handle("GET "+Prefix+"static/", http.StripPrefix(Prefix+"static/", staticHandler(static)))
	s.mux.HandleFunc("GET "+Prefix+"signin", s.signInPage)
	s.mux.HandleFunc("POST "+Prefix+"signin", s.signIn)
	s.mux.HandleFunc("POST "+Prefix+"signout", s.authed(s.signOut))
	s.mux.HandleFunc("GET "+Prefix+"{$}", s.authed(func(w http.ResponseWriter, r *http.Request, _ *session) {
		http.Redirect(w, r, Prefix+"flights", http.StatusSeeOther)
	}))
	s.mux.HandleFunc("GET "+Prefix+"flights", s.authed(s.flightsPage))
	s.mux.HandleFunc("GET "+Prefix+"flights/rows", s.authed(s.flightRows))
	s.mux.HandleFunc("GET "+Prefix+"flights/{flight}", s.authed(s.flightPage))
	s.mux.HandleFunc("POST "+Prefix+"flights/{flight}/dispute", s.authed(s.resolveDispute))
	s.mux.HandleFunc("GET "+Prefix+"collections", s.authed(s.collectionsPage))
	s.mux.HandleFunc("POST "+Prefix+"collections/retry", s.authed(s.retry))
	s.mux.HandleFunc("GET "+Prefix+"settlement", s.authed(s.settlementPage))
	s.mux.HandleFunc("GET "+Prefix+"settlement/{day}", s.authed(s.settlementDownload))
	s.mux.HandleFunc("GET "+Prefix+"setup", s.authed(s.setupPage))
	s.mux.HandleFunc("POST "+Prefix+"setup/{what}", s.authed(s.setupPost))
	s.mux.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, nil, http.StatusNotFound, "No such page: "+r.URL.Path)
	})
}

func staticHandler(files fs.FS) http.Handler {
	fsrv := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		fsrv.ServeHTTP(w, r)
	})
}

func (s *Server) now() time.Time { return s.cfg.Clock().UTC() }
