package onboard

import (
	"context"
	"errors"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// Journal is the cabin server's durable store: the invoice journal, the
// cached manifest and its deltas, and the flight-close report. onboard/sqlite
// implements it on SQLite. Every write is durable (committed with fsync)
// when the method returns without error, and atomic: on error nothing of
// it is written.
type Journal interface {
	// Commit writes a group commit in one transaction: the invoices in
	// order and, when Close is set, the flight-close report. The journal's
	// unique keys (invoice id, sequence number, device key and counter) are
	// the last line of defence: a duplicate fails the whole batch.
	Commit(ctx context.Context, b Batch) error
	// Invoices calls fn for every invoice in sequence order, for the state
	// rebuild at start. An error from fn stops the scan and is returned.
	Invoices(ctx context.Context, fn func(rec Record) error) error
	// Invoice returns one invoice by id, or an error wrapping ErrNotFound.
	Invoice(ctx context.Context, id protocol.ID) (Record, error)
	// InvoiceCounts counts invoices by status.
	InvoiceCounts(ctx context.Context) (InvoiceCounts, error)
	// FlightClose returns the stored flight-close report, or nil when the
	// flight is open.
	FlightClose(ctx context.Context) ([]byte, error)
	// Declines returns how many sale requests the journal has counted as
	// declined (Batch.Declines, summed).
	Declines(ctx context.Context) (uint64, error)

	// SaveManifest stores a verified manifest, replacing the one stored and
	// dropping its deltas.
	SaveManifest(ctx context.Context, serial uint64, raw []byte) error
	// SaveDelta stores a verified manifest delta of manifest baseSerial.
	SaveDelta(ctx context.Context, baseSerial, seq uint64, raw []byte) error
	// Manifest returns the stored manifest and its deltas in order, or a nil
	// manifest when none is stored.
	Manifest(ctx context.Context) (raw []byte, deltas [][]byte, err error)
}

// ErrNotFound is wrapped by a Journal's error for a record it does not have.
var ErrNotFound = errors.New("not found")

// Batch is one group commit.
type Batch struct {
	Invoices []Entry
	// Close is a SignedFlightClose's raw bytes, written with the invoices
	// when the batch closes the flight.
	Close []byte
	// Declines is how many sale requests were declined since the last
	// commit, to add to the journal's count: a count, not records, so a
	// flood of bad codes cannot fill the disk.
	Declines uint64
}

// Entry is one invoice to journal, with the device key and counter of the
// code it used (zero for a void): the journal's unique key that makes one
// code pay for one sale.
type Entry struct {
	Invoice *protocol.SignedInvoice
	Device  crypto.PublicKey
	Counter uint64
}

// Record is an invoice as the journal holds it.
type Record struct {
	Raw     []byte // the SignedInvoice
	Device  []byte // raw device key of a sale's code; nil for a void
	Counter uint64
	Status  InvoiceStatus
}
