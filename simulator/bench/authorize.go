package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/client"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/harness"
)

// authorizeMethod says in the output how the authorize figure was made.
const authorizeMethod = "a real cabin server (onboard/app with its production defaults, SQLite journal with " +
	"synchronous=FULL, group commit) in a child process of its own (this program re-executed, see " +
	"harness.RunCabinChild) with its link down, each client a separate signed-in handheld (onboard/client, HTTPS " +
	"with a pinned certificate, its connection kept alive and reused) sending one sale at a time with a fresh " +
	"compact payment code and a basket of 1 to 4 items; per_second counts approvals answered, each committed with " +
	"fsync before its answer; latency is per request, client send to answer; the bound is crypto/ed25519.Verify " +
	"calls per second over a real payment-code signature on GOMAXPROCS goroutines (best of 5 × 200 ms, just before " +
	"the clients start) ÷ 1 verification per compact-code sale (the device signature; the credential was verified " +
	"at manifest load). Clients and server share the machine's cores. server_cpu_us_per_approval is the child's " +
	"user+system CPU (/proc/<pid>/stat utime+stime, in USER_HZ ticks of 10 ms) over the closed-loop run ÷ " +
	"approvals; verify_us is one crypto/ed25519.Verify's CPU on one OS thread (getrusage RUSAGE_THREAD, best of 5 " +
	"rounds of 1 000); cpu_ratio = verify_us × verifications_per_authorization ÷ server_cpu_us_per_approval. " +
	"invoice_sign_us is one protocol.SignTrusted of a real 2-line sale invoice carrying a real payment code (what " +
	"the writer does per approval) measured the same way, ed25519_sign_us the signature alone; " +
	"cpu_ratio_unsigned = verify_us ÷ (server_cpu_us_per_approval − invoice_sign_us)."

// authorize runs the authorize section: the closed-loop saturation run,
// then the open-loop run at a fixed offered load, on one cabin server child.
func (w *world) authorize(ctx context.Context) (AuthorizeResult, error) {
	o := w.opts
	f := w.flights[flightAuthorize].ID
	r := AuthorizeResult{Clients: o.Clients, VerificationsPerAuthorization: 1, Passengers: len(w.pax), Method: authorizeMethod}
	c, err := w.startAuthorizeCabin(ctx)
	if err != nil {
		return r, err
	}
	defer c.close()

	handhelds, err := w.signIn(ctx, c, o.Clients)
	if err != nil {
		return r, err
	}
	defer func() {
		for _, h := range handhelds {
			h.Close()
		}
	}()
	var codes []string
	if o.AuthorizeCount > 0 {
		start := time.Now()
		if codes, err = w.codes(ctx, f, o.AuthorizeCount); err != nil {
			return r, err
		}
		progress(o.Progress, "authorize: %d payment codes made by %d wallets in %.1f s (before the clock)",
			len(codes), len(w.pax), time.Since(start).Seconds())
	}
	baskets := make([][]onboard.Line, 64)
	for i := range baskets {
		baskets[i] = w.basket()
	}
	if err := w.bounds(ctx, &r); err != nil {
		return r, err
	}
	if err := w.closedLoop(ctx, c, handhelds, codes, baskets, &r); err != nil {
		return r, err
	}
	if o.OpenLoopRate > 0 {
		ol, err := w.openLoop(ctx, c, handhelds, baskets, f)
		if err != nil {
			return r, err
		}
		r.OpenLoop = &ol
	}
	return r, nil
}

