// Package clearing is Airtab's ground clearing service: it consumes the
// invoices and flight-close reports aircraft replay to JetStream, verifies
// each one trusting nothing the aircraft says, posts it to the ledger exactly
// once keyed by the invoice id, charges the passenger's funding source,
// publishes a signed clearing receipt back to the aircraft, and reconciles
// every flight for the back office.
//
// Where things are:
//
//	clearing.go     Service, Config, invoice states
//	verify.go       the checks that need no database (signatures, credential, caps)
//	process.go      one batch of messages, from verification to ack
//	charge.go       charging, retries on a schedule, refunds and arrears
//	wallet.go       wallet top-ups and balances (ground.WalletFunder)
//	acquirer.go     the card acquirer interface; simacquirer.go the simulated one
//	nats.go         JetStream streams, the durable consumer, receipt publishing
//	sqlite.go       every SQL statement of clearing
//	report.go       per-flight reconciliation and the daily settlement summary
//	export.go       reports as JSON and CSV; http.go the back-office handler
//
// The state machine of a sale invoice (see Status):
//
//	                ┌─ wallet covers it ───────────────────────────→ settled
//	verified ──→ posted ─ card captured ─────────────────────────→ settled
//	   │            ├─ declined / wallet short ─→ collections ─ retry succeeds ─→ settled
//	   │            └─ acquirer timeout ───→ pending-retry ─ retry (same key) ─→ settled | collections
//	   ├─ fails a check ─→ quarantined (never charged)
//	   └─ both signatures verify, a cabin-server rule fails ─→ disputed (amount kept, not charged)
//	                                    └─ ResolveDispute ─→ posted (charged as above) | voided
//	any of posted, settled, collections, pending-retry ─ void ─→ voided (reversed, refunded)
//
// A void invoice is voided once applied, or void-pending while its sale has
// not arrived (the sale is then posted and reversed at once, never charged).
package clearing

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go/jetstream"
)

// Status is where an invoice is in clearing. Stored as text; stable values.
type Status string

// Invoice statuses.
const (
	// StatusPosted: the sale is in the ledger and its charge is under way.
	// Only a crash (or a failed second commit) leaves a sale here; recovery
	// retries the charge with the same idempotency key.
	StatusPosted Status = "posted"
	// StatusSettled: the sale is paid, from the wallet or by card capture.
	StatusSettled Status = "settled"
	// StatusCollections: the charge was declined (or the wallet was short);
	// the passenger is in arrears and the charge is retried on a schedule.
	StatusCollections Status = "collections"
	// StatusPendingRetry: collections pending retry: the acquirer did not
	// answer, so the outcome is unknown; the capture is retried with the
	// same key and attempt until the acquirer answers. The passenger is not
	// put in arrears for a timeout.
	StatusPendingRetry Status = "pending-retry"
	// StatusVoided: a sale reversed by a void, or a void invoice applied.
	StatusVoided Status = "voided"
	// StatusVoidPending: a void invoice whose sale has not arrived yet.
	StatusVoidPending Status = "void-pending"
	// StatusQuarantined: the invoice failed verification; it is kept with
	// its reason and raw bytes, never charged.
	StatusQuarantined Status = "quarantined"
	// StatusDisputed: a sale that its aircraft signed and the passenger's
	// device authorized (both signatures verify), refused on the ground by
	// a rule the cabin server enforces (the code's counter used before on
	// the credential, the per-sale cap, the flight limit, the credential's
	// currency, its validity window at the code's time). A real authorization, so never treated as a
	// forgery: it is kept with its reason and amount, counted in the
	// report's disputed bucket (the flight does not reconcile), and not
	// charged until the back office decides (ResolveDispute: charged down
	// the normal sale path, or voided). Its receipt says
	// quarantined with the reason: the aircraft's duty ends there.
	StatusDisputed Status = "disputed"
)

// ReceiptStatus maps a status to what the clearing receipt says.
func (s Status) ReceiptStatus() protocol.ClearingStatus {
	switch s {
	case StatusSettled:
		return protocol.StatusSettled
	case StatusCollections, StatusPendingRetry:
		return protocol.StatusCollections
	case StatusVoided, StatusVoidPending:
		return protocol.StatusVoided
	case StatusQuarantined, StatusDisputed:
		return protocol.StatusQuarantined
	}
	return 0
}

