package harness

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/airtab/airtab/onboard"
	oapp "github.com/airtab/airtab/onboard/app"
	"github.com/airtab/airtab/onboard/client"
)

// The cabin server child: a cabin server in a process of its own, so that
// it can be killed with SIGKILL like a real one losing power (the
// simulator's --crash), or measured on its own (the bench's memory
// section). The parent re-executes its own program (or another one) with
// CabinChildEnv=1 and the cabin server's flags in CabinChildArgsEnv; the
// program's main must then call RunCabinChild before anything else and exit
// with its code:
//
//	if os.Getenv(harness.CabinChildEnv) == "1" {
//		os.Exit(harness.RunCabinChild())
//	}
//
// A test binary does the same in its TestMain. The child runs exactly what
// onboard/cmd/onboard runs (onboard/app.Main with its flag defaults, so the
// 40 MiB Go memory limit too), logs JSON to stderr, where the parent reads
// the "cabin server listening" line for the address and certificate
// fingerprint, and shuts down gracefully on SIGTERM or SIGINT.
const (
	// CabinChildEnv set to "1" makes the program run the cabin server
	// child instead of its usual work.
	CabinChildEnv = "AIRTAB_CABIN_CHILD"
	// CabinChildArgsEnv holds the child's onboard flags separated by
	// childArgSep (the ASCII unit separator), for example "--data-dir",
	// "/tmp/x", "--listen", "127.0.0.1:0", "--aircraft", "D-ABNC", …
	CabinChildArgsEnv = "AIRTAB_CABIN_ARGS"
	childArgSep       = "\x1f"
)

// Bounds on a cabin server child's life.
const (
	// childListenWait bounds the wait for a child to listen: opening the
	// journal and the TLS certificate takes well under a second.
	childListenWait = 30 * time.Second
	// childStopWait bounds a graceful stop before the child is killed; it
	// covers the server's own drain (15 s by default).
	childStopWait = 20 * time.Second
)

// RunCabinChild runs the cabin server with the flags in CabinChildArgsEnv
// until SIGTERM or SIGINT, and returns the process exit code: 0 after a
// clean shutdown, 1 on a failure, 2 on bad flags.
func RunCabinChild() int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := oapp.NewMain()
	if err := m.ParseFlags(strings.Split(os.Getenv(CabinChildArgsEnv), childArgSep), os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "cabin server child:", err)
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

// CabinProcess is a cabin server running as a child process.
type CabinProcess struct {
	cmd      *exec.Cmd
	addr, fp string
	done     chan struct{} // closed when the process has exited
	err      error         // its exit, once done is closed
	manifest chan struct{} // closed once the child logged a manifest
	seen     sync.Once     // closes manifest
	logs     *logTail
	once     sync.Once // ends the child
}

// StartCabinProcess starts exe as a cabin server child with the onboard
// flags args (which must include --log-format json and a log level of info
// or below: the parent reads the child's log) and waits until it listens.
// The child's log records also go to logger, when it is not nil, at their
// own level.
func StartCabinProcess(ctx context.Context, exe string, args []string, logger *slog.Logger) (*CabinProcess, error) {
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), CabinChildEnv+"=1", CabinChildArgsEnv+"="+strings.Join(args, childArgSep))
	setChildAttrs(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the cabin server child %s: %w", exe, err)
	}
	p := &CabinProcess{cmd: cmd, done: make(chan struct{}), manifest: make(chan struct{}), logs: &logTail{}}
	ready := make(chan map[string]any, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.logs.add(sc.Text())
			var rec map[string]any
			if json.Unmarshal(sc.Bytes(), &rec) != nil {
				if logger != nil {
					logger.Warn("cabin server child output", "pid", cmd.Process.Pid, "line", sc.Text())
				}
				continue
			}
			if logger != nil {
				forwardRecord(logger, cmd.Process.Pid, rec)
			}
			if rec["msg"] == "cabin server listening" {
				select {
				case ready <- rec:
				default:
				}
			}
			if _, ok := rec["credentials"]; ok { // onboard logs every manifest it starts using with its counts
				p.seen.Do(func() { close(p.manifest) })
			}
		}
		// A scan error (a line over the buffer) ends the loop early: read
		// the rest, or the child blocks on its next log write.
		io.Copy(io.Discard, stderr)
		p.err = cmd.Wait()
		close(p.done)
	}()
	select {
	case rec := <-ready:
		p.addr, _ = rec["addr"].(string)
		p.fp, _ = rec["fingerprint"].(string)
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("the cabin server child exited before listening (%v); does %s call harness.RunCabinChild when %s=1?\n%s",
			p.err, exe, CabinChildEnv, p.logs)
	case <-time.After(childListenWait):
		p.Kill()
		return nil, fmt.Errorf("the cabin server child is not listening after %v\n%s", childListenWait, p.logs)
	case <-ctx.Done():
		p.Kill()
		return nil, ctx.Err()
	}
}

