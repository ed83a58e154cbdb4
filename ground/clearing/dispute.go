package clearing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/protocol"
)

// Disputes. A disputed sale (StatusDisputed) is a real authorization the
// ground refused by a cabin-server rule; it waits for the back office, which
// either charges it (the normal sale path: wallet, card or collections) or
// voids it (nothing owed). The decision and its note are appended to the
// invoice's detail, so the invoice page shows who decided what and why.

// MaxDisputeNote bounds the note of ResolveDispute, in bytes.
const MaxDisputeNote = 500

// ErrNotDisputed is returned by ResolveDispute for an invoice that is not a
// disputed sale (already resolved, or never disputed).
var ErrNotDisputed = errors.New("invoice is not a disputed sale")

// ErrDisputeNote is returned by ResolveDispute for a missing or oversized
// note.
var ErrDisputeNote = errors.New("dispute note")

// ResolveDispute ends the dispute of sale invoice id. With charge, the sale
// goes the normal sale path: its counter is recorded (except for a sale
// disputed because its counter was used before: the pair stays with the
// first sale), then it is charged from the credential's hold or the wallet,
// captured on the card, or put in collections. Without charge, it is voided:
// nothing is owed. note (required, at most MaxDisputeNote bytes) says why;
// it is appended to the invoice's detail with the decision. It returns the
// invoice record after the decision.
func (s *Service) ResolveDispute(ctx context.Context, id protocol.ID, charge bool, note string) (InvoiceRecord, error) {
	note = strings.TrimSpace(note)
	switch {
	case note == "":
		return InvoiceRecord{}, fmt.Errorf("clearing: resolve dispute of %s: a note saying why is required: %w", id, ErrDisputeNote)
	case len(note) > MaxDisputeNote || !utf8.ValidString(note):
		return InvoiceRecord{}, fmt.Errorf("clearing: resolve dispute of %s: note is %d bytes or not UTF-8, want at most %d: %w", id, len(note), MaxDisputeNote, ErrDisputeNote)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.BatchTimeout)
	defer cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, found, err := getInvoice(ctx, s.db, id)
	switch {
	case err != nil:
		return InvoiceRecord{}, fmt.Errorf("clearing: resolve dispute of %s: %w", id, err)
	case !found:
		return InvoiceRecord{}, fmt.Errorf("clearing: resolve dispute of %s: %w", id, ground.ErrNotFound)
	case rec.Kind != protocol.KindSale || rec.Status != StatusDisputed:
		return InvoiceRecord{}, fmt.Errorf("clearing: resolve dispute of %s (%s): %w", id, rec.Status, ErrNotDisputed)
	}
	// The funding source is read before the transaction: the Directory (the
	// registry) opens its own on the same database.
	var (
		fs         ground.FundingSource
		hasFunding bool
	)
	if charge {
		fs, err = s.dir.Funding(ctx, rec.Passenger)
		switch {
		case err == nil:
			hasFunding = true
		case !errors.Is(err, ground.ErrNotFound):
			return InvoiceRecord{}, fmt.Errorf("clearing: resolve dispute of %s: look up funding: %w", id, err)
		}
	}
	tx, err := beginCached(ctx, s.db)
	if err != nil {
		return InvoiceRecord{}, fmt.Errorf("clearing: resolve dispute of %s: %w", id, err)
	}
	defer tx.Rollback()
	now := s.clock().UTC()
	b := &batchTx{s: s, tx: tx, lb: ledger.NewBatch(tx.Tx, now), now: now, jobs: map[protocol.ID]*job{}}
	// Read again inside the transaction: the decision applies to what is
	// stored now.
	if rec, found, err = getInvoice(ctx, tx, id); err != nil || !found || rec.Status != StatusDisputed {
		return InvoiceRecord{}, orNotDisputed(err, id)
	}
	decision := "voided, not charged"
	if charge {
		decision = "charged"
	}
	rec.Detail = strings.TrimPrefix(fmt.Sprintf("%s; dispute resolved at %s: %s: %s", rec.Detail, now.Format("2006-01-02T15:04:05Z"), decision, note), "; ")
	rec.UpdatedAt = now
	if charge {
		if err := b.chargeDisputed(ctx, &rec, fs, hasFunding); err != nil {
			return InvoiceRecord{}, fmt.Errorf("clearing: resolve dispute of %s: %w", id, err)
		}
	} else {
		rec.Status, rec.NextRetryAt = StatusVoided, time.Time{}
	}
	if err := updateInvoice(ctx, tx, rec); err != nil {
		return InvoiceRecord{}, fmt.Errorf("clearing: resolve dispute of %s: %w", id, err)
	}
	if err := b.lb.Flush(ctx); err != nil {
		return InvoiceRecord{}, fmt.Errorf("clearing: resolve dispute of %s: %w", id, flushErr(err))
	}
	if err := tx.Commit(); err != nil {
		return InvoiceRecord{}, fmt.Errorf("clearing: resolve dispute of %s: commit: %w", id, err)
	}
	s.accounts.addAll(b.accounts)
	s.log.Info("dispute resolved", "invoice", id, "flight", rec.Flight, "decision", decision, "amount", rec.Total.String(), "note", note)
	var jobs []*job
	for _, jid := range b.order {
		if j := b.jobs[jid]; j != nil {
			jobs = append(jobs, j)
			delete(b.jobs, jid)
		}
	}
	if len(jobs) > 0 {
		s.runJobs(ctx, newLookups(s.dir), jobs)
		recs, _, err := s.recordJobs(ctx, jobs)
		if err != nil {
			// The sale is posted: RetryCollections finishes its charge.
			s.log.Error("charge outcome of a resolved dispute not recorded; retried", "invoice", id, "err", err)
		} else if r, ok := recs[id]; ok {
			rec = r
		}
	}
	if err := s.syncArrears(ctx); err != nil && isFatal(err) {
		return rec, err
	}
	return rec, nil
}