// bounds measures, just before the clients start, what r's figures are
// compared with: Ed25519 verifications per second on every core, one
// verification's CPU on one thread, and what signing one invoice costs.
func (w *world) bounds(ctx context.Context, r *AuthorizeResult) error {
	f := w.flights[flightAuthorize].ID
	sample, err := w.pax[0].Wallet.PaymentCode(f, false)
	if err != nil {
		return err
	}
	cred, _ := w.pax[0].Wallet.Credential(f)
	sig, err := paymentCodeSignature(sample, cred)
	if err != nil {
		return err
	}
	if r.VerifyPerSecond, r.VerifyWorkers, err = verifyRate(ctx, sig); err != nil {
		return err
	}
	if r.VerifyUS, err = verifyCPU(sig); err != nil {
		return err
	}
	signLines := []protocol.OrderLine{{SKU: catalog[0].SKU, Quantity: 1, UnitPrice: catalog[0].Price},
		{SKU: catalog[1].SKU, Quantity: 1, UnitPrice: catalog[1].Price}}
	sc, err := invoiceSignCost(sample, cred, f, w.aircraft[flightAuthorize].ID, signLines)
	if err != nil {
		return err
	}
	r.InvoiceSignUS, r.Ed25519SignUS = sc.invoiceUS, sc.ed25519US
	r.BoundPerSecond = r.VerifyPerSecond / float64(r.VerificationsPerAuthorization)
	progress(w.opts.Progress, "authorize: bound %.0f verifications/s on %d goroutines, %.1f µs CPU each on one thread; %d clients start",
		r.VerifyPerSecond, r.VerifyWorkers, r.VerifyUS, w.opts.Clients)
	return nil
}

// closedLoop runs the clients flat out (drive) and fills in r's closed-loop
// figures: throughput, latency, group commit and the cabin server's CPU.
func (w *world) closedLoop(ctx context.Context, c *authorizeCabin, hs []*client.Client, codes []string,
	baskets [][]onboard.Line, r *AuthorizeResult) error {
	before, err := c.stats(ctx)
	if err != nil {
		return err
	}
	cpu0, err := procCPU(c.proc.Pid())
	if err != nil {
		return err
	}
	self0, selfOK := selfCPU()
	runs, elapsed, err := w.drive(ctx, hs, codes, baskets, w.flights[flightAuthorize].ID)
	if err != nil {
		return fmt.Errorf("%w\n%s", err, c.proc.Logs())
	}
	self1, _ := selfCPU()
	cpu1, err := procCPU(c.proc.Pid())
	if err != nil {
		return err
	}
	after, err := c.stats(ctx)
	if err != nil {
		return err
	}
	r.Seconds = elapsed.Seconds()
	summarize(r, runs)
	if approved := after.Approved - before.Approved; approved > 0 {
		r.CommitsPerApproval = float64(after.Commits-before.Commits) / float64(approved)
	}
	r.MaxBatch = after.MaxBatch
	if r.Approved == 0 {
		return fmt.Errorf("bench: authorize: no sale approved (declines: %v)", r.DeclineReasons)
	}
	r.ServerCPUSeconds = (cpu1 - cpu0).Seconds()
	r.ServerCPUUSPerApproval = us(cpu1-cpu0) / float64(r.Approved)
	if selfOK {
		r.HandheldCPUUSPerApproval = us(self1-self0) / float64(r.Approved)
	}
	r.CPURatio = ratio(r.VerifyUS*float64(r.VerificationsPerAuthorization), r.ServerCPUUSPerApproval)
	r.InvoiceSignShare = ratio(r.InvoiceSignUS, r.ServerCPUUSPerApproval)
	r.CPURatioUnsigned = ratio(r.VerifyUS*float64(r.VerificationsPerAuthorization), r.ServerCPUUSPerApproval-r.InvoiceSignUS)
	o := w.opts
	progress(o.Progress, "authorize: %d approved, %d declined in %.2f s: %.0f/s, p50 %.2f ms, p99 %.2f ms; bound %.0f/s, ratio %.2f",
		r.Approved, r.Declined, r.Seconds, r.PerSecond, r.P50MS, r.P99MS, r.BoundPerSecond, r.Ratio)
	progress(o.Progress, "authorize: cabin server CPU %.2f s, %.0f µs per approval; verify %.1f µs; cpu_ratio %.2f; handheld clients %.0f µs per approval",
		r.ServerCPUSeconds, r.ServerCPUUSPerApproval, r.VerifyUS, r.CPURatio, r.HandheldCPUUSPerApproval)
	progress(o.Progress, "authorize: signing an invoice %.1f µs (ed25519.Sign %.1f µs): %.0f%% of the server's CPU per sale; without it cpu_ratio %.2f",
		r.InvoiceSignUS, r.Ed25519SignUS, 100*r.InvoiceSignShare, r.CPURatioUnsigned)
	return nil
}