// Limits on the configuration.
const (
	// MaxBatchSize bounds Config.BatchSize.
	MaxBatchSize = 1024
	// MaxRetryBatch bounds Config.RetryBatch.
	MaxRetryBatch = 1024
	// maxNakDelay caps the redelivery delay after an infrastructure failure.
	maxNakDelay = time.Minute
)

// Config configures a Service. DB, JS, Directory, IssuerKey and Acquirer are
// required; every other field has a documented default.
type Config struct {
	// DB is the ground database, opened with ground/store.Open (WAL,
	// synchronous=FULL, one connection). New creates the ledger's and
	// clearing's tables in it.
	DB *sql.DB
	// JS is JetStream on the ground's NATS connection.
	JS jetstream.JetStream
	// Directory is the registry. It must be safe for concurrent use.
	// Clearing never calls it while holding a database transaction, so it
	// may share DB's single connection.
	Directory ground.Directory
	// IssuerKey signs clearing receipts (an issuer key).
	IssuerKey crypto.PrivateKey
	// Acquirer captures and refunds card charges (NewSimAcquirer for demos).
	Acquirer Acquirer
	// Clock is the service's time: receipts, ledger timestamps, the retry
	// schedule. Default time.Now.
	Clock func() time.Time
	// Logger receives the service's logs. Default slog.Default().
	Logger *slog.Logger

	// Consumer is the durable JetStream consumer's name. Default
	// "airtab-clearing".
	Consumer string
	// BatchSize is the most messages fetched and committed together (one
	// ledger commit and one fsync per batch). Default 256; at most
	// MaxBatchSize.
	BatchSize int
	// IdleWait is how long one fetch waits for a first message when the
	// stream is drained. Default 1s.
	IdleWait time.Duration
	// AckWait is how long JetStream waits for an ack before redelivering a
	// message. A fetched batch may wait for the one before it, so AckWait
	// must exceed twice BatchTimeout. Default 60s.
	AckWait time.Duration
	// BatchTimeout bounds the processing of one batch, acquirer calls and
	// receipt publishing included. Default 25s.
	BatchTimeout time.Duration
	// NakDelay is the redelivery delay after a failure that is not the
	// invoice's fault (database busy, NATS down), doubled per delivery up
	// to one minute. Default 1s.
	NakDelay time.Duration

	// CaptureTimeout bounds one acquirer call. Default 5s.
	CaptureTimeout time.Duration
	// ChargePhaseTimeout bounds all acquirer calls of one batch; a call
	// that has not answered by then counts as a timeout (pending-retry).
	// Default 10s.
	ChargePhaseTimeout time.Duration
	// ChargeConcurrency is the most acquirer calls in flight. Default 16.
	ChargeConcurrency int
	// PublishTimeout bounds waiting for the receipt publish acks of a
	// batch. Default 10s.
	PublishTimeout time.Duration

	// RetryInterval is how often Run calls RetryCollections. Default 30s.
	RetryInterval time.Duration
	// RetryBase is the delay before the first retry of a charge; each
	// further retry doubles it. Default 1 minute.
	RetryBase time.Duration
	// RetryMax caps the delay between retries. Default 6 hours.
	RetryMax time.Duration
	// RetryMaxAttempts is how many charges of a declined invoice are tried
	// before the schedule stops and the back office takes over (the invoice
	// stays in collections). Timeouts are retried without this limit, at
	// most RetryMax apart, because their outcome must be learned. Default 20.
	RetryMaxAttempts int
	// RetryBatch is the most invoices one RetryCollections round handles.
	// Default 128; at most MaxRetryBatch.
	RetryBatch int
	// VerifyWorkers is how many goroutines verify signatures. Default
	// GOMAXPROCS.
	VerifyWorkers int
	// Observer receives measurements for operators' metrics. Default none.
	Observer Observer
}

