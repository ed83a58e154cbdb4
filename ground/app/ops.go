package app

import (
	"net/http"

	"github.com/airtab/airtab/ground/backoffice"
	"github.com/airtab/airtab/ground/opsmetrics"
	"github.com/airtab/airtab/ground/ratelimit"
)

// withOps puts the operators' and the back office's endpoints beside the
// API: /metrics (Prometheus text format, no authentication: expose it to
// the monitoring network only) and the back-office web app at /backoffice/,
// signed in with the same token as the API's back-office endpoints and
// limited on wrong tokens by the same signIns.
func (m *Main) withOps(api http.Handler, token string, signIns *ratelimit.SignInLimit) (http.Handler, error) {
	var (
		retrier  backoffice.Retrier
		outcomes backoffice.FlightOutcomes
		disputes backoffice.DisputeResolver
	)
	if m.clearing != nil { // not a typed nil in the interfaces
		retrier, outcomes, disputes = m.clearing, m.clearing, m.clearing
	}
	bo, err := backoffice.New(backoffice.Config{Token: token, Registry: m.reg, DB: m.db, Retrier: retrier,
		Outcomes: outcomes, Disputes: disputes, Clock: m.Config.Clock, Logger: m.log, SignIns: signIns, Metrics: m.metrics.Registry()})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.metrics.Handler())
	mux.Handle(backoffice.Prefix, bo)
	mux.Handle("/", api)
	return mux, nil
}

// Metrics returns the ground's metrics once Run has returned.
func (m *Main) Metrics() *opsmetrics.Metrics { return m.metrics }
