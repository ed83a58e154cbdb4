package httpapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAppMounted checks that Config.App gets every path outside the API,
// and that unknown API paths still answer the API's JSON 404.
func TestAppMounted(t *testing.T) {
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("app " + r.URL.Path)) })
	for _, tc := range []struct {
		name, path string
		withApp    bool
		status     int
		body       string
	}{
		{"AppRoot", "/", true, 200, "app /"},
		{"AppFile", "/js/main.js", true, 200, "app /js/main.js"},
		{"ErrUnknownAPI", "/v1/nope", true, 404, `"code":"not_found"`},
		{"Health", "/healthz", true, 200, `{"ok":true}`},
		{"ErrNoApp", "/", false, 404, `"code":"not_found"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{}
			if tc.withApp {
				cfg.App = app
			}
			s := New(cfg)
			w := httptest.NewRecorder()
			s.ServeHTTP(w, httptest.NewRequest("GET", tc.path, nil))
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.body) {
				t.Fatalf("GET %s = %d %q, want %d with %q", tc.path, w.Code, w.Body.String(), tc.status, tc.body)
			}
		})
	}
}
