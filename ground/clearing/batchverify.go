package clearing

import (
	"bytes"
	"context"
	"sync"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// Stage 1's signatures, batched. Before the checks of verify.go run over a
// fetched batch, the aircraft signature of every invoice (with the key
// ground registered for the aircraft its subject names), the device
// signature of every sale (with the device key of the credential ground
// issued) and the issuer signature of each such credential not verified
// before (with the one trusted issuer key of its key id) are checked
// together with crypto.Batch, in groups of
// sigGroupItems invoices spread over VerifyWorkers goroutines. The checks
// then run as before, in the same order and to the same verdicts: a
// signature the batch found good, with the same key and external data, is
// not checked again; anything else is checked alone as it always was (a
// bad signature, which the batch's fallback has already found, a retired
// aircraft key, an embedded credential ground did not issue). The parsed
// invoice and payment code are kept on the item, so verify.go parses each
// once. See crypto/batch.go for what a batch pass implies.

// sigGroupItems is how many messages' signatures one crypto.Batch checks:
// big enough that the batch's fixed costs are spread thin (about 128
// signatures), small enough that a group holding a bad signature, which is
// checked again one signature at a time, costs little.
const sigGroupItems = 64

// preSig is what the batch said of one signature, and over what.
type preSig struct {
	key      crypto.PublicKey
	external []byte
	ok       bool
}

// verified reports whether the batch found the signature good with key k
// and external data external.
func (p preSig) verified(k crypto.PublicKey, external []byte) bool {
	return p.ok && p.key.Equal(k) && bytes.Equal(p.external, external)
}

// preSigs are the batch's answers for one item: its aircraft's signature,
// the device signature of its sale, and the issuer signature of the
// credential whose hash is issuerOf (queued only for a credential not
// verified before, see verifyCredential).
type preSigs struct {
	aircraft, device, issuer preSig
	issuerOf                 protocol.Hash
}

// Which signature of an item a queuedSig is.
type sigKind int

const (
	sigAircraft sigKind = iota
	sigDevice
	sigIssuer
)

// queuedSig is a signature of an item waiting in a batch.
type queuedSig struct {
	it   *item
	idx  int
	kind sigKind
	sig  preSig
}

// batchSignatures checks the signatures of items in batches (see above)
// and records the answers on the items: it parses the messages, asks the
// directory for the batch's credentials and funding sources at once
// (lookups.prefetch), then queues and checks each group's signatures.
func (s *Service) batchSignatures(ctx context.Context, lk *lookups, items []*item) {
	s.inGroups(items, func(g []*item) {
		for _, it := range g {
			parseForBatch(it)
		}
	})
	lk.prefetch(ctx, items)
	s.inGroups(items, func(g []*item) {
		var b crypto.Batch
		var q []queuedSig
		for _, it := range g {
			q = s.queueSignatures(ctx, lk, it, &b, q)
		}
		ok := b.Verify(nil)
		for _, e := range q {
			e.sig.ok = ok[e.idx]
			switch e.kind {
			case sigAircraft:
				e.it.pre.aircraft = e.sig
			case sigDevice:
				e.it.pre.device = e.sig
			case sigIssuer:
				e.it.pre.issuer = e.sig
			}
		}
	})
}

// inGroups calls f on items in groups of sigGroupItems, on at most
// VerifyWorkers goroutines, and returns when every call has.
func (s *Service) inGroups(items []*item, f func(g []*item)) {
	groups := make(chan []*item)
	var wg sync.WaitGroup
	for range min(s.cfg.VerifyWorkers, (len(items)+sigGroupItems-1)/sigGroupItems) {
		wg.Go(func() {
			for g := range groups {
				f(g)
			}
		})
	}
	for i := 0; i < len(items); i += sigGroupItems {
		groups <- items[i:min(i+sigGroupItems, len(items))]
	}
	close(groups)
	wg.Wait()
}

// parseForBatch parses an invoice message and its sale's proof, keeping
// them on the item. What does not parse is left to verify.go, which
// decides the verdict.
func parseForBatch(it *item) {
	if kind, _, _, _ := protocol.ParseSubject(it.subject); kind == "close" {
		return
	}
	inv, err := protocol.ParseInvoice(it.raw)
	if err != nil {
		return
	}
	it.inv = inv
	if inv.Body.Kind != protocol.KindSale {
		return
	}
	if p, err := saleProof(inv); err == nil {
		it.proof = &p
	}
}

// queueSignatures queues the signatures of a parsed invoice message in b.
// What it cannot look up it leaves to verify.go.
func (s *Service) queueSignatures(ctx context.Context, lk *lookups, it *item, b *crypto.Batch, q []queuedSig) []queuedSig {
	inv := it.inv
	if inv == nil {
		return q
	}
	_, a, f, err := protocol.ParseSubject(it.subject)
	body := inv.Body
	if err == nil && body.Aircraft == a && body.Flight == f {
		if key, err := lk.aircraftKey(ctx, a); err == nil {
			if i, err := inv.AddToBatch(b, key, nil); err == nil {
				q = append(q, queuedSig{it: it, idx: i, kind: sigAircraft, sig: preSig{key: key}})
			}
		}
	}
	p := it.proof
	if body.Kind != protocol.KindSale || p == nil {
		return q
	}
	cred, err := lk.credential(ctx, body.Credential)
	if err != nil || cred == nil {
		return q
	}
	key, ext := cred.Body.Device.PublicKey, cred.Body.ID[:]
	if i, err := p.add(b, key, ext); err == nil {
		q = append(q, queuedSig{it: it, idx: i, kind: sigDevice, sig: preSig{key: key, external: ext}})
	}
	return s.queueIssuer(ctx, lk, it, cred, p.at, b, q)
}

// queueIssuer queues the issuer signature of cred, the credential ground
// issued that a sale names, when it was not verified before and exactly one
// trusted issuer key has its key id at time at (the code's time, as
// verifyCredential checks it); otherwise verifyCredential checks it alone.
func (s *Service) queueIssuer(ctx context.Context, lk *lookups, it *item, cred *protocol.SignedCredential, at time.Time, b *crypto.Batch, q []queuedSig) []queuedSig {
	h := cred.Hash()
	if _, ok := s.creds.get(h); ok {
		return q
	}
	trust, err := lk.issuerTrust(ctx)
	if err != nil {
		return q
	}
	keys := trust.Lookup(cred.KeyID, crypto.Issuer, at)
	if len(keys) != 1 {
		return q
	}
	if i, err := cred.AddToBatch(b, keys[0], nil); err == nil {
		it.pre.issuerOf = h
		q = append(q, queuedSig{it: it, idx: i, kind: sigIssuer, sig: preSig{key: keys[0]}})
	}
	return q
}
