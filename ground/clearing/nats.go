package clearing

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/airtab/airtab/ground/natsvc"
	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream: the two streams, the durable consumer and receipt publishing.

// The streams' configuration has one source, natsvc.Streams, which ground's
// NATS service applies at start; clearing only makes sure the streams exist
// (EnsureStreams) so it can also run against a JetStream nobody set up.

// Message size bounds of the streams, above the protocol's size caps.
const (
	InvoiceStreamMaxMsgSize = natsvc.InvoiceStreamMaxMsgSize
	ReceiptStreamMaxMsgSize = natsvc.ReceiptStreamMaxMsgSize
)

// InvoiceStreamConfig is the default configuration of
// protocol.StreamInvoices: invoices and flight-close reports, file storage.
func InvoiceStreamConfig() jetstream.StreamConfig { return defaultStream(protocol.StreamInvoices) }

// ReceiptStreamConfig is the default configuration of
// protocol.StreamReceipts: clearing receipts waiting for their aircraft.
func ReceiptStreamConfig() jetstream.StreamConfig { return defaultStream(protocol.StreamReceipts) }

func defaultStream(name string) jetstream.StreamConfig {
	for _, c := range (natsvc.Streams{}).StreamConfigs() {
		if c.Name == name {
			return c
		}
	}
	panic("clearing: natsvc has no stream " + name)
}

// EnsureStreams creates protocol.StreamInvoices and protocol.StreamReceipts
// if they do not exist, with file storage. It is idempotent and tolerant of
// streams someone else created: an existing stream is kept as it is when it
// uses file storage and its subjects cover ours; subjects it lacks are
// added. A stream with memory storage is an error (JetStream cannot change
// storage, and invoices must survive a restart).
func EnsureStreams(ctx context.Context, js jetstream.JetStream) error {
	for _, want := range []jetstream.StreamConfig{InvoiceStreamConfig(), ReceiptStreamConfig()} {
		if err := ensureStream(ctx, js, want); err != nil {
			return fmt.Errorf("clearing: stream %s: %w", want.Name, err)
		}
	}
	return nil
}

func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	for range 3 { // a concurrent creator can win the race once; then it exists
		s, err := js.Stream(ctx, want.Name)
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			_, err = js.CreateStream(ctx, want)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue
			}
			return err
		}
		if err != nil {
			return err
		}
		have := s.CachedInfo().Config
		if have.Storage != jetstream.FileStorage {
			return fmt.Errorf("exists with %s storage, want file storage", have.Storage)
		}
		var missing []string
		for _, subj := range want.Subjects {
			if !slices.ContainsFunc(have.Subjects, func(p string) bool { return subjectCovers(p, subj) }) {
				missing = append(missing, subj)
			}
		}
		if len(missing) == 0 {
			return nil
		}
		have.Subjects = append(have.Subjects, missing...)
		_, err = js.UpdateStream(ctx, have)
		return err
	}
	return errors.New("created and deleted concurrently")
}

// subjectCovers reports whether subject filter pattern matches every subject
// that filter subj matches: "a.>" covers "a.b.*", "a.*.c" covers "a.b.c".
func subjectCovers(pattern, subj string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subj, ".")
	for i, tok := range p {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok == "*":
			if s[i] == ">" {
				return false
			}
		case tok != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

// consumerConfig is the durable pull consumer of the invoice stream.
//
// AckPolicy explicit: a message is acked only after its ledger commit and
// its receipt's publish ack. AckWait (Config.AckWait, default 60s) exceeds
// BatchTimeout, so a batch in progress is never redelivered under it.
// MaxDeliver is unlimited (-1): JetStream would otherwise drop a message
// after that many deliveries, and an invoice must never be dropped. Only
// failures that are not the invoice's fault redeliver (an invoice's own
// fault is quarantined and acked on its first delivery), and each is nak'd
// with a delay that doubles per delivery up to a minute, so a long outage
// costs a redelivery a minute, not a storm. MaxAckPending bounds what is
// out at once; MaxRequestBatch bounds one fetch.
func (s *Service) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:         s.cfg.Consumer,
		Description:     "Airtab clearing",
		DeliverPolicy:   jetstream.DeliverAllPolicy,
		AckPolicy:       jetstream.AckExplicitPolicy,
		AckWait:         s.cfg.AckWait,
		MaxDeliver:      -1,
		MaxAckPending:   4 * s.cfg.BatchSize,
		MaxRequestBatch: s.cfg.BatchSize,
		FilterSubjects:  []string{protocol.AllInvoices, protocol.AllCloses},
	}
}

