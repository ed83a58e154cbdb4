package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/harness"
)

// The memory section measures a cabin server in a process of its own (the
// bench's own process also holds ground, the wallets and the clients): the
// bench re-executes its program (Options.Executable) as the cabin server
// child of simulator/harness (see harness.RunCabinChild), which runs exactly
// what onboard/cmd/onboard runs, the 40 MiB Go memory limit included.

// memoryMethod says in the output how the memory figure was made.
const memoryMethod = "the cabin server runs as a child process (this program re-executed, see harness.RunCabinChild: " +
	"onboard/app with its production defaults, 40 MiB Go memory limit, production argon2id crew PIN cost); it " +
	"fetches the signed manifest with every passenger's credential over NATS through the link emulator, the link " +
	"goes down, a purser signs in and 16 concurrent handheld requests sell to every passenger; then VmHWM " +
	"(peak resident, the figure reported) and VmRSS are read from /proc/<pid>/status."

// memory runs the memory section: an onboard flight for every registered
// passenger in a child process.
func (w *world) memory(ctx context.Context) (RSSResult, error) {
	o := w.opts
	r := RSSResult{Passengers: len(w.pax), Sales: len(w.pax) * o.SalesPerPassenger, Method: memoryMethod}
	if runtime.GOOS != "linux" {
		return r, errors.New("bench: the memory section reads /proc: Linux only (set SkipRSS)")
	}
	exe := o.Executable
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return r, fmt.Errorf("bench: memory: find this program to re-execute: %w", err)
		}
	}
	a, f := w.aircraft[flightMemory], w.flights[flightMemory].ID
	link, err := linkemu.Listen("127.0.0.1:0", w.g.NATSAddr(), linkemu.Config{}, o.Logger)
	if err != nil {
		return r, err
	}
	defer link.Close()
	start := time.Now()
	ch, err := harness.StartCabinProcess(ctx, exe, []string{"--data-dir", a.Dir, "--listen", "127.0.0.1:0", "--aircraft", string(a.ID),
		"--flight", string(f), "--issuer-key", w.g.IssuerPubFile(), "--nats-url", link.URL(), "--nats-nkey", a.NKeyFile(),
		"--sync-interval", "2s", "--log-format", "json", "--log-level", "info"}, nil)
	if err != nil {
		return r, fmt.Errorf("bench: memory: %w", err)
	}
	defer ch.Stop()
	progress(o.Progress, "memory: cabin server child %d listening on %s", ch.Pid(), ch.Addr())

	select {
	case <-ch.Manifest():
	case <-ch.Done():
		return r, fmt.Errorf("bench: memory: the cabin server child exited: %v\n%s", ch.Err(), ch.Logs())
	case <-time.After(time.Minute):
		return r, fmt.Errorf("bench: memory: the cabin server child has no manifest after a minute\n%s", ch.Logs())
	case <-ctx.Done():
		return r, ctx.Err()
	}
	purser := w.crew[flightMemory][0]
	h, err := client.New(client.Config{URL: "https://" + ch.Addr(), Fingerprint: ch.Fingerprint(), Handheld: "hh-purser", MaxConns: 16})
	if err != nil {
		return r, err
	}
	defer h.Close()
	if _, err := h.SignIn(ctx, purser.id, purser.pin); err != nil {
		return r, fmt.Errorf("bench: memory: sign in: %w\n%s", err, ch.Logs())
	}
	err = harness.Poll(ctx, time.Minute, "memory flight: sales open on the child", func() (bool, error) {
		st, err := h.Status(ctx)
		return err == nil && st.SalesOpen && st.Manifest != nil, err
	})
	if err != nil {
		return r, fmt.Errorf("%w\n%s", err, ch.Logs())
	}
	link.SetState(linkemu.Down)
	if err := w.flyMemoryFlight(ctx, h, f); err != nil {
		return r, fmt.Errorf("%w\n%s", err, ch.Logs())
	}
	st, err := h.Status(ctx)
	if err != nil {
		return r, err
	}
	if st.LastSeq != uint64(r.Sales) {
		return r, fmt.Errorf("bench: memory flight: the journal holds %d invoices, want %d", st.LastSeq, r.Sales)
	}
	hwm, err := procStatusKiB(ch.Pid(), "VmHWM")
	if err != nil {
		return r, err
	}
	rss, err := procStatusKiB(ch.Pid(), "VmRSS")
	if err != nil {
		return r, err
	}
	r.VmHWMMiB, r.VmRSSMiB = float64(hwm)/1024, float64(rss)/1024
	r.Seconds = time.Since(start).Seconds()
	progress(o.Progress, "memory: %d passengers, %d sales: peak resident %.1f MiB, resident now %.1f MiB",
		r.Passengers, r.Sales, r.VmHWMMiB, r.VmRSSMiB)
	return r, ch.Stop()
}

// flyMemoryFlight sells SalesPerPassenger times to every passenger, 16
// requests at a time, each with a code made just before it is sent.
func (w *world) flyMemoryFlight(ctx context.Context, h *client.Client, f protocol.FlightID) error {
	total := len(w.pax) * w.opts.SalesPerPassenger
	lines := []onboard.Line{{SKU: "COFFEE", Quantity: 1}}
	const workers = 16
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for k := range workers {
		wg.Go(func() {
			for i := k; i < total && ctx.Err() == nil; i += workers {
				code, err := w.pax[i%len(w.pax)].Wallet.PaymentCode(f, false)
				if err != nil {
					errs[k] = err
					return
				}
				d, err := h.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: lines})
				if err == nil && !d.Approved {
					err = fmt.Errorf("declined: %s", d.Decline.Name)
				}
				if err != nil {
					errs[k] = fmt.Errorf("bench: memory flight sale %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// procStatusKiB reads a "<field>: <n> kB" line of /proc/<pid>/status.
func procStatusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("bench: no %s in /proc/%d/status", field, pid)
}
