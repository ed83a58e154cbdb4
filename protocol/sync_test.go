package protocol

import (
	"bytes"
	"encoding/hex"
	"reflect"
	"testing"
	"time"

	"github.com/airtab/airtab/crypto"
)

func TestDeltaRequestRoundTrip(t *testing.T) {
	for _, r := range []DeltaRequest{{BaseSerial: 1}, {BaseSerial: 7, AfterSeq: 3}, {BaseSerial: 1<<64 - 1, AfterSeq: 1<<64 - 1}} {
		b, err := EncodeDeltaRequest(r)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > MaxDeltaRequestSize {
			t.Fatalf("%+v encodes to %d bytes, over the cap of %d", r, len(b), MaxDeltaRequestSize)
		}
		got, err := DecodeDeltaRequest(b)
		if err != nil || got != r {
			t.Fatalf("DecodeDeltaRequest = %+v, %v; want %+v", got, err, r)
		}
	}
	if b, err := EncodeDeltaRequest(DeltaRequest{AfterSeq: 3}); err == nil {
		t.Fatalf("encoded a delta request without base serial: %x", b)
	}
	if got, want := mustEncodeHex(t, DeltaRequest{BaseSerial: 7, AfterSeq: 3}), "a201070203"; got != want {
		t.Fatalf("encoding = %s, want %s", got, want)
	}
}

