package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
)

// fakeJournal fails its commits when fail is set; the rest of the Journal
// interface is not used here.
type fakeJournal struct {
	onboard.Journal
	fail bool
}

func (j *fakeJournal) Commit(context.Context, onboard.Batch) error {
	if j.fail {
		return errors.New("disk full")
	}
	return nil
}

func TestJournalCommits(t *testing.T) {
	m := New(nil)
	fj := &fakeJournal{}
	j := m.Journal(fj)
	if err := j.Commit(context.Background(), onboard.Batch{Invoices: make([]onboard.Entry, 3)}); err != nil {
		t.Fatal(err)
	}
	fj.fail = true
	if err := j.Commit(context.Background(), onboard.Batch{Invoices: make([]onboard.Entry, 2)}); err == nil {
		t.Fatal("the journal's error was swallowed")
	}
	text := scrape(t, m.Wrap(http.NotFoundHandler(), "/v1/sales"))
	for _, want := range []string{"airtab_cabin_journal_commit_failures_total 1",
		"airtab_cabin_group_commit_invoices_sum 3", "airtab_cabin_group_commit_invoices_count 1",
		"airtab_cabin_journal_commit_seconds_count 1"} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestSaleDecisionsAndLatency(t *testing.T) {
	m := New(nil)
	m.SaleDecided(0)
	m.SaleDecided(0)
	m.SaleDecided(protocol.ReasonOverPassengerLimit)
	sales := 0
	h := m.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { sales++ }), "/v1/sales")
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(method, "/v1/sales", nil))
	}
	if sales != 2 {
		t.Fatalf("the wrapped handler served %d requests, want 2", sales)
	}
	text := scrape(t, h)
	for _, want := range []string{
		`airtab_cabin_sales_decided_total{decision="approved",reason="none"} 2`,
		`airtab_cabin_sales_decided_total{decision="declined",reason="over_passenger_limit"} 1`,
		`airtab_cabin_authorize_seconds_count 1`, // the POST only
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, "airtab_cabin_journal_invoices") {
		t.Error("status gauges present with no cabin attached")
	}
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, Path, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: %d", Path, rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}
