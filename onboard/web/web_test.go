package web_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/httpapi"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/onboard/sqlite"
	"github.com/airtab/airtab/onboard/web"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/browsertest"
)

var screenshots = flag.String("screenshots", "", "write the app's screenshots to this `folder` (the README's are in screenshots/)")

var ctx = context.Background()

// cabinEnv is a real cabin server with a signed manifest, its handheld API
// and the app on one HTTPS listener, behind a switch that can drop the
// answers to sales.
type cabinEnv struct {
	f       *ft.Flight
	cabin   *onboard.Cabin
	journal *sqlite.Journal
	url     string
	caSPKI  string
	caPEM   []byte
	hs      *http.Server

	drop atomic.Bool // drop the answers of POST /v1/sales while set
	fail atomic.Bool // answer POST /v1/sales with a bare 500 after the cabin server handled it
	mu   sync.Mutex
	sent []string // invoice ids of every POST /v1/sales, in order
}

func newCabinEnv(t *testing.T) *cabinEnv {
	t.Helper()
	f := ft.New(t, ft.Options{Passengers: 4})
	cabin, j := f.OpenCabin(f.SignManifest(nil), nil)
	dir := t.TempDir()
	cert, _, err := httpapi.LoadOrCreateCertificate(filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key"), nil, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	root := cert.Certificate[len(cert.Certificate)-1]
	rootCert, err := x509.ParseCertificate(root)
	if err != nil {
		t.Fatal(err)
	}
	e := &cabinEnv{f: f, cabin: cabin, journal: j, caSPKI: browsertest.SPKIHash(rootCert),
		caPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root})}
	api := httpapi.New(httpapi.Config{Cabin: cabin, Clock: f.Now, App: web.New(web.Config{CACert: e.caPEM})})
	hs := api.HTTPServer(cert)
	e.hs = hs
	hs.Handler = e.interpose(hs.Handler)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.ServeTLS(ln, "", "")
	t.Cleanup(func() { hs.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	e.url = "https://localhost:" + port // a name, as handhelds use, in the certificate
	return e
}

// interpose records the invoice id of every sale request and, while drop
// is set, lets the cabin server handle the sale but breaks the connection
// instead of answering: the answer is lost on the way back.
func (e *cabinEnv) interpose(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != httpapi.PathSales {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		var req struct {
			InvoiceID string `json:"invoice_id"`
		}
		json.Unmarshal(body, &req)
		e.mu.Lock()
		e.sent = append(e.sent, req.InvoiceID)
		e.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		if e.fail.Load() {
			// The sale is committed, then a failure on the way back turns
			// the answer into a 500 with no JSON body.
			next.ServeHTTP(discard{header: http.Header{}}, r)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if !e.drop.Load() {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(discard{header: http.Header{}}, r)
		panic(http.ErrAbortHandler)
	})
}

// oneSale checks that the sale requests since the first n (the first
// and its retries, two at least) all carried id, and that the journal
// grew by one sale since before; it returns the status after.
func (e *cabinEnv) oneSale(t *testing.T, n int, before onboard.Status, id protocol.ID) onboard.Status {
	t.Helper()
	sent := e.sentIDs()[n:]
	if len(sent) < 2 {
		t.Fatalf("sale requests %v, want the first and at least one retry", sent)
	}
	for _, s := range sent {
		if s != id.String() {
			t.Fatalf("sale requests carried ids %v, want every one %s", sent, id)
		}
	}
	after, err := e.cabin.Status(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := after.LastSeq, before.LastSeq+1; got != want {
		t.Fatalf("journal sequence = %d after the retries, want %d: one sale", got, want)
	}
	return after
}

func (e *cabinEnv) sentIDs() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.sent...)
}

type discard struct{ header http.Header }

func (d discard) Header() http.Header         { return d.header }
func (d discard) Write(b []byte) (int, error) { return len(b), nil }
func (d discard) WriteHeader(int)             {}

// step runs one step of a flow as a subtest and stops the flow at the
// first failed step: the later steps build on it.
func step(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	if !t.Run(name, fn) {
		t.FailNow()
	}
}

// shot saves a screenshot of the app at the handheld size 360x740.
func shot(t *testing.T, b *browsertest.Browser, name string) {
	t.Helper()
	dir := *screenshots
	if dir == "" {
		dir = filepath.Join(t.TempDir())
	}
	b.Screenshot(filepath.Join(dir, name+".png"), 360, 740)
}

// invoiceID reads the invoice id from the answer screen.
func invoiceID(t *testing.T, b *browsertest.Browser) protocol.ID {
	t.Helper()
	text := b.Text("#answer-detail")
	i := strings.LastIndex(text, " ")
	id, err := protocol.ParseID(strings.TrimSpace(text[i+1:]))
	if err != nil {
		t.Fatalf("answer detail %q: %v", text, err)
	}
	return id
}

func signIn(b *browsertest.Browser, who ft.CrewLogin) {
	b.WaitVisible("#signin-crew")
	browsertest.Eval[bool](b, `(document.getElementById('signin-crew').value = '') === ''`)
	b.Type("#signin-crew", who.ID)
	b.Type("#signin-pin", who.PIN)
	b.Click("#signin-submit")
	b.WaitTextIn("#st-crew", who.ID+" · "+who.Role)
	b.WaitText("Coffee")
}

// add taps + on a catalog item n times.
func add(b *browsertest.Browser, sku string, n int) {
	for range n {
		b.Click(fmt.Sprintf(`.item[data-sku=%q] button[data-sku]`, sku))
	}
}

// wedge types a code into the scan screen as a keyboard-wedge scanner
// does: the text, then Enter.
func wedge(b *browsertest.Browser, code string) {
	b.WaitVisible("#wedge-input")
	b.Type("#wedge-input", code+"\r")
}

func TestHandheldApp(t *testing.T) {
	e := newCabinEnv(t)
	camera := e.f.Passengers[0].Code()
	qr, _, err := protocol.RenderQR(camera, 400)
	if err != nil {
		t.Fatal(err)
	}
	video := filepath.Join(t.TempDir(), "code.y4m")
	if err := browsertest.WriteQRVideo(video, qr); err != nil {
		t.Fatal(err)
	}
	b := browsertest.New(t, browsertest.Options{FakeCamera: video, TrustSPKI: []string{e.caSPKI}})
	b.SetViewport(360, 740)
	b.Navigate(e.url + "/")
	b.WaitText("Airtab crew")
	shot(t, b, "signin")

	var cameraSale protocol.ID
	step(t, "SignIn", func(t *testing.T) {
		b := b.For(t)
		b.Type("#signin-crew", ft.Attendant.ID)
		b.Type("#signin-pin", "0000")
		b.Click("#signin-submit")
		b.WaitTextIn("#signin-error", "Wrong crew id or PIN. The roster on board is from manifest #1 (09:00 UTC)")
		if got := browsertest.Eval[string](b, `document.getElementById('signin-pin').value`); got != "" {
			t.Fatalf("PIN field after a refusal holds %q, want it cleared", got)
		}
		signIn(b, ft.Attendant)
		if got := browsertest.Eval[string](b, `JSON.stringify(localStorage)`); strings.Contains(got, ft.Attendant.PIN) {
			t.Fatalf("the PIN is stored in the page: %s", got)
		}
		b.WaitTextIn("#st-manifest", "manifest #")
		b.WaitTextIn("#st-flight", string(e.f.ID))
	})
	step(t, "CameraApproved", func(t *testing.T) {
		b := b.For(t)
		add(b, "COFFEE", 2)
		add(b, "SANDWICH", 1)
		b.WaitTextIn("#basket-total", "15.50 EUR")
		shot(t, b, "basket")
		b.Click("#basket-scan")
		b.WaitText("Scan to pay 15.50 EUR")
		b.WaitTextVisibleIn("#answer-verdict", "Approved")
		shot(t, b, "approved")
		cameraSale = invoiceID(t, b)
		rec, err := e.journal.Invoice(ctx, cameraSale)
		if err != nil {
			t.Fatalf("invoice %s shown approved is not in the journal: %v", cameraSale, err)
		}
		if rec.Status != onboard.StatusPending {
			t.Fatalf("journal status = %s, want pending", rec.Status)
		}
		sale, err := e.cabin.Sale(ctx, cameraSale)
		if err != nil || sale.Total != protocol.M(1550, "EUR") || sale.Crew != ft.Attendant.ID {
			t.Fatalf("sale = %+v, %v; want 15.50 EUR by fa1", sale, err)
		}
		b.Click("#answer-done")
	})
	step(t, "SameCodeDeclined", func(t *testing.T) {
		b := b.For(t)
		add(b, "COFFEE", 1)
		b.Click("#basket-scan")
		b.WaitTextVisibleIn("#answer-verdict", "Declined")
		b.WaitTextVisibleIn("#answer-message", "payment code already used")
		b.WaitTextVisibleIn("#answer-detail", "code_reused (11)")
		b.WaitTextVisibleIn("#answer-next", "Ask for a fresh code.")
		b.Click("#answer-done") // back to the basket, which still holds the coffee
		b.WaitTextIn("#basket-total", "3.50 EUR")
		b.Click("#basket-clear")
	})
	step(t, "OverLimitShowsRemaining", func(t *testing.T) {
		b := b.For(t)
		p := e.f.Passengers[2]
		for range 3 {
			d, err := e.cabin.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: p.Code(), Lines: ft.Basket("PERFUME", 1), Crew: ft.Purser.ID})
			if err != nil || !d.Approved {
				t.Fatalf("spend first: %+v, %v", d, err)
			}
		}
		// From here on codes come from the keyboard wedge: the crew member
		// turns the camera off, which the app keeps.
		browsertest.Eval[bool](b, `(localStorage.setItem('airtab.camera', 'off'), true)`)
		add(b, "COFFEE", 2) // 7.00 EUR, with 5.00 EUR of the 200.00 left
		b.Click("#basket-scan")
		wedge(b, p.Code())
		b.WaitTextVisibleIn("#answer-verdict", "Declined")
		b.WaitTextVisibleIn("#answer-next", "Take items off the basket to bring it to 5.00 EUR or less.")
		b.WaitTextVisibleIn("#answer-detail", "over_passenger_limit (15)")
		shot(t, b, "declined")
		b.Click("#answer-done")
		b.Click("#basket-clear")
	})
	step(t, "KeyboardWedge", func(t *testing.T) {
		b := b.For(t)
		add(b, "WATER", 1)
		add(b, "COFFEE", 1)
		b.Click("#basket-scan")
		wedge(b, e.f.Passengers[1].Code())
		b.WaitTextVisibleIn("#answer-verdict", "Approved")
		b.WaitTextVisibleIn("#answer-amount", "3.50 EUR")
		b.WaitTextVisibleIn("#answer-next", "Remaining limit: 196.50 EUR")
		if _, err := e.journal.Invoice(ctx, invoiceID(t, b)); err != nil {
			t.Fatalf("wedge sale not in the journal: %v", err)
		}
		b.Click("#answer-done")
	})
	step(t, "NotAirtabCode", func(t *testing.T) {
		b := b.For(t)
		add(b, "COFFEE", 1)
		b.Click("#basket-scan")
		wedge(b, "https://example.com/menu")
		b.WaitTextIn("#scan-error", "not an Airtab code")
		b.Click("#scan-cancel")
		b.WaitVisible("#basket-scan")
		b.Click("#basket-clear")
	})
	step(t, "TwoWay", func(t *testing.T) {
		b := b.For(t)
		add(b, "SANDWICH", 2)
		b.Click("#basket-twoway")
		b.WaitTextIn("#order-total", "17.00 EUR")
		b.WaitTrue(`document.getElementById('order-qr').complete && document.getElementById('order-qr').naturalWidth > 0`)
		shot(t, b, "order")
		order := browsertest.Eval[string](b, `document.getElementById('order-qr').dataset.text`)
		if !strings.HasPrefix(order, protocol.PrefixOrder) {
			t.Fatalf("order QR text %q, want the prefix %s", order, protocol.PrefixOrder)
		}
		b.Click("#order-scan")
		wedge(b, e.f.Passengers[3].Consent(order))
		b.WaitTextVisibleIn("#answer-verdict", "Approved")
		b.WaitTextVisibleIn("#answer-amount", "17.00 EUR")
		sale, err := e.cabin.Sale(ctx, invoiceID(t, b))
		if err != nil || sale.Total != protocol.M(1700, "EUR") {
			t.Fatalf("two-way sale = %+v, %v", sale, err)
		}
		b.Click("#answer-done")
	})
	step(t, "Void", func(t *testing.T) {
		b := b.For(t)
		b.Click("#tab-sales")
		row := fmt.Sprintf(`li[data-id=%q]`, cameraSale.String())
		b.WaitTextIn(row, "approved")
		shot(t, b, "sales")
		b.Click(row + " button")
		b.WaitVisible("#confirm-ok")
		b.Click("#confirm-ok")
		b.WaitTextVisibleIn("#answer-verdict", "Voided")
		b.WaitTextVisibleIn("#answer-amount", "15.50 EUR")
		sale, err := e.cabin.Sale(ctx, cameraSale)
		if err != nil || sale.VoidedBy.IsZero() {
			t.Fatalf("voided sale = %+v, %v; want voided_by set", sale, err)
		}
		b.Click("#answer-done")
		b.WaitTextIn(row, "voided")
		b.Click("#tab-sell")
	})
	step(t, "LostAnswerRetriedOnce", func(t *testing.T) {
		b := b.For(t)
		before, err := e.cabin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := len(e.sentIDs())
		e.drop.Store(true)
		add(b, "COFFEE", 1)
		b.Click("#basket-scan")
		wedge(b, e.f.Passengers[1].Code())
		b.WaitTextVisibleIn("#answer-verdict", "Unknown — retrying")
		b.WaitTextIn("#st-pending", "1 unknown")
		shot(t, b, "unknown")
		e.drop.Store(false)
		b.WaitTextVisibleIn("#answer-verdict", "Approved")
		id := invoiceID(t, b)
		after := e.oneSale(t, n, before, id)
		if got := after.Stats.Approved - before.Stats.Approved; got != 1 {
			t.Fatalf("approved %d invoices, want 1", got)
		}
		b.Click("#answer-done")
	})
	step(t, "ServerErrorRetriedOnce", func(t *testing.T) {
		// A 5xx says nothing about whether the sale was committed: the
		// app must retry it with the same id, never show it as not sold.
		b := b.For(t)
		before, err := e.cabin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		n := len(e.sentIDs())
		e.fail.Store(true)
		add(b, "COFFEE", 1)
		b.Click("#basket-scan")
		wedge(b, e.f.Passengers[3].Code())
		b.WaitTextVisibleIn("#answer-verdict", "Unknown — retrying")
		e.fail.Store(false)
		b.WaitTextVisibleIn("#answer-verdict", "Approved")
		id := invoiceID(t, b)
		for _, s := range e.sentIDs()[n:] {
			if s != id.String() {
				t.Fatalf("sale requests carried ids %v, want every one %s", e.sentIDs()[n:], id)
			}
		}
		after, err := e.cabin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := after.LastSeq, before.LastSeq+1; got != want {
			t.Fatalf("journal sequence = %d after the retries, want %d: one sale", got, want)
		}
		b.Click("#answer-done")
	})
	step(t, "LimitLookup", func(t *testing.T) {
		b := b.For(t)
		before, _ := e.cabin.Status(ctx)
		b.Click("#tab-limit")
		b.Click("#limit-scan")
		wedge(b, e.f.Passengers[1].Code())
		b.WaitTextIn("#limit-result", "Remaining on this flight")
		b.WaitTextIn("#limit-result", "193.00 EUR")
		shot(t, b, "limit")
		after, _ := e.cabin.Status(ctx)
		if after.LastSeq != before.LastSeq {
			t.Fatalf("a limit lookup wrote invoices: seq %d -> %d", before.LastSeq, after.LastSeq)
		}
	})
	step(t, "SessionExpiredThenRetried", func(t *testing.T) {
		// The cabin server no longer knows the page's session (it
		// restarted, or the session expired) when a sale goes out.
		n := len(e.sentIDs()) // sale requests before this one
		before, err := e.cabin.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		browsertest.Eval[bool](b, `(() => { const s = JSON.parse(localStorage.getItem('airtab.session'));
			s.token = 'expired-token'; localStorage.setItem('airtab.session', JSON.stringify(s)); return true; })()`)
		b.Click("#tab-sell")
		add(b, "COFFEE", 1)
		b.Click("#basket-scan")
		wedge(b, e.f.Passengers[1].Code())
		b.WaitTextIn("#signin-error", "Session ended")
		b.WaitTextIn("#signin-error", "retried after sign-in")
		signIn(b, ft.Attendant)
		b.Click("#tab-sales")
		// The sale is the one its requests carry (the refused one, then
		// the retry); its own line in the list turns approved.
		deadline := time.Now().Add(b.Timeout())
		for len(e.sentIDs()) <= n {
			if time.Now().After(deadline) {
				t.Fatal("no sale request reached the cabin server")
			}
			time.Sleep(10 * time.Millisecond)
		}
		id, err := protocol.ParseID(e.sentIDs()[n])
		if err != nil {
			t.Fatal(err)
		}
		b.WaitTextIn(fmt.Sprintf("#sales-list li[data-id=%q]", id.String()), "approved")
		if _, err := e.journal.Invoice(ctx, id); err != nil {
			t.Fatalf("sale retried after sign-in is not in the journal: %v", err)
		}
		// The refused request and the retry after sign-in (and any retry
		// between) carry one invoice id, and the journal holds one sale.
		e.oneSale(t, n, before, id)
	})
	step(t, "AttendantCannotClose", func(t *testing.T) {
		b := b.For(t)
		b.Click("#tab-flight")
		b.WaitTextIn("#flight-note", "Only the purser can close the flight.")
	})
	step(t, "PurserCloses", func(t *testing.T) {
		b := b.For(t)
		b.Click("#signout")
		b.WaitTextIn("#signin-error", "Signed out.")
		signIn(b, ft.Purser)
		b.Click("#tab-flight")
		b.WaitTextIn("#flight-close", "Close the flight")
		b.Click("#flight-close")
		b.WaitVisible("#confirm-ok")
		b.WaitTextIn("#confirm-text", "No sale or void is possible")
		b.Click("#confirm-ok")
		b.WaitTextIn("#flight-report", "Flight closed")
		b.WaitTextIn("#flight-report", "Voids total")
		shot(t, b, "closed")
		st, err := e.cabin.Status(ctx)
		if err != nil || !st.Closed {
			t.Fatalf("status after close = %+v, %v; want closed", st, err)
		}
	})
	if t.Failed() {
		t.Logf("console:\n%s", strings.Join(b.Logs(), "\n"))
	}
}

