// Package opsmetrics is the ground service's metrics for operators, in the
// Prometheus text format at /metrics: clearing throughput and batch time
// (from clearing's Observer), charges by outcome, quarantines and rejects by
// reason, and, read when scraped, the clearing consumer's lag, open
// collections, passengers in arrears and the ledger check's status. Every
// metric's unit is in its name and help; README.md's "Metrics" section
// lists them all.
package opsmetrics

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/protocol"
)

// Config configures Metrics. DB is required.
type Config struct {
	// DB is the ground database, read when scraped.
	DB *sql.DB
	// JS is JetStream, for the clearing consumer's pending counts. When
	// nil those gauges are absent.
	JS jetstream.JetStream
	// Consumer is the clearing consumer's durable name. Default
	// "airtab-clearing" (clearing's default).
	Consumer string
	// LedgerCheckEvery is how often a scrape may run the full ledger check
	// (ledger.Check reads every row, on the database's one connection);
	// scrapes in between report the last result. Default 5 minutes.
	LedgerCheckEvery time.Duration
	// ScrapeTimeout bounds the queries of one scrape. Default 5 s.
	ScrapeTimeout time.Duration
	// Logger receives failed scrape queries. Default slog.Default().
	Logger *slog.Logger
}

// Metrics holds the ground's metrics and serves them. It implements
// clearing.Observer.
type Metrics struct {
	cfg Config
	reg *prometheus.Registry

	batches     prometheus.Histogram
	messages    *prometheus.CounterVec
	quarantined *prometheus.CounterVec
	rejected    *prometheus.CounterVec
	charges     *prometheus.CounterVec

	checkMu   sync.Mutex
	checkAt   time.Time
	checkOK   bool
	checkTook time.Duration
	checkRan  bool
}

var _ clearing.Observer = (*Metrics)(nil)

// New builds the metrics and registers them, with the Go runtime's and the
// process's.
func New(cfg Config) *Metrics {
	if cfg.Consumer == "" {
		cfg.Consumer = "airtab-clearing"
	}
	if cfg.LedgerCheckEvery <= 0 {
		cfg.LedgerCheckEvery = 5 * time.Minute
	}
	if cfg.ScrapeTimeout <= 0 {
		cfg.ScrapeTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m := &Metrics{cfg: cfg, reg: prometheus.NewRegistry()}
	m.batches = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "airtab_ground_clearing_batch_seconds",
		Help:    "Time to clear one batch of invoice messages (ledger commit, charges, receipts), in seconds.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	m.messages = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airtab_ground_clearing_messages_total",
		Help: "Invoice-stream messages cleared, in messages, by outcome (invoice, close, quarantined, rejected, redelivered).",
	}, []string{"outcome"})
	m.quarantined = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airtab_ground_quarantined_invoices_total",
		Help: "Invoices kept as quarantined or disputed records, never charged, in invoices, by reason code (protocol.Reason).",
	}, []string{"reason_code"})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airtab_ground_rejected_messages_total",
		Help: "Messages not authenticated or conflicting with a stored invoice, kept as rejects, in messages, by reason code (protocol.Reason).",
	}, []string{"reason_code"})
	m.charges = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "airtab_ground_charges_total",
		Help: "Charge-side jobs recorded, in jobs, by kind (capture, wallet charge, refund, void) and outcome (settled, declined, pending, refunded, skipped).",
	}, []string{"kind", "outcome"})
	for _, o := range []string{"invoice", "close", "quarantined", "rejected", "redelivered"} {
		m.messages.WithLabelValues(o)
	}
	m.reg.MustRegister(m.batches, m.messages, m.quarantined, m.rejected, m.charges, (*scraped)(m),
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(m.cfg.Logger.Handler(), slog.LevelWarn)})
}

// Registry is the metrics' registry, for tests that gather directly.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// BatchCleared counts a cleared batch (clearing.Observer).
func (m *Metrics) BatchCleared(messages int, took time.Duration, o clearing.BatchOutcomes) {
	m.batches.Observe(took.Seconds())
	m.messages.WithLabelValues("invoice").Add(float64(o.Invoices))
	m.messages.WithLabelValues("close").Add(float64(o.Closes))
	m.messages.WithLabelValues("redelivered").Add(float64(o.Redelivered))
	for r, n := range o.Quarantined {
		m.messages.WithLabelValues("quarantined").Add(float64(n))
		m.quarantined.WithLabelValues(reasonLabel(r)).Add(float64(n))
	}
	for r, n := range o.Rejected {
		m.messages.WithLabelValues("rejected").Add(float64(n))
		m.rejected.WithLabelValues(reasonLabel(r)).Add(float64(n))
	}
}

// ChargeRecorded counts a charge job's outcome (clearing.Observer).
func (m *Metrics) ChargeRecorded(kind, outcome string) {
	m.charges.WithLabelValues(kind, outcome).Inc()
}

// reasonLabel is a reason's stable number (protocol.Reason, SPEC.md's
// table): numbers are append-only, texts may be reworded.
func reasonLabel(r protocol.Reason) string { return strconv.Itoa(int(r)) }

// scraped is the collector of what is read when Prometheus scrapes.
type scraped Metrics

