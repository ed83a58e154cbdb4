package protocol

import (
	"regexp"
	"testing"
)

// The regular expressions flightParts and aircraftMark stand in for: the
// oracle their tests hold them to.
var (
	flightRE   = regexp.MustCompile(`^([A-Z0-9]{2})([0-9]{1,4}[A-Z]?)-([0-9]{4}-[0-9]{2}-[0-9]{2})$`)
	aircraftRE = regexp.MustCompile(`^[A-Z0-9]{1,3}-?[A-Z0-9]{1,6}$`)
)

var flightSeeds = []string{
	"", "XX123-2026-11-21", "XX1-2026-11-21", "XX1234-2026-11-21", "XX1234A-2026-11-21",
	"XX12345-2026-11-21", "XXA-2026-11-21", "X1A-2026-11-21", "9Z0001Z-2026-13-99", "xx123-2026-11-21",
	"XX123-2026-11-2", "XX123-2026-11-211", "XX123_2026-11-21", "XX123-2026/11-21", "XX123A-2026-11-21\n",
	"XX12AB-2026-11-21", "XX-123-2026-11-21", "XXX123-2026-11-21", "XX123--2026-11-21", "XX12-3-2026-11-21",
	"ÄX123-2026-11-21", "XX１23-2026-11-21",
}

var aircraftSeeds = []string{
	"", "D", "DA", "D-AIUA", "N12345", "ABC-DEFGHI", "ABCD-EFG", "ABC-DEFGHIJ", "ABCDEFGHI", "ABCDEFGHIJ",
	"-ABC", "ABC-", "A--B", "A-B-C", "d-aiua", "D AIUA", "D-AIUA\n", "-", "AB-", "A-B",
}

// check holds flightParts to flightRE and its submatches for s.
func checkFlightParts(t *testing.T, s string) {
	t.Helper()
	c, n, d, ok := flightParts(s)
	m := flightRE.FindStringSubmatch(s)
	if ok != (m != nil) {
		t.Fatalf("flightParts(%q) ok = %v, regexp match = %v", s, ok, m != nil)
	}
	if ok && (c != m[1] || n != m[2] || d != m[3]) {
		t.Fatalf("flightParts(%q) = %q %q %q, regexp submatches %q", s, c, n, d, m[1:])
	}
}

func checkAircraftMark(t *testing.T, s string) {
	t.Helper()
	if got, want := aircraftMark(s), aircraftRE.MatchString(s); got != want {
		t.Fatalf("aircraftMark(%q) = %v, regexp match = %v", s, got, want)
	}
}

// TestFlightPartsMatchRegexp checks flightParts against the regular
// expression on hand-picked inputs and on every string of a small alphabet
// up to the lengths where the answer turns.
func TestFlightPartsMatchRegexp(t *testing.T) {
	for _, s := range flightSeeds {
		checkFlightParts(t, s)
	}
	for _, num := range enumerate("1A-", 6) {
		checkFlightParts(t, "XX"+num+"-2026-11-21")
	}
}

// TestAircraftMarkMatchesRegexp checks aircraftMark against the regular
// expression on hand-picked inputs and on every string of the alphabet
// {A, -, a} up to 11 characters (a digit is in the same class as A in
// both).
func TestAircraftMarkMatchesRegexp(t *testing.T) {
	for _, s := range aircraftSeeds {
		checkAircraftMark(t, s)
	}
	for _, s := range enumerate("A-a", 11) {
		checkAircraftMark(t, s)
	}
}

// enumerate returns every string over alphabet of length 0 to max.
func enumerate(alphabet string, max int) []string {
	out, level := []string{""}, []string{""}
	for range max {
		var next []string
		for _, p := range level {
			for i := range len(alphabet) {
				next = append(next, p+alphabet[i:i+1])
			}
		}
		out, level = append(out, next...), next
	}
	return out
}

// FuzzFlightParts holds flightParts to the regular expression.
func FuzzFlightParts(f *testing.F) {
	for _, s := range flightSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkFlightParts(t, s) })
}

// FuzzAircraftMark holds aircraftMark to the regular expression.
func FuzzAircraftMark(f *testing.F) {
	for _, s := range aircraftSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkAircraftMark(t, s) })
}
