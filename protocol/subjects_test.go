package protocol

import (
	"slices"
	"strings"
	"testing"
)

func TestSubjectsRoundTrip(t *testing.T) {
	a, f := AircraftID("D-AIUA"), FlightID("XX123-2026-11-21")
	for _, tc := range []struct {
		kind    string
		subject string
	}{
		{"invoice", InvoiceSubject(a, f)},
		{"close", CloseSubject(a, f)},
		{"receipt", ReceiptSubject(a, f)},
		{"manifest", ManifestSubject(a, f)},
		{"delta", DeltaSubject(a, f)},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			if want := "airtab.v1." + tc.kind + ".D-AIUA.XX123-2026-11-21"; tc.subject != want {
				t.Fatalf("subject = %q, want %q", tc.subject, want)
			}
			kind, ga, gf, err := ParseSubject(tc.subject)
			if err != nil {
				t.Fatal(err)
			}
			if kind != tc.kind || ga != a || gf != f {
				t.Fatalf("ParseSubject = %q %q %q, want %q %q %q", kind, ga, gf, tc.kind, a, f)
			}
		})
	}
}

func TestParseSubjectInvalid(t *testing.T) {
	for _, s := range []string{
		"",
		"airtab.v1",
		"airtab.v1.heartbeat",
		"airtab.v2.invoice.D-AIUA.XX123-2026-11-21",
		"other.v1.invoice.D-AIUA.XX123-2026-11-21",
		"airtab.v1.invoice.D-AIUA",
		"airtab.v1.invoice.D-AIUA.XX123-2026-11-21.extra",
		"airtab.v1.invoice.D.AIUA.XX123-2026-11-21", // a dot in the aircraft
		"airtab.v1.invoice.D-AIUA.XX1.3-2026-11-21", // a dot in the flight
		"airtab.v1.invoice.*.XX123-2026-11-21",
		"airtab.v1.invoice.D-AIUA.*",
		"airtab.v1.invoice.D-AIUA.>",
		"airtab.v1.*.D-AIUA.XX123-2026-11-21",
		"airtab.v1.>.D-AIUA.XX123-2026-11-21",
		"airtab.v1.refund.D-AIUA.XX123-2026-11-21",
		"airtab.v1..D-AIUA.XX123-2026-11-21",
		"airtab.v1.invoice..XX123-2026-11-21",
		"airtab.v1.invoice.d-aiua.XX123-2026-11-21",
		AllInvoices, AllCloses, AllReceipts, AllManifests, AllDeltas,
	} {
		if kind, a, f, err := ParseSubject(s); err == nil {
			t.Errorf("ParseSubject(%q) = %q %q %q, want an error", s, kind, a, f)
		} else if !strings.Contains(err.Error(), "subject") {
			t.Errorf("ParseSubject(%q): err = %q, want it to name the subject", s, err)
		}
	}
}

