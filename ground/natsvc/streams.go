package natsvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go/jetstream"
)

// Bounds on the streams. Messages are bounded above the protocol's size caps
// (protocol.MaxInvoiceSize, MaxFlightCloseSize, MaxReceiptSize), so an
// oversized message is stored and quarantined by clearing with a reason,
// rather than refused at publish where the aircraft would retry it forever.
// Streams are bounded by count and age with DiscardNew: a full stream
// refuses a publish (the aircraft keeps the invoice and retries) rather than
// dropping an old message.
const (
	InvoiceStreamMaxMsgSize = 16 << 10
	ReceiptStreamMaxMsgSize = 4 << 10
	StreamMaxMsgs           = 10_000_000
)

// Streams configures the JetStream streams. The zero value is the default.
type Streams struct {
	// Duplicates is the window in which JetStream drops a message whose
	// Nats-Msg-Id it has seen. Default 2 minutes, the JetStream default.
	// Exactly-once does not rest on it: the ledger is keyed by invoice id.
	Duplicates time.Duration
	// MaxAge is how long a message stays in a stream. Default 30 days, long
	// enough for an aircraft offline for weeks to find its receipts. A cabin
	// server keeps every invoice until it holds a receipt for it and replays
	// what has none, so an aged-out invoice is replayed, not lost.
	MaxAge time.Duration
	// Replicas is how many JetStream servers hold each stream: 1 on the
	// embedded single server, 3 on a production cluster (a stream then
	// survives losing one server). At most MaxReplicas. Default 1.
	Replicas int
	// Logger is told when an existing stream's replica count is changed.
	// Default: slog.Default().
	Logger *slog.Logger
}

// MaxReplicas is the most replicas JetStream keeps of a stream.
const MaxReplicas = 5

// StreamConfigs returns the configurations EnsureStreams applies:
//
//	AIRTAB_INVOICES  airtab.v1.invoice.*.* and airtab.v1.close.*.*  file, limits retention, messages ≤ 16 KiB
//	AIRTAB_RECEIPTS  airtab.v1.receipt.*.*                          file, limits retention, messages ≤ 4 KiB, atomic batches
//
// Limits retention (not work-queue) lets the clearing consumer and the
// back office read the invoice stream independently, and lets each aircraft
// have its own receipt consumer filtered to its subjects.
func (s Streams) StreamConfigs() []jetstream.StreamConfig {
	if s.Duplicates == 0 {
		s.Duplicates = 2 * time.Minute
	}
	if s.MaxAge == 0 {
		s.MaxAge = 30 * 24 * time.Hour
	}
	if s.Replicas == 0 {
		s.Replicas = 1
	}
	base := func(name, desc string, maxMsg int32, subjects ...string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name: name, Description: desc, Subjects: subjects,
			Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy, Discard: jetstream.DiscardNew,
			MaxMsgs: StreamMaxMsgs, MaxBytes: -1, MaxAge: s.MaxAge, MaxMsgSize: maxMsg,
			Duplicates: s.Duplicates, Replicas: s.Replicas,
		}
	}
	// Clearing publishes a batch's receipts as one atomic batch, which a
	// server syncing every write stores with one sync (clearing/nats.go).
	receipts := base(protocol.StreamReceipts, "Airtab clearing receipts, kept until each aircraft reads them", ReceiptStreamMaxMsgSize,
		protocol.AllReceipts)
	receipts.AllowAtomicPublish = true
	return []jetstream.StreamConfig{
		base(protocol.StreamInvoices, "Airtab invoices and flight-close reports replayed by aircraft, until cleared", InvoiceStreamMaxMsgSize,
			protocol.AllInvoices, protocol.AllCloses),
		receipts,
	}
}

// EnsureStreams creates the streams, or updates them to cfg. It fails when
// an existing stream differs in something JetStream cannot change in place
// (storage, retention), and when the servers cannot hold cfg.Replicas
// copies (a single server, or a cluster with fewer JetStream servers).
//
// An existing stream with a different replica count is updated to
// cfg.Replicas, not refused: JetStream changes it in place, copying the
// stream to the new peers (or dropping peers) while it keeps serving, and
// going from the embedded single server to a cluster, or from R1 to R3, is
// the operator's intent when they pass --nats-replicas. The change is
// logged.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, cfg Streams) error {
	if cfg.Replicas < 0 || cfg.Replicas > MaxReplicas {
		return fmt.Errorf("natsvc: %d stream replicas: want 1 to %d", cfg.Replicas, MaxReplicas)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	for _, sc := range cfg.StreamConfigs() {
		have, err := js.Stream(ctx, sc.Name)
		from := 0 // the stream's replica count before, when it exists
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
		case err != nil:
			return fmt.Errorf("natsvc: stream %s: %w", sc.Name, err)
		default:
			from = have.CachedInfo().Config.Replicas
		}
		_, err = js.CreateOrUpdateStream(ctx, sc)
		if err != nil && sc.AllowAtomicPublish {
			// Servers before 2.12, or a stream kept with asynchronous
			// persistence, refuse atomic batches: clearing then publishes
			// each receipt on its own (clearing/nats.go), which is slower,
			// not wrong.
			plain := sc
			plain.AllowAtomicPublish = false
			if _, perr := js.CreateOrUpdateStream(ctx, plain); perr == nil {
				log.Warn("stream refuses atomic batch publishing; receipts will be published one at a time",
					"stream", sc.Name, "err", err)
				err = nil
			}
		}
		if err != nil {
			if sc.Replicas > 1 {
				return fmt.Errorf("natsvc: ensure stream %s with %d replicas (it needs a JetStream cluster of at least %d servers): %w",
					sc.Name, sc.Replicas, sc.Replicas, err)
			}
			return fmt.Errorf("natsvc: ensure stream %s: %w", sc.Name, err)
		}
		// Logged once done: a change the servers refuse is an error, not a change.
		if from != 0 && from != sc.Replicas {
			log.Warn("stream replica count changed", "stream", sc.Name, "from", from, "to", sc.Replicas)
		}
	}
	return nil
}
