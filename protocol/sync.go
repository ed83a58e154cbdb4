package protocol

import (
	"fmt"
	"time"
)

// Messages of the pre-departure sync and the link heartbeat. They travel
// over NATS request/reply and are not signed themselves: what they carry
// (manifests, deltas) is.
//
// A manifest request is an empty message on ManifestSubject; the reply is the
// SignedManifest's Raw bytes. A delta request is a DeltaRequest on
// DeltaSubject; the reply is a DeltaBatch. A request that fails gets a reply
// with an empty body and the header ErrorHeader set to "<code> <message>".

// ErrorHeader is the NATS header that carries an error reply.
const ErrorHeader = "Airtab-Error"

// Caps on the sync messages, in bytes.
const (
	MaxDeltaRequestSize = 64
	MaxDeltaBatchSize   = 900 << 10
	MaxHeartbeatSize    = 64
	MaxDeltasPerBatch   = 16
)

// DeltaRequest asks for the deltas of manifest BaseSerial after AfterSeq.
type DeltaRequest struct {
	BaseSerial uint64 `cbor:"1,keyasint,omitzero"`
	AfterSeq   uint64 `cbor:"2,keyasint,omitzero"`
}

// DeltaBatch answers a DeltaRequest: up to MaxDeltasPerBatch deltas in order,
// each a SignedManifestDelta's Raw bytes. Superseded says a newer manifest
// has been issued for the flight: fetch it instead.
type DeltaBatch struct {
	Deltas     [][]byte `cbor:"1,keyasint,omitempty,omitzero"`
	Superseded bool     `cbor:"2,keyasint,omitzero"`
}

// Heartbeat is what ground publishes on HeartbeatSubject every few seconds
// while it is up: its clock, so an aircraft can tell the link is live and
// how far its own clock has drifted.
type Heartbeat struct {
	Time time.Time `cbor:"1,keyasint,omitzero"`
}

// EncodeDeltaRequest returns the canonical CBOR of r.
func EncodeDeltaRequest(r DeltaRequest) ([]byte, error) {
	if r.BaseSerial == 0 {
		return nil, fmt.Errorf("delta request: missing base serial")
	}
	return marshal(r)
}

// DecodeDeltaRequest strictly decodes a delta request.
func DecodeDeltaRequest(b []byte) (DeltaRequest, error) {
	var r DeltaRequest
	if err := decodeStrict("delta request", b, MaxDeltaRequestSize, &r); err != nil {
		return DeltaRequest{}, err
	}
	if r.BaseSerial == 0 {
		return DeltaRequest{}, decodeErr("delta request", "missing base serial")
	}
	return r, nil
}

// EncodeDeltaBatch returns the canonical CBOR of b.
func EncodeDeltaBatch(b DeltaBatch) ([]byte, error) {
	if len(b.Deltas) > MaxDeltasPerBatch {
		return nil, fmt.Errorf("delta batch: %d deltas exceed the limit of %d", len(b.Deltas), MaxDeltasPerBatch)
	}
	return marshal(b)
}

// DecodeDeltaBatch strictly decodes a delta batch. Each delta still needs
// ParseManifestDelta and verification.
func DecodeDeltaBatch(b []byte) (DeltaBatch, error) {
	var d DeltaBatch
	if err := decodeStrict("delta batch", b, MaxDeltaBatchSize, &d); err != nil {
		return DeltaBatch{}, err
	}
	if len(d.Deltas) > MaxDeltasPerBatch {
		return DeltaBatch{}, decodeErr("delta batch", "%d deltas exceed the limit of %d", len(d.Deltas), MaxDeltasPerBatch)
	}
	return d, nil
}

// EncodeHeartbeat returns the canonical CBOR of h.
func EncodeHeartbeat(h Heartbeat) ([]byte, error) {
	if h.Time.IsZero() {
		return nil, fmt.Errorf("heartbeat: missing time")
	}
	return marshal(h)
}

// DecodeHeartbeat strictly decodes a heartbeat.
func DecodeHeartbeat(b []byte) (Heartbeat, error) {
	var h Heartbeat
	if err := decodeStrict("heartbeat", b, MaxHeartbeatSize, &h); err != nil {
		return Heartbeat{}, err
	}
	if h.Time.IsZero() {
		return Heartbeat{}, decodeErr("heartbeat", "missing time")
	}
	return h, nil
}
