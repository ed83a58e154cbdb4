package clearing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
)

// Charging. A card capture, refund or void is an acquirer call and happens
// outside any database transaction; its outcome is then recorded in one. The
// capture's idempotency key is the invoice id and the attempt number
// (CaptureRequest), so the same capture retried after a crash or a timeout
// never charges twice. Declined charges are retried on a schedule: a bounded
// exponential backoff from RetryBase doubling to RetryMax, at most
// RetryMaxAttempts tries.

type jobKind int

const (
	jobCapture jobKind = iota + 1 // capture a card (same attempt when retrying an unknown outcome)
	jobRefund                     // refund a capture of a voided sale
	jobCancel                     // void a capture of unknown outcome of a voided sale
	jobWallet                     // charge the wallet again (in the ledger, at record time)
)

// String names the job kind, for logs.
func (k jobKind) String() string {
	return map[jobKind]string{jobCapture: "capture", jobRefund: "refund", jobCancel: "void", jobWallet: "wallet charge"}[k]
}

// job is one charge-side action on one sale.
type job struct {
	kind    jobKind
	rec     InvoiceRecord // the sale as when the job was made
	card    ground.FundingSource
	hasCard bool

	// Outcome of the acquirer call.
	res      CaptureResult
	refunded bool  // jobCancel: the acquirer refunded a capture
	err      error // the call's outcome is unknown
	// notTried says why the call was not made (a lookup failed, no card
	// to resolve an earlier capture with): the sale stays as it is and is
	// tried again later.
	notTried error
	// outcome says what recording did, for RetryStats and logs.
	outcome string
}

// runJobs makes the acquirer calls of jobs, ChargeConcurrency at a time,
// within ChargePhaseTimeout. A call not answered in time has err set: its
// outcome is unknown.
func (s *Service) runJobs(ctx context.Context, lk *lookups, jobs []*job) {
	pctx, cancel := context.WithTimeout(ctx, s.cfg.ChargePhaseTimeout)
	defer cancel()
	sem := make(chan struct{}, s.cfg.ChargeConcurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		if j.kind == jobWallet {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			s.runJob(pctx, lk, j)
		})
	}
	wg.Wait()
}

func (s *Service) runJob(ctx context.Context, lk *lookups, j *job) {
	cctx, cancel := context.WithTimeout(ctx, s.cfg.CaptureTimeout)
	defer cancel()
	r := j.rec
	switch j.kind {
	case jobRefund:
		j.err = s.acq.Refund(cctx, r.ID, r.Total)
	case jobCancel:
		j.refunded, j.err = s.acq.Void(cctx, r.ID)
	case jobCapture:
		if !s.findCard(cctx, lk, j) {
			return
		}
		j.res, j.err = s.acq.Capture(cctx, CaptureRequest{Key: r.ID, Attempt: max(r.Attempt, 1), Card: j.card, Amount: r.Total})
	}
	switch {
	case j.notTried != nil:
		s.log.Warn("acquirer not called; will retry", "invoice", r.ID, "kind", j.kind, "why", j.notTried)
	case j.err != nil:
		s.log.Warn("acquirer call failed; will retry", "invoice", r.ID, "kind", j.kind, "err", j.err)
	}
}

// findCard sets j.card from the Directory if the job has none. A passenger
// without a card is a decline, unless an earlier capture's outcome is still
// unknown: that one must be resolved with a card, so it stays an error.
func (s *Service) findCard(ctx context.Context, lk *lookups, j *job) bool {
	if j.hasCard {
		return true
	}
	fs, err := lk.funding(ctx, j.rec.Passenger)
	switch {
	case err != nil && !errors.Is(err, ground.ErrNotFound):
		j.notTried = fmt.Errorf("look up funding: %w", err)
		return false
	case err == nil && fs.Kind == ground.FundingCard:
		j.card, j.hasCard = fs, true
		return true
	case j.rec.Status == StatusCollections:
		j.res = CaptureResult{Decline: DeclineNoFundingSource}
		return false
	}
	j.notTried = errors.New("no card on file to resolve a capture of unknown outcome")
	return false
}