// orNotDisputed is err, or ErrNotDisputed for invoice id.
func orNotDisputed(err error, id protocol.ID) error {
	if err != nil {
		return fmt.Errorf("clearing: resolve dispute of %s: %w", id, err)
	}
	return fmt.Errorf("clearing: resolve dispute of %s: %w", id, ErrNotDisputed)
}

// chargeDisputed takes a disputed sale down the normal sale path (sale):
// its counter, then the wallet charge, a card capture job, or collections.
func (b *batchTx) chargeDisputed(ctx context.Context, rec *InvoiceRecord, fs ground.FundingSource, hasFunding bool) error {
	if rec.Reason != protocol.ReasonCodeReused {
		var raw []byte
		if err := b.tx.QueryRowContext(ctx, `SELECT raw FROM clearing_invoices WHERE id = ?`, rec.ID[:]).Scan(&raw); err != nil {
			return fmt.Errorf("read invoice %s: %w", rec.ID, err)
		}
		inv, err := protocol.ParseInvoice(raw)
		if err != nil {
			return fmt.Errorf("stored invoice: %v: %w", err, errInvariant)
		}
		pr, err := saleProof(inv)
		if err != nil {
			return fmt.Errorf("stored invoice: payment code: %v: %w", err, errInvariant)
		}
		if _, used, err := counterOwner(ctx, b.tx, rec.Credential, pr.counter); err != nil {
			return err
		} else if !used {
			if err := insertCounter(ctx, b.tx, rec.Credential, pr.counter, rec.ID); err != nil {
				return err
			}
		}
	}
	switch {
	case hasFunding && fs.Kind == ground.FundingWallet:
		return b.walletSale(ctx, rec)
	case hasFunding && fs.Kind == ground.FundingCard:
		if err := b.post(ctx, saleTransfer(*rec)); err != nil {
			return err
		}
		rec.Status, rec.Funding, rec.Attempt, rec.NextRetryAt = StatusPosted, ground.FundingCard, 1, b.now
		b.addJob(&job{kind: jobCapture, rec: *rec, card: fs, hasCard: true})
	default:
		if err := b.post(ctx, saleTransfer(*rec)); err != nil {
			return err
		}
		b.s.collections(rec, string(DeclineNoFundingSource), b.now)
	}
	return nil
}