// fetch returns up to BatchSize messages: whatever is available at once,
// or, when nothing is, the first to arrive within IdleWait plus whatever
// has arrived by then.
func (s *Service) fetch(ctx context.Context, cons jetstream.Consumer) ([]jetstream.Msg, error) {
	msgs, err := drain(cons.FetchNoWait(s.cfg.BatchSize))
	if err != nil || len(msgs) > 0 {
		return msgs, err
	}
	wctx, cancel := context.WithTimeout(ctx, s.cfg.IdleWait)
	defer cancel()
	first, err := drain(cons.Fetch(1, jetstream.FetchContext(wctx)))
	if err != nil || len(first) == 0 {
		if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
			err = nil
		}
		return nil, err
	}
	more, err := drain(cons.FetchNoWait(s.cfg.BatchSize - 1))
	return append(first, more...), err
}

func drain(b jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
	if err != nil {
		return nil, err
	}
	var out []jetstream.Msg
	for m := range b.Messages() {
		out = append(out, m)
	}
	if err := b.Error(); err != nil && len(out) == 0 {
		return nil, err
	}
	return out, nil
}

// publishReceipts publishes the receipts of items to the receipt stream
// with their message ids and waits up to PublishTimeout for JetStream's
// acks. An item whose receipt was not acknowledged gets verdict retry: its
// message is nak'd and the stored receipt re-sent next time.
//
// The receipts go as JetStream atomic batches of up to maxAtomicReceipts
// (publishAtomic): a JetStream server that syncs every write to disk
// (natsvc's default) then syncs once per batch instead of once per
// receipt, and acknowledges the batch once. JetStream refuses a whole
// atomic batch holding a message id it has in its duplicate window, so
// receipts made for an earlier delivery (item.resent), which the stream may
// hold, go in batches of their own, and so does a receipt a batch holds
// twice: new receipts are never held up by them. A batch the server
// refuses (a duplicate, no answer in time) stored nothing, or, when its
// answer was lost, everything, so its receipts are then published one at
// a time, where JetStream drops a duplicate by its message id; the refusal
// says nothing of the next batch. Trying the
// re-sent receipts as a batch first costs a refused batch when the stream
// has them, and saves a sync per receipt when it does not (they were never
// published, or their window has passed). A server or stream that takes no
// atomic batches at all is noted (noteNoAtomic) and asked again after
// atomicRetryAfter.
func (s *Service) publishReceipts(ctx context.Context, items []*item) {
	var fresh, resent []*item
	// A message the batch holds twice (the aircraft sent it again after
	// the invoice stream's duplicate window) gives the same receipt, with
	// the same message id, to both copies, neither of them known to be
	// re-sent: a card sale cleared by both, a reject or close stored by the
	// first at the same instant. The second goes with the re-sent ones.
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		switch {
		case it.verdict == retry || it.receipt == nil:
		case it.resent || seen[it.receiptMsgID]:
			resent = append(resent, it)
		default:
			seen[it.receiptMsgID] = true
			fresh = append(fresh, it)
		}
	}
	s.publishBatches(ctx, fresh)
	s.publishBatches(ctx, resent)
}

// publishBatches publishes the receipts of items as atomic batches of up
// to maxAtomicReceipts, and those of a batch not stored one at a time.
func (s *Service) publishBatches(ctx context.Context, items []*item) {
	for chunk := range slices.Chunk(items, maxAtomicReceipts) {
		if len(chunk) > 1 && s.atomicAllowed() {
			err := s.publishAtomic(ctx, chunk)
			switch {
			case err == nil:
				s.noteAtomic()
				continue
			case errors.Is(err, errNoAtomic):
				s.noteNoAtomic(err)
			case errors.Is(err, errAtomicDuplicate) && chunk[0].resent:
				s.log.Debug("re-sent receipts in the stream already; publishing them one at a time", "receipts", len(chunk))
			default:
				s.log.Info("receipt batch not stored; publishing its receipts one at a time", "receipts", len(chunk), "err", err)
			}
		}
		s.publishEach(ctx, chunk)
	}
}

// atomicRetryAfter is how long receipts are published one at a time after
// the receipt stream refused an atomic batch because it takes none, before
// a batch is tried again: the server may have been upgraded, or the
// stream's AllowAtomicPublish set, meanwhile. A try refused again costs
// one batch sent twice per atomicRetryAfter.
const atomicRetryAfter = 10 * time.Minute

// atomicAllowed reports whether the next receipts may go as an atomic
// batch: the stream has not refused one for taking none within
// atomicRetryAfter (by the service's clock).
func (s *Service) atomicAllowed() bool {
	until := s.noAtomicUntil.Load()
	return until == 0 || s.clock().UnixNano() >= until
}

// noteNoAtomic notes that the receipt stream takes no atomic batches, for
// atomicRetryAfter.
func (s *Service) noteNoAtomic(err error) {
	until := s.clock().Add(atomicRetryAfter)
	s.noAtomicUntil.Store(until.UnixNano())
	s.log.Warn("the receipt stream takes no atomic batches: receipts are published one at a time", "retry_after", atomicRetryAfter, "err", err)
}

