package clearing

import (
	"context"
	"fmt"

	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/passengerapi"
)

// PassengerCharges returns up to limit of the passenger's invoices as the
// passenger API shows them (the receipts a wallet lists after landing),
// newest sale first, and whether more exist. It implements
// ground/api.ChargeSource with RetryPassenger.
func (s *Service) PassengerCharges(ctx context.Context, passenger protocol.ID, limit int) ([]passengerapi.Charge, bool, error) {
	if limit < 1 || limit > passengerapi.MaxCharges {
		return nil, false, fmt.Errorf("clearing: charges of %s: limit %d out of 1..%d", passenger, limit, passengerapi.MaxCharges)
	}
	rows, err := s.db.QueryContext(ctx, passengerChargesQuery, passenger[:], limit+1)
	if err != nil {
		return nil, false, fmt.Errorf("clearing: charges of %s: %w", passenger, err)
	}
	defer rows.Close()
	var out []passengerapi.Charge
	for rows.Next() {
		r, err := scanInvoice(rows, true)
		if err != nil {
			return nil, false, fmt.Errorf("clearing: charges of %s: %w", passenger, err)
		}
		out = append(out, chargeOf(r))
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("clearing: charges of %s: %w", passenger, err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// passengerChargesQuery lists a passenger's invoices, newest sale first. It
// finds them by the first column of clearing_invoices_passenger and sorts
// them: a passenger has a few dozen invoices, where the table has every
// passenger's.
const passengerChargesQuery = `SELECT ` + invoiceColumns + `, raw FROM clearing_invoices
	WHERE passenger = ? ORDER BY created_at DESC, seq DESC LIMIT ?`

// chargeOf maps a clearing record to the passenger's view of it.
func chargeOf(r InvoiceRecord) passengerapi.Charge {
	c := passengerapi.Charge{Invoice: r.ID, Flight: r.Flight, Kind: "sale", Amount: r.Total,
		Funding: passengerapi.FundingKind(r.Funding), SoldAt: r.CreatedAt, ClearedAt: r.ReceivedAt}
	if r.Kind == protocol.KindVoid {
		c.Kind = "void"
		v := r.Voids
		c.Voids = &v
	}
	switch r.Status {
	case StatusSettled:
		c.Status = passengerapi.ChargeSettled
		if !r.SettledAt.IsZero() {
			t := r.SettledAt
			c.SettledAt = &t
		}
	case StatusCollections:
		c.Status, c.Decline = passengerapi.ChargeCollections, r.Decline
	case StatusVoided, StatusVoidPending:
		c.Status = passengerapi.ChargeVoided
	case StatusQuarantined:
		c.Status = passengerapi.ChargeRefused
	default: // posted, pending-retry: the outcome is not known yet
		c.Status = passengerapi.ChargePending
	}
	if r.Kind == protocol.KindSale && len(r.Raw) > 0 {
		// The raw bytes were verified when clearing accepted them; a parse
		// failure here only leaves the lines out of the receipt.
		if inv, err := protocol.ParseInvoice(r.Raw); err == nil {
			c.Lines = inv.Body.Lines
		}
	}
	return c
}
