package clearing

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/airtab/airtab/protocol"
)

// TestRejectOnOddSubjectBytes: a message published on a subject whose
// flight token is not UTF-8 (NATS subjects are bytes) is rejected and
// stored like any garbage on both stores; PostgreSQL's text columns refuse
// invalid UTF-8, and a batch that cannot store it would come back for ever.
// The flight's own invoices still clear.
func TestRejectOnOddSubjectBytes(t *testing.T) {
	h := newHarness(t)
	h.start()
	p := h.passenger(card, 100_00)
	subject := strings.TrimSuffix(h.fl.Subject(), string(testFlight)) + "XX1-\xff\xfe"
	junk := []byte("junk on an odd subject")
	h.publish(subject, junk, "")
	s := h.sale(p, 3_50)
	h.send(s)
	h.waitReceipts(s)
	waitFor(t, func() error { _, _, err := h.rejectRow(junk); return err })
	var stored string
	hash := protocol.Sum(junk)
	if err := h.db.QueryRow(`SELECT subject FROM clearing_rejects WHERE hash = ?`, hash[:]).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if want := strings.TrimSuffix(subject, "\xff\xfe") + "\uFFFD"; stored != want {
		t.Errorf("stored subject %q, want %q", stored, want)
	}
}

func TestStoredText(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"Plain", "airtab.v1.invoice.D-AIUA.XX123-2026-11-21", "airtab.v1.invoice.D-AIUA.XX123-2026-11-21"},
		{"Unicode", "café…", "café…"},
		{"InvalidBytes", "a\xff\xfeb", "a\uFFFDb"},
		{"CutRune", "caf\xc3", "caf\uFFFD"},
		{"NUL", "a\x00b", "a\uFFFDb"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := storedText(tc.in); got != tc.want {
				t.Errorf("storedText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestFailDetailCutOnACharacter: a verdict's detail is cut at maxDetail
// bytes without splitting a character, so it stays storable text.
func TestFailDetailCutOnACharacter(t *testing.T) {
	for _, pad := range []int{0, 1} { // a two-byte character straddling the cut, or not
		it := &item{}
		it.fail(quarantine, protocol.ReasonUnknownFlight, "%s%s", strings.Repeat("a", pad), strings.Repeat("é", maxDetail))
		if !utf8.ValidString(it.detail) {
			t.Errorf("pad %d: detail is not UTF-8: %q", pad, it.detail[len(it.detail)-8:])
		}
		if n := len(strings.TrimSuffix(it.detail, "…")); n > maxDetail || n < maxDetail-1 {
			t.Errorf("pad %d: cut at %d bytes, want %d or %d", pad, n, maxDetail-1, maxDetail)
		}
	}
}
