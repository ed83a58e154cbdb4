package clearing

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go/jetstream"
)

// One batch of messages, in stages:
//
//  1. verify every message (verify.go), in parallel, with no transaction
//     open; Run's fetcher does this for the next batch while the current
//     one goes through the stages below;
//  2. one transaction: for each message in stream order, the stateful checks
//     (duplicate id, counter, cumulative limit), the invoice row and the
//     sale's transfers (wallet charges included); commit: one fsync for the
//     batch;
//  3. card captures, refunds and voids at the acquirer, outside any
//     transaction, with the invoice id as idempotency key (charge.go);
//  4. one transaction recording their outcomes;
//  5. sign the receipts (in parallel), publish them to JetStream and wait
//     for their acks; ack each invoice message only then. A message whose
//     stage failed for a reason that is not its fault is nak'd and comes
//     back. This stage runs on a goroutine of its own while the next batch
//     goes through stages 2 to 4 (it needs nothing but the committed
//     records in hand); the next batch waits for it before starting its
//     own, so at most one is in flight.
//
// A crash anywhere leaves either nothing committed (the message comes back
// and is cleared anew) or the invoice row committed (the message comes back,
// the row is found with the same hash and its receipt is sent again; a sale
// left posted has its charge retried with the same idempotency key).
//
// An invoice's receipt is derived from its record alone, stamped with the
// record's UpdatedAt, and Ed25519 signatures are deterministic: the receipt
// sent again for an unchanged record is the same bytes, so JetStream's
// duplicate window drops it.

// item is one message of a batch and what became of it.
type item struct {
	msg     jetstream.Msg // nil outside the consumer
	subject string
	raw     []byte
	hash    protocol.Hash

	subjAircraft protocol.AircraftID
	subjFlight   protocol.FlightID
	subjOK       bool

	kind  string // "invoice" or "close"
	inv   *protocol.SignedInvoice
	close *protocol.SignedFlightClose
	sale  *saleFacts
	// proof is the sale's parsed payment code or consent, and pre what
	// the batch said of its signatures (batchverify.go).
	proof *proof
	pre   preSigs

	verdict verdict
	reason  protocol.Reason
	detail  string
	err     error // verdict retry: why

	// rec is the invoice record whose receipt to send; awaiting names a
	// sale whose receipt waits for its charge (stage 3).
	rec      *InvoiceRecord
	awaiting protocol.ID
	// The receipt to publish before the ack, when there is one.
	receipt        []byte
	receiptSubject string
	receiptMsgID   string
	// resent is set when the receipt was made for an earlier delivery
	// (an invoice, reject or close stored already), so the stream may
	// hold it: it goes in batches apart from new receipts
	// (publishReceipts).
	resent bool
}

func newItems(msgs []jetstream.Msg) []*item {
	items := make([]*item, len(msgs))
	for i, m := range msgs {
		items[i] = &item{msg: m, subject: m.Subject(), raw: m.Data(), hash: protocol.Sum(m.Data())}
	}
	return items
}

// errAbandon is returned by the test hook to abandon a batch as a crash
// would: nothing acked or nak'd.
var errAbandon = errors.New("batch abandoned")

// clearBatch runs stages 2 to 4 over verified items, waits for stage 5 of
// the batch before, and starts stage 5 of this one, which acks or naks
// every message (awaitReceipts waits for it). It returns an error only for
// a broken invariant, of this batch or of the stage 5 it waited for.
func (s *Service) clearBatch(ctx context.Context, lk *lookups, items []*item) error {
	start := time.Now()
	// Finish the batch in hand even if ctx is cancelled: a stop in the
	// middle would only make JetStream redeliver it after AckWait.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.BatchTimeout)
	err := s.clear(bctx, lk, items)
	prev := s.awaitReceipts()
	switch {
	case errors.Is(err, errAbandon):
	case err != nil || prev != nil:
		// The service stops on a broken invariant, of this batch or of
		// the one before: this batch's messages are nak'd, none acked
		// with its receipt unpublished, and cleared again (found stored,
		// their receipts sent) when it comes back.
		for _, it := range items {
			it.infra(cmp.Or(err, prev))
		}
		s.settle(items)
	default:
		done := make(chan error, 1)
		s.receiptsDone = done
		go func() {
			defer cancel()
			done <- s.receipts(bctx, items, start)
		}()
		return nil
	}
	cancel()
	s.observeBatch(items, start)
	if errors.Is(err, errAbandon) {
		err = nil
	}
	return errors.Join(prev, err)
}

