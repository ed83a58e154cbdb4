package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/simulator/harness"
)

// TestMain lets the test binary be the cabin server child, as the
// simulator's main is when the bench runs for real.
func TestMain(m *testing.M) {
	if os.Getenv(harness.CabinChildEnv) == "1" {
		os.Exit(harness.RunCabinChild())
	}
	os.Exit(m.Run())
}

// TestRun runs the bench with tiny sizes and checks every figure is there
// and consistent with its bound. It asserts no target: timings belong in
// the bench's output, not in pass/fail tests.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	opts := Options{Clients: 4, AuthorizeCount: 120, Passengers: 12, ClearingInvoices: 50, ReplayInvoices: 50,
		LinkKbit: 100_000, RTT: 2 * time.Millisecond, SalesPerPassenger: 2, SkipRSS: testing.Short(),
		OpenLoopRate: 200, OpenLoopSeconds: 0.3, Seed: 7, Dir: t.TempDir(), Progress: &progress}
	r, err := Run(ctx, opts)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("progress:\n%s", progress.String())

	a := r.Authorize
	if got, want := a.Approved, 120; got != want {
		t.Errorf("authorize approved = %d, want %d (declines %v)", got, want, a.DeclineReasons)
	}
	positive(t, "authorize per_second", a.PerSecond)
	positive(t, "authorize bound_per_second", a.BoundPerSecond)
	positive(t, "authorize p50_ms", a.P50MS)
	if a.P99MS < a.P50MS || a.MaxMS < a.P99MS {
		t.Errorf("authorize latencies p50 %g, p99 %g, max %g: not ordered", a.P50MS, a.P99MS, a.MaxMS)
	}
	if a.Clients != 4 || a.VerificationsPerAuthorization != 1 {
		t.Errorf("authorize clients %d, verifications %d; want 4, 1", a.Clients, a.VerificationsPerAuthorization)
	}
	near(t, "authorize bound", a.BoundPerSecond, a.VerifyPerSecond/float64(a.VerificationsPerAuthorization))
	near(t, "authorize ratio", a.Ratio, a.PerSecond/a.BoundPerSecond)
	t.Run("ServerCPU", func(t *testing.T) {
		positive(t, "authorize server_cpu_us_per_approval", a.ServerCPUUSPerApproval)
		positive(t, "authorize verify_us", a.VerifyUS)
		near(t, "authorize cpu_ratio", a.CPURatio, a.VerifyUS*float64(a.VerificationsPerAuthorization)/a.ServerCPUUSPerApproval)
		// One verification per sale is the least the server does: the
		// server's CPU per sale can be no less than that.
		if a.CPURatio > 1 {
			t.Errorf("cpu_ratio %g over 1: the server cannot spend less than one verification per sale", a.CPURatio)
		}
		near(t, "authorize server CPU total", a.ServerCPUSeconds, a.ServerCPUUSPerApproval*float64(a.Approved)/1e6)
		positive(t, "authorize invoice_sign_us", a.InvoiceSignUS)
		// Not compared with invoice_sign_us: the two are timed apart, and
		// on a busy machine the part can time slower than the whole.
		positive(t, "authorize ed25519_sign_us", a.Ed25519SignUS)
		near(t, "authorize invoice_sign_share", a.InvoiceSignShare, a.InvoiceSignUS/a.ServerCPUUSPerApproval)
		near(t, "authorize cpu_ratio_unsigned", a.CPURatioUnsigned, a.VerifyUS/(a.ServerCPUUSPerApproval-a.InvoiceSignUS))
	})
	t.Run("OpenLoop", func(t *testing.T) {
		ol := a.OpenLoop
		if ol == nil {
			t.Fatal("no open-loop result")
		}
		if ol.OfferedPerSecond != 200 || ol.Handhelds != 4 || ol.Scheduled < 1 {
			t.Errorf("open loop offered %g/s on %d handhelds, %d scheduled; want 200/s on 4, some scheduled",
				ol.OfferedPerSecond, ol.Handhelds, ol.Scheduled)
		}
		if got, want := ol.Approved, ol.Scheduled; got != want || ol.Declined != 0 {
			t.Errorf("open loop approved %d, declined %d; want %d approved", got, ol.Declined, want)
		}
		positive(t, "open loop achieved_per_s", ol.AchievedPerSecond)
		positive(t, "open loop p50_ms", ol.P50MS)
		if ol.P99MS < ol.P50MS || ol.MaxMS < ol.P99MS {
			t.Errorf("open loop latencies p50 %g, p99 %g, max %g: not ordered", ol.P50MS, ol.P99MS, ol.MaxMS)
		}
		near(t, "open loop achieved", ol.AchievedPerSecond, float64(ol.Approved)/ol.Seconds)
		positive(t, "open loop service_p50_ms", ol.ServiceP50MS)
		if ol.ServiceP99MS > ol.MaxMS || ol.SendLagP99MS < 0 || ol.SendLagP99MS > ol.MaxMS {
			t.Errorf("open loop service p99 %g ms, send lag p99 %g ms: want both within the max latency %g ms",
				ol.ServiceP99MS, ol.SendLagP99MS, ol.MaxMS)
		}
	})

	c := r.Clearing
	if c.Invoices != 50 || c.Settled != 50 || c.Quarantined != 0 {
		t.Errorf("clearing invoices %d, settled %d, quarantined %d; want 50, 50, 0", c.Invoices, c.Settled, c.Quarantined)
	}
	positive(t, "clearing per_second", c.PerSecond)
	near(t, "clearing verifications per invoice", c.VerificationsPerInvoice, 2+12.0/50)
	near(t, "clearing bound", c.BoundPerSecond, c.VerifyPerSecond/c.VerificationsPerInvoice)
	near(t, "clearing ratio", c.Ratio, c.PerSecond/c.BoundPerSecond)
	// What it measures is the machine's; what it is made of is checked.
	if c.CPU == nil || c.CPU.IdleSeconds < 0 || !(c.CPU.ProcessSeconds > 0) || !(c.CPU.WindowSeconds > 0) {
		t.Errorf("clearing cpu = %+v: want the process's CPU over a window and the idle part taken off", c.CPU)
	} else {
		near(t, "clearing cpu_us_per_invoice", c.CPUMicrosPerInvoice, 1e6*max(c.CPU.ProcessSeconds-c.CPU.IdleSeconds, 0)/50)
	}

	if r.QR.Version < 1 || r.QR.Version > 40 || r.QR.ECC != "M" || r.QR.FullVersion <= r.QR.Version {
		t.Errorf("qr = %+v", r.QR)
	}
	if r.Replay.Measured || r.Replay.Note == "" || r.Replay.Invoices != 50 {
		t.Errorf("replay without ReplayFunc = %+v, want not measured, with a note", r.Replay)
	}
	if !testing.Short() {
		if r.OnboardRSS == nil || r.OnboardRSS.Sales != 24 {
			t.Fatalf("onboard rss = %+v, want 24 sales", r.OnboardRSS)
		}
		positive(t, "onboard_rss_mib", r.OnboardRSSMiB)
		if r.OnboardRSS.VmHWMMiB < r.OnboardRSS.VmRSSMiB {
			t.Errorf("peak resident %g MiB below resident %g MiB", r.OnboardRSS.VmHWMMiB, r.OnboardRSS.VmRSSMiB)
		}
	}

	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var loose map[string]any
	if err := json.Unmarshal(js.Bytes(), &loose); err != nil {
		t.Fatalf("JSON output does not parse: %v", err)
	}
	for section, keys := range map[string][]string{
		"authorize": {"clients", "per_second", "bound_per_second", "ratio", "p50_ms", "p99_ms",
			"server_cpu_us_per_approval", "verify_us", "cpu_ratio", "open_loop", "invoice_sign_us", "cpu_ratio_unsigned"},
		"replay":   {"invoices", "link_kbit_per_s", "rtt_ms", "seconds", "bound_seconds", "ratio", "bytes_per_invoice"},
		"clearing": {"invoices", "per_second", "bound_per_second", "ratio", "cpu_us_per_invoice"},
		"qr":       {"version", "ecc"},
	} {
		obj, _ := loose[section].(map[string]any)
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				t.Errorf("JSON %s has no %q", section, k)
			}
		}
	}
	ol, _ := loose["authorize"].(map[string]any)["open_loop"].(map[string]any)
	for _, k := range []string{"offered_per_s", "p50_ms", "p99_ms", "achieved_per_s"} {
		if _, ok := ol[k]; !ok {
			t.Errorf("JSON authorize.open_loop has no %q", k)
		}
	}
	if _, ok := loose["onboard_rss_mib"]; !ok {
		t.Error(`JSON has no "onboard_rss_mib"`)
	}
	var table bytes.Buffer
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"authorize", "authorize CPU", "authorize open loop", "replay", "clearing", "qr", "onboard memory"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table has no %q row:\n%s", s, table.String())
		}
	}
	t.Logf("\n%s", table.String())
}