// noteAtomic notes that the receipt stream took an atomic batch, saying so
// if it had refused them.
func (s *Service) noteAtomic() {
	if s.noAtomicUntil.Swap(0) != 0 {
		s.log.Info("the receipt stream takes atomic batches again")
	}
}

// maxAtomicReceipts is the most receipts in one atomic batch, below
// JetStream's limit of 1,000 messages per batch.
const maxAtomicReceipts = 256

// JetStream's atomic batch publish headers (ADR-50).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// errNoAtomic is a server or stream that does not take atomic batches.
var errNoAtomic = errors.New("atomic batch publish not available")

// JetStream's error codes (nats-server's errors.json) for an atomic batch
// refused: jsErrAtomicDisabled by a stream that does not allow atomic
// batches (JSAtomicPublishDisabledErr), whatever the batch; and
// jsErrAtomicDuplicate for a batch holding a message id the stream has in
// its duplicate window, or twice (JSAtomicPublishContainsDuplicateMessageErr),
// which says nothing of the next batch.
const (
	jsErrAtomicDisabled  = 10174
	jsErrAtomicDuplicate = 10201
)

// errAtomicDuplicate is an atomic batch refused for a duplicate message id.
var errAtomicDuplicate = errors.New("the receipt batch holds a receipt the stream has already")

// publishAtomic publishes the receipts of items as one atomic batch and
// waits for its commit's ack, which JetStream sends once every receipt is
// stored (and synced, when the server syncs every write). It returns nil
// only when the ack names the whole batch.
func (s *Service) publishAtomic(ctx context.Context, items []*item) error {
	nc := s.cfg.JS.Conn()
	// The batch headers stay on every stored receipt and travel to the
	// aircraft with it, so the id is short: 128 random bits, base64url.
	rid := protocol.NewID(nil)
	id := base64.RawURLEncoding.EncodeToString(rid[:])
	for i, it := range items {
		m := nats.NewMsg(it.receiptSubject)
		m.Data = it.receipt
		m.Header.Set(jetstream.MsgIDHeader, it.receiptMsgID)
		m.Header.Set(jetstream.ExpectedStreamHeader, protocol.StreamReceipts)
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if i < len(items)-1 {
			if err := nc.PublishMsg(m); err != nil {
				return fmt.Errorf("publish receipt batch: %w", err)
			}
			continue
		}
		m.Header.Set(hdrBatchCommit, "1")
		rctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
		defer cancel()
		resp, err := nc.RequestMsgWithContext(rctx, m)
		if err != nil {
			return fmt.Errorf("publish receipt batch: %w", err)
		}
		return batchAck(resp.Data, id, len(items))
	}
	return nil
}

// batchAck checks JetStream's answer to the commit of atomic batch id of n
// messages.
func batchAck(data []byte, id string, n int) error {
	var ack struct {
		Error *jetstream.APIError `json:"error"`
		Batch string              `json:"batch"`
		Count int                 `json:"count"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return fmt.Errorf("receipt batch ack: %w", err)
	}
	switch {
	case ack.Error != nil && ack.Error.ErrorCode == jsErrAtomicDisabled:
		return fmt.Errorf("%w: %w", errNoAtomic, ack.Error)
	case ack.Error != nil && ack.Error.ErrorCode == jsErrAtomicDuplicate:
		return fmt.Errorf("%w: %w", errAtomicDuplicate, ack.Error)
	case ack.Error != nil:
		return fmt.Errorf("receipt batch refused: %w", ack.Error)
	case ack.Batch != id || ack.Count != n:
		// A server that knows no atomic batches stores each message alone
		// and acks the last: whether the others were stored is unknown.
		return fmt.Errorf("%w: the ack names batch %q of %d, want %q of %d", errNoAtomic, ack.Batch, ack.Count, id, n)
	}
	return nil
}

// publishEach publishes the receipts of items one message each, all at
// once, and waits for their acks.
func (s *Service) publishEach(ctx context.Context, items []*item) {
	type pending struct {
		it  *item
		ack jetstream.PubAckFuture
	}
	var out []pending
	for _, it := range items {
		m := nats.NewMsg(it.receiptSubject)
		m.Data = it.receipt
		f, err := s.cfg.JS.PublishMsgAsync(m, jetstream.WithMsgID(it.receiptMsgID), jetstream.WithExpectStream(protocol.StreamReceipts))
		if err != nil {
			it.infra(fmt.Errorf("publish receipt: %w", err))
			continue
		}
		out = append(out, pending{it, f})
	}
	timer := time.NewTimer(s.cfg.PublishTimeout)
	defer timer.Stop()
	for _, p := range out {
		select {
		case <-p.ack.Ok():
		case err := <-p.ack.Err():
			p.it.infra(fmt.Errorf("publish receipt: %w", err))
		case <-timer.C:
			p.it.infra(errors.New("publish receipt: no ack within PublishTimeout"))
		case <-ctx.Done():
			p.it.infra(fmt.Errorf("publish receipt: %w", ctx.Err()))
		}
	}
}
