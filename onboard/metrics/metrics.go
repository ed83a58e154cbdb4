// Package metrics is the cabin server's metrics for operators, in the
// Prometheus text format at /metrics: sale decisions by reason (from the
// cabin's Observer), the authorization latency (measured around the
// handheld API's sale endpoint), group-commit batch sizes and journal commit
// time (measured around the journal), and, read from the cabin's status
// when scraped, the journal's pending, sent and cleared invoices, the link
// state, the replay's progress and the manifest's age. Every metric's unit
// is in its name and help; README.md's "Metrics" section lists them all.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
)

// Path is where the metrics are served.
const Path = "/metrics"

// Metrics holds one cabin server's metrics. It implements onboard.Observer.
// Several cabin servers in one process (the simulator) each have their own.
type Metrics struct {
	reg   *prometheus.Registry
	cabin atomic.Pointer[onboard.Cabin]
	log   *slog.Logger

	decided      *prometheus.CounterVec
	approved     prometheus.Counter // decided's approved series, looked up once
	authorize    prometheus.Histogram
	batch        prometheus.Histogram
	commit       prometheus.Histogram
	commitFailed prometheus.Counter
}

var _ onboard.Observer = (*Metrics)(nil)

// New builds the metrics, with the Go runtime's and the process's. Attach
// the cabin once it is open, for the metrics read from its status.
func New(log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: log}
	m.decided = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airtab_cabin_sales_decided_total",
		Help: "Sales decided by the cabin server, in sales, by decision (approved, declined) and reason (none for an approval).",
	}, []string{"decision", "reason"})
	m.approved = m.decided.WithLabelValues("approved", "none")
	m.authorize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "airtab_cabin_authorize_seconds",
		Help:    "Time from a handheld's sale request arriving to its answer (approval only after fsync), in seconds.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	})
	m.batch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "airtab_cabin_group_commit_invoices",
		Help:    "Invoices written by one group commit (one journal transaction, one fsync), in invoices.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10),
	})
	m.commit = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "airtab_cabin_journal_commit_seconds",
		Help:    "Time of one group commit's journal transaction, writes and fsync, in seconds.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	m.commitFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "airtab_cabin_journal_commit_failures_total",
		Help: "Group commits whose journal transaction failed and was rolled back (nobody in the batch approved), in commits.",
	})
	m.reg.MustRegister(m.decided, m.authorize, m.batch, m.commit, m.commitFailed, (*scraped)(m),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Attach gives the metrics the cabin whose status they read when scraped.
func (m *Metrics) Attach(c *onboard.Cabin) { m.cabin.Store(c) }

// Registry is the metrics' registry, for tests that gather directly.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.log.Handler(), slog.LevelWarn)})
}

// SaleDecided counts a sale decision (onboard.Observer).
func (m *Metrics) SaleDecided(r protocol.Reason) {
	if r == 0 {
		m.approved.Inc()
		return
	}
	m.decided.WithLabelValues("declined", onboard.ReasonName(r)).Inc()
}

// Journal wraps the cabin's journal so each group commit's size and time
// are measured. Nothing else changes: every call goes to j.
func (m *Metrics) Journal(j onboard.Journal) onboard.Journal { return &timedJournal{Journal: j, m: m} }

type timedJournal struct {
	onboard.Journal
	m *Metrics
}

func (j *timedJournal) Commit(ctx context.Context, b onboard.Batch) error {
	start := time.Now()
	err := j.Journal.Commit(ctx, b)
	if err != nil {
		j.m.commitFailed.Inc()
		return err
	}
	j.m.commit.Observe(time.Since(start).Seconds())
	j.m.batch.Observe(float64(len(b.Invoices)))
	return nil
}

