package demo_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/browsertest"
	"github.com/airtab/airtab/simulator/demo"
)

var screenshots = flag.String("screenshots", "", "write screenshots of the app in the demo world to this `folder`")

// startDemo runs the demo world until the test ends and returns its first
// line, and a channel with Run's result once cancel is called.
func startDemo(t *testing.T) (demo.Info, context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	pr, pw := io.Pipe()
	cfg := demo.DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.Passengers = 2
	cfg.Dir = t.TempDir()
	cfg.Stdout = pw
	done := make(chan error, 1)
	go func() { done <- demo.Run(ctx, cfg); pw.Close() }()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("no first line: %v", <-done)
	}
	var info demo.Info
	dec := json.NewDecoder(bytes.NewReader(lines.Bytes()))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&info); err != nil {
		t.Fatalf("first line %q: %v", lines.Text(), err)
	}
	go io.Copy(io.Discard, pr) // the words after the first line
	return info, cancel, done
}

// TestDemo runs the demo world, reads its first line, and sells with a
// sample code through the handheld API, trusting only the aircraft CA the
// demo names.
func TestDemo(t *testing.T) {
	info, cancel, done := startDemo(t)
	ctx := context.Background()
	if !strings.HasPrefix(info.Handheld, "https://127.0.0.1:") || info.Crew.ID == "" || info.Crew.PIN == "" || info.Crew.Role != "purser" {
		t.Fatalf("info = %+v; want a handheld URL and a purser", info)
	}

	caPEM, err := os.ReadFile(info.CACert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA file holds no certificate")
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	call := func(method, path, token string, body, out any) int {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(info.Handheld, "/")+path, rd)
		req.Header.Set("Airtab-Handheld", "hh-demo-test")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if out != nil {
			if err := json.Unmarshal(b, out); err != nil {
				t.Fatalf("%s %s: %v in %s", method, path, err, b)
			}
		} else if !bytes.Contains(b, []byte("Airtab crew")) {
			t.Fatalf("%s %s: %s", method, path, b)
		}
		return resp.StatusCode
	}

	t.Run("AppOverTrustedTLS", func(t *testing.T) {
		if got := call("GET", "/", "", nil, nil); got != http.StatusOK {
			t.Fatalf("GET / = %d", got)
		}
	})
	t.Run("SaleWithSampleCode", func(t *testing.T) {
		var sess struct{ Token string }
		if got := call("POST", "/v1/sessions", "", map[string]string{"crew_id": info.Crew.ID, "pin": info.Crew.PIN}, &sess); got != http.StatusCreated {
			t.Fatalf("sign in = %d", got)
		}
		code, err := os.ReadFile(filepath.Join(info.Codes, "passenger-1.txt"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(info.Codes, "passenger-1.png")); err != nil {
			t.Fatal(err)
		}
		var d onboard.Decision
		req := onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: strings.TrimSpace(string(code)), Lines: []onboard.Line{{SKU: "coffee", Quantity: 2}}}
		if got := call("POST", "/v1/sales", sess.Token, req, &d); got != http.StatusOK || !d.Approved || d.Sale.Total != protocol.M(700, "EUR") {
			t.Fatalf("sale = %d %+v; want approved 7.00 EUR", got, d)
		}
	})
	t.Run("Wallet", func(t *testing.T) {
		res, err := http.Get(info.Wallet)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "Airtab wallet") {
			t.Fatalf("GET %s = %d, want the passenger wallet", info.Wallet, res.StatusCode)
		}
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after cancel, want nil", err)
	}
}

// TestDemoHandheld sells in the handheld app in the demo world, where the
// cabin server's link to ground is up: the status bar shows the sale
// replayed and cleared by ground.
func TestDemoHandheld(t *testing.T) {
	info, _, _ := startDemo(t)
	b := browsertest.New(t, browsertest.Options{TrustSPKI: []string{info.CASPKI}})
	b.SetViewport(360, 740)
	b.Navigate(info.Handheld)
	b.Type("#signin-crew", info.Attendant.ID)
	b.Type("#signin-pin", info.Attendant.PIN)
	b.Click("#signin-submit")
	b.WaitTextIn("#st-crew", info.Attendant.ID)
	b.WaitText("Chicken curry with rice")
	for _, sku := range []string{"coffee", "coffee", "hot-meal", "chocolates"} {
		b.Click(fmt.Sprintf(`.item[data-sku=%q] button[data-sku]`, sku))
	}
	b.WaitTextIn("#basket-total", "34.40 EUR")
	browsertest.Eval[bool](b, `(window.scrollTo(0, 0), true)`)
	shot(t, b, "demo-basket")
	browsertest.Eval[bool](b, `(localStorage.setItem('airtab.camera', 'off'), true)`)
	b.Click("#basket-scan")
	code, err := os.ReadFile(filepath.Join(info.Codes, "passenger-1.txt"))
	if err != nil {
		t.Fatal(err)
	}
	b.Type("#wedge-input", strings.TrimSpace(string(code))+"\r")
	b.WaitTextVisibleIn("#answer-verdict", "Approved")
	b.WaitTextVisibleIn("#answer-amount", "34.40 EUR")
	shot(t, b, "demo-approved")
	b.Click("#answer-done")
	b.WaitTextIn("#st-link", "cleared")
	b.WaitTextIn("#st-pending", "0 to clear")
	b.Click("#basket-clear")
	shot(t, b, "demo-sell")
	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	b.Screenshot(filepath.Join(dir, "demo-desktop.png"), 1280, 800) // a tablet or a desktop browser
}

func shot(t *testing.T, b *browsertest.Browser, name string) {
	t.Helper()
	dir := *screenshots
	if dir == "" {
		dir = t.TempDir()
	}
	b.Screenshot(filepath.Join(dir, name+".png"), 360, 740)
}

func TestConfigErrors(t *testing.T) {
	for name, mut := range map[string]func(*demo.Config){
		"ErrPassengers": func(c *demo.Config) { c.Passengers = 0 },
		"ErrListen":     func(c *demo.Config) { c.Listen = "nowhere" },
		"ErrCurrency":   func(c *demo.Config) { c.Currency = "XYZ" },
		"ErrFor":        func(c *demo.Config) { c.For = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			c := demo.DefaultConfig()
			mut(&c)
			if err := c.Validate(); err == nil {
				t.Fatalf("%+v: no error", c)
			}
		})
	}
}