// summarize adds up what the clients saw into r: answers, declines by
// name, latency percentiles, approvals per second and the ratio.
func summarize(r *AuthorizeResult, runs []clientRun) {
	var lat []time.Duration
	for _, cr := range runs {
		r.Approved += cr.approved
		r.Declined += cr.declined
		for k, n := range cr.reasons {
			if r.DeclineReasons == nil {
				r.DeclineReasons = map[string]int{}
			}
			r.DeclineReasons[k] += n
		}
		lat = append(lat, cr.latency...)
	}
	slices.Sort(lat)
	r.P50MS, r.P99MS = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99))
	if len(lat) > 0 {
		r.MaxMS = ms(lat[len(lat)-1])
	}
	r.PerSecond = ratio(float64(r.Approved), r.Seconds)
	r.Ratio = ratio(r.PerSecond, r.BoundPerSecond)
}

// authorizeCabin is the authorize flight's cabin server child, its link
// and a handheld to read its status with.
type authorizeCabin struct {
	proc   *harness.CabinProcess
	link   *linkemu.Link
	status *client.Client
}

// startAuthorizeCabin starts the authorize flight's cabin server as a child
// process, waits until it sells, and takes its link down: in the air.
func (w *world) startAuthorizeCabin(ctx context.Context) (*authorizeCabin, error) {
	o := w.opts
	exe, err := w.executable()
	if err != nil {
		return nil, err
	}
	a, f := w.aircraft[flightAuthorize], w.flights[flightAuthorize].ID
	link, err := linkemu.Listen("127.0.0.1:0", w.g.NATSAddr(), linkemu.Config{}, o.Logger)
	if err != nil {
		return nil, err
	}
	args := []string{"--data-dir", a.Dir, "--listen", "127.0.0.1:0", "--aircraft", string(a.ID),
		"--flight", string(f), "--issuer-key", w.g.IssuerPubFile(), "--nats-url", link.URL(), "--nats-nkey", a.NKeyFile(),
		"--sync-interval", "2s", "--log-format", "json", "--log-level", "info"}
	if o.CabinCPUProfile != "" {
		args = append(args, "--cpuprofile", o.CabinCPUProfile)
	}
	ch, err := harness.StartCabinProcess(ctx, exe, args, nil)
	if err != nil {
		link.Close()
		return nil, fmt.Errorf("bench: authorize: %w", err)
	}
	c := &authorizeCabin{proc: ch, link: link}
	if err := c.waitSelling(ctx, w.crew[flightAuthorize][0]); err != nil {
		c.close()
		return nil, err
	}
	link.SetState(linkemu.Down)
	progress(o.Progress, "authorize: cabin server child %d listening on %s, link down", ch.Pid(), ch.Addr())
	return c, nil
}

// waitSelling waits for the child's manifest, signs a status handheld in
// as m and waits until sales are open.
func (c *authorizeCabin) waitSelling(ctx context.Context, m crewMember) error {
	select {
	case <-c.proc.Manifest():
	case <-c.proc.Done():
		return fmt.Errorf("bench: authorize: the cabin server child exited: %v\n%s", c.proc.Err(), c.proc.Logs())
	case <-time.After(time.Minute):
		return fmt.Errorf("bench: authorize: the cabin server child has no manifest after a minute\n%s", c.proc.Logs())
	case <-ctx.Done():
		return ctx.Err()
	}
	var err error
	if c.status, err = c.handheld(ctx, "hh-status", m); err != nil {
		return err
	}
	err = harness.Poll(ctx, time.Minute, "authorize flight: sales open on the child", func() (bool, error) {
		st, err := c.status.Status(ctx)
		return err == nil && st.SalesOpen, err
	})
	if err != nil {
		return fmt.Errorf("%w\n%s", err, c.proc.Logs())
	}
	return nil
}

