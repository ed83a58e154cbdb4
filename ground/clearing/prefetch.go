package clearing

import (
	"context"
	"fmt"
	"strings"

	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
)

// Reads for a whole clearing batch at once. Clearing's first question about
// each invoice of a batch is whether it is already stored, and about each
// sale whether a void names it and whether its code's counter was used;
// nearly always the answers are no, and asking a few hundred times one row
// at a time is much of a batch's SQL. (What the passenger spent on the
// flight before is still asked per sale: one statement for a batch's
// passengers, an OR of 64 index searches and a GROUP BY, cost SQLite more
// than the 64 statements.) These
// ask for prefetchChunk ids per statement (a fixed arity, padded with the
// first id, so each is one prepared statement), at the start of the batch's
// transaction; batchTx keeps the answers until its own writes change them
// (process.go: batchTx.get, voids, insert, update).

// prefetchChunk is how many ids one statement asks for.
const prefetchChunk = store.InChunk

// inList is "(?, ?, …)" with prefetchChunk placeholders.
var inList = store.InList

// chunkArgs returns the ids of chunk as statement arguments, padded to
// prefetchChunk with the first.
func chunkArgs(chunk []protocol.ID) []any { return store.InArgs(chunk, idArg) }

func idArg(id protocol.ID) any { return id[:] }

// invoicesByID returns the records (without raw) of those of ids that are
// stored.
func invoicesByID(ctx context.Context, q ledger.Querier, ids []protocol.ID) (map[protocol.ID]InvoiceRecord, error) {
	out := make(map[protocol.ID]InvoiceRecord)
	for i := 0; i < len(ids); i += prefetchChunk {
		chunk := ids[i:min(i+prefetchChunk, len(ids))]
		rows, err := q.QueryContext(ctx, `SELECT `+invoiceColumns+` FROM clearing_invoices WHERE id IN `+inList, chunkArgs(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("read invoices: %w", err)
		}
		for rows.Next() {
			r, err := scanInvoice(rows, false)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("read invoices: %w", err)
			}
			out[r.ID] = r
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("read invoices: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read invoices: %w", err)
		}
	}
	return out, nil
}

// salesWithVoids returns which of sales have a stored void invoice naming
// them, whatever its status (a superset of what voidsOf returns).
func salesWithVoids(ctx context.Context, q ledger.Querier, sales []protocol.ID) (map[protocol.ID]bool, error) {
	out := make(map[protocol.ID]bool)
	for i := 0; i < len(sales); i += prefetchChunk {
		chunk := sales[i:min(i+prefetchChunk, len(sales))]
		rows, err := q.QueryContext(ctx, `SELECT DISTINCT voids FROM clearing_invoices WHERE voids IN `+inList, chunkArgs(chunk)...)
		if err != nil {
			return nil, fmt.Errorf("read voids: %w", err)
		}
		for rows.Next() {
			var b []byte
			if err := rows.Scan(&b); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read voids: %w", err)
			}
			var id protocol.ID
			copy(id[:], b)
			out[id] = true
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("read voids: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read voids: %w", err)
		}
	}
	return out, nil
}

// counterKey is a payment code's counter in its credential's namespace.
type counterKey struct {
	credential protocol.ID
	counter    uint64
}

// countersUsed returns which of keys are used, and by which invoice.
func countersUsed(ctx context.Context, q ledger.Querier, keys []counterKey) (map[counterKey]protocol.ID, error) {
	out := make(map[counterKey]protocol.ID)
	query := `SELECT credential, counter, invoice FROM clearing_credential_counters WHERE ` +
		strings.TrimSuffix(strings.Repeat("(credential = ? AND counter = ?) OR ", prefetchChunk), " OR ")
	for i := 0; i < len(keys); i += prefetchChunk {
		chunk := keys[i:min(i+prefetchChunk, len(keys))]
		args := make([]any, 0, 2*prefetchChunk)
		for j := range prefetchChunk {
			k := chunk[0]
			if j < len(chunk) {
				k = chunk[j]
			}
			args = append(args, k.credential[:], int64(k.counter))
		}
		rows, err := q.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
		for rows.Next() {
			var cred, inv []byte
			var n int64
			if err := rows.Scan(&cred, &n, &inv); err != nil {
				rows.Close()
				return nil, fmt.Errorf("read counters: %w", err)
			}
			var k counterKey
			var id protocol.ID
			copy(k.credential[:], cred)
			copy(id[:], inv)
			k.counter = uint64(n)
			out[k] = id
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("read counters: %w", err)
		}
	}
	return out, nil
}

