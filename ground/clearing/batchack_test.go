package clearing

import (
	"errors"
	"testing"
)

// TestBatchAck checks how the answer to an atomic batch's commit is read:
// only an ack naming the whole batch stores it; an ack naming no batch, or
// another batch or count (a server that knows no atomic batches stored
// each message alone and acked the last), and JetStream's 10174 mean no
// atomic batches; 10201 a duplicate, which says nothing of the next batch;
// any other answer refuses this batch alone.
func TestBatchAck(t *testing.T) {
	const id = "b1"
	for _, c := range []struct {
		name          string
		ack           string
		noAtomic, dup bool
		ok            bool
	}{
		{"WholeBatch", `{"stream":"RECEIPTS","seq":9,"batch":"b1","count":3}`, false, false, true},
		{"PlainAckOfTheLast", `{"stream":"RECEIPTS","seq":9}`, true, false, false},
		{"PlainAckDuplicate", `{"stream":"RECEIPTS","seq":9,"duplicate":true}`, true, false, false},
		{"OtherBatch", `{"stream":"RECEIPTS","seq":9,"batch":"b2","count":3}`, true, false, false},
		{"ShortCount", `{"stream":"RECEIPTS","seq":9,"batch":"b1","count":2}`, true, false, false},
		{"Disabled", `{"error":{"code":400,"err_code":10174,"description":"atomic publish is disabled"}}`, true, false, false},
		{"Duplicate", `{"error":{"code":400,"err_code":10201,"description":"atomic publish batch contains duplicate message id"}}`, false, true, false},
		{"Incomplete", `{"error":{"code":400,"err_code":10176,"description":"atomic publish batch is incomplete"}}`, false, false, false},
		{"NotJSON", `+OK`, false, false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := batchAck([]byte(c.ack), id, 3)
			if (err == nil) != c.ok || errors.Is(err, errNoAtomic) != c.noAtomic || errors.Is(err, errAtomicDuplicate) != c.dup {
				t.Errorf("batchAck(%s) = %v, want stored %v, no atomic batches %v, duplicate %v", c.ack, err, c.ok, c.noAtomic, c.dup)
			}
		})
	}
}
