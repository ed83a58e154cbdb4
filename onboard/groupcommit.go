package onboard

import (
	"context"
	"fmt"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// Group commit. Handler goroutines do the stateless work (parsing, pricing,
// signature verification) in parallel and queue what is left as a job. One
// writer goroutine takes the queued jobs in batches and for each batch:
//
//  1. runs the stateful checks of every job in order, against the state plus
//     the effects of the jobs before it in the same batch (an overlay), so
//     two requests with the same code in one batch get one approval;
//  2. numbers each approved invoice (gapless, from 1), links it to the
//     previous one by hash, and signs it with the aircraft key;
//  3. writes all of them in ONE journal transaction and commits (fsync);
//  4. only then applies them to the in-memory state and answers every job.
//
// If the commit fails nobody in the batch is approved, the state is left as
// it was (and reloaded from the journal, in case the failure left doubt),
// and every job gets an error that says to retry with the same invoice id.

// job is one request for the writer.
type job struct {
	sale  *preparedSale // a sale, or
	void  *VoidRequest  // a void, or
	close string        // a flight close by this crew member, or
	// declines counts sales declined before the writer (journalDecline):
	// nothing to decide, only to count in the next commit.
	declines uint64
	done     chan result // buffered: the writer never blocks on it; nil for declines
}

// preparedSale is a sale request that passed the stateless checks.
type preparedSale struct {
	id           protocol.ID
	crew         string
	code         *presented
	cred         *protocol.SignedCredential
	lines        []protocol.OrderLine
	total        protocol.Money
	amountReason protocol.Reason // from checkAmount: reported after the counter check
	fingerprint  protocol.Hash
	order        *issuedOrder // two-way mode
}

// result is the writer's answer to a job.
type result struct {
	invoice *protocol.SignedInvoice     // approved and committed
	retryOf protocol.ID                 // the job repeats a committed invoice: answer with it
	decline protocol.Reason             // declined by a stateful check
	close   *protocol.SignedFlightClose // the flight-close report
	err     error

	// declineAmount is the limit a decline over one names (declineAmount
	// in authorize.go); remaining what the passenger may still spend.
	declineAmount, remaining protocol.Money
}

// overlay is the effect of the approved jobs of the batch being built, on
// top of the state. It is discarded when the commit fails.
type overlay struct {
	seq      uint64
	head     protocol.Hash
	entries  []Entry
	used     map[codeKey]struct{}
	spent    map[protocol.ID]int64
	sales    map[protocol.ID]int // sales in this batch, all at the batch's time
	exposure int64
	ids      map[protocol.ID]*invoiceRef
	voided   map[protocol.ID]protocol.ID

	salesN, voidsN         uint64
	salesTotal, voidsTotal map[protocol.Currency]int64
	close                  *protocol.SignedFlightClose
	declines               uint64 // sales declined in this batch or just before it
}

func newOverlay(s *state) *overlay {
	return &overlay{
		seq: s.lastSeq, head: s.head,
		used:       make(map[codeKey]struct{}),
		spent:      make(map[protocol.ID]int64),
		sales:      make(map[protocol.ID]int),
		ids:        make(map[protocol.ID]*invoiceRef),
		voided:     make(map[protocol.ID]protocol.ID),
		salesTotal: make(map[protocol.Currency]int64),
		voidsTotal: make(map[protocol.Currency]int64),
	}
}

// add records an approved, signed invoice in the overlay.
func (o *overlay) add(s *protocol.SignedInvoice, device crypto.PublicKey, counter uint64, fp protocol.Hash) {
	inv := &s.Body
	o.seq, o.head = inv.Seq, s.Hash()
	o.entries = append(o.entries, Entry{Invoice: s, Device: device, Counter: counter})
	o.ids[inv.ID] = &invoiceRef{seq: inv.Seq, kind: inv.Kind, passenger: inv.Passenger,
		credential: inv.Credential, total: inv.Total, fingerprint: fp}
	switch inv.Kind {
	case protocol.KindSale:
		o.used[newCodeKey(device, counter)] = struct{}{}
		o.spent[inv.Passenger] += inv.Total.Minor
		o.sales[inv.Passenger]++
		o.exposure += inv.Total.Minor
		o.salesN++
		o.salesTotal[inv.Total.Currency] += inv.Total.Minor
	case protocol.KindVoid:
		o.voided[inv.Voids] = inv.ID
		o.spent[inv.Passenger] -= inv.Total.Minor
		o.exposure -= inv.Total.Minor
		o.voidsN++
		o.voidsTotal[inv.Total.Currency] += inv.Total.Minor
	}
}

// writer is the single goroutine that owns the journal's write side and the
// state's mutations. It runs until the queue is closed and drained.
func (c *Cabin) writer() {
	defer close(c.writerDone)
	batch := make([]*job, 0, c.cfg.MaxBatch)
	for j := range c.queue {
		c.writerGate.Lock() // tests hold it to let a batch build up
		c.writerGate.Unlock()
		batch = append(batch[:0], j)
		batch = c.fill(batch)
		c.process(batch)
		clear(batch) // drop references for the collector
	}
}

// fill adds queued jobs to batch without waiting, up to MaxBatch.
func (c *Cabin) fill(batch []*job) []*job {
	for len(batch) < c.cfg.MaxBatch {
		select {
		case j, ok := <-c.queue:
			if !ok {
				return batch
			}
			batch = append(batch, j)
		default:
			return batch
		}
	}
	return batch
}

// process decides, commits and answers one batch.
func (c *Cabin) process(jobs []*job) {
	results := make([]result, len(jobs))
	if c.broken != nil {
		for i := range results {
			results[i].err = Errorf(CodeUnavailable, "the invoice journal failed; sales are off until the cabin server restarts")
		}
		c.answer(jobs, results)
		return
	}
	now := c.cfg.Clock()
	m := c.manifest.Load()
	o := newOverlay(c.state)
	for i, j := range jobs {
		switch {
		case j.sale != nil:
			results[i] = c.decideSale(o, m, j.sale, now)
		case j.void != nil:
			results[i] = c.decideVoid(o, j.void, now)
		case j.declines > 0:
			o.declines += j.declines
		default:
			results[i] = c.decideClose(o, j.close, now)
		}
		if results[i].decline != 0 {
			o.declines++
		}
	}
	if len(o.entries) > 0 || o.close != nil || o.declines > 0 {
		if err := c.commit(o); err != nil {
			c.failBatch(results, err)
		}
	}
	c.answer(jobs, results)
}

func (c *Cabin) answer(jobs []*job, results []result) {
	for i, j := range jobs {
		if j.done != nil {
			j.done <- results[i]
		}
		c.pending.Add(-1)
	}
}

// commit writes the overlay in one transaction and, once it is durable,
// applies it to the state.
func (c *Cabin) commit(o *overlay) error {
	b := Batch{Invoices: o.entries, Declines: o.declines}
	if o.close != nil {
		b.Close = o.close.Raw
	}
	if err := c.cfg.Journal.Commit(context.Background(), b); err != nil {
		return fmt.Errorf("commit %d invoices: %w", len(o.entries), err)
	}
	c.stateMu.Lock()
	defer c.stateMu.Unlock()
	for _, e := range o.entries {
		if err := c.state.apply(&e.Invoice.Body, e.Invoice.Hash(), e.Device, e.Counter); err != nil {
			// The overlay checked everything apply checks: this is a bug,
			// and the journal now holds it. Stop selling rather than build
			// on it; a restart's rebuild will refuse the journal too.
			c.broken = fmt.Errorf("invariant broken after commit: %w", err)
			c.log.Error("invariant broken after commit; sales are off", "err", err)
			return c.broken
		}
	}
	if o.close != nil {
		c.state.close = o.close
	}
	if len(o.entries) > 0 || o.close != nil {
		c.stats.commits.Add(1)
	}
	c.stats.approved.Add(uint64(len(o.entries)))
	c.stats.maxBatch(len(o.entries))
	return nil
}

// failBatch turns every answer of a batch whose commit failed into an
// error: nothing in it was approved. Declines and refusals are turned into
// errors too, since they may rest on an approval earlier in the same batch
// that did not happen; a retry with the same invoice id gets a fresh answer.
func (c *Cabin) failBatch(results []result, err error) {
	c.stats.failedCommits.Add(1)
	c.log.Error("group commit failed: batch not approved", "jobs", len(results), "err", err)
	if c.broken == nil {
		if rerr := c.reload(); rerr != nil {
			c.stateMu.Lock()
			c.broken = fmt.Errorf("reload after failed commit: %w", rerr)
			c.stateMu.Unlock()
			c.log.Error("cannot reload the journal; sales are off", "err", rerr)
		}
	}
	for i := range results {
		results[i] = result{err: Errorf(CodeUnavailable,
			"the invoice could not be written, nothing was approved: retry with the same invoice id")}
	}
}

// reload rebuilds the state from the journal, after a failed commit left
// doubt about what the journal holds.
func (c *Cabin) reload() error {
	s, err := loadState(context.Background(), c.cfg.Journal, c.id)
	if err != nil {
		return err
	}
	c.stateMu.Lock()
	c.state = s
	c.stateMu.Unlock()
	return nil
}

// retried checks whether id was used before, in the state or earlier in the
// batch: with the same fingerprint the job is a retry, answered with the
// original invoice; with another it is refused.
func (c *Cabin) retried(o *overlay, id protocol.ID, fp protocol.Hash) (result, bool) {
	ref, ok := c.state.invoices[id]
	if !ok {
		ref, ok = o.ids[id]
	}
	if !ok {
		return result{}, false
	}
	if ref.fingerprint != fp {
		return result{err: idConflict(id)}, true
	}
	return result{retryOf: id}, true
}

func idConflict(id protocol.ID) *Error {
	return ReasonErrorf(CodeConflict, protocol.ReasonDuplicateConflict,
		"invoice id %s was already used for another request; choose a new invoice id for a new sale", id)
}

func (c *Cabin) closed(o *overlay) bool { return c.state.close != nil || o.close != nil }

// decideSale runs the stateful checks on one sale and, if it is approved,
// builds, signs and adds its invoice to the overlay.
func (c *Cabin) decideSale(o *overlay, m *Manifest, s *preparedSale, now time.Time) result {
	if r, ok := c.retried(o, s.id, s.fingerprint); ok {
		return r
	}
	if r := sellable(m, c.closed(o), now); r != 0 {
		return result{decline: r}
	}
	cred := &s.cred.Body
	// A delta may have deny-listed the passenger since the handler checked.
	if m.Denied(cred) {
		return result{decline: protocol.ReasonDenyListed}
	}
	amountReason := s.amountReason
	if amountReason == 0 && c.state.currency != "" && s.total.Currency != c.state.currency {
		amountReason = protocol.ReasonCurrencyMismatch
	}
	key := newCodeKey(cred.Device.PublicKey, s.code.counter)
	_, used := c.state.used[key]
	_, usedInBatch := o.used[key]
	caps := m.Caps()
	st := spendState{
		codeUsed:    used || usedInBatch,
		spent:       c.state.spent(cred.Passenger) + o.spent[cred.Passenger],
		exposure:    c.state.exposure + o.exposure,
		recentSales: c.state.salesSince(cred.Passenger, velocityFrom(caps, now)) + o.sales[cred.Passenger],
	}
	if r := checkSpend(st, cred, s.total, amountReason, caps); r != 0 {
		return result{decline: r, declineAmount: declineAmount(r, st, cred, caps),
			remaining: protocol.M(max(cred.Limit.Minor-st.spent, 0), cred.Limit.Currency)}
	}
	inv := protocol.Invoice{
		Version: protocol.Version, ID: s.id, Flight: c.id.Flight, Aircraft: c.id.Aircraft,
		Seq: o.seq + 1, Prev: o.head, Kind: protocol.KindSale,
		Credential: cred.ID, Passenger: cred.Passenger,
		Lines: s.lines, Total: s.total, CreatedAt: now, Crew: s.crew,
	}
	if s.order != nil {
		inv.Consent, inv.Order = s.code.raw, s.order.raw
	} else {
		inv.Code = s.code.raw
	}
	// Every part of inv was checked already: the code parsed strictly and
	// verified, the lines priced from the verified manifest, the sequence
	// and chain the writer's own. SignTrusted skips parsing the code again
	// (SPEC §12.1's rules ran on it); a restart's rebuild and ground still
	// parse and validate the whole invoice.
	signed, err := protocol.SignTrusted(inv, c.cfg.AircraftKey, nil)
	if err != nil {
		c.log.Error("sign invoice", "invoice", s.id, "err", err)
		return result{err: fmt.Errorf("sign invoice %s: %w", s.id, err)}
	}
	o.add(signed, cred.Device.PublicKey, s.code.counter, s.fingerprint)
	return result{invoice: signed}
}

// decideVoid checks a void and, if it stands, builds, signs and adds the
// reversal invoice to the overlay.
func (c *Cabin) decideVoid(o *overlay, v *VoidRequest, now time.Time) result {
	if r, ok := c.retried(o, v.InvoiceID, voidFingerprint(v.SaleID)); ok {
		return r
	}
	if c.closed(o) {
		return result{err: ReasonErrorf(CodeConflict, protocol.ReasonFlightClosed, "the flight is closed: sales can no longer be voided")}
	}
	sale, ok := c.state.invoices[v.SaleID]
	if !ok {
		sale, ok = o.ids[v.SaleID]
	}
	if !ok {
		return result{err: Errorf(CodeNotFound, "no sale %s on this flight", v.SaleID)}
	}
	if sale.kind != protocol.KindSale {
		return result{err: Errorf(CodeInvalid, "invoice %s is a void, not a sale", v.SaleID)}
	}
	by, done := c.state.voidedBy[v.SaleID]
	if !done {
		by, done = o.voided[v.SaleID]
	}
	if done {
		return result{err: Errorf(CodeConflict, "sale %s was already voided by %s", v.SaleID, by)}
	}
	inv := protocol.Invoice{
		Version: protocol.Version, ID: v.InvoiceID, Flight: c.id.Flight, Aircraft: c.id.Aircraft,
		Seq: o.seq + 1, Prev: o.head, Kind: protocol.KindVoid,
		Credential: sale.credential, Passenger: sale.passenger, Total: sale.total,
		CreatedAt: now, Voids: v.SaleID, Crew: v.Crew,
	}
	signed, err := protocol.Sign(inv, c.cfg.AircraftKey, nil)
	if err != nil {
		c.log.Error("sign void", "invoice", v.InvoiceID, "err", err)
		return result{err: fmt.Errorf("sign void %s: %w", v.InvoiceID, err)}
	}
	o.add(signed, crypto.PublicKey{}, 0, voidFingerprint(v.SaleID))
	return result{invoice: signed}
}

// decideClose builds and signs the flight-close report over the state and
// the batch so far. Closing a closed flight returns the report made then.
func (c *Cabin) decideClose(o *overlay, crew string, now time.Time) result {
	if c.state.close != nil {
		return result{close: c.state.close}
	}
	if o.close != nil {
		return result{close: o.close}
	}
	// The report covers the state plus this batch's invoices before the
	// close; a copy of the counters is enough.
	s := *c.state
	s.sales += o.salesN
	s.voids += o.voidsN
	s.salesTotal = mergeTotals(c.state.salesTotal, o.salesTotal)
	s.voidsTotal = mergeTotals(c.state.voidsTotal, o.voidsTotal)
	s.lastSeq, s.head = o.seq, o.head
	report := s.closeReport(c.id, now)
	signed, err := protocol.Sign(report, c.cfg.AircraftKey, nil)
	if err != nil {
		c.log.Error("sign flight close", "err", err)
		return result{err: fmt.Errorf("sign flight close: %w", err)}
	}
	c.log.Info("flight closed", "crew", crew, "sales", report.Sales, "voids", report.Voids, "last_seq", report.LastSeq)
	o.close = signed
	return result{close: signed}
}

func mergeTotals(a, b map[protocol.Currency]int64) map[protocol.Currency]int64 {
	out := make(map[protocol.Currency]int64, len(a)+len(b))
	for k, v := range a {
		out[k] += v
	}
	for k, v := range b {
		out[k] += v
	}
	return out
}

// submit queues j for the writer and waits for its answer. The queue is
// bounded; when it is full, submit waits for room until ctx ends. Once the
// job is queued its outcome no longer depends on ctx: if ctx ends first, the
// caller gets an error, and a retry with the same invoice id learns the
// outcome.
func (c *Cabin) submit(ctx context.Context, j *job) (result, error) {
	j.done = make(chan result, 1)
	if err := c.enqueue(ctx, j); err != nil {
		return result{}, err
	}
	select {
	case r := <-j.done:
		return r, r.err
	case <-ctx.Done():
		return result{}, Errorf(CodeUnavailable, "no answer in time (%v): retry with the same invoice id", context.Cause(ctx))
	}
}

// journalDecline queues one decline made before the writer (a rule the
// handler checks) to be counted in the journal with the next commit. It
// never waits: with the queue full or the cabin server stopping, the
// decline is counted in Stats only, until the next restart.
func (c *Cabin) journalDecline() {
	c.queueMu.RLock()
	defer c.queueMu.RUnlock()
	if c.stopped {
		return
	}
	c.pending.Add(1)
	select {
	case c.queue <- &job{declines: 1}:
	default:
		c.pending.Add(-1)
	}
}

func (c *Cabin) enqueue(ctx context.Context, j *job) error {
	c.queueMu.RLock()
	defer c.queueMu.RUnlock()
	if c.stopped {
		return Errorf(CodeUnavailable, "the cabin server is shutting down")
	}
	c.pending.Add(1)
	select {
	case c.queue <- j:
		return nil
	case <-ctx.Done():
		c.pending.Add(-1)
		return Errorf(CodeUnavailable, "the cabin server is busy: %v", context.Cause(ctx))
	}
}
