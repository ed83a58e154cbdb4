package protocol

import (
	"fmt"
	"strings"
)

// NATS subjects and JetStream names, in one place. An aircraft's NATS
// permissions are written in terms of these (see AircraftPermissions), so an
// aircraft can publish only as itself and read only its own receipts and
// manifests.
//
//	airtab.v1.invoice.<aircraft>.<flight>   aircraft → ground   SignedInvoice      (stream INVOICES)
//	airtab.v1.close.<aircraft>.<flight>     aircraft → ground   SignedFlightClose  (stream INVOICES)
//	airtab.v1.receipt.<aircraft>.<flight>   ground → aircraft   SignedReceipt      (stream RECEIPTS)
//	airtab.v1.manifest.<aircraft>.<flight>  request/reply       SignedManifest
//	airtab.v1.delta.<aircraft>.<flight>     request/reply       SignedManifestDelta
//	airtab.v1.heartbeat                     ground → all        ground's clock, while it is up
const subjectRoot = "airtab.v1"

// JetStream streams.
const (
	// StreamInvoices holds invoices and flight-close reports from every
	// aircraft until the clearing consumer has committed them.
	StreamInvoices = "AIRTAB_INVOICES"
	// StreamReceipts holds clearing receipts until each aircraft has read
	// them, so receipts for an aircraft that went offline wait for it.
	StreamReceipts = "AIRTAB_RECEIPTS"
)

// HeartbeatSubject is where ground announces it is up.
const HeartbeatSubject = subjectRoot + ".heartbeat"

// InvoiceSubject is where aircraft a publishes the invoices of flight f.
func InvoiceSubject(a AircraftID, f FlightID) string { return subject("invoice", a, f) }

// CloseSubject is where aircraft a publishes the flight-close report of f.
func CloseSubject(a AircraftID, f FlightID) string { return subject("close", a, f) }

// ReceiptSubject is where ground publishes clearing receipts for a and f.
func ReceiptSubject(a AircraftID, f FlightID) string { return subject("receipt", a, f) }

// ManifestSubject is where aircraft a requests the manifest of flight f.
func ManifestSubject(a AircraftID, f FlightID) string { return subject("manifest", a, f) }

// DeltaSubject is where aircraft a requests manifest deltas of flight f.
func DeltaSubject(a AircraftID, f FlightID) string { return subject("delta", a, f) }

// Wildcards over every aircraft and flight, for ground's subscriptions and
// stream definitions.
var (
	AllInvoices  = subjectRoot + ".invoice.*.*"
	AllCloses    = subjectRoot + ".close.*.*"
	AllReceipts  = subjectRoot + ".receipt.*.*"
	AllManifests = subjectRoot + ".manifest.*.*"
	AllDeltas    = subjectRoot + ".delta.*.*"
)

// AircraftPermissions lists what aircraft a may publish and subscribe to:
// its own invoice, close, manifest and delta subjects, its own receipts, the
// heartbeat, its inbox and the JetStream API calls a publisher and a receipt
// consumer need.
func AircraftPermissions(a AircraftID) (publish, subscribe []string) {
	own := func(kind string) string { return fmt.Sprintf("%s.%s.%s.*", subjectRoot, kind, a) }
	publish = []string{
		own("invoice"), own("close"), own("manifest"), own("delta"),
		"$JS.API.CONSUMER.CREATE." + StreamReceipts + ".*." + own("receipt"),
		"$JS.API.CONSUMER.INFO." + StreamReceipts + ".*",
		"$JS.API.CONSUMER.MSG.NEXT." + StreamReceipts + ".*",
		"$JS.ACK." + StreamReceipts + ".>",
		"$JS.API.STREAM.INFO." + StreamReceipts,
		"$JS.API.STREAM.INFO." + StreamInvoices,
	}
	subscribe = []string{own("receipt"), HeartbeatSubject, "_INBOX.>"}
	return publish, subscribe
}

// ParseSubject splits a subject made by the functions above into its kind
// ("invoice", "close", ...), aircraft and flight.
func ParseSubject(s string) (kind string, a AircraftID, f FlightID, err error) {
	parts := strings.Split(s, ".")
	if len(parts) != 5 || parts[0]+"."+parts[1] != subjectRoot {
		return "", "", "", fmt.Errorf("subject %q: want %s.<kind>.<aircraft>.<flight>", trunc(s), subjectRoot)
	}
	a, f = AircraftID(parts[3]), FlightID(parts[4])
	if err := firstErr(a.Validate(), f.Validate()); err != nil {
		return "", "", "", fmt.Errorf("subject %q: %w", trunc(s), err)
	}
	return parts[2], a, f, nil
}

func subject(kind string, a AircraftID, f FlightID) string {
	return fmt.Sprintf("%s.%s.%s.%s", subjectRoot, kind, a, f)
}