// receipts is stage 5: it signs and publishes the receipts of items, then
// acks or naks every message. It returns an error only for a broken
// invariant: a receipt that could not be signed, when nothing is published
// and every message with a receipt is nak'd, to come back once the service
// is mended (a message is acked only once its receipt is stored).
func (s *Service) receipts(ctx context.Context, items []*item, start time.Time) error {
	defer s.observeBatch(items, start)
	err := s.signReceipts(items)
	if err == nil {
		s.publishReceipts(ctx, items)
	} else {
		for _, it := range items {
			if it.verdict != retry && (it.rec != nil || it.receipt != nil) {
				it.infra(err)
			}
		}
	}
	s.settle(items)
	if err == nil {
		s.logCleared(ctx, items)
	}
	return err
}

// awaitReceipts waits for the stage 5 in flight, if any, and returns its
// error. Only Run's goroutine calls it.
func (s *Service) awaitReceipts() error {
	if s.receiptsDone == nil {
		return nil
	}
	err := <-s.receiptsDone
	s.receiptsDone = nil
	return err
}

// clear runs stages 2 to 4. Each item ends with a record whose receipt
// stage 5 signs, or nothing to publish, or verdict retry.
func (s *Service) clear(ctx context.Context, lk *lookups, items []*item) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	jobs, arrears, err := s.commitBatch(ctx, items)
	if err != nil {
		s.log.Error("clearing batch not committed; messages will be redelivered", "messages", len(items), "err", err)
		for _, it := range items {
			it.infra(err)
		}
		if isFatal(err) {
			return err
		}
		return nil
	}
	if s.hooks.afterPost != nil {
		if err := s.hooks.afterPost(); err != nil {
			return errAbandon
		}
	}
	if len(jobs) > 0 {
		s.runJobs(ctx, lk, jobs)
		recs, touched, err := s.recordJobs(ctx, jobs)
		arrears = arrears || touched
		if err != nil {
			s.log.Error("charge outcomes not committed; retried from the database", "err", err)
			if isFatal(err) {
				return err
			}
		}
		for _, it := range items {
			if it.awaiting.IsZero() || it.verdict == retry {
				continue
			}
			if r, ok := recs[it.awaiting]; ok && r.Status.ReceiptStatus() != 0 {
				it.rec = &r
			} else {
				it.infra(fmt.Errorf("invoice %s: charge outcome not recorded", it.awaiting))
			}
		}
	}
	if arrears {
		if err := s.syncArrears(ctx); err != nil && isFatal(err) {
			return err
		}
	}
	s.releaseFlightHolds(ctx, items)
	return nil
}

// signReceipts signs the receipts of the invoice records of items, with
// VerifyWorkers goroutines.
func (s *Service) signReceipts(items []*item) error {
	work := make(chan *item)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		ferr error
	)
	for range s.cfg.VerifyWorkers {
		wg.Go(func() {
			for it := range work {
				raw, err := s.sign(receiptOf(*it.rec))
				if err != nil {
					mu.Lock()
					ferr = err
					mu.Unlock()
					continue
				}
				it.receipt = raw
				it.receiptSubject = protocol.ReceiptSubject(it.rec.Aircraft, it.rec.Flight)
				it.receiptMsgID = receiptMsgID(it.rec.ID)
			}
		})
	}
	for _, it := range items {
		if it.rec != nil && it.verdict != retry {
			work <- it
		}
	}
	close(work)
	wg.Wait()
	return ferr
}

// receiptOf is the clearing receipt of an invoice record in a final status.
func receiptOf(r InvoiceRecord) protocol.ClearingReceipt {
	return protocol.ClearingReceipt{
		Version: protocol.Version, Invoice: r.ID, Flight: r.Flight, Aircraft: r.Aircraft, Seq: r.Seq,
		Status: r.Status.ReceiptStatus(), Reason: r.Reason, Amount: r.Total, At: r.UpdatedAt,
	}
}

// setStoredReceipt sets a stored receipt (of a reject or a close) to publish.
func (it *item) setStoredReceipt(raw []byte, msgID string) {
	if raw == nil {
		return
	}
	r, err := protocol.ParseReceipt(raw)
	if err != nil { // we signed it: a stored receipt that does not parse is corrupt
		it.infra(fmt.Errorf("stored receipt does not parse: %v: %w", err, errInvariant))
		return
	}
	it.receipt = raw
	it.receiptSubject = protocol.ReceiptSubject(r.Body.Aircraft, r.Body.Flight)
	it.receiptMsgID = msgID
}

// receiptMsgID is the Nats-Msg-Id of an invoice's receipt: JetStream drops
// a re-sent receipt within its duplicate window.
func receiptMsgID(id protocol.ID) string { return "receipt-" + id.String() }

