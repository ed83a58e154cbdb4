package backoffice

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/ground/ratelimit"
)

// ContentSecurityPolicy is the policy of every back-office response: only
// this origin's scripts, styles and images, no inline script or style, no
// framing, forms posting only here.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// setSecurityHeaders sets the headers of every response: the one place
// they are decided.
func setSecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin") // "no-referrer" makes Chromium send "Origin: null" on form posts
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	h.Set("Cache-Control", "no-store")
}

// Cookie names.
const (
	// SessionCookie holds the session id after sign-in.
	SessionCookie = "airtab_backoffice"
	// preCookie holds the sign-in form's CSRF token before there is a
	// session (double submit).
	preCookie = "airtab_backoffice_signin"
	// CSRFField is the form field every POST carries its CSRF token in.
	CSRFField = "csrf"
)

// session is one signed-in person.
type session struct {
	idHash  [sha256.Size]byte
	csrf    string
	created time.Time
	expires time.Time
}

// sessionStore keeps sessions in memory, by the hash of their id (a leak of
// the map reveals no usable cookie), bounded in number.
type sessionStore struct {
	mu   sync.Mutex
	byID map[[sha256.Size]byte]*session
	max  int
	rand io.Reader
}

func newSessionStore(max int, rnd io.Reader) *sessionStore {
	return &sessionStore{byID: make(map[[sha256.Size]byte]*session), max: max, rand: rnd}
}

