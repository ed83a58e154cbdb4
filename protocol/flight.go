package protocol

import (
	"fmt"
	"regexp"
	"time"
)

// FlightID names one flight on one day: the IATA carrier code, the flight
// number and the scheduled departure date (UTC), for example
// "XX123-2026-11-21". It is also a NATS subject token, so it holds no dots,
// spaces or wildcards.
type FlightID string

var flightRE = regexp.MustCompile(`^([A-Z0-9]{2})([0-9]{1,4}[A-Z]?)-([0-9]{4}-[0-9]{2}-[0-9]{2})$`)

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
	m := flightRE.FindStringSubmatch(string(f))
	if m == nil {
		return fmt.Errorf("flight %q: want carrier, number and date, for example XX123-2026-11-21", trunc(string(f)))
	}
	if _, err := time.Parse(time.DateOnly, m[3]); err != nil {
		return fmt.Errorf("flight %q: bad date %s", f, m[3])
	}
	return nil
}

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
	m := flightRE.FindStringSubmatch(string(f))
	if m == nil {
		return ""
	}
	return m[i]
}

// AircraftID is an aircraft's registration mark, for example "D-AIUA" or
// "N12345". It is a NATS subject token and the aircraft's identity on the
// ground.
type AircraftID string

var aircraftRE = regexp.MustCompile(`^[A-Z0-9]{1,3}-?[A-Z0-9]{1,6}$`)

// Validate returns an error unless a is a registration mark of 2 to 10
// upper-case letters, digits and at most one dash.
func (a AircraftID) Validate() error {
	if len(a) < 2 || len(a) > 10 || !aircraftRE.MatchString(string(a)) {
		return fmt.Errorf("aircraft %q: want a registration mark such as D-AIUA", trunc(string(a)))
	}
	return nil
}