// Wrap serves Path from the metrics and passes everything else to h,
// timing the sale requests (POST salePath).
func (m *Metrics) Wrap(h http.Handler, salePath string) http.Handler {
	metrics := m.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == Path && r.Method == http.MethodGet:
			metrics.ServeHTTP(w, r)
		case r.URL.Path == salePath && r.Method == http.MethodPost:
			start := time.Now()
			h.ServeHTTP(w, r)
			m.authorize.Observe(time.Since(start).Seconds())
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// scraped is the collector of what is read from the cabin's status when
// Prometheus scrapes.
type scraped Metrics

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	descJournal = desc("airtab_cabin_journal_invoices",
		"Invoices in the journal, in invoices, by status: pending (not yet acknowledged by ground's JetStream), sent (no clearing receipt yet), cleared (ground's ledger has it).", "status")
	descLastSeq     = desc("airtab_cabin_last_seq", "Sequence number of the last invoice committed on this flight (a count of invoices).")
	descSalesOpen   = desc("airtab_cabin_sales_open", "1 when a sale could be approved now, 0 when sales are off (boolean).")
	descClosed      = desc("airtab_cabin_flight_closed", "1 once the flight is closed (boolean).")
	descLink        = desc("airtab_cabin_link_up", "1 while the link to ground is up (ground's heartbeats arrive), 0 when down or unknown (boolean).")
	descLinkState   = desc("airtab_cabin_link_state", "1 for the link's current state: up, down or unknown (boolean per state).", "state")
	descManifestAge = desc("airtab_cabin_manifest_age_seconds", "Age of the manifest in use (since ground issued it), in seconds.")
	descManifestTTL = desc("airtab_cabin_manifest_expires_in_seconds", "Time until the manifest in use expires (negative once expired), in seconds.")
	descManifestSer = desc("airtab_cabin_manifest_serial", "Serial number of the manifest in use (a number, no unit).")
	descCreds       = desc("airtab_cabin_manifest_credentials", "Passenger credentials in the manifest in use that verified, in credentials.")
	descDeny        = desc("airtab_cabin_manifest_deny_entries", "Deny-list entries in the manifest in use, in entries.")
	descSent        = desc("airtab_cabin_replay_sent_this_link_invoices", "Invoices published to ground since the link last came up, in invoices.")
	descRate        = desc("airtab_cabin_replay_rate_invoices_per_second", "Replay throughput of the current drain, in invoices per second.")
	descETA         = desc("airtab_cabin_replay_eta_seconds", "Estimated time until every pending invoice is published, in seconds.")
	descBadReceipts = desc("airtab_cabin_replay_receipts_rejected_total", "Clearing receipts refused (bad signature, unknown invoice) since start, in receipts.")
	descCloseOK     = desc("airtab_cabin_replay_close_accepted", "1 once ground accepted the flight-close report (boolean).")
	descHeartbeat   = desc("airtab_cabin_replay_last_heartbeat_timestamp_seconds", "When ground's last heartbeat arrived, in Unix seconds.")
	descStatusErr   = desc("airtab_cabin_status_errors", "1 when this scrape could not read the cabin's status (its gauges are missing), in errors.")
)

// Describe sends the descriptions of the scraped metrics.
func (s *scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descJournal, descLastSeq, descSalesOpen, descClosed, descLink, descLinkState,
		descManifestAge, descManifestTTL, descManifestSer, descCreds, descDeny, descSent, descRate, descETA,
		descBadReceipts, descCloseOK, descHeartbeat, descStatusErr} {
		ch <- d
	}
}

// Collect reads the cabin's status.
func (s *scraped) Collect(ch chan<- prometheus.Metric) {
	c := s.cabin.Load()
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := c.Status(ctx)
	if err != nil {
		s.log.Warn("metrics: cabin status", "err", err)
		ch <- prometheus.MustNewConstMetric(descStatusErr, prometheus.GaugeValue, 1)
		return
	}
	ch <- prometheus.MustNewConstMetric(descStatusErr, prometheus.GaugeValue, 0)
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(descJournal, float64(st.Invoices.Pending), "pending")
	gauge(descJournal, float64(st.Invoices.Sent), "sent")
	gauge(descJournal, float64(st.Invoices.Cleared), "cleared")
	gauge(descLastSeq, float64(st.LastSeq))
	gauge(descSalesOpen, boolValue(st.SalesOpen))
	gauge(descClosed, boolValue(st.Closed))
	gauge(descLink, boolValue(st.Link == onboard.LinkUp))
	for _, l := range []onboard.LinkState{onboard.LinkUp, onboard.LinkDown, onboard.LinkUnknown} {
		gauge(descLinkState, boolValue(st.Link == l), string(l))
	}
	if mf := st.Manifest; mf != nil {
		gauge(descManifestAge, float64(mf.AgeSeconds))
		// The cabin's clock, not this machine's: now is IssuedAt + age.
		gauge(descManifestTTL, mf.ExpiresAt.Sub(mf.IssuedAt).Seconds()-float64(mf.AgeSeconds))
		gauge(descManifestSer, float64(mf.Serial))
		gauge(descCreds, float64(mf.Credentials))
		gauge(descDeny, float64(mf.DenyEntries))
	}
	if rp := st.Replay; rp != nil {
		gauge(descSent, float64(rp.SentThisLink))
		gauge(descRate, rp.RatePerSecond)
		gauge(descETA, rp.ETASeconds)
		counter(descBadReceipts, float64(rp.ReceiptsRejected))
		gauge(descCloseOK, boolValue(rp.CloseAccepted))
		if !rp.LastHeartbeat.IsZero() {
			gauge(descHeartbeat, float64(rp.LastHeartbeat.UnixNano())/1e9)
		}
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