// batchTx is step 2: one transaction over a batch.
type batchTx struct {
	s        *Service
	tx       *cachedTx
	lb       *ledger.Batch
	now      time.Time
	jobs     map[protocol.ID]*job
	order    []protocol.ID // job order, for determinism
	accounts []ledger.AccountID
	arrears  bool // an arrears call became due
	// The prefetched answers (prefetch.go): a record by id (nil: not
	// stored), the sales no void names, a counter's invoice (nil: unused).
	known    map[protocol.ID]*InvoiceRecord
	noVoids  map[protocol.ID]bool
	counters map[counterKey]*protocol.ID
	// spent is what passengers spent on flights (spentOnFlight) as of the
	// batch's writes so far: read for the batch's new sales in a few
	// statements (prefetchSpend), then kept up to date by insert; an entry
	// a write may change otherwise (reverseSale) is dropped and read again.
	spent map[spendKey]int64
}

// commitBatch is step 2. It returns the acquirer jobs of step 3 and whether
// an arrears call became due.
func (s *Service) commitBatch(ctx context.Context, items []*item) ([]*job, bool, error) {
	tx, err := s.beginShared(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	ctx = statementContext(ctx, s.db)
	now := s.clock().UTC()
	b := &batchTx{s: s, tx: tx, lb: ledger.NewBatchOn(tx, now), now: now, jobs: map[protocol.ID]*job{}}
	if err := b.prefetch(ctx, items); err != nil {
		return nil, false, err
	}
	sales := b.newSales(items)
	if err := b.preloadLedger(ctx, sales); err != nil {
		return nil, false, err
	}
	if err := b.prefetchSpend(ctx, sales); err != nil {
		return nil, false, err
	}
	for _, it := range items {
		if it.verdict == retry {
			continue
		}
		if err := b.apply(ctx, it); err != nil {
			return nil, false, err
		}
	}
	if err := b.lb.Flush(ctx); err != nil {
		return nil, false, flushErr(err)
	}
	if err := tx.Commit(); err != nil {
		return nil, false, fmt.Errorf("commit: %w", err)
	}
	s.accounts.addAll(b.accounts)
	var jobs []*job
	for _, id := range b.order {
		if j := b.jobs[id]; j != nil {
			jobs = append(jobs, j)
			delete(b.jobs, id) // an id can be in order twice: a job replaced by another
		}
	}
	return jobs, b.arrears, nil
}

// newSales returns the accepted sales of items not stored before, as
// records holding what their ledger postings and limit check need.
func (b *batchTx) newSales(items []*item) []saleRef {
	var out []saleRef
	for _, it := range items {
		if it.inv == nil || it.verdict != accept || it.sale == nil || it.inv.Body.Kind != protocol.KindSale {
			continue
		}
		inv := it.inv.Body
		if r := b.known[inv.ID]; r != nil {
			continue // stored before: nothing is posted for it here
		}
		out = append(out, saleRef{
			rec:    InvoiceRecord{ID: inv.ID, Flight: inv.Flight, Passenger: inv.Passenger, Credential: inv.Credential, Total: inv.Total},
			wallet: it.sale.hasFunding && it.sale.funding.Kind == ground.FundingWallet,
		})
	}
	return out
}

// saleRef is a new sale of a batch, for what is read ahead for it.
type saleRef struct {
	rec    InvoiceRecord
	wallet bool // charged from a wallet (its hold)
}

// preloadLedger reads, in a few statements, the ledger accounts and
// transfers the batch's new sales will post to (ledger.Batch.Preload),
// instead of an account or a transfer at a time as each sale posts.
func (b *batchTx) preloadLedger(ctx context.Context, sales []saleRef) error {
	accounts := make([]ledger.AccountID, 0, 4*len(sales))
	transfers := make([]ledger.TransferID, 0, 2*len(sales))
	for _, s := range sales {
		sale := saleTransfer(s.rec)
		accounts = append(accounts, sale.t.Debit, sale.t.Credit)
		transfers = append(transfers, sale.t.ID)
		if s.wallet {
			// The hold and the wallet, which a sale beyond its hold (or
			// of a credential without one) is charged from.
			hold := holdChargeTransfer(s.rec)
			accounts = append(accounts, hold.t.Debit, ledger.WalletAccount(s.rec.Passenger, s.rec.Total.Currency).ID)
			transfers = append(transfers, hold.t.ID) // the wallet charge's id too
		}
	}
	return b.lb.Preload(ctx, accounts, transfers)
}

// prefetchSpend reads what the passengers of the batch's new sales spent
// on their flights before (spentByPassenger) into b.spent.
func (b *batchTx) prefetchSpend(ctx context.Context, sales []saleRef) error {
	keys := make([]spendKey, len(sales))
	for i, s := range sales {
		keys[i] = spendOf(s.rec)
	}
	spent, err := spentByPassenger(ctx, b.tx, keys)
	if err != nil {
		return err
	}
	b.spent = spent
	return nil
}

// spendOf is the spend a sale record counts in.
func spendOf(r InvoiceRecord) spendKey {
	return spendKey{passenger: r.Passenger, flight: r.Flight, currency: r.Total.Currency}
}

// spentOnFlight is spentOnFlight for rec's passenger, flight and currency,
// from b.spent when it holds the answer.
func (b *batchTx) spentOnFlight(ctx context.Context, rec InvoiceRecord) (int64, error) {
	k := spendOf(rec)
	if v, ok := b.spent[k]; ok {
		return v, nil
	}
	v, err := spentOnFlight(ctx, b.tx, rec.Passenger, rec.Flight, rec.Total.Currency)
	if err != nil {
		return 0, err
	}
	if b.spent == nil {
		b.spent = map[spendKey]int64{}
	}
	b.spent[k] = v
	return v, nil
}

func (b *batchTx) apply(ctx context.Context, it *item) error {
	switch {
	case it.verdict == reject:
		return b.reject(ctx, it)
	case it.kind == "close":
		return b.close(ctx, it)
	}
	inv := it.inv.Body
	old, found, err := b.get(ctx, inv.ID)
	if err != nil {
		return err
	}
	if found {
		if old.Hash != it.hash {
			it.fail(reject, protocol.ReasonDuplicateConflict, "invoice id %s already cleared with other content (hash %s); the original stands", inv.ID, old.Hash)
			return b.reject(ctx, it)
		}
		b.again(it, old)
		return nil
	}
	rec := b.newRecord(it)
	switch it.verdict {
	case quarantine:
		return b.quarantine(ctx, it, rec, it.reason, it.detail)
	case dispute:
		return b.dispute(ctx, it, rec, it.reason, it.detail)
	}
	if inv.Kind == protocol.KindVoid {
		return b.void(ctx, it, rec)
	}
	return b.sale(ctx, it, rec)
}

// again handles an invoice seen before with the same bytes: send its
// receipt again, or, for a sale whose charge a crash interrupted, finish it.
func (b *batchTx) again(it *item, old InvoiceRecord) {
	switch {
	case old.Status.ReceiptStatus() != 0:
		it.rec, it.resent = &old, true
	case old.Status == StatusPosted:
		it.awaiting = old.ID
		b.addJob(&job{kind: jobCapture, rec: old})
	default:
		it.infra(fmt.Errorf("invoice %s in status %s: %w", old.ID, old.Status, errInvariant))
	}
}

func (b *batchTx) newRecord(it *item) InvoiceRecord {
	inv := it.inv.Body
	return InvoiceRecord{
		ID: inv.ID, Hash: it.hash, Raw: it.raw, Flight: inv.Flight, Aircraft: inv.Aircraft, Seq: inv.Seq, Prev: inv.Prev,
		Kind: inv.Kind, Passenger: inv.Passenger, Credential: inv.Credential, Total: inv.Total, Voids: inv.Voids,
		CreatedAt: inv.CreatedAt.UTC(), ReceivedAt: b.now, UpdatedAt: b.now,
	}
}

// quarantine stores rec as quarantined with reason: kept, never charged.
func (b *batchTx) quarantine(ctx context.Context, it *item, rec InvoiceRecord, r protocol.Reason, detail string) error {
	rec.Status, rec.Reason, rec.Detail = StatusQuarantined, r, detail
	b.s.log.Warn("invoice quarantined", "invoice", rec.ID, "flight", rec.Flight, "seq", rec.Seq, "reason", r.String(), "detail", detail)
	if rec.Kind == protocol.KindSale {
		if err := b.resolvePendingVoids(ctx, rec.ID, "the sale was quarantined: nothing to reverse"); err != nil {
			return err
		}
	}
	return b.insert(ctx, it, rec)
}

// dispute stores rec as disputed with reason: a sale both its aircraft and
// the passenger's device signed, refused by a cabin-server rule. Nothing is
// posted or charged; the amount stays visible in the report.
func (b *batchTx) dispute(ctx context.Context, it *item, rec InvoiceRecord, r protocol.Reason, detail string) error {
	rec.Status, rec.Reason, rec.Detail = StatusDisputed, r, detail
	voids, err := b.voids(ctx, rec.ID, protocol.ID{})
	if err != nil {
		return err
	}
	for _, v := range voids {
		if v.Status == StatusVoidPending {
			// Voided on board before it arrived: nothing is owed, so
			// nothing is in dispute.
			rec.Status, rec.Detail = StatusVoided, "disputed ("+r.String()+"), voided by "+v.ID.String()+" before it arrived"
			v.Status, v.Detail, v.UpdatedAt = StatusVoided, "the sale was disputed: nothing to reverse", b.now
			if err := b.update(ctx, v); err != nil {
				return err
			}
			return b.insert(ctx, it, rec)
		}
	}
	b.s.log.Warn("sale disputed: approved on board, refused on the ground", "invoice", rec.ID, "flight", rec.Flight, "seq", rec.Seq,
		"amount", rec.Total.String(), "reason", r.String(), "detail", detail)
	return b.insert(ctx, it, rec)
}

// insert stores rec and notes what the item's receipt waits for: nothing,
// or, for a posted card sale, its charge.
func (b *batchTx) insert(ctx context.Context, it *item, rec InvoiceRecord) error {
	b.wrote(rec)
	if err := insertInvoice(ctx, b.tx, rec); err != nil {
		return err
	}
	if k := spendOf(rec); rec.Kind == protocol.KindSale && activeStatus(rec.Status) {
		if v, ok := b.spent[k]; ok {
			b.spent[k] = v + rec.Total.Minor
		}
	}
	if rec.Status.ReceiptStatus() != 0 {
		it.rec = &rec
	} else {
		it.awaiting = rec.ID
	}
	return nil
}

// sale applies a verified sale: the counter and the cumulative limit, then
// the ledger, then the wallet charge or a card job.
func (b *batchTx) sale(ctx context.Context, it *item, rec InvoiceRecord) error {
	f := it.sale
	ck := counterKey{f.credential, f.counter}
	owner, used, err := b.counterOwner(ctx, ck)
	if err != nil {
		return err
	}
	if used {
		return b.dispute(ctx, it, rec, protocol.ReasonCodeReused,
			fmt.Sprintf("counter %d of credential %s was used by invoice %s", f.counter, f.credential, owner))
	}
	spent, err := b.spentOnFlight(ctx, rec)
	if err != nil {
		return err
	}
	if f.limit.Currency != rec.Total.Currency || spent+rec.Total.Minor > f.limit.Minor {
		return b.dispute(ctx, it, rec, protocol.ReasonOverPassengerLimit,
			fmt.Sprintf("spent %s on the flight before, this sale %s, limit %s", protocol.M(spent, rec.Total.Currency), rec.Total, f.limit))
	}
	if err := b.useCounter(ctx, ck, rec.ID); err != nil {
		return err
	}
	voided, err := b.pendingVoid(ctx, &rec)
	if err != nil || voided {
		if err != nil {
			return err
		}
		return b.insert(ctx, it, rec)
	}
	switch {
	case f.hasFunding && f.funding.Kind == ground.FundingWallet:
		if err := b.walletSale(ctx, &rec); err != nil {
			return err
		}
	case f.hasFunding && f.funding.Kind == ground.FundingCard:
		if err := b.post(ctx, saleTransfer(rec)); err != nil {
			return err
		}
		rec.Status, rec.Funding, rec.Attempt, rec.NextRetryAt = StatusPosted, ground.FundingCard, 1, b.now
		b.addJob(&job{kind: jobCapture, rec: rec, card: f.funding, hasCard: true})
	default: // no funding source on file: the passenger owes it
		if err := b.post(ctx, saleTransfer(rec)); err != nil {
			return err
		}
		b.s.collections(&rec, string(DeclineNoFundingSource), b.now)
		b.arrears = true
	}
	return b.insert(ctx, it, rec)
}

// walletSale posts the sale and its wallet charge (from the credential's
// hold, see holds.go) together: settled, or, if neither hold nor wallet
// covers it, the sale alone and collections.
func (b *batchTx) walletSale(ctx context.Context, rec *InvoiceRecord) error {
	rec.Funding = ground.FundingWallet
	rec.Tries++
	err := b.s.postWalletCharge(ctx, b.lb, &b.accounts, *rec, saleTransfer(*rec))
	if errors.Is(err, ledger.ErrInsufficientFunds) {
		if err := b.post(ctx, saleTransfer(*rec)); err != nil {
			return err
		}
		b.s.collections(rec, string(DeclineWalletShort), b.now)
		b.arrears = true
		return nil
	}
	if err != nil {
		return err
	}
	b.s.settled(rec, b.now)
	return nil
}

// pendingVoid applies a void that arrived before its sale: the sale is
// reversed at once and never charged. It reports whether there was one.
func (b *batchTx) pendingVoid(ctx context.Context, rec *InvoiceRecord) (bool, error) {
	voids, err := b.voids(ctx, rec.ID, protocol.ID{})
	if err != nil {
		return false, err
	}
	for _, v := range voids {
		if v.Status != StatusVoidPending {
			continue
		}
		if v.Passenger != rec.Passenger || v.Total != rec.Total || v.Flight != rec.Flight {
			// The void does not match the sale it names: it stays pending
			// (visible in the report); the sale is charged normally.
			b.s.log.Warn("pending void does not match its sale", "void", v.ID, "sale", rec.ID)
			continue
		}
		if err := b.post(ctx, saleTransfer(*rec), reversal(saleTransfer(*rec))); err != nil {
			return false, err
		}
		rec.Status, rec.Detail = StatusVoided, "voided by "+v.ID.String()+" before it arrived"
		v.Status, v.UpdatedAt = StatusVoided, b.now
		return true, b.update(ctx, v)
	}
	return false, nil
}

// resolvePendingVoids marks the pending voids of a sale that will never be
// posted as applied, with a note.
func (b *batchTx) resolvePendingVoids(ctx context.Context, sale protocol.ID, note string) error {
	voids, err := b.voids(ctx, sale, protocol.ID{})
	if err != nil {
		return err
	}
	for _, v := range voids {
		if v.Status == StatusVoidPending {
			v.Status, v.Detail, v.UpdatedAt = StatusVoided, note, b.now
			if err := b.update(ctx, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// void applies a void invoice: the sale it names is reversed and its charge
// refunded (a wallet at once, a card through a job), or, if the sale has not
// arrived, the void waits for it.
func (b *batchTx) void(ctx context.Context, it *item, rec InvoiceRecord) error {
	sale, found, err := b.get(ctx, rec.Voids)
	if err != nil {
		return err
	}
	if !found {
		rec.Status = StatusVoidPending
		return b.insert(ctx, it, rec)
	}
	switch {
	case sale.Kind != protocol.KindSale:
		return b.quarantine(ctx, it, rec, protocol.ReasonMalformed, "voids "+sale.ID.String()+", which is not a sale")
	case sale.Flight != rec.Flight:
		return b.quarantine(ctx, it, rec, protocol.ReasonWrongFlight, "voids a sale of flight "+string(sale.Flight))
	case sale.Passenger != rec.Passenger:
		return b.quarantine(ctx, it, rec, protocol.ReasonMalformed, "voids another passenger's sale")
	case sale.Total != rec.Total:
		return b.quarantine(ctx, it, rec, protocol.ReasonInvalidAmount, fmt.Sprintf("void of %s for a sale of %s", rec.Total, sale.Total))
	}
	others, err := b.voids(ctx, sale.ID, rec.ID)
	if err != nil {
		return err
	}
	if len(others) > 0 || sale.Status == StatusVoided {
		return b.quarantine(ctx, it, rec, protocol.ReasonDuplicateConflict, "the sale was already voided")
	}
	rec.Status = StatusVoided
	switch sale.Status {
	case StatusQuarantined:
		rec.Detail = "the sale was quarantined: nothing to reverse"
		return b.insert(ctx, it, rec)
	case StatusDisputed:
		// Never posted; the void ends the dispute: nothing is owed.
		rec.Detail = "the sale was disputed: nothing to reverse"
		sale.Status, sale.Detail, sale.UpdatedAt = StatusVoided, "disputed ("+sale.Reason.String()+"), then voided by "+rec.ID.String(), b.now
		if err := b.update(ctx, sale); err != nil {
			return err
		}
		return b.insert(ctx, it, rec)
	}
	if err := b.reverseSale(ctx, &sale); err != nil {
		return err
	}
	return b.insert(ctx, it, rec)
}

// reverseSale reverses a posted sale and starts its refund.
func (b *batchTx) reverseSale(ctx context.Context, sale *InvoiceRecord) error {
	if err := b.post(ctx, reversal(saleTransfer(*sale))); err != nil {
		return err
	}
	delete(b.jobs, sale.ID) // a capture queued earlier in this batch must not run
	delete(b.spent, spendOf(*sale))
	switch {
	case sale.Status == StatusSettled && sale.Funding == ground.FundingWallet:
		charge, err := postedWalletCharge(ctx, b.lb, *sale)
		if err != nil {
			return err
		}
		if err := b.post(ctx, reversal(charge)); err != nil {
			return err
		}
		sale.Refund = RefundDone
	case sale.Status == StatusSettled:
		sale.Refund, sale.NextRetryAt = RefundDue, b.now
		b.addJob(&job{kind: jobRefund, rec: *sale})
	case sale.Status == StatusPosted || sale.Status == StatusPendingRetry:
		sale.Refund, sale.NextRetryAt = RefundCancel, b.now // the capture's outcome is unknown
		b.addJob(&job{kind: jobCancel, rec: *sale})
	default: // collections: nothing was captured
		sale.NextRetryAt = time.Time{}
	}
	if sale.Arrears == ArrearsMark || sale.Arrears == ArrearsMarked {
		sale.Arrears, b.arrears = ArrearsClear, true
	}
	sale.Status, sale.UpdatedAt = StatusVoided, b.now
	return b.update(ctx, *sale)
}

func (b *batchTx) reject(ctx context.Context, it *item) error {
	r := RejectRecord{
		Hash: it.hash, Subject: it.subject, Kind: it.kind, Reason: it.reason, Detail: it.detail,
		Raw: it.raw, ReceivedAt: b.now,
	}
	if it.subjOK {
		r.Aircraft, r.Flight = it.subjAircraft, it.subjFlight
	}
	if it.inv != nil {
		r.Invoice, r.Seq = it.inv.Body.ID, it.inv.Body.Seq
	}
	// A receipt goes back to whoever published on the subject, when there
	// is an invoice id to name; its message id is the reject's hash, so it
	// can never suppress the receipt of the genuine invoice with that id.
	if it.inv != nil && it.subjOK {
		raw, err := b.s.sign(protocol.ClearingReceipt{
			Version: protocol.Version, Invoice: r.Invoice, Flight: r.Flight, Aircraft: r.Aircraft, Seq: r.Seq,
			Status: protocol.StatusQuarantined, Reason: r.Reason, At: b.now,
		})
		if err != nil {
			return err
		}
		r.Receipt = raw
	}
	// A close report that failed verification gets a rejection receipt on
	// its subject's aircraft and flight, so the cabin server can show why
	// instead of waiting for an acceptance that will never come.
	if it.kind == "close" && it.subjOK {
		var seq uint64
		if it.close != nil {
			seq = it.close.Body.LastSeq
		}
		raw, err := b.s.sign(protocol.ClearingReceipt{
			Version: protocol.Version, Flight: r.Flight, Aircraft: r.Aircraft, Seq: seq,
			Status: protocol.StatusCloseRejected, Reason: r.Reason, At: b.now,
		})
		if err != nil {
			return err
		}
		r.Receipt = raw
	}
	b.s.log.Warn("message rejected", "subject", it.subject, "kind", it.kind, "invoice", r.Invoice, "reason", r.Reason.String(), "detail", r.Detail)
	stored, err := insertReject(ctx, b.tx, r)
	if err != nil {
		return err
	}
	it.setStoredReceipt(stored, "reject-"+it.hash.String())
	it.resent = !bytes.Equal(stored, r.Receipt)
	return nil
}

func (b *batchTx) close(ctx context.Context, it *item) error {
	fc := it.close.Body
	c := CloseRecord{
		Hash: it.hash, Flight: fc.Flight, Aircraft: fc.Aircraft, ClosedAt: fc.ClosedAt.UTC(), Sales: fc.Sales, Voids: fc.Voids,
		SalesTotal: fc.SalesTotal, VoidsTotal: fc.VoidsTotal, LastSeq: fc.LastSeq, Head: fc.Head, Raw: it.raw, ReceivedAt: b.now,
	}
	raw, err := b.s.sign(protocol.ClearingReceipt{
		Version: protocol.Version, Flight: fc.Flight, Aircraft: fc.Aircraft, Seq: fc.LastSeq,
		Status: protocol.StatusCloseAccepted, At: b.now,
	})
	if err != nil {
		return err
	}
	c.Receipt = raw
	stored, err := insertClose(ctx, b.tx, c)
	if err != nil {
		return err
	}
	it.setStoredReceipt(stored, "receipt-close-"+it.hash.String())
	it.resent = !bytes.Equal(stored, c.Receipt)
	return nil
}

func (b *batchTx) addJob(j *job) {
	if _, ok := b.jobs[j.rec.ID]; !ok {
		b.order = append(b.order, j.rec.ID)
	}
	b.jobs[j.rec.ID] = j
}

// post creates the accounts t touches (unless known to exist) and posts it.
func (b *batchTx) post(ctx context.Context, ps ...posting) error {
	return b.s.post(ctx, b.lb, &b.accounts, ps...)
}

// post creates the accounts the transfers touch and posts them in the
// ledger batch lb. New account ids are appended to created, to be remembered
// after the commit. Any ledger refusal other than insufficient funds is a
// broken invariant: clearing derives every transfer from records it wrote
// itself.
func (s *Service) post(ctx context.Context, lb *ledger.Batch, created *[]ledger.AccountID, ps ...posting) error {
	var missing []ledger.Account
	ts := make([]ledger.Transfer, len(ps))
	for i, p := range ps {
		ts[i] = p.t
		for _, a := range p.accounts {
			if !s.accounts.has(a.ID) && !containsAccount(missing, a.ID) {
				missing = append(missing, a)
			}
		}
	}
	if len(missing) > 0 {
		if err := lb.CreateAccounts(ctx, missing...); err != nil {
			return classifyLedgerErr(err)
		}
		for _, a := range missing {
			*created = append(*created, a.ID)
		}
	}
	if _, err := lb.Post(ctx, ts...); err != nil {
		return classifyLedgerErr(err)
	}
	return nil
}

// flushErr classifies an error of ledger.Batch.Flush: an account changed
// under the transaction is a broken invariant; anything else is the
// database failing (a PostgreSQL restart drops the connection mid-batch),
// after which the batch is redelivered and cleared anew.
func flushErr(err error) error {
	if errors.Is(err, ledger.ErrChangedUnderTransaction) {
		return fmt.Errorf("%w: %w", errInvariant, err)
	}
	return fmt.Errorf("ledger flush: %w", err)
}

func classifyLedgerErr(err error) error {
	var te *ledger.TransferError
	var ae *ledger.AccountError
	if errors.Is(err, ledger.ErrInsufficientFunds) || (!errors.As(err, &te) && !errors.As(err, &ae)) {
		return err // a refusal the caller handles, or a database error
	}
	return fmt.Errorf("%w: %w", errInvariant, err)
}

func containsAccount(as []ledger.Account, id ledger.AccountID) bool {
	for _, a := range as {
		if a.ID == id {
			return true
		}
	}
	return false
}

func (s *Service) sign(r protocol.ClearingReceipt) ([]byte, error) {
	signed, err := protocol.Sign(r, s.cfg.IssuerKey, nil)
	if err != nil {
		return nil, fmt.Errorf("sign receipt: %v: %w", err, errInvariant)
	}
	return signed.Raw, nil
}

// settle acks every item whose outcome is committed and whose receipt, if
// any, JetStream acknowledged, and naks the rest with a delay that grows
// with the number of deliveries.
func (s *Service) settle(items []*item) {
	for _, it := range items {
		if it.msg == nil {
			continue
		}
		var err error
		if it.verdict == retry {
			err = it.msg.NakWithDelay(s.nakDelay(it.msg))
		} else {
			err = it.msg.Ack()
		}
		if err != nil {
			// The message comes back after AckWait; clearing it again is
			// idempotent.
			s.log.Warn("ack/nak failed; message will be redelivered", "subject", it.subject, "err", err)
		}
	}
}

func (s *Service) nakDelay(m jetstream.Msg) time.Duration {
	d := s.cfg.NakDelay
	if md, err := m.Metadata(); err == nil {
		for n := uint64(1); n < md.NumDelivered && d < maxNakDelay; n++ {
			d *= 2
		}
	}
	return min(d, maxNakDelay)
}

// Ledger transfers of an invoice record, derived from it alone, so a retry
// or a reversal names exactly the transfer that was posted. A posting
// carries the accounts its transfer needs, so they can be created first.

type posting struct {
	t        ledger.Transfer
	accounts [2]ledger.Account
}

func newPosting(code ledger.TransferCode, ref protocol.ID, amount protocol.Money, debit, credit ledger.Account) posting {
	return posting{
		t: ledger.Transfer{
			ID: ledger.TransferIDFor(code, ref), Debit: debit.ID, Credit: credit.ID,
			Amount: amount, Code: code, Ref: ref,
		},
		accounts: [2]ledger.Account{debit, credit},
	}
}

// reversal returns the posting that reverses p.
func reversal(p posting) posting {
	return posting{t: ledger.Reversal(p.t), accounts: [2]ledger.Account{p.accounts[1], p.accounts[0]}}
}

func saleTransfer(r InvoiceRecord) posting {
	c := r.Total.Currency
	return newPosting(ledger.TransferSale, r.ID, r.Total, ledger.ReceivableAccount(r.Passenger, c), ledger.RevenueAccount(r.Flight, c))
}

func walletChargeTransfer(r InvoiceRecord) posting {
	c := r.Total.Currency
	return newPosting(ledger.TransferWalletCharge, r.ID, r.Total, ledger.WalletAccount(r.Passenger, c), ledger.ReceivableAccount(r.Passenger, c))
}

func captureTransfer(r InvoiceRecord) posting {
	c := r.Total.Currency
	return newPosting(ledger.TransferCardCapture, r.ID, r.Total, ledger.AcquirerAccount(c), ledger.ReceivableAccount(r.Passenger, c))
}