func mustEncodeHex(t *testing.T, r DeltaRequest) string {
	t.Helper()
	b, err := EncodeDeltaRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func TestDeltaBatchRoundTrip(t *testing.T) {
	w := newWorld(t, "delta-batch")
	var deltas [][]byte
	for seq := uint64(1); seq <= MaxDeltasPerBatch; seq++ {
		d := w.deltaBody(w.credential(w.key(crypto.Device).Public()))
		d.Seq = seq
		deltas = append(deltas, mustSign(t, d, w.issuer, nil).Raw)
	}
	for _, batch := range []DeltaBatch{{}, {Superseded: true}, {Deltas: deltas[:1]}, {Deltas: deltas}} {
		b, err := EncodeDeltaBatch(batch)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeDeltaBatch(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, batch) {
			t.Fatalf("DecodeDeltaBatch = %+v, want %+v", got, batch)
		}
		for i, raw := range got.Deltas {
			d, err := ParseManifestDelta(raw)
			if err != nil {
				t.Fatalf("delta %d: %v", i, err)
			}
			if err := d.Verify(w.issuer.Public(), nil); err != nil {
				t.Fatalf("delta %d: %v", i, err)
			}
			if d.Body.Seq != uint64(i+1) {
				t.Fatalf("delta %d has seq %d", i, d.Body.Seq)
			}
		}
	}
	// An empty but non-nil list encodes as no list at all: one value, one
	// encoding.
	a, err := EncodeDeltaBatch(DeltaBatch{Deltas: [][]byte{}})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := EncodeDeltaBatch(DeltaBatch{}); !bytes.Equal(a, b) {
		t.Fatalf("empty list encodes to %x, no list to %x", a, b)
	}
	over := DeltaBatch{Deltas: append(deltas, deltas[0])}
	if _, err := EncodeDeltaBatch(over); err == nil {
		t.Fatalf("encoded %d deltas, over the limit of %d", len(over.Deltas), MaxDeltasPerBatch)
	}
	// The decoder refuses too many deltas even when a broken peer sends them.
	wantDecodeErr(t, decodeBatchErr(mustEncode(t, over)), "delta batch", "17 deltas exceed the limit of 16")
}

func decodeBatchErr(b []byte) error { _, err := DecodeDeltaBatch(b); return err }

func TestHeartbeatRoundTrip(t *testing.T) {
	now := time.Date(2026, 11, 21, 10, 30, 15, 0, time.UTC)
	b, err := EncodeHeartbeat(Heartbeat{Time: now.Add(400 * time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeHeartbeat(b)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Time.Equal(now) {
		t.Fatalf("heartbeat time = %s, want %s (whole seconds)", got.Time, now)
	}
	if len(b) > MaxHeartbeatSize {
		t.Fatalf("heartbeat is %d bytes, over the cap of %d", len(b), MaxHeartbeatSize)
	}
}

func TestSyncStrict(t *testing.T) {
	hbTime := cborArgHead(0, uint64(time.Date(2026, 11, 21, 0, 0, 0, 0, time.UTC).Unix()))
	decReq := func(b []byte) error { _, err := DecodeDeltaRequest(b); return err }
	decHB := func(b []byte) error { _, err := DecodeHeartbeat(b); return err }
	for _, tc := range []strictCase{
		{"RequestNoBaseSerial", []byte{0xa1, 0x02, 0x03}, decReq, []string{"delta request", "missing base serial"}},
		{"RequestEmptyMap", []byte{0xa0}, decReq, []string{"missing base serial"}},
		{"RequestZeroPresent", []byte{0xa2, 0x01, 0x07, 0x02, 0x00}, decReq, []string{"not in canonical form"}},
		{"RequestNonCanonical", []byte{0xa1, 0x01, 0x18, 0x07}, decReq, []string{"not in canonical form"}},
		{"RequestUnsorted", []byte{0xa2, 0x02, 0x03, 0x01, 0x07}, decReq, []string{"not in canonical form"}},
		{"RequestDuplicate", []byte{0xa2, 0x01, 0x07, 0x01, 0x08}, decReq, []string{"duplicate map key"}},
		{"RequestUnknownField", []byte{0xa2, 0x01, 0x07, 0x03, 0x01}, decReq, []string{"unknown field"}},
		{"RequestWrongType", []byte{0xa1, 0x01, 0x61, 0x37}, decReq, []string{"cannot unmarshal UTF-8 text string"}},
		{"RequestTrailing", []byte{0xa1, 0x01, 0x07, 0x00}, decReq, []string{"extraneous data"}},
		{"RequestIndefinite", []byte{0xbf, 0x01, 0x07, 0xff}, decReq, []string{"indefinite-length"}},
		{"RequestNotAMap", []byte{0x07}, decReq, []string{"invalid CBOR"}},
		{"BatchFalsePresent", []byte{0xa1, 0x02, 0xf4}, decodeBatchErr, []string{"delta batch", "not in canonical form"}},
		{"BatchEmptyListPresent", []byte{0xa1, 0x01, 0x80}, decodeBatchErr, []string{"not in canonical form"}},
		{"BatchIndefiniteList", []byte{0xa1, 0x01, 0x9f, 0x41, 0x00, 0xff}, decodeBatchErr, []string{"indefinite-length"}},
		{"BatchWrongElementType", []byte{0xa1, 0x01, 0x81, 0x61, 0x41}, decodeBatchErr, []string{"cannot unmarshal UTF-8 text string"}},
		{"BatchUnknownField", []byte{0xa1, 0x03, 0xf5}, decodeBatchErr, []string{"unknown field"}},
		{"HeartbeatEmpty", []byte{0xa0}, decHB, []string{"heartbeat", "missing time"}},
		{"HeartbeatUnknownField", joinBytes([]byte{0xa2, 0x01}, hbTime, []byte{0x02, 0x01}), decHB, []string{"unknown field"}},
		{"HeartbeatNonCanonicalTime", joinBytes([]byte{0xa1, 0x01, 0x1b, 0, 0, 0, 0}, hbTime[1:]), decHB, []string{"not in canonical form"}},
		{"HeartbeatTag", joinBytes([]byte{0xa1, 0x01, 0xc1}, hbTime), decHB, []string{"tag"}},
		{"HeartbeatTextTime", []byte{0xa1, 0x01, 0x64, '2', '0', '2', '6'}, decHB, []string{"heartbeat", "invalid CBOR"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantDecodeErr(t, tc.parse(tc.b), tc.reasons...)
		})
	}
}