// forwardRecord logs a child's JSON log record to logger at the record's
// level, with its attributes in name order and the child's pid.
func forwardRecord(logger *slog.Logger, pid int, rec map[string]any) {
	var level slog.Level
	if s, ok := rec["level"].(string); !ok || level.UnmarshalText([]byte(s)) != nil {
		level = slog.LevelInfo
	}
	ctx := context.Background()
	if !logger.Enabled(ctx, level) {
		return
	}
	msg, _ := rec["msg"].(string)
	attrs := []slog.Attr{slog.Int("pid", pid)}
	for _, k := range slices.Sorted(maps.Keys(rec)) {
		if k != "time" && k != "level" && k != "msg" {
			attrs = append(attrs, slog.Any(k, rec[k]))
		}
	}
	logger.LogAttrs(ctx, level, msg, attrs...)
}

// Pid is the child's process id.
func (p *CabinProcess) Pid() int { return p.cmd.Process.Pid }

// Addr is the handheld API's address, as the child logged it.
func (p *CabinProcess) Addr() string { return p.addr }

// Fingerprint is the SHA-256 fingerprint of the API's certificate, as the
// child logged it.
func (p *CabinProcess) Fingerprint() string { return p.fp }

// Manifest is closed once the child logged the first manifest it uses, a
// stored one after a restart or one fetched over NATS: crew can sign in.
func (p *CabinProcess) Manifest() <-chan struct{} { return p.manifest }

// Done is closed when the child has exited.
func (p *CabinProcess) Done() <-chan struct{} { return p.done }

// Err is the child's exit error, once Done is closed.
func (p *CabinProcess) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Logs returns the last lines the child logged, for error messages.
func (p *CabinProcess) Logs() string { return p.logs.String() }

// Stop ends the child with SIGTERM, a graceful shutdown (SIGKILL if it has
// not exited after childStopWait), and returns its exit error. Only the
// first call to Stop or Kill ends the child; later calls return nil.
func (p *CabinProcess) Stop() error {
	var err error
	p.once.Do(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(childStopWait):
			p.cmd.Process.Kill()
			<-p.done
		}
		if p.err != nil {
			err = fmt.Errorf("cabin server child %d: %w\n%s", p.Pid(), p.err, p.logs)
		}
	})
	return err
}

// Kill ends the child with SIGKILL, as a power cut would: no drain, no
// journal close, no goodbye to NATS. It returns once the process has
// exited, so its listener, journal locks and connections are gone; an
// error says the child had already exited by itself. Only the first call
// to Stop or Kill ends the child; later calls return nil.
func (p *CabinProcess) Kill() error {
	var err error
	p.once.Do(func() {
		select {
		case <-p.done:
			err = fmt.Errorf("cabin server child %d exited before it was killed: %v\n%s", p.Pid(), p.err, p.logs)
			return
		default:
		}
		if kerr := p.cmd.Process.Kill(); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
			err = kerr
		}
		<-p.done
	})
	return err
}

// logTail keeps the last lines a child logged (50 unless max is set), for
// error messages.
type logTail struct {
	mu    sync.Mutex
	max   int
	lines []string
}

func (t *logTail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, s)
	if len(t.lines) > cmp.Or(t.max, 50) {
		t.lines = t.lines[1:]
	}
}

