package sqlite_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// BenchmarkCommit measures group commits (fsync included) of a full
// flight's passengers paying in turn, so the unique keys on the invoice id
// and on the device key land on random index pages as they do in the air.
// The batch sizes are those the cabin server's bench sees: ~14 sales per
// commit at saturation, 1–3 at 1,000 sales/s. The journal holds a
// flight's worth of invoices before the timer starts.
//
// Metrics: ns/invoice (wall), cpu-µs/invoice (the process's user+system
// CPU from getrusage: what the cabin server pays per sale) and the system
// part of it, sys-µs/invoice, and, from the
// WAL index, WAL frames and KiB written per commit and checkpoints (that
// copied frames) per 1,000 commits; p99 and max commit wall time, what a checkpoint on the
// committing goroutine adds to an answer.
func BenchmarkCommit(b *testing.B) {
	for _, batch := range []int{14, 2} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchCommit(b, batch) })
	}
}

func benchCommit(b *testing.B, batch int) {
	const (
		seats   = 256
		preload = 10000
	)
	f := ft.New(b, ft.Options{Passengers: 1, Seats: seats})
	j := f.OpenJournal()
	defer j.Close()
	entries := make([]onboard.Entry, preload+b.N*batch)
	var prev protocol.Hash
	for i := range entries {
		entries[i] = seatInvoice(b, f, f.Seats[i%seats], uint64(i+1), prev)
		prev = entries[i].Invoice.Hash()
	}
	for i := 0; i < preload; i += 50 {
		if err := j.Commit(ctx, onboard.Batch{Invoices: entries[i:min(i+50, preload)]}); err != nil {
			b.Fatal(err)
		}
	}
	entries = entries[preload:]
	wal := walIndex{path: j.Path() + "-shm"}
	wal.read(b)
	wal.reset()
	cpu0, sys0 := cpuTime(b)
	lat := make([]time.Duration, b.N)
	b.ResetTimer()
	for i := range b.N {
		start := time.Now()
		if err := j.Commit(ctx, onboard.Batch{Invoices: entries[i*batch : (i+1)*batch]}); err != nil {
			b.Fatal(err)
		}
		lat[i] = time.Since(start)
		wal.read(b)
	}
	b.StopTimer()
	slices.Sort(lat)
	cpu, sys := cpuTime(b)
	cpu, sys = cpu-cpu0, sys-sys0
	n := float64(len(entries))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/n, "ns/invoice")
	b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-µs/invoice")
	b.ReportMetric(float64(sys.Microseconds())/n, "sys-µs/invoice")
	b.ReportMetric(float64(wal.frames)/float64(b.N), "frames/commit")
	b.ReportMetric(float64(wal.frames)*float64(wal.pageSize+24)/1024/float64(b.N), "walKiB/commit")
	b.ReportMetric(float64(wal.checkpoint)*1000/float64(b.N), "ckpt/1000commits")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-commit-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-commit-µs")
}

// seatInvoice signs a sale invoice with seq and prev paid by a fresh code
// of seat s.
func seatInvoice(t testing.TB, f *ft.Flight, s *ft.Seat, seq uint64, prev protocol.Hash) onboard.Entry {
	t.Helper()
	raw, err := protocol.FromQRText(protocol.PrefixPaymentCode, s.Code())
	if err != nil {
		t.Fatal(err)
	}
	pc, err := protocol.ParsePaymentCode(raw)
	if err != nil {
		t.Fatal(err)
	}
	cred := &s.Credential.Body
	lines := []protocol.OrderLine{{SKU: "COFFEE", Quantity: 1, UnitPrice: protocol.M(350, "EUR")}}
	inv, err := protocol.Sign(protocol.Invoice{Version: protocol.Version, ID: protocol.NewID(nil), Flight: f.ID,
		Aircraft: f.Aircraft, Seq: seq, Prev: prev, Kind: protocol.KindSale, Credential: cred.ID,
		Passenger: cred.Passenger, Lines: lines, Total: protocol.M(350, "EUR"), CreatedAt: f.Now(), Code: raw, Crew: "fa1"},
		f.AircraftKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	return onboard.Entry{Invoice: inv, Device: cred.Device.PublicKey, Counter: pc.Body.Counter}
}

// cpuTime is the process's user plus system CPU so far, and the system
// part (the kernel's work for the journal's writes and fsyncs) alone.
func cpuTime(t testing.TB) (total, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), time.Duration(ru.Stime.Nano())
}

// walIndex follows the WAL through the wal-index header in the -shm file
// (SQLite's WalIndexHdr and WalCkptInfo, native byte order: the page size
// at byte 14, mxFrame, the WAL's last frame, at byte 16, and nBackfill, the
// frames a checkpoint copied, at byte 96), to count the frames commits
// write and the checkpoints between them. A last frame lower than before
// means a checkpoint let the WAL restart from its beginning.
type walIndex struct {
	path                         string
	last, backfill               uint32
	frames, restarts, checkpoint int
	pageSize                     int
}

func (w *walIndex) read(t testing.TB) {
	hdr := make([]byte, 100)
	fd, err := os.Open(w.path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	if _, err := fd.ReadAt(hdr, 0); err != nil {
		t.Fatal(err)
	}
	w.pageSize = int(binary.NativeEndian.Uint16(hdr[14:]))
	if w.pageSize == 1 {
		w.pageSize = 65536
	}
	mx := binary.NativeEndian.Uint32(hdr[16:])
	if mx >= w.last {
		w.frames += int(mx - w.last)
	} else {
		w.frames += int(mx)
		w.restarts++
	}
	w.last = mx
	if b := binary.NativeEndian.Uint32(hdr[96:]); b != w.backfill {
		if b > 0 {
			w.checkpoint++
		}
		w.backfill = b
	}
}

// reset forgets what the journal wrote before.
func (w *walIndex) reset() { w.frames, w.restarts, w.checkpoint = 0, 0, 0 }
