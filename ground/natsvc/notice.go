package natsvc

import (
	"log/slog"

	"github.com/airtab/airtab/protocol"
	"github.com/nats-io/nats.go"
)

// Notifier publishes manifest change notices (protocol.NoticeSubject) to
// aircraft: the registry calls Notify after every committed change to what
// a flight's manifest carries (registry.Registry.SetNotifier), and the
// cabin server, subscribed to its own notice subject, pulls the delta at
// once. A notice is an empty core NATS message: an aircraft offline misses
// it and catches up at its next sync, as it always did.
type Notifier struct {
	Conn *nats.Conn
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Notify publishes a notice that flight f on aircraft a changed. It does
// not wait for the server: a failed publish is logged at debug level and
// costs only the time until the aircraft's next poll.
func (n *Notifier) Notify(a protocol.AircraftID, f protocol.FlightID) {
	if err := n.Conn.Publish(protocol.NoticeSubject(a, f), nil); err != nil {
		log := n.Logger
		if log == nil {
			log = slog.Default()
		}
		log.Debug("manifest change notice not published; the aircraft will poll", "aircraft", a, "flight", f, "err", err)
	}
}
