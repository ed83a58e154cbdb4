// Package sim is the simulator's engine: it flies whole Airtab flights and
// fleets end to end with the real parts that simulator/harness runs (ground
// with embedded NATS and SQLite, cabin servers behind the link emulator,
// reference wallets, handheld clients over the real API), then counts what
// those parts did and checks the money invariants.
//
// Every random choice derives from Config.Seed, and every passenger is
// served by one handheld in a fixed order, so the same seed gives the same
// totals however the goroutines interleave.
//
//	config.go    Config and its defaults
//	sim.go       Run: ground, registration, the feeder flight, the fleet, landing, counting
//	flight.go    one flight: passengers, cabin server, service rounds, voids, close, landing
//	people.go    the passenger mix, the catalog and the baskets
//	handheld.go  a handheld as crew use it: retries with the same invoice id, its own record
//	fraud.go     the fraud attempts, each of which must be declined
//	chaos.go     link outages and cabin-server crashes
//	count.go     counting from the parts and checking the invariants
//	report.go    the report
//	soak.go      Soak: runs one after another until a duration is up, totals per hour
package sim

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/airtab/airtab/protocol"
)

// Config configures a run. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	// Seed drives every random choice. Default 42.
	Seed uint64
	// Passengers is the seats sold per flight. Default 180 (an A320).
	Passengers int
	// Handhelds is the handhelds per cabin. Default 3.
	Handhelds int
	// Flights is the number of aircraft flying at once. Default 1.
	Flights int
	// Outages makes the link flaky during the flight: brief up periods
	// with connection resets and black holes, so invoices replay in part
	// mid-flight.
	Outages bool
	// Crash kills each cabin server with SIGKILL at random moments and
	// restarts it on the same data directory. The main flights' cabin
	// servers then run as child processes of this program, whose main (or
	// TestMain) must call harness.RunCabinChild when
	// harness.CabinChildEnv is "1".
	Crash bool
	// Fraud adds attempts that must all be declined: forged, tampered,
	// screenshot-replayed, double-scanned, over-limit, deny-listed,
	// wrong-flight and expired codes, and an opt-in again after the back
	// office revoked the credential; and a dishonest wallet that signs the
	// same counter on two flights flying at once, whose two sales must
	// both be charged. With Fraud at least two aircraft fly (Validate
	// raises Flights to 2).
	Fraud bool
	// DeclineRate is the share of card tokens, 0 to 1, the simulated
	// acquirer declines on the ground. Default 0.
	DeclineRate float64
	// Currency is the flights' currency. Default EUR.
	Currency protocol.Currency
	// QROut, when set, is a directory to write sample payment codes to as
	// PNG files.
	QROut string
	// Dir is where the run's data goes. Default: a new temporary
	// directory, removed afterwards unless Keep.
	Dir string
	// Keep keeps the data directory.
	Keep bool
	// Postgres, when set, is the URL of an empty PostgreSQL database that
	// ground keeps registry, ledger and clearing in instead of SQLite
	// (ground's --postgres). Default: SQLite in the data directory.
	Postgres string
	// GroundWorkers, when positive, runs ground as several processes'
	// worth of parts: an API process (--role api) and this many clearing
	// workers (--role clearing) on one JetStream consumer, each a ground
	// of its own in this program, on Postgres and on a three-node
	// in-process NATS cluster (several ground processes need an external
	// NATS). At most MaxGroundWorkers; needs Postgres. Default 0: clearing
	// runs in the one ground process.
	GroundWorkers int
	// NATSCluster, when positive, runs ground on an in-process JetStream
	// cluster of this many nodes (routes on loopback, each node's
	// JetStream in the data directory) instead of its embedded server,
	// with streams of min(NATSCluster, 3) replicas and aircraft let in by
	// ground's auth callout; each cabin server gets a link to every node.
	// At most MaxNATSCluster. Default 0: embedded NATS, or 3 nodes with
	// GroundWorkers.
	NATSCluster int
	// Soak, when positive, makes the command fly runs of this
	// configuration one after another until this much time has passed (see
	// Soak). Run itself ignores it. At most MaxSoak. Default 0: one run.
	Soak time.Duration
	// Progress receives progress lines. Default: none.
	Progress io.Writer
	// Logger receives the parts' logs. Default: none.
	Logger *slog.Logger
}

// DefaultConfig returns the default flight: one A320 with three handhelds.
func DefaultConfig() Config {
	return Config{Seed: 42, Passengers: 180, Handhelds: 3, Flights: 1, Currency: "EUR"}
}

// Bounds on a run.
const (
	MaxPassengers = 850 // an A380
	MaxHandhelds  = 16
	MaxFlights    = 100
	// MaxGroundWorkers bounds Config.GroundWorkers.
	MaxGroundWorkers = 8
	// MaxNATSCluster bounds Config.NATSCluster.
	MaxNATSCluster = 7
)

// Validate checks the configuration against its bounds.
func (c *Config) Validate() error {
	switch {
	case c.Passengers < 10 || c.Passengers > MaxPassengers:
		return fmt.Errorf("passengers %d: want 10 to %d", c.Passengers, MaxPassengers)
	case c.Handhelds < 1 || c.Handhelds > MaxHandhelds:
		return fmt.Errorf("handhelds %d: want 1 to %d", c.Handhelds, MaxHandhelds)
	case c.Flights < 1 || c.Flights > MaxFlights:
		return fmt.Errorf("flights %d: want 1 to %d", c.Flights, MaxFlights)
	case c.DeclineRate < 0 || c.DeclineRate > 1:
		return fmt.Errorf("decline rate %g: want 0 to 1", c.DeclineRate)
	case c.GroundWorkers < 0 || c.GroundWorkers > MaxGroundWorkers:
		return fmt.Errorf("ground workers %d: want 0 to %d", c.GroundWorkers, MaxGroundWorkers)
	case c.NATSCluster < 0 || c.NATSCluster > MaxNATSCluster:
		return fmt.Errorf("NATS cluster of %d nodes: want 0 (embedded NATS) or 1 to %d", c.NATSCluster, MaxNATSCluster)
	case c.GroundWorkers > 0 && c.Postgres == "":
		return fmt.Errorf("%d ground workers need a PostgreSQL database they share (--postgres URL or --store postgres)", c.GroundWorkers)
	case c.Soak < 0 || c.Soak > MaxSoak:
		return fmt.Errorf("duration %s: want 0 (one run) up to %s", c.Soak, MaxSoak)
	}
	if c.Currency == "" {
		c.Currency = "EUR"
	}
	if c.Fraud && c.Flights < 2 {
		c.Flights = 2 // the cross-flight counter reuse needs two aircraft at once
	}
	return c.Currency.Validate()
}