// TestCameraUnavailable opens the scan screen in a Chromium with no
// camera: the crew is told, and the keyboard wedge still works.
func TestCameraUnavailable(t *testing.T) {
	e := newCabinEnv(t)
	b := browsertest.New(t, browsertest.Options{TrustSPKI: []string{e.caSPKI}})
	b.SetViewport(360, 740)
	b.Navigate(e.url + "/")
	signIn(b, ft.Attendant)
	add(b, "COFFEE", 1)
	b.Click("#basket-scan")
	b.WaitTextIn("#scan-error", "use the scanner or paste the code")
	shot(t, b, "camera-unavailable")
	wedge(b, e.f.Passengers[0].Code())
	b.WaitTextVisibleIn("#answer-verdict", "Approved")
}

// TestInstalledCA opens the app in a Chromium whose certificate store
// holds the aircraft CA, as a handheld after the airline installed it:
// no flag waives certificate errors. The service worker then keeps the
// app shell: with the cabin server gone, a reload still opens the app.
func TestInstalledCA(t *testing.T) {
	e := newCabinEnv(t)
	home := browsertest.TrustedHome(t, e.caPEM)
	b := browsertest.New(t, browsertest.Options{Env: []string{"HOME=" + home}})
	b.SetViewport(360, 740)
	b.Navigate(e.url + "/")
	b.WaitText("Airtab crew")
	if !browsertest.Eval[bool](b, `window.isSecureContext`) {
		t.Fatal("the app is not a secure context under the installed CA")
	}
	ca := browsertest.Eval[string](b, `fetch('/ca.crt').then(r => r.text())`)
	if ca != string(e.caPEM) {
		t.Fatalf("/ca.crt = %q, want the aircraft CA", ca)
	}
	t.Run("ErrNotInstalled", func(t *testing.T) {
		// The same page in a Chromium without the CA: refused.
		other := browsertest.New(t, browsertest.Options{Env: []string{"HOME=" + t.TempDir()}})
		ctx, cancel := context.WithTimeout(other.Context(), other.Timeout())
		defer cancel()
		err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/"))
		if err == nil || !strings.Contains(err.Error(), "CERT_AUTHORITY_INVALID") {
			t.Fatalf("navigate without the CA: %v, want net::ERR_CERT_AUTHORITY_INVALID", err)
		}
	})
	t.Run("OfflineShell", func(t *testing.T) {
		b := b.For(t)
		// The worker claims the page once it has cached the shell.
		b.WaitTrue(`navigator.serviceWorker.controller !== null`)
		signIn(b, ft.Attendant)
		e.hs.Close()
		// Signed in: the app opens on Sell, which says the catalog needs
		// the cabin server and offers to try again, instead of a blank screen.
		b.Navigate(e.url + "/")
		b.WaitTextVisibleIn("#catalog", "Catalog not loaded")
		b.WaitVisible("#catalog-retry")
		if !browsertest.Eval[bool](b, `document.getElementById('basket-scan').disabled`) {
			t.Fatal("Scan code is enabled with no catalog and an empty basket")
		}
		// Signed out: the sign-in screen.
		browsertest.Eval[bool](b, `(localStorage.removeItem('airtab.session'), true)`)
		b.Navigate(e.url + "/")
		b.WaitText("Airtab crew")
		b.WaitVisible("#signin-submit")
	})
}

