package onboard

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// state is what the flight has sold so far, in memory: it is rebuilt from
// the journal at start and changed only after a commit, by the writer, with
// the same apply used by the rebuild. Handlers read it under Cabin.stateMu.
type state struct {
	lastSeq uint64
	head    protocol.Hash // hash of invoice lastSeq; zero before the first

	// currency is the currency of every invoice so far; spend and exposure
	// are in its minor units. Set by the first invoice.
	currency   protocol.Currency
	exposure   int64
	passengers map[protocol.ID]*passengerState
	used       map[codeKey]struct{}
	invoices   map[protocol.ID]*invoiceRef
	voidedBy   map[protocol.ID]protocol.ID // sale id -> void id

	sales, voids           uint64
	salesTotal, voidsTotal map[protocol.Currency]int64

	close *protocol.SignedFlightClose // set once the flight is closed
}

// codeKey names one use of a payment code or consent: the device key and the
// counter. The full key, not its 8-byte id, so that two devices whose ids
// collide never block each other's codes. The journal has the same unique
// key.
type codeKey struct {
	device  [crypto.PublicKeySize]byte
	counter uint64
}

func newCodeKey(device crypto.PublicKey, counter uint64) codeKey {
	k := codeKey{counter: counter}
	copy(k.device[:], device.Bytes())
	return k
}

// passengerState is one passenger's standing on this flight.
type passengerState struct {
	spent int64       // approved sales minus voids, minor units
	sales []time.Time // times of approved sales, for the velocity rule
}

// invoiceRef is what the state keeps of each invoice: enough to answer a
// retry and to void a sale. The invoice itself stays in the journal.
type invoiceRef struct {
	seq         uint64
	kind        protocol.InvoiceKind
	passenger   protocol.ID
	credential  protocol.ID
	total       protocol.Money
	fingerprint protocol.Hash // of the request that made it; see fingerprint
}

func newState() *state {
	return &state{
		passengers: make(map[protocol.ID]*passengerState),
		used:       make(map[codeKey]struct{}),
		invoices:   make(map[protocol.ID]*invoiceRef),
		voidedBy:   make(map[protocol.ID]protocol.ID),
		salesTotal: make(map[protocol.Currency]int64),
		voidsTotal: make(map[protocol.Currency]int64),
	}
}

// apply adds one committed invoice to the state. It checks the invariants
// that must always hold and returns an error, never a partial change, when
// one is broken: the sequence has no gap, the chain links, an id or a code
// is used once, a void reverses an unvoided sale of the same amount.
func (s *state) apply(inv *protocol.Invoice, hash protocol.Hash, device crypto.PublicKey, counter uint64) error {
	if inv.Seq != s.lastSeq+1 {
		return fmt.Errorf("invoice %s: sequence %d after %d", inv.ID, inv.Seq, s.lastSeq)
	}
	if inv.Prev != s.head {
		return fmt.Errorf("invoice %s (seq %d): previous hash %s, chain head is %s", inv.ID, inv.Seq, inv.Prev, s.head)
	}
	if _, dup := s.invoices[inv.ID]; dup {
		return fmt.Errorf("invoice %s (seq %d): id already used", inv.ID, inv.Seq)
	}
	if s.currency != "" && inv.Total.Currency != s.currency {
		return fmt.Errorf("invoice %s (seq %d): currency %s, flight so far in %s", inv.ID, inv.Seq, inv.Total.Currency, s.currency)
	}
	fp, err := invoiceFingerprint(inv)
	if err != nil {
		return fmt.Errorf("invoice %s (seq %d): %w", inv.ID, inv.Seq, err)
	}
	switch inv.Kind {
	case protocol.KindSale:
		err = s.applySale(inv, device, counter)
	case protocol.KindVoid:
		err = s.applyVoid(inv)
	default:
		err = fmt.Errorf("invoice %s (seq %d): unknown kind %d", inv.ID, inv.Seq, inv.Kind)
	}
	if err != nil {
		return err
	}
	s.currency = inv.Total.Currency
	s.invoices[inv.ID] = &invoiceRef{seq: inv.Seq, kind: inv.Kind, passenger: inv.Passenger,
		credential: inv.Credential, total: inv.Total, fingerprint: fp}
	s.lastSeq, s.head = inv.Seq, hash
	return nil
}

func (s *state) applySale(inv *protocol.Invoice, device crypto.PublicKey, counter uint64) error {
	k := newCodeKey(device, counter)
	if _, used := s.used[k]; used {
		return fmt.Errorf("invoice %s (seq %d): code counter %d of device %s used twice", inv.ID, inv.Seq, counter, device.ID())
	}
	s.used[k] = struct{}{}
	p := s.passenger(inv.Passenger)
	p.spent += inv.Total.Minor
	p.sales = append(p.sales, inv.CreatedAt)
	s.exposure += inv.Total.Minor
	s.sales++
	s.salesTotal[inv.Total.Currency] += inv.Total.Minor
	return nil
}

