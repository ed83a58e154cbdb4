package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/store"
	"github.com/airtab/airtab/protocol"
)

// Lookups of many ids at once, for ground clearing (ground.BatchDirectory):
// a clearing batch of a few hundred invoices names a few hundred
// credentials and passengers, and one statement per store.InChunk ids costs
// far less than one statement per id. A credential's bytes are parsed once
// per content: the parse is remembered by the SHA-256 of the stored bytes,
// so a credential read again (every batch that has a sale of it) is not
// decoded again, and a raised credential, whose bytes differ, is.

var _ ground.BatchDirectory = (*Registry)(nil)

// Credentials returns the credentials ground issued among ids, revoked or
// not, keyed by id; an id ground did not issue is absent.
func (r *Registry) Credentials(ctx context.Context, ids []protocol.ID) (map[protocol.ID]*protocol.SignedCredential, error) {
	out := make(map[protocol.ID]*protocol.SignedCredential, len(ids))
	for chunk := range slices.Chunk(distinct(ids), store.InChunk) {
		if err := r.credentialChunk(ctx, chunk, out); err != nil {
			return nil, fmt.Errorf("registry: credentials: %w", err)
		}
	}
	return out, nil
}

func (r *Registry) credentialChunk(ctx context.Context, chunk []protocol.ID, out map[protocol.ID]*protocol.SignedCredential) error {
	rows, err := r.reads.QueryContext(ctx, `SELECT id, raw FROM registry_credentials WHERE id IN `+store.InList, chunkArgs(chunk)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var idb, raw []byte
		if err := rows.Scan(&idb, &raw); err != nil {
			return err
		}
		id, err := scanID(idb)
		if err != nil {
			return err
		}
		c, err := r.parsed.credential(raw)
		if err != nil {
			return fmt.Errorf("stored credential %s: %w", id, err)
		}
		// Pair check: the row holds the credential it is keyed by.
		if c.Body.ID != id {
			return fmt.Errorf("stored credential %s holds credential %s", id, c.Body.ID)
		}
		out[id] = c
	}
	return rows.Err()
}

// Fundings returns the funding sources of those of passengers who have one,
// keyed by passenger; an unknown passenger, or one without a funding
// source, is absent (Funding says not found for both).
func (r *Registry) Fundings(ctx context.Context, passengers []protocol.ID) (map[protocol.ID]ground.FundingSource, error) {
	out := make(map[protocol.ID]ground.FundingSource, len(passengers))
	for chunk := range slices.Chunk(distinct(passengers), store.InChunk) {
		if err := r.fundingChunk(ctx, chunk, out); err != nil {
			return nil, fmt.Errorf("registry: funding sources: %w", err)
		}
	}
	return out, nil
}

func (r *Registry) fundingChunk(ctx context.Context, chunk []protocol.ID, out map[protocol.ID]ground.FundingSource) error {
	rows, err := r.reads.QueryContext(ctx, `SELECT id, funding FROM registry_passengers WHERE funding IS NOT NULL AND id IN `+store.InList, chunkArgs(chunk)...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			idb     []byte
			funding string
		)
		if err := rows.Scan(&idb, &funding); err != nil {
			return err
		}
		id, err := scanID(idb)
		if err != nil {
			return err
		}
		var fs ground.FundingSource
		if err := json.Unmarshal([]byte(funding), &fs); err != nil {
			return fmt.Errorf("stored funding of passenger %s: %w", id, err)
		}
		out[id] = fs
	}
	return rows.Err()
}

// distinct returns ids without repeats, in first-seen order.
func distinct(ids []protocol.ID) []protocol.ID {
	seen := make(map[protocol.ID]bool, len(ids))
	out := make([]protocol.ID, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// chunkArgs returns the ids of chunk (at least one) as the arguments of a
// store.InList.
func chunkArgs(chunk []protocol.ID) []any {
	return store.InArgs(chunk, func(id protocol.ID) any { return idBytes(id) })
}

// parseCache remembers parsed credentials by the SHA-256 of their bytes.
// The zero value is ready; it holds at most maxParsed and forgets
// everything when full: a cache, never a source of truth. What it returns
// is shared, so callers treat it as read-only, as they treat what
// ParseCredential returns.
type parseCache struct {
	mu sync.Mutex
	m  map[protocol.Hash]*protocol.SignedCredential
}

// maxParsed bounds parseCache: a few days of flights' credentials.
const maxParsed = 1 << 16

// credential returns raw parsed, from the cache when these bytes were
// parsed before.
func (c *parseCache) credential(raw []byte) (*protocol.SignedCredential, error) {
	h := protocol.Sum(raw)
	c.mu.Lock()
	p, ok := c.m[h]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := protocol.ParseCredential(raw)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxParsed {
		c.m = make(map[protocol.Hash]*protocol.SignedCredential)
	}
	c.m[h] = p
	return p, nil
}
