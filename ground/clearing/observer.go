package clearing

import (
	"time"

	"github.com/airtab/airtab/protocol"
)

// Observer receives clearing's measurements for operators' metrics
// (ground/opsmetrics implements it with Prometheus). Its methods run on the
// clearing goroutines, two at a time (a batch's receipts stage overlaps the
// next batch's commit), so they must be safe for concurrent use, quick, and
// must not block; they never change what clearing does.
type Observer interface {
	// BatchCleared reports one batch of messages through stages 2 to 5:
	// how many messages it held, how long it took, and what became of
	// them.
	BatchCleared(messages int, took time.Duration, outcomes BatchOutcomes)
	// ChargeRecorded reports the recorded outcome of one charge-side job:
	// kind "capture", "wallet charge", "refund" or "void"; outcome
	// "settled", "declined", "pending", "refunded" or "skipped".
	ChargeRecorded(kind, outcome string)
}

// BatchOutcomes counts what became of a batch's messages.
type BatchOutcomes struct {
	Invoices    int // invoice messages accepted (a record written or found)
	Closes      int // flight-close reports accepted
	Redelivered int // nak'd for a failure that is not the message's fault
	// Quarantined and Rejected count by reason the invoices kept as
	// quarantined (or disputed) records and the messages kept as rejects.
	Quarantined map[protocol.Reason]int
	Rejected    map[protocol.Reason]int
}

// observeBatch tells the Observer what became of a batch that started at
// start, once its messages are acked or nak'd (receipts, or clearBatch).
func (s *Service) observeBatch(items []*item, start time.Time) {
	if s.cfg.Observer == nil {
		return
	}
	var o BatchOutcomes
	for _, it := range items {
		switch it.verdict {
		case retry:
			o.Redelivered++
		case quarantine, dispute:
			if o.Quarantined == nil {
				o.Quarantined = map[protocol.Reason]int{}
			}
			o.Quarantined[it.reason]++
		case reject:
			if o.Rejected == nil {
				o.Rejected = map[protocol.Reason]int{}
			}
			o.Rejected[it.reason]++
		default:
			if it.kind == "close" {
				o.Closes++
			} else {
				o.Invoices++
			}
		}
	}
	s.cfg.Observer.BatchCleared(len(items), time.Since(start), o)
}

// observeJobs tells the Observer the recorded outcome of each job.
func (s *Service) observeJobs(jobs []*job) {
	if s.cfg.Observer == nil {
		return
	}
	for _, j := range jobs {
		s.cfg.Observer.ChargeRecorded(j.kind.String(), j.outcome)
	}
}
