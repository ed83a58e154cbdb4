package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/airtab/airtab/onboard/replay"
	"github.com/airtab/airtab/protocol"
)

// The replayer's view of the journal: which invoices still need sending,
// and the receipts that clear them. An invoice is never deleted: cleared
// is its last state.

var _ replay.Journal = (*Journal)(nil)

// ReplayBatch returns up to limit invoices after afterSeq that are pending,
// or were sent before resendBefore and have no receipt, in seq order.
func (j *Journal) ReplayBatch(ctx context.Context, afterSeq uint64, resendBefore time.Time, limit int) ([]replay.Item, error) {
	rows, err := j.r.QueryContext(ctx, `SELECT seq, id, raw FROM invoices
		WHERE seq > ? AND (status = 'pending' OR (status = 'sent' AND sent_at < ?))
		ORDER BY seq LIMIT ?`, afterSeq, resendBefore.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("read invoices to replay: %w", err)
	}
	defer rows.Close()
	var items []replay.Item
	for rows.Next() {
		var (
			it replay.Item
			id []byte
		)
		if err := rows.Scan(&it.Seq, &id, &it.Raw); err != nil {
			return nil, fmt.Errorf("read invoices to replay: %w", err)
		}
		if len(id) != len(it.ID) {
			return nil, fmt.Errorf("read invoices to replay: invoice %d has a %d-byte id", it.Seq, len(id))
		}
		copy(it.ID[:], id)
		items = append(items, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read invoices to replay: %w", err)
	}
	return items, nil
}

// MarkSent records JetStream's acknowledgement of the invoices. A cleared
// invoice stays cleared.
func (j *Journal) MarkSent(ctx context.Context, ids []protocol.ID, at time.Time) error {
	w := j.w
	err := w.do(ctx, func() error {
		if err := w.tableStmts(ctx); err != nil {
			return err
		}
		return w.tx(ctx, func() error {
			for _, id := range ids {
				if err := execStmt(ctx, w.stmts.markSent, at.UnixMilli(), id[:]); err != nil {
					return fmt.Errorf("invoice %s: %w", id, err)
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("mark sent: %w", err)
	}
	return nil
}

// ApplyReceipt records a verified clearing receipt: the invoice (or the
// flight close) is cleared. Applying the same receipt again changes
// nothing. It reports false for a receipt about an invoice or flight this
// journal does not hold; a receipt whose sequence number disagrees with the
// journal's is an error and changes nothing.
func (j *Journal) ApplyReceipt(ctx context.Context, r *protocol.SignedReceipt) (bool, error) {
	b := r.Body
	if b.Flight != j.flight {
		return false, nil
	}
	at := b.At.UnixMilli()
	if b.Status == protocol.StatusCloseAccepted {
		var n int64
		err := j.w.do(ctx, func() error {
			return j.w.tx(ctx, func() error { // SaveDelta says why
				res, err := j.w.exec(ctx, `UPDATE flight_state SET status = 'cleared', receipt = ? WHERE id = 1`, r.Raw)
				if err != nil {
					return err
				}
				n, err = res.RowsAffected()
				return err
			})
		})
		if err != nil {
			return false, fmt.Errorf("apply close receipt: %w", err)
		}
		return n == 1, nil
	}
	var seq uint64
	err := j.r.QueryRowContext(ctx, `SELECT seq FROM invoices WHERE id = ?`, b.Invoice[:]).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("apply receipt for %s: %w", b.Invoice, err)
	}
	if seq != b.Seq {
		return false, fmt.Errorf("receipt for invoice %s says seq %d, journal has %d", b.Invoice, b.Seq, seq)
	}
	err = j.w.do(ctx, func() error {
		return j.w.tx(ctx, func() error {
			_, err := j.w.exec(ctx, `UPDATE invoices SET status = 'cleared', receipt = ?, receipt_status = ?, cleared_at = ?
				WHERE id = ? AND status != 'cleared'`, r.Raw, int64(b.Status), at, b.Invoice[:])
			return err
		})
	})
	if err != nil {
		return false, fmt.Errorf("apply receipt for %s: %w", b.Invoice, err)
	}
	return true, nil
}

// PendingClose returns the flight-close report while ground has not
// accepted it and it was not sent since resendBefore.
func (j *Journal) PendingClose(ctx context.Context, resendBefore time.Time) ([]byte, bool, error) {
	var raw []byte
	err := j.r.QueryRowContext(ctx, `SELECT close_raw FROM flight_state
		WHERE id = 1 AND status != 'cleared' AND (sent_at IS NULL OR sent_at < ?)`, resendBefore.UnixMilli()).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read pending flight close: %w", err)
	}
	return raw, true, nil
}

// MarkCloseSent records that JetStream acknowledged the close report.
func (j *Journal) MarkCloseSent(ctx context.Context, at time.Time) error {
	err := j.w.do(ctx, func() error {
		return j.w.tx(ctx, func() error { // SaveDelta says why
			_, err := j.w.exec(ctx, `UPDATE flight_state SET status = 'sent', sent_at = ? WHERE id = 1 AND status != 'cleared'`, at.UnixMilli())
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("mark flight close sent: %w", err)
	}
	return nil
}

// Counts returns the invoices by replay state.
func (j *Journal) Counts(ctx context.Context) (replay.Counts, error) {
	c, err := j.InvoiceCounts(ctx)
	if err != nil {
		return replay.Counts{}, err
	}
	return replay.Counts{Pending: int(c.Pending), Sent: int(c.Sent), Cleared: int(c.Cleared)}, nil
}
