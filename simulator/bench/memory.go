package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/airtab/airtab/onboard"
	oapp "github.com/airtab/airtab/onboard/app"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/harness"
)

// The cabin server child: the memory section measures a cabin server in a
// process of its own (the bench's own process also holds ground, the
// wallets and the clients). The bench re-executes its program
// (Options.Executable) with CabinChildEnv=1 and the cabin server's flags in
// CabinChildArgsEnv; the program's main must then call RunCabinChild before
// anything else and exit with its code:
//
//	if os.Getenv(bench.CabinChildEnv) == "1" {
//		os.Exit(bench.RunCabinChild())
//	}
//
// The child runs exactly what onboard/cmd/onboard runs (onboard/app.Main
// with its flag defaults, so the 40 MiB Go memory limit too), logs JSON to
// stderr, where the bench reads the "cabin server listening" line for the
// address and certificate fingerprint, and shuts down gracefully on SIGTERM
// or SIGINT.
const (
	// CabinChildEnv set to "1" makes the program run the cabin server
	// child instead of its usual work.
	CabinChildEnv = "AIRTAB_BENCH_CABIN_CHILD"
	// CabinChildArgsEnv holds the child's onboard flags separated by
	// argSep (the ASCII unit separator), for example "--data-dir",
	// "/tmp/x", "--listen", "127.0.0.1:0", "--aircraft", "D-ABNC", …
	CabinChildArgsEnv = "AIRTAB_BENCH_CABIN_ARGS"
	argSep            = "\x1f"
)

// RunCabinChild runs the cabin server with the flags in CabinChildArgsEnv
// until SIGTERM or SIGINT, and returns the process exit code: 0 after a
// clean shutdown, 1 on a failure, 2 on bad flags.
func RunCabinChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := oapp.NewMain()
	if err := m.ParseFlags(strings.Split(os.Getenv(CabinChildArgsEnv), argSep), os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "bench cabin child:", err)
		return 2
	}
	m.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: m.Config.LogLevel}))
	if err := m.Run(ctx); err != nil {
		m.Logger.Error("cabin server failed to start", "err", err)
		m.Close()
		return 1
	}
	<-ctx.Done()
	if err := m.Close(); err != nil {
		m.Logger.Error("shutdown", "err", err)
		return 1
	}
	return 0
}

// memoryMethod says in the output how the memory figure was made.
const memoryMethod = "the cabin server runs as a child process (this program re-executed, see bench.RunCabinChild: " +
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
	ch, err := startChild(exe, []string{"--data-dir", a.Dir, "--listen", "127.0.0.1:0", "--aircraft", string(a.ID),
		"--flight", string(f), "--issuer-key", w.g.IssuerPubFile(), "--nats-url", link.URL(), "--nats-nkey", a.NKeyFile(),
		"--sync-interval", "2s", "--log-format", "json"})
	if err != nil {
		return r, err
	}
	defer ch.stop()
	progress(o.Progress, "memory: cabin server child %d listening on %s", ch.cmd.Process.Pid, ch.addr)

	select {
	case <-ch.manifest:
	case <-ch.done:
		return r, fmt.Errorf("bench: memory: the cabin server child exited: %v\n%s", ch.err, ch.logs)
	case <-time.After(time.Minute):
		return r, fmt.Errorf("bench: memory: the cabin server child has no manifest after a minute\n%s", ch.logs)
	case <-ctx.Done():
		return r, ctx.Err()
	}
	purser := w.crew[flightMemory][0]
	h, err := client.New(client.Config{URL: "https://" + ch.addr, Fingerprint: ch.fp, Handheld: "hh-purser", MaxConns: 16})
	if err != nil {
		return r, err
	}
	defer h.Close()
	if _, err := h.SignIn(ctx, purser.id, purser.pin); err != nil {
		return r, fmt.Errorf("bench: memory: sign in: %w\n%s", err, ch.logs)
	}
	err = harness.Poll(ctx, time.Minute, "memory flight: sales open on the child", func() (bool, error) {
		st, err := h.Status(ctx)
		return err == nil && st.SalesOpen && st.Manifest != nil, err
	})
	if err != nil {
		return r, fmt.Errorf("%w\n%s", err, ch.logs)
	}
	link.SetState(linkemu.Down)
	if err := w.flyMemoryFlight(ctx, h, f); err != nil {
		return r, fmt.Errorf("%w\n%s", err, ch.logs)
	}
	st, err := h.Status(ctx)
	if err != nil {
		return r, err
	}
	if st.LastSeq != uint64(r.Sales) {
		return r, fmt.Errorf("bench: memory flight: the journal holds %d invoices, want %d", st.LastSeq, r.Sales)
	}
	hwm, err := procStatusKiB(ch.cmd.Process.Pid, "VmHWM")
	if err != nil {
		return r, err
	}
	rss, err := procStatusKiB(ch.cmd.Process.Pid, "VmRSS")
	if err != nil {
		return r, err
	}
	r.VmHWMMiB, r.VmRSSMiB = float64(hwm)/1024, float64(rss)/1024
	r.Seconds = time.Since(start).Seconds()
	progress(o.Progress, "memory: %d passengers, %d sales: peak resident %.1f MiB, resident now %.1f MiB",
		r.Passengers, r.Sales, r.VmHWMMiB, r.VmRSSMiB)
	return r, ch.stop()
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

// child is the cabin server child process.
type child struct {
	cmd  *exec.Cmd
	addr string
	fp   string
	done chan struct{} // closed when the process has exited
	err  error         // its exit, once done is closed
	// manifest receives the first logged manifest status: the child holds
	// a verified manifest and its crew can sign in.
	manifest chan struct{}
	logs     *tail
	once     sync.Once
}

// startChild starts exe as the cabin server child with args and waits until
// it listens.
func startChild(exe string, args []string) (*child, error) {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), CabinChildEnv+"=1", CabinChildArgsEnv+"="+strings.Join(args, argSep))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start the cabin server child %s: %w", exe, err)
	}
	ch := &child{cmd: cmd, done: make(chan struct{}), manifest: make(chan struct{}, 1), logs: &tail{}}
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			ch.logs.add(sc.Text())
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				continue
			}
			if rec["msg"] == "cabin server listening" {
				select {
				case ready <- rec:
				default:
				}
			}
			if _, ok := rec["credentials"]; ok { // onboard logs every manifest it starts using with its counts
				select {
				case ch.manifest <- struct{}{}:
				default:
				}
			}
		}
		ch.err = cmd.Wait()
		close(ch.done)
	}()
	select {
	case rec := <-ready:
		ch.addr, _ = rec["addr"].(string)
		ch.fp, _ = rec["fingerprint"].(string)
		return ch, nil
	case <-ch.done:
		return nil, fmt.Errorf("bench: the cabin server child exited before listening (%v); does %s call bench.RunCabinChild when %s=1?\n%s",
			ch.err, exe, CabinChildEnv, ch.logs)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-ch.done
		return nil, fmt.Errorf("bench: the cabin server child is not listening after 30 s\n%s", ch.logs)
	}
}

// stop ends the child with SIGTERM (SIGKILL after 15 s) and returns its
// exit error, once; later calls return nil.
func (ch *child) stop() error {
	var err error
	ch.once.Do(func() {
		ch.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-ch.done:
		case <-time.After(15 * time.Second):
			ch.cmd.Process.Kill()
			<-ch.done
		}
		if ch.err != nil {
			err = fmt.Errorf("bench: cabin server child: %w\n%s", ch.err, ch.logs)
		}
	})
	return err
}

// tail keeps the last lines the child logged, for error messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > 50 {
		t.lines = t.lines[1:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
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
