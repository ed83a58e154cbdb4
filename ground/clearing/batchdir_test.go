package clearing

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/clearing/clearingtest"
	"github.com/airtab/airtab/protocol"
)

// batchDir is clearingtest's Directory answering a batch's credential and
// funding lookups at once, as ground/registry does (ground.BatchDirectory).
// While fail is set its batch calls fail, as a busy database would.
type batchDir struct {
	*clearingtest.Directory
	calls atomic.Int64
	fail  atomic.Bool
}

var _ ground.BatchDirectory = (*batchDir)(nil)

func (d *batchDir) Credentials(ctx context.Context, ids []protocol.ID) (map[protocol.ID]*protocol.SignedCredential, error) {
	return batchOf(d, ids, func(id protocol.ID) (*protocol.SignedCredential, error) { return d.Credential(ctx, id) })
}

func (d *batchDir) Fundings(ctx context.Context, pax []protocol.ID) (map[protocol.ID]ground.FundingSource, error) {
	return batchOf(d, pax, func(id protocol.ID) (ground.FundingSource, error) { return d.Funding(ctx, id) })
}

func batchOf[V any](d *batchDir, ids []protocol.ID, get func(protocol.ID) (V, error)) (map[protocol.ID]V, error) {
	d.calls.Add(1)
	if d.fail.Load() {
		return nil, errors.New("database is locked")
	}
	out := map[protocol.ID]V{}
	for _, id := range ids {
		v, err := get(id)
		switch {
		case errors.Is(err, ground.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			out[id] = v
		}
	}
	return out, nil
}

// TestBatchDirectory checks that a directory answering a batch's lookups at
// once leads to the verdicts one lookup per id does, and that clearing
// falls back to one lookup per id when the batch call fails.
func TestBatchDirectory(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail bool
	}{{"OK", false}, {"BatchCallFails", true}} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			dir := &batchDir{Directory: h.world.Dir}
			dir.fail.Store(tc.fail)
			h.cfg.Directory = dir
			h.start()
			w, c, u := h.passenger(wallet, 100_00), h.passenger(card, 100_00), h.passenger(card, 100_00)
			withCredential(t, h, u, h.world.Issuer) // issued, but ground has no record of it
			if err := h.svc.TopUp(h.ctx, w.ID, eur(50_00), protocol.NewID(nil)); err != nil {
				t.Fatal(err)
			}
			invs := []*protocol.SignedInvoice{h.sale(w, 5_00), h.sale(c, 7_00), h.sale(u, 9_00), h.sale(w, 6_00)}
			h.send(invs...)
			rs := h.waitReceipts(invs...)
			wantReceipt(t, rs[invs[0].Body.ID][0], protocol.StatusSettled, 0)
			wantReceipt(t, rs[invs[1].Body.ID][0], protocol.StatusSettled, 0)
			wantReceipt(t, rs[invs[2].Body.ID][0], protocol.StatusQuarantined, protocol.ReasonUnknownCredential)
			wantReceipt(t, rs[invs[3].Body.ID][0], protocol.StatusSettled, 0)
			if dir.calls.Load() == 0 {
				t.Error("the batch lookups were never called")
			}
			h.checkLedger()
		})
	}
}

// TestBatchedIssuerSignature checks that a credential ground holds whose
// issuer signature is bad, checked in the batch with the other signatures
// of its group, is still found and its sale quarantined, while the good
// sales of the same batch clear.
func TestBatchedIssuerSignature(t *testing.T) {
	h := newHarness(t)
	bad := h.passenger(card, 100_00)
	raw := bytes.Clone(bad.Credential.Raw)
	raw[len(raw)-1] ^= 0x01 // the last byte of the issuer signature
	tampered, err := protocol.ParseCredential(raw)
	if err != nil {
		t.Fatal(err)
	}
	h.world.Dir.AddCredential(tampered)
	var invs []*protocol.SignedInvoice
	for range 5 {
		invs = append(invs, h.sale(h.passenger(card, 100_00), 5_00))
	}
	invs = append(invs, h.sale(bad, 5_00))
	h.send(invs...) // waiting before the service starts: one batch
	h.start()
	rs := h.waitReceipts(invs...)
	for _, inv := range invs[:5] {
		wantReceipt(t, rs[inv.Body.ID][0], protocol.StatusSettled, 0)
	}
	wantReceipt(t, rs[invs[5].Body.ID][0], protocol.StatusQuarantined, protocol.ReasonBadIssuerSignature)
}
