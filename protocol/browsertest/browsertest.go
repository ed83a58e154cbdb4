// Package browsertest runs Airtab's web pages in a real headless Chromium
// for tests: the crew handheld app, the passenger wallet and the back office
// all use it, so a page is tested the way a person sees it.
//
// New starts a fresh Chromium (Debian package chromium at /usr/bin/chromium,
// or $AIRTAB_CHROMIUM) through chromedp with its own temporary profile, and
// skips the test with a message naming what is skipped when no Chromium is
// installed; it never passes silently. The Browser's methods fail the test
// on error, so a test reads as the steps a person takes:
//
//	b := browsertest.New(t, browsertest.Options{})
//	b.Navigate(url)
//	b.WaitText("Sign in")
//	b.Click("#signin")
//	b.Screenshot("screenshots/signin.png", 360, 740)
//
// A page that uses the camera gets a fake one: Options.FakeCamera names a
// .y4m video (Y4M or WriteY4M make one from a QR code PNG), which Chromium
// plays in a loop as the only camera, with the permission prompt accepted.
package browsertest

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// DefaultChromium is where Debian's chromium package installs the browser.
const DefaultChromium = "/usr/bin/chromium"

// EnvChromium names the environment variable that overrides the browser's
// path.
const EnvChromium = "AIRTAB_CHROMIUM"

// DefaultTimeout bounds each wait (WaitText, WaitVisible, Eval ...) unless
// Options.Timeout says otherwise: long enough for a loaded 2-core CI
// machine, short enough that a broken page fails the test in reasonable
// time. Default: 30 s.
const DefaultTimeout = 30 * time.Second

// FindChromium returns the path of the Chromium binary: $AIRTAB_CHROMIUM if
// set, else /usr/bin/chromium, else chromium or chromium-browser on $PATH.
// It returns "" when none is found.
func FindChromium() string {
	if p := os.Getenv(EnvChromium); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		return ""
	}
	if _, err := os.Stat(DefaultChromium); err == nil {
		return DefaultChromium
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Options configures a Browser. The zero value is a headless Chromium with
// an 800x600 window, no camera and the default timeout.
type Options struct {
	// FakeCamera is a .y4m file Chromium plays as its camera, with the
	// permission prompt accepted. Empty: no fake camera flags.
	FakeCamera string
	// TrustSPKI lists base64 SHA-256 hashes of public keys (SPKIHash)
	// whose certificate chains Chromium accepts without a trusted root: give
	// the hash of a test CA's key to reach an HTTPS server whose chain
	// includes that CA. Empty: only the system's roots are trusted.
	TrustSPKI []string
	// Env adds environment variables ("NAME=value") to Chromium's, such as
	// HOME from TrustedHome.
	Env []string
	// Timeout bounds each wait. Default: DefaultTimeout.
	Timeout time.Duration
	// Flags are extra Chromium command-line flags (name without "--" to
	// value: true, false or a string).
	Flags map[string]any
}

// Browser is one headless Chromium with one tab, closed when the test ends.
type Browser struct {
	t       testing.TB
	ctx     context.Context
	timeout time.Duration

	log *consoleLog
}

// consoleLog keeps the page's console messages and uncaught exceptions,
// shown when a step fails.
type consoleLog struct {
	mu    sync.Mutex
	lines []string
}

// New starts Chromium for the test t, or skips t with a message naming the
// test when no Chromium is installed. The browser and its temporary profile
// are removed when the test ends.
func New(t testing.TB, opts Options) *Browser {
	t.Helper()
	path := FindChromium()
	if path == "" {
		if os.Getenv("CI") != "" {
			// CI installs chromium (.ci/run): a missing browser there is a
			// broken set-up, never a reason to pass.
			t.Fatalf("chromium not found under CI=%s: %s cannot run", os.Getenv("CI"), t.Name())
		}
		t.Skipf("chromium not found (install Debian package chromium): %s is skipped", t.Name())
	}
	profile, err := os.MkdirTemp("", "airtab-chromium-*")
	if err != nil {
		t.Fatalf("browser profile: %v", err)
	}
	alloc := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(800, 600),
	}
	if opts.FakeCamera != "" {
		abs, err := filepath.Abs(opts.FakeCamera)
		if err != nil {
			t.Fatalf("fake camera: %v", err)
		}
		if _, err := os.Stat(abs); err != nil {
			t.Fatalf("fake camera: %v", err)
		}
		alloc = append(alloc,
			chromedp.Flag("use-fake-ui-for-media-stream", true),
			chromedp.Flag("use-fake-device-for-media-stream", true),
			chromedp.Flag("use-file-for-fake-video-capture", abs))
	}
	if len(opts.TrustSPKI) > 0 {
		alloc = append(alloc, chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(opts.TrustSPKI, ",")))
	}
	if len(opts.Env) > 0 {
		alloc = append(alloc, chromedp.Env(opts.Env...))
	}
	for name, v := range opts.Flags {
		alloc = append(alloc, chromedp.Flag(name, v))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), alloc...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	b := &Browser{t: t, ctx: ctx, timeout: opts.Timeout, log: &consoleLog{}}
	if b.timeout <= 0 {
		b.timeout = DefaultTimeout
	}
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
		os.RemoveAll(profile)
	})
	// The first Run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium %s: %v", path, err)
	}
	if err := chromedp.Listen(ctx, b.record); err != nil {
		t.Fatalf("listen to chromium: %v", err)
	}
	return b
}