// randomToken returns 32 random bytes in hex.
func randomToken(rnd io.Reader) (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// create starts a session and returns its id (the cookie value).
func (st *sessionStore) create(now time.Time, ttl time.Duration) (string, *session, error) {
	id, err := randomToken(st.rand)
	if err != nil {
		return "", nil, err
	}
	csrf, err := randomToken(st.rand)
	if err != nil {
		return "", nil, err
	}
	s := &session{idHash: sha256.Sum256([]byte(id)), csrf: csrf, created: now, expires: now.Add(ttl)}
	st.mu.Lock()
	defer st.mu.Unlock()
	for k, old := range st.byID {
		if !now.Before(old.expires) {
			delete(st.byID, k)
		}
	}
	for len(st.byID) >= st.max {
		var oldest *session
		for _, o := range st.byID {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(st.byID, oldest.idHash)
	}
	st.byID[s.idHash] = s
	return id, s, nil
}

// get returns the live session with cookie value id, or nil.
func (st *sessionStore) get(id string, now time.Time) *session {
	if id == "" {
		return nil
	}
	h := sha256.Sum256([]byte(id))
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.byID[h]
	if s == nil {
		return nil
	}
	if !now.Before(s.expires) {
		delete(st.byID, h)
		return nil
	}
	return s
}

func (st *sessionStore) remove(s *session) {
	st.mu.Lock()
	delete(st.byID, s.idHash)
	st.mu.Unlock()
}

// cookie builds a cookie scoped to the back office: HttpOnly,
// SameSite=Strict, Secure when the request came over TLS.
func cookie(r *http.Request, name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: Prefix, MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil}
}

// sameOrigin reports whether a POST's Origin header, when the browser sent
// one, names this host: a second line behind the CSRF token.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		return o == ""
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func tokensEqual(a, b string) bool {
	return len(a) > 0 && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// authed wraps a handler that needs a session: without one, a GET is sent
// to the sign-in page and anything else refused; a POST must carry the
// session's CSRF token and come from this origin.
func (s *Server) authed(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var id string
		if c, err := r.Cookie(SessionCookie); err == nil {
			id = c.Value
		}
		sess := s.sessions.get(id, s.now())
		if sess == nil {
			if r.Method == http.MethodGet && r.URL.Path != Prefix+"flights/rows" {
				http.Redirect(w, r, Prefix+"signin?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			s.fail(w, r, nil, http.StatusUnauthorized, "Not signed in, or the session expired: sign in again.")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
			if !sameOrigin(r) || !tokensEqual(r.PostFormValue(CSRFField), sess.csrf) {
				s.fail(w, r, sess, http.StatusForbidden, "The form's security token is missing or stale: reload the page and try again.")
				return
			}
		}
		h(w, r, sess)
	}
}

// maxFormBytes bounds a form body.
const maxFormBytes = 256 << 10

func (s *Server) signInPage(w http.ResponseWriter, r *http.Request) {
	pre, err := s.preToken(r)
	if err != nil {
		s.fail(w, r, nil, http.StatusInternalServerError, "")
		return
	}
	http.SetCookie(w, cookie(r, preCookie, pre, 600))
	s.render(w, r, http.StatusOK, "signin", nil, map[string]any{"Pre": pre, "Next": safeNext(r.URL.Query().Get("next"))})
}

// preToken returns the sign-in form's token: the one the browser already
// holds, so a page loaded twice (a reload, a second tab) still matches its
// cookie, or a new one.
func (s *Server) preToken(r *http.Request) (string, error) {
	if c, err := r.Cookie(preCookie); err == nil && len(c.Value) == 64 && strings.Trim(c.Value, "0123456789abcdef") == "" {
		return c.Value, nil
	}
	return randomToken(s.cfg.Rand)
}

func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	c, err := r.Cookie(preCookie)
	if err != nil || !sameOrigin(r) || !tokensEqual(r.PostFormValue(CSRFField), c.Value) {
		s.log.Debug("back-office sign-in form refused", "cookie", err == nil, "origin", r.Header.Get("Origin"), "host", r.Host)
		s.fail(w, r, nil, http.StatusForbidden, "The sign-in form's security token is missing or stale: reload the page and try again.")
		return
	}
	addr := ratelimit.ClientAddress(r.RemoteAddr)
	got := sha256.Sum256([]byte(r.PostFormValue("token")))
	right := subtle.ConstantTimeCompare(got[:], s.token[:]) == 1
	now := s.now()
	if limit, retry := s.signIns.Attempt(ratelimit.DoorBackOffice, addr, right, now); limit != ratelimit.NotRefused {
		s.signInLimited(w, r, addr, limit, retry, now)
		return
	}
	if !right {
		s.log.Warn("back-office sign-in refused: wrong token", "remote", r.RemoteAddr, "client", addr)
		s.signInForm(w, r, http.StatusUnauthorized, "That is not the back-office token.")
		return
	}
	id, _, err := s.sessions.create(s.now(), s.cfg.SessionTTL)
	if err != nil {
		s.fail(w, r, nil, http.StatusInternalServerError, "")
		return
	}
	http.SetCookie(w, cookie(r, preCookie, "", -1))
	http.SetCookie(w, cookie(r, SessionCookie, id, int(s.cfg.SessionTTL/time.Second)))
	s.log.Info("back-office sign-in", "remote", r.RemoteAddr)
	http.Redirect(w, r, safeNext(r.PostFormValue("next")), http.StatusSeeOther)
}

// signInLimited answers a sign-in refused by a limit on wrong tokens: 429
// with Retry-After, and the sign-in page saying why and for how long,
// whatever the token was, so nothing here says anything about it. The
// warning is logged as SignInLimit.WarnRefusal allows.
func (s *Server) signInLimited(w http.ResponseWriter, r *http.Request, addr string, limit ratelimit.Refusal, retry time.Duration, now time.Time) {
	secs := ratelimit.RetrySeconds(retry)
	msg := fmt.Sprintf("Too many failed sign-ins from this address. Try again in %d s.", secs)
	which := "address"
	if limit == ratelimit.RefusedGlobal {
		msg = fmt.Sprintf("Too many failed sign-ins to the back office just now, from all addresses together. Try again in %d s. Staff already signed in are not affected.", secs)
		which = "global"
	}
	if warn, unlogged := s.signIns.WarnRefusal(now); warn {
		s.log.Warn("back-office sign-in refused: too many wrong tokens", "limit", which, "remote", r.RemoteAddr, "client", addr, "retry_after_s", secs, "unlogged", unlogged)
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	s.signInForm(w, r, http.StatusTooManyRequests, msg)
}

// signInForm shows the sign-in page again with status and a message, and
// the form's token, so the person can try again from there.
func (s *Server) signInForm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	pre, err := s.preToken(r)
	if err != nil {
		s.fail(w, r, nil, http.StatusInternalServerError, "", err)
		return
	}
	http.SetCookie(w, cookie(r, preCookie, pre, 600))
	s.render(w, r, status, "signin", nil, map[string]any{"Pre": pre, "Next": safeNext(r.PostFormValue("next")), "Error": msg})
}

func (s *Server) signOut(w http.ResponseWriter, r *http.Request, sess *session) {
	s.sessions.remove(sess)
	http.SetCookie(w, cookie(r, SessionCookie, "", -1))
	http.Redirect(w, r, Prefix+"signin", http.StatusSeeOther)
}

// safeNext keeps a post-sign-in redirect inside the back office.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || next == "" || u.IsAbs() || u.Host != "" || len(u.Path) < len(Prefix) || u.Path[:len(Prefix)] != Prefix {
		return Prefix + "flights"
	}
	return u.RequestURI()
}
