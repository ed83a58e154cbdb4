package backoffice_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/protocol"
)

// TestDisputeForm: the flight page's dispute form is a CSRF-checked POST
// that names the invoice and the decision; the charge and void paths
// themselves are clearing's tests (TestResolveDispute).
func TestDisputeForm(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)}
	_, base := startGround(t, clk)
	c := browser(t)
	csrf := signIn(t, c, base)
	u := base + "/backoffice/flights/XX123-2026-11-21/dispute"
	form := func(csrf, invoice, decision string) url.Values {
		return url.Values{"csrf": {csrf}, "invoice": {invoice}, "decision": {decision}, "note": {"checked with the crew"}}
	}
	unknown := protocol.NewID(nil).String()

	t.Run("ErrWithoutCSRF", func(t *testing.T) {
		res, body := post(t, c, u, form("", unknown, "charge"), base)
		if got, want := res.StatusCode, http.StatusForbidden; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		if !strings.Contains(body, "security token") {
			t.Errorf("page does not say why:\n%s", body)
		}
	})
	t.Run("ErrFromAnotherOrigin", func(t *testing.T) {
		if res, _ := post(t, c, u, form(csrf, unknown, "charge"), "http://evil.example"); res.StatusCode != http.StatusForbidden {
			t.Fatalf("status = %d, want 403", res.StatusCode)
		}
	})
	t.Run("ErrBadDecision", func(t *testing.T) {
		res, body := post(t, c, u, form(csrf, unknown, "maybe"), base)
		if got, want := res.StatusCode, http.StatusBadRequest; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		if !strings.Contains(body, "charge or void") {
			t.Errorf("page does not name the choices:\n%s", body)
		}
	})
	t.Run("ErrUnknownInvoice", func(t *testing.T) {
		res, body := post(t, c, u, form(csrf, unknown, "void"), base)
		if got, want := res.StatusCode, http.StatusNotFound; got != want {
			t.Fatalf("status = %d, want %d", got, want)
		}
		if !strings.Contains(body, unknown) {
			t.Errorf("page does not name the invoice:\n%s", body)
		}
	})
}
