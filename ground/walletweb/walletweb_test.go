package walletweb

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := New()
	get := func(path string) *http.Response {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Result()
	}
	t.Run("IndexWithSecurityHeaders", func(t *testing.T) {
		res := get("/wallet/")
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `<script type="module" src="js/app.js">`) {
			t.Fatalf("GET /wallet/ = %d\n%s", res.StatusCode, body)
		}
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("CSP %q lacks %q", csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("CSP %q allows inline or eval", csp)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("X-Content-Type-Options = %q", got)
		}
		if strings.Contains(string(body), " style=") || strings.Contains(string(body), "<script>") {
			t.Error("index.html has an inline style or script")
		}
	})
	t.Run("ServiceWorkerVersioned", func(t *testing.T) {
		res := get("/wallet/sw.js")
		body, _ := io.ReadAll(res.Body)
		s := string(body)
		if res.StatusCode != http.StatusOK || !strings.Contains(s, "airtab-wallet-"+h.Version()) || strings.Contains(s, "__FILES__") {
			t.Fatalf("sw.js = %d\n%s", res.StatusCode, s)
		}
		for _, want := range []string{`"./js/app.js"`, `"./js/screens/pay.js"`, `"./vendor/qrcode-generator/qrcode.js"`, `"./vendor/jsqr/jsQR.js"`, `"./"`} {
			if !strings.Contains(s, want) {
				t.Errorf("sw.js does not cache %s", want)
			}
		}
		if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
			t.Errorf("sw.js Content-Type %q", ct)
		}
	})
	t.Run("Manifest", func(t *testing.T) {
		if ct := get("/wallet/manifest.webmanifest").Header.Get("Content-Type"); ct != "application/manifest+json" {
			t.Errorf("manifest Content-Type %q", ct)
		}
	})
	t.Run("NotFound", func(t *testing.T) {
		if res := get("/wallet/nothing.js"); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET /wallet/nothing.js = %d, want 404", res.StatusCode)
		}
	})
	t.Run("PostRefused", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/wallet/", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("POST /wallet/ = %d, want 405", rec.Code)
		}
	})
}