// record keeps console messages and exceptions for Logs.
func (b *Browser) record(ev any) {
	var line string
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		parts := make([]string, 0, len(e.Args))
		for _, a := range e.Args {
			if len(a.Value) > 0 {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		line = fmt.Sprintf("console.%s: %s", e.Type, strings.Join(parts, " "))
	case *runtime.EventExceptionThrown:
		d := e.ExceptionDetails
		line = "exception: " + d.Text
		if d.Exception != nil {
			line += " " + d.Exception.Description
		}
	default:
		return
	}
	b.log.mu.Lock()
	if len(b.log.lines) < 1000 {
		b.log.lines = append(b.log.lines, line)
	}
	b.log.mu.Unlock()
}

// Logs returns the page's console messages and uncaught exceptions so far.
func (b *Browser) Logs() []string {
	b.log.mu.Lock()
	defer b.log.mu.Unlock()
	return append([]string(nil), b.log.lines...)
}

// For returns the same browser and tab reporting failures to t: use it in
// a subtest (t.Run) so a failed step fails the subtest, not its parent.
func (b *Browser) For(t testing.TB) *Browser {
	c := *b
	c.t = t
	return &c
}

// Context returns the chromedp context of the browser's tab, for actions
// the helpers do not cover. Bound each use with context.WithTimeout.
func (b *Browser) Context() context.Context { return b.ctx }

// Timeout returns how long each wait may take.
func (b *Browser) Timeout() time.Duration { return b.timeout }

// fail ends the test with what was being done, the error and the page's
// console log.
func (b *Browser) fail(what string, err error) {
	b.t.Helper()
	logs := b.Logs()
	text, _ := b.try(chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	b.t.Fatalf("%s: %v\npage text:\n%s\nconsole:\n%s", what, err, text, strings.Join(logs, "\n"))
}

// try runs a within the wait timeout.
func (b *Browser) try(a chromedp.Action[string]) (string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// Do runs the actions in order within the wait timeout, failing the test on
// an error.
func (b *Browser) Do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.fail(what, err)
	}
}

// Navigate opens url in the tab and waits for it to load.
func (b *Browser) Navigate(url string) {
	b.t.Helper()
	b.Do("navigate to "+url, chromedp.Navigate(url))
}

// WaitText waits until text is part of the page's visible text (innerText,
// which leaves out hidden elements).
func (b *Browser) WaitText(text string) {
	b.t.Helper()
	b.WaitTextIn("body", text)
}

// WaitTextIn waits until text is part of the text of the first element
// matching the CSS selector (its innerText: for an element inside a hidden
// one, that is all its text). Use WaitTextVisibleIn when the element may
// still hold old text while hidden.
func (b *Browser) WaitTextIn(selector, text string) {
	b.t.Helper()
	expr := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.innerText.includes(%s); })()`,
		jsString(selector), jsString(text))
	b.poll(fmt.Sprintf("wait for %q in %s", text, selector), expr)
}

// WaitTextVisibleIn waits until the first element matching the CSS
// selector is shown (it and its ancestors rendered) and text is part of
// its text.
func (b *Browser) WaitTextVisibleIn(selector, text string) {
	b.t.Helper()
	expr := fmt.Sprintf(`(() => { const e = document.querySelector(%s);
		return !!e && e.checkVisibility() && e.innerText.includes(%s); })()`, jsString(selector), jsString(text))
	b.poll(fmt.Sprintf("wait for %q shown in %s", text, selector), expr)
}

// WaitTrue waits until the JavaScript expression is truthy.
func (b *Browser) WaitTrue(expr string) {
	b.t.Helper()
	b.poll("wait for "+expr, expr)
}

func (b *Browser) poll(what, expr string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	for {
		_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(b.timeout)))
		if err == nil {
			return
		}
		// A click that submits a form or follows a link loads a new page:
		// the evaluation's context goes away mid-poll. Poll the new page.
		if ctx.Err() == nil && navigated(err) {
			continue
		}
		b.fail(what, err)
	}
}

// navigated reports whether err is Chromium's answer to an evaluation whose
// page was replaced by a navigation.
func navigated(err error) bool {
	s := err.Error()
	return strings.Contains(s, "navigated or closed") || strings.Contains(s, "Cannot find context") ||
		strings.Contains(s, "Execution context was destroyed")
}

// WaitVisible waits until an element matching the CSS selector is visible.
func (b *Browser) WaitVisible(selector string) {
	b.t.Helper()
	b.Do("wait for "+selector+" to be visible", chromedp.WaitVisible(chromedp.CSS(selector)))
}

// Click waits for the element matching the CSS selector to be visible,
// scrolls it to the middle of the viewport (clear of fixed headers and
// tab bars, as a person would) and clicks it.
func (b *Browser) Click(selector string) {
	b.t.Helper()
	center := fmt.Sprintf(`(() => { document.querySelector(%s).scrollIntoView({block: "center", inline: "center"}); return true; })()`, jsString(selector))
	b.Do("click "+selector, chromedp.WaitVisible(chromedp.CSS(selector)),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](center)(ctx, t)
			return err
		}),
		chromedp.Click(chromedp.CSS(selector)))
}

// Type focuses the element matching the CSS selector and types text into it
// key by key, as a person or a keyboard-wedge scanner would. "\r" types
// Enter.
func (b *Browser) Type(selector, text string) {
	b.t.Helper()
	b.Do("type into "+selector, chromedp.WaitVisible(chromedp.CSS(selector)), chromedp.SendKeys(chromedp.CSS(selector), text))
}

// SetValue sets the value of the input matching the CSS selector without
// typing.
func (b *Browser) SetValue(selector, value string) {
	b.t.Helper()
	b.Do("set value of "+selector, chromedp.WaitReady(chromedp.CSS(selector)), chromedp.SetValue(chromedp.CSS(selector), value))
}

// Text returns the visible text of the first element matching the CSS
// selector.
func (b *Browser) Text(selector string) string {
	b.t.Helper()
	return Eval[string](b, fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e ? e.innerText : ""; })()`, jsString(selector)))
}

