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
//	airtab.v1.notice.<aircraft>.<flight>    ground → aircraft   empty: the manifest changed, pull now
//	airtab.v1.heartbeat                     ground → all        ground's clock, while it is up
//
// An aircraft reads its receipts through one durable pull consumer on
// StreamReceipts named ReceiptConsumer(a), and connects with the inbox
// prefix InboxPrefix(a) (nats.CustomInboxPrefix): its permissions cover
// that consumer and those inboxes only, so it can neither pull nor ack
// another aircraft's receipts nor read replies meant for another aircraft.
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

// NoticeSubject is where ground tells aircraft a that the manifest of
// flight f changed (a credential issued or revoked, the deny list, the
// roster, the catalog or caps): the aircraft pulls the deltas, or the new
// manifest, at once. The body is empty and carries nothing to trust: a
// notice only makes the aircraft ask sooner than its next poll.
func NoticeSubject(a AircraftID, f FlightID) string { return subject("notice", a, f) }

// Wildcards over every aircraft and flight, for ground's subscriptions and
// stream definitions.
var (
	AllInvoices  = subjectRoot + ".invoice.*.*"
	AllCloses    = subjectRoot + ".close.*.*"
	AllReceipts  = subjectRoot + ".receipt.*.*"
	AllManifests = subjectRoot + ".manifest.*.*"
	AllDeltas    = subjectRoot + ".delta.*.*"
	AllNotices   = subjectRoot + ".notice.*.*"
)

// ReceiptConsumer is the name of aircraft a's durable pull consumer on
// StreamReceipts, the only consumer its permissions let it use.
func ReceiptConsumer(a AircraftID) string { return "receipts-" + string(a) }

// InboxPrefix is the inbox prefix aircraft a must connect with
// (nats.CustomInboxPrefix); its permissions let it subscribe to no other
// inbox, so it cannot read replies meant for another aircraft.
func InboxPrefix(a AircraftID) string { return "_INBOX." + string(a) }

// ReceiptFilter is the filter subject of aircraft a's receipt consumer.
func ReceiptFilter(a AircraftID) string { return fmt.Sprintf("%s.receipt.%s.*", subjectRoot, a) }

// AircraftPermissions lists what aircraft a may publish and subscribe to:
// its own invoice and close subjects, requests for its own manifests and
// deltas, the JetStream API calls that create and read its own receipt
// consumer, acks on it, the heartbeat, its own manifest change notices, and
// replies to its own inbox.
func AircraftPermissions(a AircraftID) (publish, subscribe []string) {
	own := func(kind string) string { return fmt.Sprintf("%s.%s.%s.*", subjectRoot, kind, a) }
	cons := ReceiptConsumer(a)
	publish = []string{
		own("invoice"), own("close"), own("manifest"), own("delta"),
		"$JS.API.CONSUMER.CREATE." + StreamReceipts + "." + cons + "." + ReceiptFilter(a),
		"$JS.API.CONSUMER.INFO." + StreamReceipts + "." + cons,
		"$JS.API.CONSUMER.MSG.NEXT." + StreamReceipts + "." + cons,
		"$JS.ACK." + StreamReceipts + "." + cons + ".>",
	}
	subscribe = []string{HeartbeatSubject, own("notice"), InboxPrefix(a) + ".>"}
	return publish, subscribe
}

// subjectKinds are the kinds of per-aircraft subjects, as in the table above.
var subjectKinds = map[string]bool{"invoice": true, "close": true, "receipt": true, "manifest": true, "delta": true, "notice": true}

// InvoiceMsgID is the Nats-Msg-Id of an invoice: its id, so JetStream's
// duplicate window drops a re-sent copy and the ledger's own idempotency on
// the same id covers re-sends after the window.
func InvoiceMsgID(id ID) string { return id.String() }

// CloseMsgID is the Nats-Msg-Id of a flight-close report.
func CloseMsgID(f FlightID) string { return "close-" + string(f) }

// ReceiptMsgID is the Nats-Msg-Id of the clearing receipt for an invoice, or
// for a flight close when invoice is zero.
func ReceiptMsgID(f FlightID, invoice ID) string {
	if invoice.IsZero() {
		return "receipt-close-" + string(f)
	}
	return "receipt-" + invoice.String()
}

// ParseSubject splits a subject made by the functions above into its kind
// ("invoice", "close", ...), aircraft and flight. Wildcard subjects and
// unknown kinds are refused.
func ParseSubject(s string) (kind string, a AircraftID, f FlightID, err error) {
	parts := strings.Split(s, ".")
	if len(parts) != 5 || parts[0]+"."+parts[1] != subjectRoot {
		return "", "", "", fmt.Errorf("subject %q: want %s.<kind>.<aircraft>.<flight>", trunc(s), subjectRoot)
	}
	if !subjectKinds[parts[2]] {
		return "", "", "", fmt.Errorf("subject %q: unknown kind %q, want invoice, close, receipt, manifest, delta or notice", trunc(s), trunc(parts[2]))
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
