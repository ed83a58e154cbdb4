package protocol

import (
	"strings"
	"testing"
	"time"
)

func TestFlightID(t *testing.T) {
	for _, tc := range []struct {
		id                    FlightID
		carrier, number, date string
	}{
		{"XX123-2026-11-21", "XX", "123", "2026-11-21"},
		{"LH1-2026-01-01", "LH", "1", "2026-01-01"},
		{"U21234-2027-12-31", "U2", "1234", "2027-12-31"},
		{"9W5A-2028-02-29", "9W", "5A", "2028-02-29"},
		{"00999Z-2026-06-15", "00", "999Z", "2026-06-15"},
	} {
		t.Run(string(tc.id), func(t *testing.T) {
			f, err := ParseFlightID(string(tc.id))
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Carrier(); got != tc.carrier {
				t.Errorf("Carrier() = %q, want %q", got, tc.carrier)
			}
			if got := f.Number(); got != tc.number {
				t.Errorf("Number() = %q, want %q", got, tc.number)
			}
			want, _ := time.Parse(time.DateOnly, tc.date)
			if got := f.Date(); !got.Equal(want) || got.Location() != time.UTC {
				t.Errorf("Date() = %v, want %v UTC", got, want)
			}
			built, err := NewFlightID(tc.carrier, tc.number, want.Add(23*time.Hour))
			if err != nil || built != f {
				t.Errorf("NewFlightID = %q, %v; want %q", built, err, f)
			}
		})
	}
}

func TestFlightIDInvalid(t *testing.T) {
	for _, s := range []string{
		"",
		"XX123",
		"XX123-2026-11-21 ",
		" XX123-2026-11-21",
		"xx123-2026-11-21",  // lower-case carrier
		"X-2026-11-21",      // one-character carrier, no number
		"XXX123-2026-11-21", // three-letter carrier (ICAO, not IATA)
		"XX-2026-11-21",     // no number
		"XX12345-2026-11-21",
		"XX123AB-2026-11-21",
		"XXA123-2026-11-21",
		"XX123-2026-13-01", // month 13
		"XX123-2026-02-29", // not a leap year
		"XX123-2026-11-1",
		"XX123-26-11-21",
		"XX123_2026-11-21",
		"XX1.3-2026-11-21", // a dot would split a NATS subject
		"XX12*-2026-11-21",
		"XX123-2026-11-21>",
		"XX123-2026-11-21\n",
		"ＸＸ123-2026-11-21",
	} {
		t.Run(s, func(t *testing.T) {
			f, err := ParseFlightID(s)
			if err == nil {
				t.Fatalf("ParseFlightID(%q) = %q, want an error", s, f)
			}
			if !strings.Contains(err.Error(), "flight") {
				t.Fatalf("err = %q, want it to name the flight", err)
			}
			if !f.Date().IsZero() {
				t.Fatalf("invalid %q has date %v", s, f.Date())
			}
		})
	}
	if _, err := NewFlightID("XX", "", time.Now()); err == nil {
		t.Errorf("NewFlightID without number: no error")
	}
	long := strings.Repeat("X", 100)
	if err := FlightID(long).Validate(); err == nil || strings.Contains(err.Error(), long) {
		t.Errorf("long flight id: err = %v, want a truncated one", err)
	}
}

func TestAircraftID(t *testing.T) {
	for _, a := range []AircraftID{"D-AIUA", "N12345", "G-EUPT", "JA8089", "9V-SKA", "HB-JNA", "A6-EDA", "N1", "B-18918", "VH-OQA"} {
		if err := a.Validate(); err != nil {
			t.Errorf("%q: %v", a, err)
		}
	}
	for _, a := range []AircraftID{
		"", "D", "d-aiua", "D-", "-AIUA", "D--AIUA", "D-AI-UA", "D.AIUA", "D*AIUA", "D>",
		"D AIUA", "ABCD-EFGHIJ", "ABCDEFGHIJK", "D-AIUA\n", "D-ÄIUA",
	} {
		if err := a.Validate(); err == nil {
			t.Errorf("%q: valid, want an error", a)
		} else if !strings.Contains(err.Error(), "aircraft") {
			t.Errorf("%q: err = %q, want it to name the aircraft", a, err)
		}
	}
}

func TestIDText(t *testing.T) {
	w := newWorld(t, "ids")
	id := w.id()
	got, err := ParseID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseID(String()) = %s, %v; want %s", got, err, id)
	}
	for _, s := range []string{"", "00", strings.ToUpper(id.String()), id.String() + "0", id.String()[:31] + "g"} {
		if _, err := ParseID(s); err == nil {
			t.Errorf("ParseID(%q): no error", s)
		}
	}
	var back ID
	if err := back.UnmarshalText([]byte(id.String())); err != nil || back != id {
		t.Fatalf("UnmarshalText = %s, %v", back, err)
	}
	if !(ID{}).IsZero() || id.IsZero() {
		t.Fatalf("IsZero wrong")
	}
}