var (
	descPending = prometheus.NewDesc("airtab_ground_clearing_consumer_pending_messages",
		"Invoice-stream messages not yet delivered to clearing (JetStream consumer pending): clearing's lag, in messages.", nil, nil)
	descAckPending = prometheus.NewDesc("airtab_ground_clearing_consumer_ack_pending_messages",
		"Invoice-stream messages delivered to clearing and not yet acknowledged, in messages.", nil, nil)
	descCollections = prometheus.NewDesc("airtab_ground_collections_open_invoices",
		"Sales in collections or with a charge of unknown outcome, in invoices, by currency.", []string{"currency"}, nil)
	descCollectionsMinor = prometheus.NewDesc("airtab_ground_collections_open_minor_units",
		"Amount of the sales in collections or with a charge of unknown outcome, in minor units of the currency (cents for EUR), by currency.", []string{"currency"}, nil)
	descArrears = prometheus.NewDesc("airtab_ground_arrears_passengers",
		"Passengers with open arrears, deny-listed until they pay, in passengers.", nil, nil)
	descCheckOK = prometheus.NewDesc("airtab_ground_ledger_check_ok",
		"1 when the last full ledger check found every invariant held, 0 when it found a broken one or could not run (boolean).", nil, nil)
	descCheckAt = prometheus.NewDesc("airtab_ground_ledger_check_timestamp_seconds",
		"When the last full ledger check ran, in Unix seconds.", nil, nil)
	descCheckTook = prometheus.NewDesc("airtab_ground_ledger_check_duration_seconds",
		"How long the last full ledger check took, in seconds.", nil, nil)
	descScrapeErrors = prometheus.NewDesc("airtab_ground_scrape_errors",
		"Queries of this scrape that failed (their gauges are missing), in queries.", nil, nil)
)

// Describe sends the descriptions of the scraped metrics.
func (s *scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPending, descAckPending, descCollections, descCollectionsMinor, descArrears,
		descCheckOK, descCheckAt, descCheckTook, descScrapeErrors} {
		ch <- d
	}
}

// Collect reads the consumer, the collections, the arrears and the ledger
// check.
func (s *scraped) Collect(ch chan<- prometheus.Metric) {
	m := (*Metrics)(s)
	ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ScrapeTimeout)
	defer cancel()
	var failed int
	fail := func(what string, err error) {
		failed++
		m.cfg.Logger.Warn("metrics scrape query failed", "what", what, "err", err)
	}
	if m.cfg.JS != nil {
		if info, err := m.consumerInfo(ctx); err != nil {
			fail("clearing consumer", err)
		} else {
			ch <- prometheus.MustNewConstMetric(descPending, prometheus.GaugeValue, float64(info.NumPending))
			ch <- prometheus.MustNewConstMetric(descAckPending, prometheus.GaugeValue, float64(info.NumAckPending))
		}
	}
	if err := m.collections(ctx, ch); err != nil {
		fail("collections", err)
	}
	var n int64
	if err := m.cfg.DB.QueryRowContext(ctx, `SELECT COUNT(DISTINCT passenger) FROM registry_arrears WHERE cleared_at IS NULL`).Scan(&n); err != nil {
		fail("arrears", err)
	} else {
		ch <- prometheus.MustNewConstMetric(descArrears, prometheus.GaugeValue, float64(n))
	}
	ok, at, took, ran := m.ledgerCheck(ctx)
	if ran {
		ch <- prometheus.MustNewConstMetric(descCheckOK, prometheus.GaugeValue, boolValue(ok))
		ch <- prometheus.MustNewConstMetric(descCheckAt, prometheus.GaugeValue, float64(at.UnixNano())/1e9)
		ch <- prometheus.MustNewConstMetric(descCheckTook, prometheus.GaugeValue, took.Seconds())
	}
	ch <- prometheus.MustNewConstMetric(descScrapeErrors, prometheus.GaugeValue, float64(failed))
}

func (m *Metrics) consumerInfo(ctx context.Context) (*jetstream.ConsumerInfo, error) {
	c, err := m.cfg.JS.Consumer(ctx, protocol.StreamInvoices, m.cfg.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return &jetstream.ConsumerInfo{}, nil // clearing has not started yet
	}
	if err != nil {
		return nil, err
	}
	return c.Info(ctx)
}

// collections sums the open collections per currency. The partial index on
// collections_at holds only sales that ever went to collections.
func (m *Metrics) collections(ctx context.Context, ch chan<- prometheus.Metric) error {
	rows, err := m.cfg.DB.QueryContext(ctx, `SELECT currency, COUNT(*), SUM(amount) FROM clearing_invoices
		WHERE collections_at IS NOT NULL AND kind = 1 AND status IN (?, ?) GROUP BY currency`,
		string(clearing.StatusCollections), string(clearing.StatusPendingRetry))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var cur string
		var count, minor int64
		if err := rows.Scan(&cur, &count, &minor); err != nil {
			return err
		}
		ch <- prometheus.MustNewConstMetric(descCollections, prometheus.GaugeValue, float64(count), cur)
		ch <- prometheus.MustNewConstMetric(descCollectionsMinor, prometheus.GaugeValue, float64(minor), cur)
	}
	return rows.Err()
}

// ledgerCheck runs ledger.Check when the last run is LedgerCheckEvery old,
// and returns the latest result.
func (m *Metrics) ledgerCheck(ctx context.Context) (ok bool, at time.Time, took time.Duration, ran bool) {
	m.checkMu.Lock()
	defer m.checkMu.Unlock()
	if !m.checkRan || time.Since(m.checkAt) >= m.cfg.LedgerCheckEvery {
		start := time.Now()
		err := ledger.Check(ctx, m.cfg.DB)
		if err != nil {
			m.cfg.Logger.Error("ledger check failed", "err", err)
		}
		m.checkAt, m.checkTook, m.checkOK, m.checkRan = start, time.Since(start), err == nil, true
	}
	return m.checkOK, m.checkAt, m.checkTook, m.checkRan
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// String is for logs.
func (m *Metrics) String() string { return fmt.Sprintf("ground metrics (consumer %s)", m.cfg.Consumer) }