// TestAircraftPermissions checks that an aircraft may touch only its own
// subjects, its own receipt consumer and its own inboxes: every entry names
// the aircraft, none reaches another aircraft's subjects, and no entry is a
// wildcard over aircraft.
func TestAircraftPermissions(t *testing.T) {
	a, other := AircraftID("D-AIUA"), AircraftID("D-AIUB")
	f := FlightID("XX123-2026-11-21")
	pub, sub := AircraftPermissions(a)
	if len(pub) == 0 || len(sub) == 0 {
		t.Fatalf("empty permissions: publish %q, subscribe %q", pub, sub)
	}
	for _, p := range slices.Concat(pub, sub) {
		if p == HeartbeatSubject || strings.HasPrefix(p, "$JS.API.STREAM.INFO.") {
			continue // the same for every aircraft, and reveals nothing of another's
		}
		if !slices.Contains(strings.Split(p, "."), string(a)) && !strings.Contains(p, ReceiptConsumer(a)) {
			t.Errorf("permission %q does not name aircraft %s", p, a)
		}
		if strings.Contains(p, string(other)) {
			t.Errorf("permission %q names another aircraft", p)
		}
	}
	// What the aircraft needs is allowed.
	for _, s := range []string{InvoiceSubject(a, f), CloseSubject(a, f), ManifestSubject(a, f), DeltaSubject(a, f),
		"$JS.API.CONSUMER.CREATE." + StreamReceipts + "." + ReceiptConsumer(a) + "." + ReceiptSubject(a, f),
		"$JS.API.CONSUMER.MSG.NEXT." + StreamReceipts + "." + ReceiptConsumer(a),
		"$JS.API.CONSUMER.INFO." + StreamReceipts + "." + ReceiptConsumer(a),
		"$JS.ACK." + StreamReceipts + "." + ReceiptConsumer(a) + ".1.2.3.4.5",
	} {
		if !allowed(pub, s) {
			t.Errorf("aircraft %s may not publish %q", a, s)
		}
	}
	for _, s := range []string{HeartbeatSubject, NoticeSubject(a, f), InboxPrefix(a) + ".abc123", InboxPrefix(a) + ".abc123.1"} {
		if !allowed(sub, s) {
			t.Errorf("aircraft %s may not subscribe to %q", a, s)
		}
	}
	// What belongs to another aircraft is not.
	for _, s := range []string{InvoiceSubject(other, f), CloseSubject(other, f), ManifestSubject(other, f), DeltaSubject(other, f),
		ReceiptSubject(a, f), // receipts come from ground, never from an aircraft
		NoticeSubject(a, f),  // so do manifest change notices
		"$JS.API.CONSUMER.CREATE." + StreamReceipts + "." + ReceiptConsumer(other) + "." + ReceiptSubject(other, f),
		"$JS.API.CONSUMER.CREATE." + StreamReceipts + "." + ReceiptConsumer(a) + "." + ReceiptSubject(other, f),
		"$JS.API.CONSUMER.MSG.NEXT." + StreamReceipts + "." + ReceiptConsumer(other),
		"$JS.API.CONSUMER.INFO." + StreamReceipts + "." + ReceiptConsumer(other),
		"$JS.ACK." + StreamReceipts + "." + ReceiptConsumer(other) + ".1.2.3.4.5",
		"$JS.API.CONSUMER.DELETE." + StreamReceipts + "." + ReceiptConsumer(a),
		"$JS.API.STREAM.PURGE." + StreamInvoices,
		"$JS.API.STREAM.DELETE." + StreamInvoices,
	} {
		if allowed(pub, s) {
			t.Errorf("aircraft %s may publish %q", a, s)
		}
	}
	for _, s := range []string{ReceiptSubject(other, f), InboxPrefix(other) + ".abc123", "_INBOX.abc123", AllInvoices, InvoiceSubject(other, f),
		NoticeSubject(other, f), AllNotices} {
		if allowed(sub, s) {
			t.Errorf("aircraft %s may subscribe to %q", a, s)
		}
	}
	if ReceiptConsumer(a) == ReceiptConsumer(other) || InboxPrefix(a) == InboxPrefix(other) {
		t.Fatalf("two aircraft share a consumer or inbox prefix")
	}
	if strings.ContainsAny(ReceiptConsumer(a), ".*> ") {
		t.Fatalf("consumer name %q is not a single NATS token", ReceiptConsumer(a))
	}
}

// allowed reports whether subject s matches one of the NATS subject patterns
// in perms ("*" matches one token, ">" one or more at the end).
func allowed(perms []string, s string) bool {
	return slices.ContainsFunc(perms, func(p string) bool { return subjectMatch(p, s) })
}

func subjectMatch(pattern, s string) bool {
	pt, st := strings.Split(pattern, "."), strings.Split(s, ".")
	for i, tok := range pt {
		if tok == ">" {
			return len(st) > i
		}
		if i >= len(st) || (tok != "*" && tok != st[i]) {
			return false
		}
	}
	return len(pt) == len(st)
}

func TestSubjectMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"a.b", "a.b", true},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{"a.b", "a.c", false},
	} {
		if got := subjectMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("subjectMatch(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}
