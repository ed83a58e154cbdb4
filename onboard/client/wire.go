package client

import (
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/internal/wirejson"
	"github.com/airtab/airtab/protocol"
)

// A sale's request and decision in JSON without reflection, the client's
// side of onboard/httpapi's wire.go: the request as json.Marshal writes it,
// and the decision in the form the cabin server writes, anything else
// decoded by encoding/json (see package wirejson).

// appendSaleRequest appends req as json.Marshal writes it.
func appendSaleRequest(b []byte, req *onboard.SaleRequest) []byte {
	b = append(b, '{')
	b = wirejson.AppendKey(b, "invoice_id", true)
	b = appendID(b, req.InvoiceID)
	b = wirejson.AppendKey(b, "code", false)
	b = wirejson.AppendString(b, req.Code)
	if !req.OrderID.IsZero() {
		b = wirejson.AppendKey(b, "order_id", false)
		b = appendID(b, req.OrderID)
	}
	if len(req.Lines) > 0 {
		b = wirejson.AppendKey(b, "lines", false)
		b = append(b, '[')
		for i, l := range req.Lines {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '{')
			b = wirejson.AppendKey(b, "sku", true)
			b = wirejson.AppendString(b, l.SKU)
			b = wirejson.AppendKey(b, "quantity", false)
			b = wirejson.AppendInt(b, l.Quantity)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func appendID(b []byte, id protocol.ID) []byte { return wirejson.AppendHexString(b, id[:]) }

// decodeDecision decodes b into d on the fast path, and reports whether it
// could. d must be zero; when it reports false, d is to be discarded.
func decodeDecision(b []byte, d *onboard.Decision) bool {
	s := wirejson.NewScanner(b)
	ok := s.Object(func(key []byte) bool {
		switch string(key) {
		case "approved":
			d.Approved, _ = s.Bool()
		case "sale":
			d.Sale = new(onboard.Sale)
			return scanSale(s, d.Sale)
		case "remaining":
			return scanMoney(s, &d.Remaining)
		case "decline":
			d.Decline = new(onboard.Decline)
			return scanDecline(s, d.Decline)
		default:
			return false
		}
		return true
	})
	return ok && s.End()
}

func scanSale(s *wirejson.Scanner, sale *onboard.Sale) bool {
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "invoice_id":
			return scanText(s, sale.InvoiceID.UnmarshalText)
		case "seq":
			sale.Seq, _ = s.Uint(64)
		case "kind":
			sale.Kind, _ = s.String()
		case "passenger":
			return scanText(s, sale.Passenger.UnmarshalText)
		case "credential":
			return scanText(s, sale.Credential.UnmarshalText)
		case "lines":
			sale.Lines = []protocol.OrderLine{} // a present, empty array is not nil, as in encoding/json
			return s.Array(func() bool {
				var l protocol.OrderLine
				ok := scanLine(s, &l)
				sale.Lines = append(sale.Lines, l)
				return ok
			})
		case "total":
			return scanMoney(s, &sale.Total)
		case "created_at":
			q, ok := s.Quoted()
			return ok && sale.CreatedAt.UnmarshalJSON(q) == nil // what encoding/json calls
		case "crew":
			sale.Crew, _ = s.String()
		case "voids":
			return scanText(s, sale.Voids.UnmarshalText)
		case "voided_by":
			return scanText(s, sale.VoidedBy.UnmarshalText)
		case "hash":
			return scanText(s, sale.Hash.UnmarshalText)
		case "status":
			st, _ := s.String()
			sale.Status = onboard.InvoiceStatus(st)
		default:
			return false
		}
		return true
	})
}

func scanLine(s *wirejson.Scanner, l *protocol.OrderLine) bool {
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "sku":
			l.SKU, _ = s.String()
		case "quantity":
			q, _ := s.Uint(32)
			l.Quantity = uint32(q)
		case "unit_price":
			return scanMoney(s, &l.UnitPrice)
		default:
			return false
		}
		return true
	})
}

func scanDecline(s *wirejson.Scanner, dc *onboard.Decline) bool {
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "reason":
			r, _ := s.Uint(16)
			dc.Reason = protocol.Reason(r)
		case "name":
			dc.Name, _ = s.String()
		case "message":
			dc.Message, _ = s.String()
		case "amount":
			return scanMoney(s, &dc.Amount)
		default:
			return false
		}
		return true
	})
}

func scanMoney(s *wirejson.Scanner, m *protocol.Money) bool {
	return s.Object(func(key []byte) bool {
		switch string(key) {
		case "minor":
			m.Minor, _ = s.Int(64)
		case "currency":
			c, _ := s.String()
			m.Currency = protocol.Currency(c)
		default:
			return false
		}
		return true
	})
}

// scanText reads a string into a TextUnmarshaler (an id, a hash); one that
// does not parse fails the fast path, so encoding/json words the error.
func scanText(s *wirejson.Scanner, unmarshal func([]byte) error) bool {
	b, ok := s.StringBytes()
	return ok && unmarshal(b) == nil
}