func (c *Config) setDefaults() error {
	switch {
	case c.DB == nil:
		return errors.New("clearing: Config.DB is required")
	case c.JS == nil:
		return errors.New("clearing: Config.JS is required")
	case c.Directory == nil:
		return errors.New("clearing: Config.Directory is required")
	case c.Acquirer == nil:
		return errors.New("clearing: Config.Acquirer is required")
	case c.IssuerKey.Purpose() != crypto.Issuer:
		return fmt.Errorf("clearing: Config.IssuerKey is a %s key, want an issuer key", c.IssuerKey.Purpose())
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Consumer == "" {
		c.Consumer = "airtab-clearing"
	}
	defInt(&c.BatchSize, 256)
	def(&c.IdleWait, time.Second)
	def(&c.AckWait, 60*time.Second)
	def(&c.BatchTimeout, 25*time.Second)
	def(&c.NakDelay, time.Second)
	def(&c.CaptureTimeout, 5*time.Second)
	def(&c.ChargePhaseTimeout, 10*time.Second)
	defInt(&c.ChargeConcurrency, 16)
	def(&c.PublishTimeout, 10*time.Second)
	def(&c.RetryInterval, 30*time.Second)
	def(&c.RetryBase, time.Minute)
	def(&c.RetryMax, 6*time.Hour)
	defInt(&c.RetryMaxAttempts, 20)
	defInt(&c.RetryBatch, 128)
	defInt(&c.VerifyWorkers, runtime.GOMAXPROCS(0))
	switch {
	case c.BatchSize > MaxBatchSize:
		return fmt.Errorf("clearing: BatchSize %d exceeds the limit of %d (MaxBatchSize)", c.BatchSize, MaxBatchSize)
	case c.RetryBatch > MaxRetryBatch:
		return fmt.Errorf("clearing: RetryBatch %d exceeds the limit of %d (MaxRetryBatch)", c.RetryBatch, MaxRetryBatch)
	case c.AckWait <= 2*c.BatchTimeout:
		return fmt.Errorf("clearing: AckWait %s must exceed twice BatchTimeout %s, or JetStream redelivers a batch still being cleared", c.AckWait, c.BatchTimeout)
	case c.ChargePhaseTimeout >= c.BatchTimeout:
		return fmt.Errorf("clearing: ChargePhaseTimeout %s must be below BatchTimeout %s", c.ChargePhaseTimeout, c.BatchTimeout)
	case c.RetryMax < c.RetryBase:
		return fmt.Errorf("clearing: RetryMax %s is below RetryBase %s", c.RetryMax, c.RetryBase)
	}
	c.ChargeConcurrency = min(c.ChargeConcurrency, c.BatchSize)
	return nil
}

// Service is the clearing service. Create it with New and run it with Run;
// it also implements ground.WalletFunder for the registration API.
type Service struct {
	cfg   Config
	db    *sql.DB
	dir   ground.Directory
	acq   Acquirer
	clock func() time.Time
	log   *slog.Logger

	// mu serialises batches and retry rounds, so one invoice's charge is
	// decided by one goroutine at a time (a void never races a retry).
	mu sync.Mutex

	creds    *credCache
	accounts *accountCache
	// stmts are the batch transactions' statements, prepared once
	// (sqlite.go).
	stmts stmtCache
	// noAtomicUntil is set when the receipt stream refused an atomic batch
	// because it takes none: receipts are published one at a time until
	// then (Unix nanoseconds of the service's clock; 0 when it takes them).
	noAtomicUntil atomic.Int64
	// recon is what logCleared last said of each closed flight.
	recon reconLog
	// receiptsDone reports the end of the stage 5 (receipts and acks) in
	// flight, nil when none is (process.go). Run's goroutine only.
	receiptsDone chan error
	// retryNow wakes Run for a RetryCollections round before the next
	// RetryInterval tick (RetryPassenger: a new card was linked). One
	// pending wake-up is enough: a round takes every due charge.
	retryNow chan struct{}

	// hooks let tests in this package simulate crashes.
	hooks struct {
		// afterPost runs after a batch's first commit; an error abandons
		// the batch there, as a crash would: no charge, receipt or ack.
		afterPost func() error
	}
}

var _ ground.WalletFunder = (*Service)(nil)

// New checks cfg, fills its defaults and creates the ledger's and clearing's
// tables if they do not exist.
func New(ctx context.Context, cfg Config) (*Service, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := Migrate(ctx, cfg.DB); err != nil {
		return nil, err
	}
	return &Service{
		cfg:      cfg,
		db:       cfg.DB,
		dir:      cfg.Directory,
		acq:      cfg.Acquirer,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		creds:    newCredCache(),
		accounts: newAccountCache(),
		retryNow: make(chan struct{}, 1),
	}, nil
}

// Migrate brings the ledger's and clearing's tables in db up to date
// (store.Migrate, components "ledger" and "clearing"). New calls it; the
// report CLI may call it on a fresh database.
func Migrate(ctx context.Context, db *sql.DB) error {
	if err := ledger.Migrate(ctx, db); err != nil {
		return err
	}
	if err := store.Migrate(ctx, db, "clearing", migrations); err != nil {
		return fmt.Errorf("clearing: %w", err)
	}
	return nil
}

// Run consumes the invoice stream until ctx is done, then returns nil after
// the batches in hand are finished. It ensures the streams (EnsureStreams)
// and the durable consumer, recovers what a crash left mid-way (sales still
// posted, charges to retry), and runs RetryCollections every RetryInterval.
//
// Two goroutines form a pipeline: the fetcher fetches and verifies the next
// batch (CPU-bound signature checks, no transaction) while Run's own
// goroutine commits, charges and publishes the current one.
//
// Run returns an error only for a broken invariant or a setup failure;
// failures of the database or NATS are logged, the messages redelivered,
// and the loop goes on.
func (s *Service) Run(ctx context.Context) error {
	if err := EnsureStreams(ctx, s.cfg.JS); err != nil {
		return err
	}
	cons, err := s.cfg.JS.CreateOrUpdateConsumer(ctx, protocol.StreamInvoices, s.consumerConfig())
	if err != nil {
		return fmt.Errorf("clearing: create consumer %s: %w", s.cfg.Consumer, err)
	}
	s.log.Info("clearing started", "consumer", s.cfg.Consumer, "batch", s.cfg.BatchSize)
	if err := s.retry(ctx); err != nil {
		return err
	}
	fctx, stopFetch := context.WithCancel(ctx)
	verified := make(chan verifiedBatch, 1)
	var wg sync.WaitGroup
	wg.Go(func() { s.fetchLoop(fctx, cons, verified) })
	stop := func() {
		stopFetch()
		for range verified { // unblock the fetcher; what it holds is redelivered after AckWait
		}
		wg.Wait()
		if err := s.awaitReceipts(); err != nil {
			s.log.Error("receipts of the last batch", "err", err)
		}
	}
	ticker := time.NewTicker(s.cfg.RetryInterval)
	defer ticker.Stop()
	for {
		var err error
		select {
		case b, ok := <-verified:
			if !ok {
				wg.Wait()
				if err := s.awaitReceipts(); err != nil {
					s.log.Error("clearing stopped on a broken invariant", "err", err)
					return err
				}
				s.log.Info("clearing stopped")
				return nil
			}
			err = s.clearBatch(ctx, b.lk, b.items)
		case <-ticker.C:
			err = s.retry(ctx)
		case <-s.retryNow:
			err = s.retry(ctx)
		}
		if err != nil {
			s.log.Error("clearing stopped on a broken invariant", "err", err)
			stop()
			return err
		}
	}
}

// retry runs RetryCollections and returns only a fatal error.
func (s *Service) retry(ctx context.Context) error {
	_, err := s.RetryCollections(ctx)
	if err != nil && isFatal(err) {
		return err
	}
	if err != nil {
		s.log.Error("retry collections", "err", err)
	}
	s.logReconciliations(ctx, nil) // a retried charge may complete a flight
	return nil
}

// verifiedBatch is a fetched batch after stage 1.
type verifiedBatch struct {
	items []*item
	lk    *lookups
}

// fetchLoop fetches batches and verifies them until ctx is done, and hands
// them to Run. It closes out when it returns.
func (s *Service) fetchLoop(ctx context.Context, cons jetstream.Consumer, out chan<- verifiedBatch) {
	defer close(out)
	failures := 0
	for ctx.Err() == nil {
		msgs, err := s.fetch(ctx, cons)
		if err != nil {
			failures++
			s.log.Warn("fetch invoices", "err", err, "failures", failures)
			sleep(ctx, min(time.Duration(failures)*100*time.Millisecond, 5*time.Second))
			continue
		}
		failures = 0
		if len(msgs) == 0 {
			continue
		}
		b := verifiedBatch{items: newItems(msgs), lk: newLookups(s.dir)}
		vctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.BatchTimeout)
		s.verifyAll(vctx, b.lk, b.items)
		cancel()
		out <- b
	}
}

// errInvariant marks an error that means the money data is not what the
// rules allow: the service stops rather than write on top of it.
var errInvariant = errors.New("clearing invariant broken")

func isFatal(err error) bool { return errors.Is(err, errInvariant) }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