// Eval evaluates the JavaScript expression in the page and returns its
// value decoded into T, failing the test on an error. A promise is awaited.
func Eval[T any](b *Browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fail("evaluate "+expr, err)
	}
	return v
}

// Screenshot sets the viewport to width x height CSS pixels (a phone's
// portrait screen at scale 1 with touch, e.g. 360x740, or a desktop's) and
// writes a PNG of what is visible to path, creating its folder.
func (b *Browser) Screenshot(path string, width, height int) {
	b.t.Helper()
	b.SetViewport(width, height)
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.fail("screenshot "+path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatalf("screenshot %s: %v", path, err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatalf("screenshot %s: %v", path, err)
	}
}

// SetViewport sets the viewport to width x height CSS pixels; widths under
// 800 emulate a mobile portrait screen with touch.
func (b *Browser) SetViewport(width, height int) {
	b.t.Helper()
	opts := []chromedp.EmulateViewportOption{}
	if width < 800 {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	b.Do(fmt.Sprintf("set viewport %dx%d", width, height), chromedp.EmulateViewport(int64(width), int64(height), opts...))
}

// ErrNoChromium is returned by Available when no Chromium is installed.
var ErrNoChromium = errors.New("chromium not found (install Debian package chromium)")

// Available reports whether a Chromium is installed, for code outside
// tests that wants to say so.
func Available() error {
	if FindChromium() == "" {
		return ErrNoChromium
	}
	return nil
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	var sb strings.Builder
	sb.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			sb.WriteByte('\\')
			sb.WriteRune(r)
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&sb, `\u%04x`, r)
		default:
			sb.WriteRune(r)
		}
	}
	sb.WriteByte('"')
	return sb.String()
}

// SPKIHash returns the base64 SHA-256 of cert's public key, the form
// Options.TrustSPKI takes.
func SPKIHash(cert *x509.Certificate) string {
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// TrustedHome returns a new home directory whose NSS certificate store
// (~/.pki/nssdb, where Chromium on Linux keeps locally installed roots)
// trusts caPEM for TLS servers: start Chromium with Options.Env
// "HOME=<dir>" to test a page as a device with that CA installed. It skips
// t when certutil (Debian package libnss3-tools) is not installed.
func TrustedHome(t testing.TB, caPEM []byte) string {
	t.Helper()
	certutil, err := exec.LookPath("certutil")
	if err != nil {
		t.Skipf("certutil not found (install Debian package libnss3-tools): %s is skipped", t.Name())
	}
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	if err := os.MkdirAll(db, 0o700); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(home, "ca.crt")
	if err := os.WriteFile(ca, caPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-N", "-d", "sql:" + db, "--empty-password"},
		{"-A", "-d", "sql:" + db, "-n", "airtab-test-ca", "-t", "C,,", "-i", ca},
	} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	return home
}