// handheld signs crew member m in on a new handheld id.
func (c *authorizeCabin) handheld(ctx context.Context, id string, m crewMember) (*client.Client, error) {
	h, err := client.New(client.Config{URL: "https://" + c.proc.Addr(), Fingerprint: c.proc.Fingerprint(), Handheld: id, MaxConns: 8})
	if err != nil {
		return nil, err
	}
	if _, err := h.SignIn(ctx, m.id, m.pin); err != nil {
		h.Close()
		return nil, fmt.Errorf("bench: handheld %s sign-in: %w\n%s", id, err, c.proc.Logs())
	}
	return h, nil
}

// stats reads the writer's counters from the child's status.
func (c *authorizeCabin) stats(ctx context.Context) (onboard.Stats, error) {
	st, err := c.status.Status(ctx)
	if err != nil {
		return onboard.Stats{}, fmt.Errorf("bench: authorize: status: %w", err)
	}
	return st.Stats, nil
}

// close stops the child gracefully, which also ends its CPU profile.
func (c *authorizeCabin) close() {
	if c.status != nil {
		c.status.Close()
	}
	c.proc.Stop()
	c.link.Close()
}

// executable is the program re-executed as a cabin server child.
func (w *world) executable() (string, error) {
	if w.opts.Executable != "" {
		return w.opts.Executable, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("bench: find this program to re-execute as the cabin server: %w", err)
	}
	return exe, nil
}

// signIn signs in n handhelds, a crew member on each four.
func (w *world) signIn(ctx context.Context, c *authorizeCabin, n int) ([]*client.Client, error) {
	crew := w.crew[flightAuthorize]
	var hs []*client.Client
	for i := range n {
		h, err := c.handheld(ctx, fmt.Sprintf("hh-%03d", i+1), crew[i/4])
		if err != nil {
			for _, h := range hs {
				h.Close()
			}
			return nil, err
		}
		hs = append(hs, h)
	}
	return hs, nil
}

// clientRun is what one client saw.
type clientRun struct {
	approved, declined int
	reasons            map[string]int
	latency            []time.Duration
}

// drive runs one goroutine per handheld until the codes run out (count
// mode: client i sends codes i, i+clients, …) or AuthorizeSeconds pass (the
// client makes each code just before it sends it, passenger by passenger).
// It returns what each client saw and the time from the start to the last
// answer. Any error other than a decline stops the run: a transport or
// server failure is a bug to report, not a figure.
func (w *world) drive(ctx context.Context, hs []*client.Client, codes []string, baskets [][]onboard.Line,
	f protocol.FlightID) ([]clientRun, time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	runs := make([]clientRun, len(hs))
	deadline := time.Now().Add(time.Duration(w.opts.AuthorizeSeconds * float64(time.Second)))
	var wg sync.WaitGroup
	start := time.Now()
	for i, h := range hs {
		wg.Go(func() {
			cr := &runs[i]
			cr.latency = make([]time.Duration, 0, len(codes)/len(hs)+1)
			for k := i; ; k += len(hs) {
				if ctx.Err() != nil {
					return
				}
				var code string
				if codes != nil {
					if k >= len(codes) {
						return
					}
					code = codes[k]
				} else {
					if !time.Now().Before(deadline) {
						return
					}
					var err error
					if code, err = w.pax[k%len(w.pax)].Wallet.PaymentCode(f, false); err != nil {
						cancel(err)
						return
					}
				}
				req := onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: baskets[k%len(baskets)]}
				t0 := time.Now()
				d, err := h.Authorize(ctx, req)
				cr.latency = append(cr.latency, time.Since(t0))
				if err != nil {
					cancel(fmt.Errorf("bench: authorize on handheld %d: %w", i+1, err))
					return
				}
				if d.Approved {
					cr.approved++
					continue
				}
				cr.declined++
				if cr.reasons == nil {
					cr.reasons = map[string]int{}
				}
				if d.Decline != nil {
					cr.reasons[d.Decline.Name]++
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return nil, 0, err
	}
	return runs, elapsed, nil
}

// percentile returns the p-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