// TestRunSeconds runs the authorize section for a fixed time instead of a
// fixed count: the clients make each code in their loop.
func TestRunSeconds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ground and two cabin servers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := Run(ctx, Options{Clients: 3, AuthorizeSeconds: 0.3, Passengers: 6, ClearingInvoices: 10, ReplayInvoices: 10,
		OpenLoopRate: -1, SkipRSS: true, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	a := r.Authorize
	if a.Approved == 0 || a.Declined != 0 || a.Seconds < 0.3 {
		t.Errorf("authorize = %d approved, %d declined in %g s; want approvals only, over at least 0.3 s", a.Approved, a.Declined, a.Seconds)
	}
	near(t, "authorize per_second", a.PerSecond, float64(a.Approved)/a.Seconds)
}

// TestPoissonSchedules checks the open loop's arrival schedules: the same
// seed gives the same schedule, offsets grow within the run, and the count
// is near rate × seconds.
func TestPoissonSchedules(t *testing.T) {
	a := poissonSchedules(42, 64, 1000, 5*time.Second)
	b := poissonSchedules(42, 64, 1000, 5*time.Second)
	n := 0
	for i := range a {
		if !slices.Equal(a[i], b[i]) {
			t.Fatalf("handheld %d: two schedules from seed 42 differ", i)
		}
		for k, at := range a[i] {
			if at <= 0 || at >= 5*time.Second || (k > 0 && at < a[i][k-1]) {
				t.Fatalf("handheld %d arrival %d at %v: want growing offsets within 5 s", i, k, at)
			}
		}
		n += len(a[i])
	}
	// 5 000 expected; a Poisson count's standard deviation is about 71.
	if n < 4500 || n > 5500 {
		t.Errorf("%d arrivals at 1 000/s over 5 s, want about 5 000", n)
	}
	if c := poissonSchedules(43, 64, 1000, 5*time.Second); slices.Equal(c[0], a[0]) {
		t.Error("seeds 42 and 43 gave handheld 1 the same schedule")
	}
}

func TestPercentile(t *testing.T) {
	d := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0.5, 5}, {0.99, 10}, {0.1, 1}, {1, 10}} {
		if got := percentile(d, c.p); got != c.want {
			t.Errorf("percentile(1..10, %g) = %d, want %d", c.p, got, c.want)
		}
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("percentile(nil) = %d, want 0", got)
	}
}

