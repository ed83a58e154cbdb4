package protocol

import (
	"fmt"
	"time"
)

// FlightID names one flight on one day: the IATA carrier code, the flight
// number and the scheduled departure date (UTC), for example
// "XX123-2026-11-21". It is also a NATS subject token, so it holds no dots,
// spaces or wildcards.
type FlightID string

// NewFlightID builds a flight id from its parts.
func NewFlightID(carrier, number string, date time.Time) (FlightID, error) {
	return ParseFlightID(carrier + number + "-" + date.UTC().Format(time.DateOnly))
}

// ParseFlightID checks the form of s and returns it as a FlightID.
func ParseFlightID(s string) (FlightID, error) {
	f := FlightID(s)
	return f, f.Validate()
}

// Validate returns an error naming what is wrong with the flight id.
func (f FlightID) Validate() error {
	_, _, date, ok := flightParts(string(f))
	if !ok {
		return fmt.Errorf("flight %q: want carrier, number and date, for example XX123-2026-11-21", trunc(string(f)))
	}
	if _, err := time.Parse(time.DateOnly, date); err != nil {
		return fmt.Errorf("flight %q: bad date %s", f, date)
	}
	return nil
}

// flightParts splits s into carrier, number and date when it has the form
// of a flight id. It accepts exactly what the regular expression
//
//	^([A-Z0-9]{2})([0-9]{1,4}[A-Z]?)-([0-9]{4}-[0-9]{2}-[0-9]{2})$
//
// matches, and gives its submatches, without running one: every invoice,
// receipt and close names a flight, and the regular expression was most of
// a receipt's validation (FuzzFlightParts holds the two to the same
// answers).
func flightParts(s string) (carrier, number, date string, ok bool) {
	// carrier{2} number{1,4} letter? "-" date{10}
	const dateLen = len("2006-01-02")
	n := len(s)
	if n < 2+1+1+dateLen || n > 2+5+1+dateLen {
		return "", "", "", false
	}
	if !isUpperOrDigit(s[0]) || !isUpperOrDigit(s[1]) || s[n-dateLen-1] != '-' {
		return "", "", "", false
	}
	num := s[2 : n-dateLen-1]
	digits := len(num)
	if isUpper(num[digits-1]) {
		digits--
	}
	if digits < 1 || digits > 4 {
		return "", "", "", false
	}
	for i := range digits {
		if !isDigit(num[i]) {
			return "", "", "", false
		}
	}
	d := s[n-dateLen:]
	for i := range dateLen {
		if i == 4 || i == 7 {
			if d[i] != '-' {
				return "", "", "", false
			}
		} else if !isDigit(d[i]) {
			return "", "", "", false
		}
	}
	return s[:2], num, d, true
}

func isDigit(c byte) bool        { return '0' <= c && c <= '9' }
func isUpper(c byte) bool        { return 'A' <= c && c <= 'Z' }
func isUpperOrDigit(c byte) bool { return isDigit(c) || isUpper(c) }

// Carrier returns the two-character IATA airline code.
func (f FlightID) Carrier() string { return f.part(1) }

// Number returns the flight number, for example "123".
func (f FlightID) Number() string { return f.part(2) }

// Date returns the scheduled departure date at midnight UTC.
func (f FlightID) Date() time.Time {
	d, _ := time.Parse(time.DateOnly, f.part(3))
	return d
}

func (f FlightID) part(i int) string {
	carrier, number, date, ok := flightParts(string(f))
	if !ok {
		return ""
	}
	return [...]string{1: carrier, 2: number, 3: date}[i]
}

// AircraftID is an aircraft's registration mark, for example "D-AIUA" or
// "N12345". It is a NATS subject token and the aircraft's identity on the
// ground.
type AircraftID string

// Validate returns an error unless a is a registration mark of 2 to 10
// upper-case letters, digits and at most one dash.
func (a AircraftID) Validate() error {
	if len(a) < 2 || len(a) > 10 || !aircraftMark(string(a)) {
		return fmt.Errorf("aircraft %q: want a registration mark such as D-AIUA", trunc(string(a)))
	}
	return nil
}

// aircraftMark reports whether s matches ^[A-Z0-9]{1,3}-?[A-Z0-9]{1,6}$,
// without running a regular expression: one to three upper-case letters or
// digits, an optional dash, then one to six (FuzzAircraftMark holds the two to the same answers).
func aircraftMark(s string) bool {
	dash := -1
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '-' && dash < 0:
			dash = i
		case !isUpperOrDigit(c):
			return false
		}
	}
	if dash < 0 {
		return len(s) >= 2 && len(s) <= 9
	}
	return dash >= 1 && dash <= 3 && len(s)-dash-1 >= 1 && len(s)-dash-1 <= 6
}