func (t *logTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// statusHandheld is the handheld id the harness signs in with to read a
// cabin server child's status.
const statusHandheld = "harness-status"

// cabinChild is the state of a Cabin whose server runs as a child process.
// The address and certificate survive restarts, as a real cabin server's
// do: signed-in handhelds reconnect to them.
type cabinChild struct {
	exe  string
	proc *CabinProcess
	addr string
	fp   string

	mu       sync.Mutex // one sign-in at a time for the status handheld
	status   *client.Client
	signedIn bool
}

// childArgs are the onboard flags that make the child run what start runs
// in process, as far as flags reach: the clock and the random source stay
// the child's own, and so does its Go memory limit (the production 40 MiB).
func (c *Cabin) childArgs(listen string) []string {
	args := []string{"--data-dir", c.Aircraft.Dir, "--listen", listen, "--aircraft", string(c.Aircraft.ID),
		"--flight", string(c.Flight), "--issuer-key", c.ground.IssuerPubFile(), "--nats-url", c.NATSURL(),
		"--nats-nkey", c.Aircraft.NKeyFile(), "--sync-interval", syncInterval(c.opts).String(), "--log-format", "json", "--log-level", "info"}
	if c.opts.ReplayWindow > 0 {
		args = append(args, "--replay-window", fmt.Sprint(c.opts.ReplayWindow))
	}
	if c.opts.ResendAfter > 0 {
		args = append(args, "--resend-after", c.opts.ResendAfter.String())
	}
	if c.opts.ReconnectWait > 0 {
		args = append(args, "--reconnect-wait", c.opts.ReconnectWait.String())
	}
	if c.opts.ReceiptAckWait > 0 {
		args = append(args, "--receipt-ack-wait", c.opts.ReceiptAckWait.String())
	}
	return args
}

// startProcess starts the cabin server child, on the address and with the
// certificate of the one before it, if any.
func (c *Cabin) startProcess(ctx context.Context) error {
	ch := c.child
	if ch == nil {
		if c.opts.Clock != nil {
			return errors.New("harness: a cabin server child keeps the system clock: CabinOptions.Clock cannot reach it")
		}
		if c.opts.StatusCrew == "" {
			return errors.New("harness: a cabin server child serves its status to signed-in crew only: set CabinOptions.StatusCrew")
		}
		ch = &cabinChild{exe: c.opts.Executable, addr: "127.0.0.1:0"}
		if ch.exe == "" {
			exe, err := os.Executable()
			if err != nil {
				return fmt.Errorf("harness: find this program to run the cabin server child: %w", err)
			}
			ch.exe = exe
		}
	}
	p, err := StartCabinProcess(ctx, ch.exe, c.childArgs(ch.addr), c.opts.Logger)
	if err != nil {
		return fmt.Errorf("start cabin server %s: %w", c.Aircraft.ID, err)
	}
	if ch.fp != "" && p.Fingerprint() != ch.fp {
		p.Kill()
		return fmt.Errorf("cabin server %s came back with certificate %s, not %s", c.Aircraft.ID, p.Fingerprint(), ch.fp)
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.status == nil {
		ch.status, err = client.New(client.Config{URL: "https://" + p.Addr(), Fingerprint: p.Fingerprint(), Handheld: statusHandheld})
		if err != nil {
			p.Kill()
			return err
		}
	}
	ch.status.Close() // connections to the child before are dead
	ch.proc, ch.addr, ch.fp, ch.signedIn = p, p.Addr(), p.Fingerprint(), false
	c.child = ch
	return nil
}

// waitManifest waits until the child logged the manifest it uses: before,
// crew cannot sign in, and every refused sign-in counts against the API's
// sign-in rate limit.
func (ch *cabinChild) waitManifest(ctx context.Context) error {
	select {
	case <-ch.proc.Manifest():
		return nil
	case <-ch.proc.Done():
		return fmt.Errorf("the cabin server child exited: %v\n%s", ch.proc.err, ch.proc.Logs())
	case <-time.After(time.Minute):
		return fmt.Errorf("the cabin server child has no manifest after a minute\n%s", ch.proc.Logs())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// statusOf reads the child's status over the handheld API, signing the
// status handheld in when it has no session (a new child forgot them all).
func (c *Cabin) statusOf(ctx context.Context, ch *cabinChild) (onboard.Status, error) {
	signIn := func(force bool) error {
		ch.mu.Lock()
		defer ch.mu.Unlock()
		if ch.signedIn && !force {
			return nil
		}
		if _, err := ch.status.SignIn(ctx, c.opts.StatusCrew, c.opts.StatusPIN); err != nil {
			return fmt.Errorf("cabin server %s: status handheld sign-in: %w", c.Aircraft.ID, err)
		}
		ch.signedIn = true
		return nil
	}
	if err := signIn(false); err != nil {
		return onboard.Status{}, err
	}
	st, err := ch.status.Status(ctx)
	if oe, ok := errors.AsType[*onboard.Error](err); ok && oe.Code == onboard.CodeUnauthorized {
		if err := signIn(true); err != nil {
			return onboard.Status{}, err
		}
		st, err = ch.status.Status(ctx)
	}
	return st, err
}

// Kill ends a cabin server child with SIGKILL, as a power cut or a crash
// would (no drain, no journal close, nothing said to NATS), and starts it
// again on the same data directory and address. It returns once the new
// child listens; WaitSalesOpen waits until it sells. Only a cabin server
// started with CabinOptions.Process can be killed.
func (c *Cabin) Kill(ctx context.Context) error {
	if c.child == nil {
		return errors.New("harness: only a cabin server in a child process (CabinOptions.Process) can be killed")
	}
	if err := c.child.proc.Kill(); err != nil {
		return err
	}
	return c.start(ctx)
}

// Process returns the cabin server child, or nil when the cabin server
// runs in this process.
func (c *Cabin) Process() *CabinProcess {
	if c.child == nil {
		return nil
	}
	return c.child.proc
}

// close stops the child gracefully (killing it if it will not stop) and
// drops the status handheld's connections.
func (ch *cabinChild) close() error {
	ch.status.Close()
	return ch.proc.Stop()
}

// Addr is the handheld API's address.
func (c *Cabin) Addr() string {
	if c.child != nil {
		return c.child.addr
	}
	return c.Main.Addr()
}

// Fingerprint is the SHA-256 fingerprint of the handheld API's
// certificate.
func (c *Cabin) Fingerprint() string {
	if c.child != nil {
		return c.child.fp
	}
	return c.Main.Fingerprint()
}

// Status reads the cabin server's status: from the cabin in process, or
// over the handheld API from a child.
func (c *Cabin) Status(ctx context.Context) (onboard.Status, error) {
	if c.child != nil {
		return c.statusOf(ctx, c.child)
	}
	return c.Main.Cabin().Status(ctx)
}