// TestReplaySection checks the replay section's arithmetic with a stand-in
// for the harness's measurement, which this package does not own.
func TestReplaySection(t *testing.T) {
	defer func(f func(context.Context, ReplayOptions) (ReplayMeasurement, error)) { ReplayFunc = f }(ReplayFunc)
	var asked ReplayOptions
	ReplayFunc = func(_ context.Context, o ReplayOptions) (ReplayMeasurement, error) {
		asked = o
		return ReplayMeasurement{Seconds: 12, BoundSeconds: 10, BytesPerInvoice: 700, Method: "stand-in"}, nil
	}
	opts := Options{}
	if err := opts.setDefaults(); err != nil {
		t.Fatal(err)
	}
	r, err := replay(context.Background(), &opts)
	if err != nil {
		t.Fatal(err)
	}
	if asked.Invoices != 5000 || asked.LinkKbit != 1000 || asked.RTT != 600*time.Millisecond {
		t.Errorf("asked %+v, want the documented defaults", asked)
	}
	if !r.Measured || r.RTTMS != 600 || r.LinkKbitPerS != 1000 {
		t.Errorf("replay = %+v", r)
	}
	near(t, "replay ratio", r.Ratio, 1.2)
}

func TestOptionsLimits(t *testing.T) {
	for name, o := range map[string]Options{
		"ErrClients":         {Clients: MaxClients + 1},
		"ErrPassengers":      {Passengers: MaxPassengers + 1},
		"ErrBothModes":       {AuthorizeCount: 10, AuthorizeSeconds: 1},
		"ErrInvoices":        {ClearingInvoices: MaxInvoices + 1},
		"ErrVelocityCap":     {SalesPerPassenger: 7},
		"ErrOpenLoopRate":    {OpenLoopRate: MaxOpenLoopRate + 1},
		"ErrOpenLoopSeconds": {OpenLoopSeconds: MaxOpenLoopSeconds + 1},
	} {
		t.Run(name, func(t *testing.T) {
			if err := o.setDefaults(); err == nil {
				t.Errorf("setDefaults(%+v) = nil, want an error naming the limit", o)
			}
		})
	}
}

// TestFullBench runs the documented bench when AIRTAB_BENCH_FULL=1 and
// prints its table and JSON:
//
//	AIRTAB_BENCH_FULL=1 go test -run TestFullBench -v -timeout 20m ./simulator/bench/
func TestFullBench(t *testing.T) {
	if os.Getenv("AIRTAB_BENCH_FULL") != "1" {
		t.Skip("set AIRTAB_BENCH_FULL=1 to run the full bench")
	}
	opts := Options{Progress: os.Stderr}
	if s := os.Getenv("AIRTAB_BENCH_SEED"); s != "" {
		seed, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		opts.Seed = seed
	}
	r, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	r.WriteTable(os.Stdout)
	r.WriteJSON(os.Stdout)
}

func positive(t *testing.T, what string, v float64) {
	t.Helper()
	if !(v > 0) || math.IsInf(v, 0) {
		t.Errorf("%s = %g, want a positive figure", what, v)
	}
}

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %g, want %g", what, got, want)
	}
}