// recordJobs records the outcomes of jobs in one transaction and returns
// the sales' records as they now are, and whether an arrears call became due.
func (s *Service) recordJobs(ctx context.Context, jobs []*job) (map[protocol.ID]InvoiceRecord, bool, error) {
	tx, err := s.beginShared(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	ctx = statementContext(ctx, s.db)
	now := s.clock().UTC()
	lb := ledger.NewBatchOn(tx, now)
	var created []ledger.AccountID
	recs := map[protocol.ID]InvoiceRecord{}
	arrears := false
	ids := make([]protocol.ID, len(jobs))
	for i, j := range jobs {
		ids[i] = j.rec.ID
	}
	// Read them all first: recording one job writes no other invoice's
	// record (a second job of the same invoice sees what the first wrote).
	stored, err := invoicesByID(ctx, tx, ids)
	if err != nil {
		return nil, false, err
	}
	if err := preloadOutcomes(ctx, lb, jobs); err != nil {
		return nil, false, err
	}
	for _, j := range jobs {
		rec, found := stored[j.rec.ID]
		if r, ok := recs[j.rec.ID]; ok {
			rec = r
		}
		if !found {
			return nil, false, fmt.Errorf("charge of %s: invoice vanished: %w", j.rec.ID, errInvariant)
		}
		before := rec.Arrears
		if err := s.applyOutcome(ctx, lb, now, &created, &rec, j); err != nil {
			return nil, false, err
		}
		if j.outcome != "skipped" {
			rec.UpdatedAt = now
			if err := updateInvoice(ctx, tx, rec); err != nil {
				return nil, false, err
			}
		}
		arrears = arrears || rec.Arrears != before
		recs[rec.ID] = rec
	}
	if err := lb.Flush(ctx); err != nil {
		return nil, false, flushErr(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("commit: %w", err)
	}
	s.accounts.addAll(created)
	s.observeJobs(jobs)
	return recs, arrears, nil
}

// preloadOutcomes reads, in a few statements, the ledger accounts and
// transfers recording the outcomes of jobs may post (ledger.Batch.Preload):
// a capture, its reversal, a wallet charge from the hold or the wallet.
func preloadOutcomes(ctx context.Context, lb *ledger.Batch, jobs []*job) error {
	var accounts []ledger.AccountID
	var transfers []ledger.TransferID
	for _, j := range jobs {
		switch j.kind {
		case jobCapture, jobRefund, jobCancel:
			c := captureTransfer(j.rec)
			accounts = append(accounts, c.t.Debit, c.t.Credit)
			transfers = append(transfers, c.t.ID)
			if j.kind != jobCapture {
				transfers = append(transfers, reversal(c).t.ID)
			}
		case jobWallet:
			h := holdChargeTransfer(j.rec)
			accounts = append(accounts, h.t.Debit, h.t.Credit, ledger.WalletAccount(j.rec.Passenger, j.rec.Total.Currency).ID)
			transfers = append(transfers, h.t.ID)
		}
	}
	return lb.Preload(ctx, accounts, transfers)
}

// applyOutcome moves rec along the state machine by j's outcome, posting
// what the outcome moved. A job whose sale moved on in the meantime does
// nothing.
func (s *Service) applyOutcome(ctx context.Context, lb *ledger.Batch, now time.Time, created *[]ledger.AccountID, rec *InvoiceRecord, j *job) error {
	post := func(ps ...posting) error { return s.post(ctx, lb, created, ps...) }
	j.outcome = "skipped"
	switch j.kind {
	case jobCapture:
		if rec.Status != StatusPosted && rec.Status != StatusCollections && rec.Status != StatusPendingRetry {
			return nil
		}
		if j.notTried != nil {
			rec.Decline, rec.NextRetryAt = j.notTried.Error(), now.Add(s.backoff(rec.Tries+1))
			j.outcome = "pending"
			return nil
		}
		rec.Funding = ground.FundingCard
		rec.Tries++
		switch {
		case j.err != nil:
			s.pendingRetry(rec, j.err.Error(), now)
			j.outcome = "pending"
		case j.res.Approved:
			if err := post(captureTransfer(*rec)); err != nil {
				return err
			}
			s.settled(rec, now)
			j.outcome = "settled"
		default:
			rec.Attempt = max(rec.Attempt, 1) + 1 // a definite decline: the next try is a new attempt
			s.collections(rec, string(j.res.Decline), now)
			j.outcome = "declined"
		}
	case jobWallet:
		if rec.Status != StatusCollections {
			return nil
		}
		rec.Funding = ground.FundingWallet
		rec.Tries++
		err := s.postWalletCharge(ctx, lb, created, *rec)
		switch {
		case errors.Is(err, ledger.ErrInsufficientFunds):
			s.collections(rec, string(DeclineWalletShort), now)
			j.outcome = "declined"
		case err != nil:
			return err
		default:
			s.settled(rec, now)
			j.outcome = "settled"
		}
	case jobRefund, jobCancel:
		want := map[jobKind]RefundState{jobRefund: RefundDue, jobCancel: RefundCancel}[j.kind]
		if rec.Refund != want {
			return nil
		}
		rec.Tries++
		if j.err != nil {
			rec.Decline, rec.NextRetryAt = j.err.Error(), now.Add(s.backoff(rec.Tries))
			j.outcome = "pending"
			return nil
		}
		var ps []posting
		if j.kind == jobRefund {
			ps = []posting{reversal(captureTransfer(*rec))}
		} else if j.refunded { // it had been captured after all: record both legs
			ps = []posting{captureTransfer(*rec), reversal(captureTransfer(*rec))}
		}
		if err := post(ps...); err != nil {
			return err
		}
		rec.Refund, rec.NextRetryAt, rec.Decline = RefundDone, time.Time{}, ""
		j.outcome = "refunded"
	}
	return nil
}

// collections moves rec to collections after a definite decline: the
// passenger goes into arrears and the charge is retried on schedule, until
// RetryMaxAttempts tries.
func (s *Service) collections(rec *InvoiceRecord, decline string, now time.Time) {
	rec.Status, rec.Decline = StatusCollections, decline
	if rec.CollectAt.IsZero() {
		rec.CollectAt = now
	}
	if rec.Arrears != ArrearsMarked {
		rec.Arrears = ArrearsMark
	}
	rec.NextRetryAt = time.Time{}
	if rec.Tries < s.cfg.RetryMaxAttempts {
		rec.NextRetryAt = now.Add(s.backoff(rec.Tries))
	}
}

// pendingRetry records a charge of unknown outcome: it is retried with the
// same attempt, without a limit on tries, at most RetryMax apart.
func (s *Service) pendingRetry(rec *InvoiceRecord, why string, now time.Time) {
	rec.Status, rec.Decline = StatusPendingRetry, why
	if rec.CollectAt.IsZero() {
		rec.CollectAt = now
	}
	rec.NextRetryAt = now.Add(s.backoff(rec.Tries))
}

// settled records a paid sale; arrears, if any were recorded, are lifted.
func (s *Service) settled(rec *InvoiceRecord, now time.Time) {
	if rec.Arrears == ArrearsMark || rec.Arrears == ArrearsMarked {
		rec.Arrears = ArrearsClear
	}
	rec.Status, rec.SettledAt, rec.NextRetryAt, rec.Decline = StatusSettled, now, time.Time{}, ""
}

// backoff is the delay before the next try after tries tries: RetryBase,
// doubled per try, capped at RetryMax.
func (s *Service) backoff(tries int) time.Duration {
	d := s.cfg.RetryBase
	for i := 1; i < tries && d < s.cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, s.cfg.RetryMax)
}

// RetryStats counts what one RetryCollections round did.
type RetryStats struct {
	Due      int // invoices with work due
	Settled  int // charges that succeeded
	Declined int // charges declined again
	Pending  int // calls with an unknown outcome or a failure, retried later
	Refunded int // refunds and voids completed
}

// RetryCollections does the charge work that is due at the service's clock:
// declined charges on their schedule, charges of unknown outcome, sales a
// crash left posted, refunds of voided sales; then the arrears calls owed to
// the Directory; then the wallet holds left after their flight's sales
// are all in, or past HoldExpiry, are released (sweepHolds). It handles at
// most RetryBatch invoices per call. Run calls
// it at start (crash recovery) and every RetryInterval; tests call it
// directly with a fake clock. Among workers sharing a PostgreSQL database
// one runs a round at a time; the others' calls return zero stats.
func (s *Service) RetryCollections(ctx context.Context) (RetryStats, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.BatchTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	var st RetryStats
	// One round at a time across the clearing workers sharing a database
	// (a PostgreSQL advisory lock; nothing to take on SQLite, which has one
	// ground process): two rounds would make the same due charges twice,
	// which the acquirer's idempotency key makes harmless but the tries
	// count would not be. A worker that does not get it skips the round;
	// the one holding it does the work.
	unlock, ok, err := store.TryLock(ctx, s.db, store.RetryLockKey)
	if err != nil {
		return st, fmt.Errorf("clearing: retry: %w", err)
	}
	if !ok {
		return st, nil
	}
	defer unlock()
	due, err := dueInvoices(ctx, s.db, s.clock().UTC(), s.cfg.RetryBatch)
	if err != nil {
		return st, fmt.Errorf("clearing: retry: %w", err)
	}
	lk := newLookups(s.dir)
	var jobs []*job
	for _, r := range due {
		if j := s.retryJob(ctx, lk, r); j != nil {
			jobs = append(jobs, j)
		}
	}
	st.Due = len(jobs)
	if len(jobs) > 0 {
		s.runJobs(ctx, lk, jobs)
		if _, _, err := s.recordJobs(ctx, jobs); err != nil {
			return st, fmt.Errorf("clearing: retry: record outcomes: %w", err)
		}
	}
	for _, j := range jobs {
		switch j.outcome {
		case "settled":
			st.Settled++
		case "declined":
			st.Declined++
		case "pending":
			st.Pending++
		case "refunded":
			st.Refunded++
		}
	}
	if err := s.syncArrears(ctx); err != nil {
		return st, err
	}
	if _, err := s.sweepHolds(ctx); err != nil {
		return st, err
	}
	if st.Due > 0 {
		s.log.Info("charges retried", "due", st.Due, "settled", st.Settled, "declined", st.Declined, "pending", st.Pending, "refunded", st.Refunded)
	}
	return st, nil
}

// RetryPassenger makes the passenger's sales in collections due at once,
// schedules that had stopped included: call it when a passenger links a new
// card or pays their debt. TopUp does it itself for wallet sales. A running
// Run charges them at once, without waiting for its RetryInterval; without
// one, the next RetryCollections does.
func (s *Service) RetryPassenger(ctx context.Context, passenger protocol.ID) error {
	res, err := s.db.ExecContext(ctx, retryPassengerQuery, s.clock().UTC().UnixNano(), passenger[:])
	if err != nil {
		return fmt.Errorf("clearing: retry passenger %s: %w", passenger, err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		select {
		case s.retryNow <- struct{}{}:
		default: // a round is due already
		}
	}
	return nil
}

// retryPassengerQuery makes a passenger's sales in collections due; it
// finds them by the passenger and kind prefix of clearing_invoices_passenger.
const retryPassengerQuery = `UPDATE clearing_invoices SET next_retry_at = ?
	WHERE passenger = ? AND kind = 1 AND status = 'collections'`

// retryJob returns the job for a due invoice, or nil if there is none.
func (s *Service) retryJob(ctx context.Context, lk *lookups, r InvoiceRecord) *job {
	switch {
	case r.Kind != protocol.KindSale:
		return nil
	case r.Status == StatusVoided && r.Refund == RefundDue:
		return &job{kind: jobRefund, rec: r}
	case r.Status == StatusVoided && r.Refund == RefundCancel:
		return &job{kind: jobCancel, rec: r}
	case r.Status == StatusPosted && r.Funding == ground.FundingWallet:
		return &job{kind: jobWallet, rec: r}
	case r.Status == StatusPosted || r.Status == StatusPendingRetry:
		return &job{kind: jobCapture, rec: r} // same attempt: the outcome is unknown
	case r.Status == StatusCollections:
		// A definite decline: the passenger may have changed funding since.
		fs, err := lk.funding(ctx, r.Passenger)
		if err == nil && fs.Kind == ground.FundingWallet {
			return &job{kind: jobWallet, rec: r}
		}
		return &job{kind: jobCapture, rec: r}
	}
	return nil
}

// syncArrears makes the MarkArrears and ClearArrears calls that charge
// outcomes made due, and records each one made. A call that fails stays due
// and is made again on the next round.
func (s *Service) syncArrears(ctx context.Context) error {
	due, err := arrearsDue(ctx, s.db, s.cfg.RetryBatch)
	if err != nil {
		return fmt.Errorf("clearing: arrears: %w", err)
	}
	type change struct {
		id       protocol.ID
		from, to ArrearsState
	}
	var done []change
	now := s.clock().UTC()
	for _, r := range due {
		var err error
		c := change{id: r.ID, from: r.Arrears}
		switch r.Arrears {
		case ArrearsMark:
			err, c.to = s.dir.MarkArrears(ctx, r.Passenger, r.ID, now), ArrearsMarked
		case ArrearsClear:
			err, c.to = s.dir.ClearArrears(ctx, r.Passenger, r.ID, now), ArrearsCleared
		}
		if err != nil {
			s.log.Error("arrears call failed; will retry", "invoice", r.ID, "passenger", r.Passenger, "call", r.Arrears, "err", err)
			continue
		}
		done = append(done, c)
	}
	if len(done) == 0 {
		return nil
	}
	tx, err := store.BeginWrite(ctx, s.db)
	if err != nil {
		return fmt.Errorf("clearing: arrears: %w", err)
	}
	defer tx.Rollback()
	for _, c := range done {
		if err := setArrears(ctx, tx, c.id, c.from, c.to, now); err != nil {
			return fmt.Errorf("clearing: arrears: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("clearing: arrears: %w", err)
	}
	return nil
}

// accountCache remembers ledger accounts known to exist (accounts are never
// deleted), so the hot path skips creating them. Ids are added only after
// the transaction that created them commits.
type accountCache struct {
	set boundedSet[ledger.AccountID, struct{}]
}

func newAccountCache() *accountCache {
	return &accountCache{set: boundedSet[ledger.AccountID, struct{}]{max: 1 << 17, m: map[ledger.AccountID]struct{}{}}}
}

func (c *accountCache) has(id ledger.AccountID) bool {
	_, ok := c.set.get(id)
	return ok
}

func (c *accountCache) addAll(ids []ledger.AccountID) {
	for _, id := range ids {
		c.set.put(id, struct{}{})
	}
}