// TestSecurityHeaders checks the headers every page answer carries.
func TestSecurityHeaders(t *testing.T) {
	srv := http.Handler(web.New(web.Config{CACert: []byte("-----BEGIN CERTIFICATE-----\n")}))
	for _, path := range []string{"/", "/js/main.js", "/sw.js", "/ca.crt", "/nope"} {
		t.Run(path, func(t *testing.T) {
			w := &recorder{header: http.Header{}}
			r, _ := http.NewRequest(http.MethodGet, "https://cabin"+path, nil)
			srv.ServeHTTP(w, r)
			csp := w.header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
				t.Fatalf("CSP = %q", csp)
			}
			if got := w.header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Fatalf("X-Content-Type-Options = %q", got)
			}
		})
	}
}

type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(s int)           { r.status = s }

// TestHandlerAnswers checks what the handler answers besides the files.
func TestHandlerAnswers(t *testing.T) {
	with := web.New(web.Config{CACert: []byte("PEM")})
	without := web.New(web.Config{})
	long := strings.Repeat("A", web.MaxQRText+1)
	for _, tc := range []struct {
		name, method, path string
		h                  http.Handler
		status             int
		contentType        string
	}{
		{"Index", "GET", "/", with, 200, "text/html; charset=utf-8"},
		{"Module", "GET", "/js/main.js", with, 200, "text/javascript; charset=utf-8"},
		{"ServiceWorker", "GET", "/sw.js", with, 200, "text/javascript; charset=utf-8"},
		{"OrderQR", "GET", "/qr.png?t=ATO1:TEST", with, 200, "image/png"},
		{"CACert", "GET", "/ca.crt", with, 200, "application/x-x509-ca-cert"},
		{"ErrNoCACert", "GET", "/ca.crt", without, 404, ""},
		{"ErrQREmpty", "GET", "/qr.png", with, 400, ""},
		{"ErrQRTooLong", "GET", "/qr.png?t=" + long, with, 400, ""},
		{"ErrNotFound", "GET", "/nope.js", with, 404, ""},
		{"ErrMethod", "POST", "/", with, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &recorder{header: http.Header{}, status: 200}
			r, _ := http.NewRequest(tc.method, "https://cabin"+tc.path, nil)
			tc.h.ServeHTTP(w, r)
			if w.status != tc.status {
				t.Fatalf("status = %d, want %d (%s)", w.status, tc.status, w.body.String())
			}
			if tc.contentType != "" && w.header.Get("Content-Type") != tc.contentType {
				t.Fatalf("Content-Type = %q, want %q", w.header.Get("Content-Type"), tc.contentType)
			}
		})
	}
	t.Run("ServiceWorkerNamesTheBuild", func(t *testing.T) {
		w := &recorder{header: http.Header{}}
		r, _ := http.NewRequest("GET", "https://cabin/sw.js", nil)
		with.ServeHTTP(w, r)
		body := w.body.String()
		if !strings.Contains(body, "airtab-shell-"+with.Version()) || strings.Contains(body, "__SHELL__") || !strings.Contains(body, `"/js/main.js"`) {
			t.Fatalf("sw.js does not name the build %s and its shell files:\n%s", with.Version(), body[:200])
		}
	})
}
