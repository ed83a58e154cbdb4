package httpapi

import (
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/internal/wirejson"
	"github.com/airtab/airtab/protocol"
)

// The sale endpoint's JSON without reflection: a request in the form the
// handhelds send, and the decision. Anything else (escapes, unknown or
// differently cased keys, null, numbers with fractions) goes to
// encoding/json, which decides as it always did; see package wirejson.

// decodeSaleRequest decodes b into req on the fast path, and reports
// whether it could. req must be zero; when it reports false, req is to be
// discarded.
func decodeSaleRequest(b []byte, req *onboard.SaleRequest) bool {
	s := wirejson.NewScanner(b)
	ok := s.Object(func(key []byte) bool {
		switch string(key) {
		case "invoice_id":
			return scanID(s, &req.InvoiceID)
		case "code":
			req.Code, _ = s.String()
		case "order_id":
			return scanID(s, &req.OrderID)
		case "lines":
			req.Lines = []onboard.Line{} // a present, empty array is not nil, as in encoding/json
			return s.Array(func() bool {
				var l onboard.Line
				ok := s.Object(func(key []byte) bool {
					switch string(key) {
					case "sku":
						l.SKU, _ = s.String()
					case "quantity":
						l.Quantity, _ = s.Int(64)
					default:
						return false
					}
					return true
				})
				req.Lines = append(req.Lines, l)
				return ok
			})
		default:
			return false
		}
		return true
	})
	return ok && s.End()
}

// scanID reads an id's string; an id that does not parse fails the fast
// path, so encoding/json words the error.
func scanID(s *wirejson.Scanner, id *protocol.ID) bool {
	b, ok := s.StringBytes()
	return ok && id.UnmarshalText(b) == nil
}

// appendDecision appends d as json.Marshal writes it, and reports false
// (with b unchanged) where it cannot: a time json.Marshal refuses.
func appendDecision(b []byte, d *onboard.Decision) ([]byte, bool) {
	start := len(b)
	b = append(b, '{')
	b = wirejson.AppendKey(b, "approved", true)
	b = wirejson.AppendBool(b, d.Approved)
	if d.Sale != nil {
		b = wirejson.AppendKey(b, "sale", false)
		var ok bool
		if b, ok = appendSale(b, d.Sale); !ok {
			return b[:start], false
		}
	}
	if d.Remaining != (protocol.Money{}) {
		b = wirejson.AppendKey(b, "remaining", false)
		b = appendMoney(b, d.Remaining)
	}
	if dc := d.Decline; dc != nil {
		b = wirejson.AppendKey(b, "decline", false)
		b = append(b, '{')
		b = wirejson.AppendKey(b, "reason", true)
		b = wirejson.AppendUint(b, uint64(dc.Reason))
		b = wirejson.AppendKey(b, "name", false)
		b = wirejson.AppendString(b, dc.Name)
		b = wirejson.AppendKey(b, "message", false)
		b = wirejson.AppendString(b, dc.Message)
		if dc.Amount != (protocol.Money{}) {
			b = wirejson.AppendKey(b, "amount", false)
			b = appendMoney(b, dc.Amount)
		}
		b = append(b, '}')
	}
	return append(b, '}'), true
}

func appendSale(b []byte, s *onboard.Sale) ([]byte, bool) {
	b = append(b, '{')
	b = wirejson.AppendKey(b, "invoice_id", true)
	b = appendID(b, s.InvoiceID)
	b = wirejson.AppendKey(b, "seq", false)
	b = wirejson.AppendUint(b, s.Seq)
	b = wirejson.AppendKey(b, "kind", false)
	b = wirejson.AppendString(b, s.Kind)
	b = wirejson.AppendKey(b, "passenger", false)
	b = appendID(b, s.Passenger)
	b = wirejson.AppendKey(b, "credential", false)
	b = appendID(b, s.Credential)
	if len(s.Lines) > 0 {
		b = wirejson.AppendKey(b, "lines", false)
		b = append(b, '[')
		for i, l := range s.Lines {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			b = wirejson.AppendKey(b, "sku", true)
			b = wirejson.AppendString(b, l.SKU)
			b = wirejson.AppendKey(b, "quantity", false)
			b = wirejson.AppendUint(b, uint64(l.Quantity))
			if l.UnitPrice != (protocol.Money{}) {
				b = wirejson.AppendKey(b, "unit_price", false)
				b = appendMoney(b, l.UnitPrice)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = wirejson.AppendKey(b, "total", false)
	b = appendMoney(b, s.Total)
	b = wirejson.AppendKey(b, "created_at", false)
	t, err := s.CreatedAt.MarshalJSON() // what json.Marshal calls
	if err != nil {
		return b, false
	}
	b = append(b, t...)
	b = wirejson.AppendKey(b, "crew", false)
	b = wirejson.AppendString(b, s.Crew)
	if !s.Voids.IsZero() {
		b = wirejson.AppendKey(b, "voids", false)
		b = appendID(b, s.Voids)
	}
	if !s.VoidedBy.IsZero() {
		b = wirejson.AppendKey(b, "voided_by", false)
		b = appendID(b, s.VoidedBy)
	}
	b = wirejson.AppendKey(b, "hash", false)
	b = wirejson.AppendHexString(b, s.Hash[:])
	b = wirejson.AppendKey(b, "status", false)
	b = wirejson.AppendString(b, string(s.Status))
	return append(b, '}'), true
}

func appendMoney(b []byte, m protocol.Money) []byte {
	b = append(b, '{')
	b = wirejson.AppendKey(b, "minor", true)
	b = wirejson.AppendInt(b, m.Minor)
	b = wirejson.AppendKey(b, "currency", false)
	b = wirejson.AppendString(b, string(m.Currency))
	return append(b, '}')
}

// appendID appends an id as its MarshalText does: lower-case hex.
func appendID(b []byte, id protocol.ID) []byte { return wirejson.AppendHexString(b, id[:]) }
