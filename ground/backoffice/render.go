package backoffice

import (
	"bytes"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/airtab/airtab/protocol"
)

// pageNames are the screens; each is templates/<name>.html inside
// templates/layout.html.
var pageNames = []string{"signin", "error", "flights", "flight", "collections", "settlement", "setup"}

// funcs are the templates' helpers. Money is always shown with
// protocol.Money.String, the form the report and the CLI use.
var funcs = template.FuncMap{
	"money": func(m protocol.Money) string {
		if m.Currency == "" {
			return "—"
		}
		return m.String()
	},
	"moneys": func(ms []protocol.Money) string {
		if len(ms) == 0 {
			return "—"
		}
		parts := make([]string, len(ms))
		for i, m := range ms {
			parts[i] = m.String()
		}
		return strings.Join(parts, ", ")
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "—"
		}
		return t.UTC().Format("2006-01-02 15:04:05Z")
	},
	"day": func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"id": func(id protocol.ID) string {
		if id.IsZero() {
			return ""
		}
		return id.String()
	},
	"short": func(id protocol.ID) string {
		if id.IsZero() {
			return "—"
		}
		return id.String()[:12] + "…"
	},
	"hash": func(h protocol.Hash) string {
		if h.IsZero() {
			return "—"
		}
		return h.String()[:16] + "…"
	},
	"pct": func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) },
}

func parsePages() (map[string]*template.Template, error) {
	pages := make(map[string]*template.Template, len(pageNames))
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/charts.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("backoffice: template %s: %w", name, err)
		}
		pages[name] = t
	}
	return pages, nil
}

// view is what the layout gets: the page's data in Data.
type view struct {
	Title    string
	Nav      string // the screen highlighted in the navigation
	SignedIn bool
	CSRF     string
	Flash    string // the outcome of the last form, for a person
	Data     any
}

// render writes a page. Rendering into a buffer first means a template
// error becomes a clean 500, not half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, sess *session, data any) {
	v := view{Title: titles[name], Nav: name, Data: data, Flash: r.URL.Query().Get("done")}
	if len(v.Flash) > 200 {
		v.Flash = v.Flash[:200]
	}
	if sess != nil {
		v.SignedIn, v.CSRF = true, sess.csrf
	}
	var buf bytes.Buffer
	if err := s.pages[name].Execute(&buf, v); err != nil {
		s.log.Error("back-office page failed", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

var titles = map[string]string{
	"signin": "Sign in", "error": "Error", "flights": "Flights", "flight": "Flight",
	"collections": "Collections", "settlement": "Settlement", "setup": "Set-up",
}

// fail shows an error page. An internal error (err set) is logged and shown
// as "internal error"; msg is for a person.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, sess *session, status int, msg string, errs ...error) {
	for _, err := range errs {
		if err != nil {
			s.log.Error("back-office request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		}
	}
	if msg == "" {
		msg = "Internal error; the details are in the ground service's log."
	}
	s.render(w, r, status, "error", sess, map[string]any{"Status": status, "Message": msg})
}
