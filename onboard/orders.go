package onboard

import (
	"fmt"
	"sync"
	"time"

	"github.com/airtab/airtab/protocol"
)

// issuedOrder is an order the cabin server priced for two-way mode, kept
// until the passenger's consent to it comes back or it expires.
type issuedOrder struct {
	order   protocol.Order
	raw     []byte        // canonical CBOR, as it goes into the invoice
	hash    protocol.Hash // what the consent must sign
	expires time.Time
}

// orderBook holds issued orders in memory, bounded in number and age.
// Orders are not journaled: after a restart the handheld makes a new one,
// and nothing is lost, since nothing was approved.
type orderBook struct {
	mu   sync.Mutex
	byID map[protocol.ID]*issuedOrder
	max  int
	ttl  time.Duration
}

func newOrderBook(maxOrders int, ttl time.Duration) *orderBook {
	return &orderBook{byID: make(map[protocol.ID]*issuedOrder), max: maxOrders, ttl: ttl}
}

// add keeps the priced order o, encoded, until now+ttl. It refuses when
// MaxOrders unexpired orders are open.
func (b *orderBook) add(o protocol.Order, now time.Time) (*issuedOrder, error) {
	raw, err := o.Encode()
	if err != nil {
		return nil, fmt.Errorf("encode order: %w", err)
	}
	io := &issuedOrder{order: o, raw: raw, hash: protocol.Sum(raw), expires: now.Add(b.ttl)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.byID) >= b.max {
		b.expire(now)
	}
	if len(b.byID) >= b.max {
		return nil, Errorf(CodeUnavailable, "%d orders are open, the limit (MaxOrders): complete or let some expire", b.max)
	}
	b.byID[o.ID] = io
	return io, nil
}

func (b *orderBook) expire(now time.Time) {
	for id, o := range b.byID {
		if !now.Before(o.expires) {
			delete(b.byID, id)
		}
	}
}

// get returns the unexpired order with id.
func (b *orderBook) get(id protocol.ID, now time.Time) (*issuedOrder, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o, ok := b.byID[id]
	if !ok || !now.Before(o.expires) {
		return nil, false
	}
	return o, true
}

// remove forgets an order once a sale on it is approved.
func (b *orderBook) remove(id protocol.ID) {
	b.mu.Lock()
	delete(b.byID, id)
	b.mu.Unlock()
}