// prefetch reads, for the batch's items, which invoices are stored, which
// sales have voids and which counters are used, into b.known, b.noVoids
// and b.counters.
func (b *batchTx) prefetch(ctx context.Context, items []*item) error {
	var ids, sales []protocol.ID
	var counters []counterKey
	for _, it := range items {
		if it.inv == nil || it.verdict == retry || it.verdict == reject {
			continue
		}
		inv := it.inv.Body
		ids = append(ids, inv.ID)
		switch inv.Kind {
		case protocol.KindSale:
			sales = append(sales, inv.ID)
			if f := it.sale; f != nil && it.verdict == accept {
				counters = append(counters, counterKey{f.credential, f.counter})
			}
		case protocol.KindVoid:
			ids = append(ids, inv.Voids)
			sales = append(sales, inv.Voids)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	found, err := invoicesByID(ctx, b.tx, ids)
	if err != nil {
		return err
	}
	voided, err := salesWithVoids(ctx, b.tx, sales)
	if err != nil {
		return err
	}
	b.known = make(map[protocol.ID]*InvoiceRecord, len(ids))
	for _, id := range ids {
		if r, ok := found[id]; ok {
			b.known[id] = &r
		} else {
			b.known[id] = nil
		}
	}
	b.noVoids = make(map[protocol.ID]bool, len(sales))
	for _, id := range sales {
		if !voided[id] {
			b.noVoids[id] = true
		}
	}
	if len(counters) == 0 {
		return nil
	}
	used, err := countersUsed(ctx, b.tx, counters)
	if err != nil {
		return err
	}
	b.counters = make(map[counterKey]*protocol.ID, len(counters))
	for _, k := range counters {
		if id, ok := used[k]; ok {
			b.counters[k] = &id
		} else {
			b.counters[k] = nil
		}
	}
	return nil
}

// counterOwner is counterOwner, from the prefetched answers while the batch
// has not used the counter.
func (b *batchTx) counterOwner(ctx context.Context, k counterKey) (protocol.ID, bool, error) {
	if owner, ok := b.counters[k]; ok {
		if owner == nil {
			return protocol.ID{}, false, nil
		}
		return *owner, true, nil
	}
	return counterOwner(ctx, b.tx, k.credential, k.counter)
}

// useCounter stores that invoice used counter k.
func (b *batchTx) useCounter(ctx context.Context, k counterKey, invoice protocol.ID) error {
	delete(b.counters, k)
	return insertCounter(ctx, b.tx, k.credential, k.counter, invoice)
}

// wrote forgets what the prefetch said that a write of r may change.
func (b *batchTx) wrote(r InvoiceRecord) {
	delete(b.known, r.ID)
	if r.Kind == protocol.KindVoid {
		delete(b.noVoids, r.Voids)
	}
}

// get returns the stored record with id, from the prefetched answers while
// the batch has not written it.
func (b *batchTx) get(ctx context.Context, id protocol.ID) (InvoiceRecord, bool, error) {
	if r, ok := b.known[id]; ok {
		if r == nil {
			return InvoiceRecord{}, false, nil
		}
		return *r, true, nil
	}
	return getInvoice(ctx, b.tx, id)
}

// voids returns the void invoices naming sale, other than except; none,
// without asking, for a sale the prefetch found none for and the batch
// has stored none for.
func (b *batchTx) voids(ctx context.Context, sale, except protocol.ID) ([]InvoiceRecord, error) {
	if b.noVoids[sale] {
		return nil, nil
	}
	return voidsOf(ctx, b.tx, sale, except)
}

// update writes r's mutable columns (updateInvoice) and forgets what the
// prefetch said of it.
func (b *batchTx) update(ctx context.Context, r InvoiceRecord) error {
	b.wrote(r)
	return updateInvoice(ctx, b.tx, r)
}