func (s *state) applyVoid(inv *protocol.Invoice) error {
	sale, ok := s.invoices[inv.Voids]
	switch {
	case !ok || sale.kind != protocol.KindSale:
		return fmt.Errorf("void %s (seq %d): %s is not a sale", inv.ID, inv.Seq, inv.Voids)
	case s.voidedBy[inv.Voids] != protocol.ID{}:
		return fmt.Errorf("void %s (seq %d): sale %s already voided", inv.ID, inv.Seq, inv.Voids)
	case sale.total != inv.Total || sale.passenger != inv.Passenger:
		return fmt.Errorf("void %s (seq %d): does not match sale %s", inv.ID, inv.Seq, inv.Voids)
	}
	s.voidedBy[inv.Voids] = inv.ID
	s.passenger(inv.Passenger).spent -= inv.Total.Minor
	s.exposure -= inv.Total.Minor
	s.voids++
	s.voidsTotal[inv.Total.Currency] += inv.Total.Minor
	return nil
}

func (s *state) passenger(id protocol.ID) *passengerState {
	p, ok := s.passengers[id]
	if !ok {
		p = &passengerState{}
		s.passengers[id] = p
	}
	return p
}

// salesSince counts the passenger's sales after from.
func (s *state) salesSince(id protocol.ID, from time.Time) int {
	p, ok := s.passengers[id]
	if !ok {
		return 0
	}
	n := 0
	for _, t := range p.sales {
		if t.After(from) {
			n++
		}
	}
	return n
}

func (s *state) spent(id protocol.ID) int64 {
	if p, ok := s.passengers[id]; ok {
		return p.spent
	}
	return 0
}

// closeReport builds the flight-close report of the state as it is.
func (s *state) closeReport(id Identity, now time.Time) protocol.FlightClose {
	return protocol.FlightClose{
		Version:    protocol.Version,
		Flight:     id.Flight,
		Aircraft:   id.Aircraft,
		ClosedAt:   now,
		Sales:      s.sales,
		Voids:      s.voids,
		SalesTotal: sortedTotals(s.salesTotal),
		VoidsTotal: sortedTotals(s.voidsTotal),
		LastSeq:    s.lastSeq,
		Head:       s.head,
	}
}

func sortedTotals(m map[protocol.Currency]int64) []protocol.Money {
	var out []protocol.Money
	for c, v := range m {
		out = append(out, protocol.M(v, c))
	}
	slices.SortFunc(out, func(a, b protocol.Money) int {
		switch {
		case a.Currency < b.Currency:
			return -1
		case a.Currency > b.Currency:
			return 1
		}
		return 0
	})
	return out
}

// The fingerprint of a request is what makes a retry a retry: the same
// invoice id with the same fingerprint gets the original answer; the same id
// with another fingerprint is refused. A sale's covers the code (or consent
// and order id) and the basket as sent; a void's covers the sale it voids.

func codeFingerprint(code []byte, skus []string, qty []uint64) protocol.Hash {
	h := sha256.New()
	writeField(h, []byte("sale/code"))
	writeField(h, code)
	for i := range skus {
		writeField(h, []byte(skus[i]))
		writeField(h, binary.BigEndian.AppendUint64(nil, qty[i]))
	}
	return protocol.Hash(h.Sum(nil))
}

func consentFingerprint(consent []byte, order protocol.ID) protocol.Hash {
	h := sha256.New()
	writeField(h, []byte("sale/consent"))
	writeField(h, consent)
	writeField(h, order[:])
	return protocol.Hash(h.Sum(nil))
}

func voidFingerprint(sale protocol.ID) protocol.Hash {
	h := sha256.New()
	writeField(h, []byte("void"))
	writeField(h, sale[:])
	return protocol.Hash(h.Sum(nil))
}

// writeField writes b with a length prefix, so fields cannot run together.
func writeField(h interface{ Write([]byte) (int, error) }, b []byte) {
	h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
	h.Write(b)
}

// requestFingerprint is the fingerprint of a sale request.
func requestFingerprint(p *presented, orderID protocol.ID, lines []Line) protocol.Hash {
	if p.consent != nil {
		return consentFingerprint(p.raw, orderID)
	}
	skus, qty := make([]string, len(lines)), make([]uint64, len(lines))
	for i, l := range lines {
		skus[i], qty[i] = l.SKU, uint64(l.Quantity)
	}
	return codeFingerprint(p.raw, skus, qty)
}

// invoiceFingerprint is the fingerprint of the request that made inv.
func invoiceFingerprint(inv *protocol.Invoice) (protocol.Hash, error) {
	if inv.Kind == protocol.KindVoid {
		return voidFingerprint(inv.Voids), nil
	}
	if len(inv.Consent) > 0 {
		o, err := protocol.DecodeOrder(inv.Order)
		if err != nil {
			return protocol.Hash{}, err
		}
		return consentFingerprint(inv.Consent, o.ID), nil
	}
	skus, qty := make([]string, len(inv.Lines)), make([]uint64, len(inv.Lines))
	for i, l := range inv.Lines {
		skus[i], qty[i] = l.SKU, uint64(l.Quantity)
	}
	return codeFingerprint(inv.Code, skus, qty), nil
}
