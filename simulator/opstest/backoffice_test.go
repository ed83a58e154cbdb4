package opstest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/browsertest"
)

// EnvScreenshots names a directory the back-office test writes its
// screenshots to; by default they go to a temporary directory.
const EnvScreenshots = "AIRTAB_SCREENSHOTS"

func moneys(ms []protocol.Money) string {
	if len(ms) == 0 {
		return "—"
	}
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = m.String()
	}
	return strings.Join(parts, ", ")
}

// waitAfterSubmit waits until the page shows text after a click that
// submits a form: while the next page loads, evaluations fail with
// "navigated", which is no reason to give up.
func waitAfterSubmit(t *testing.T, b *browsertest.Browser, text string) {
	t.Helper()
	expr := fmt.Sprintf(`!!document.body && document.body.innerText.includes(%q)`, text)
	deadline := time.Now().Add(b.Timeout())
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(b.Context(), time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		select { // poll interval
		case <-time.After(50 * time.Millisecond):
		case <-b.Context().Done():
		}
	}
	b.WaitText(text) // fails with the page text
}

// TestBackOfficeInBrowser drives the back office in headless Chromium after
// a real flight and checks every figure against what `ground report` prints
// (clearing.WriteReport) and the settlement summary.
func TestBackOfficeInBrowser(t *testing.T) {
	shots := os.Getenv(EnvScreenshots)
	if shots == "" {
		shots = t.TempDir()
	}
	b := browsertest.New(t, browsertest.Options{})
	b.SetViewport(1280, 900)
	var base string
	// While the aircraft is in the air, sign in and open the flights list;
	// it must follow the flight through landing without a reload.
	w := fly(t, func(w *world) {
		base = "http://" + w.g.Main.HTTPAddr()
		t.Run("SignIn", func(t *testing.T) {
			b.Navigate(base + "/backoffice/flights")
			b.WaitText("Back-office token")
			b.Screenshot(filepath.Join(shots, "signin-360.png"), 360, 740)
			b.SetViewport(1280, 900)
			b.Type("#token", "wrong-token-wrong-token")
			b.Click("#signin")
			waitAfterSubmit(t, b, "That is not the back-office token.")
			b.Type("#token", w.g.API.Token)
			b.Click("#signin")
			waitAfterSubmit(t, b, "Live:") // back where the sign-in started
		})
		t.Run("InTheAir", func(t *testing.T) {
			b.WaitTextIn(fmt.Sprintf(`tr[data-flight=%q] [data-state]`, string(w.flight)), "in the air")
		})
	})
	ctx := context.Background()
	db := w.g.Main.DB()
	var cli bytes.Buffer
	if err := clearing.WriteReport(ctx, db, w.flight, "json", clearing.Page{Limit: clearing.AllLines}, &cli); err != nil {
		t.Fatal(err)
	}
	var rep clearing.FlightReport
	if err := json.Unmarshal(cli.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	t.Run("LiveThroughLanding", func(t *testing.T) {
		b.WaitTextIn(fmt.Sprintf(`tr[data-flight=%q] [data-state]`, string(w.flight)), "reconciled") // by the poll alone
	})
	t.Run("SignInReturnsToThePage", func(t *testing.T) {
		b2 := browsertest.New(t, browsertest.Options{})
		b2.Navigate(base + "/backoffice/flights/" + string(w.flight))
		b2.Type("#token", w.g.API.Token)
		b2.Click("#signin")
		waitAfterSubmit(t, b2, "Aircraft vs ground")
		b2.WaitTextIn("h1", "Flight "+string(w.flight))
	})

	t.Run("FlightsList", func(t *testing.T) {
		b.Navigate(base + "/backoffice/flights")
		row := fmt.Sprintf(`tr[data-flight=%q]`, string(w.flight))
		b.WaitVisible(row)
		for sel, want := range map[string]string{
			row + " [data-state]":      "reconciled",
			row + " .approved .n":      fmt.Sprint(rep.Received.Sales),
			row + " .approved .amt":    moneys(rep.Received.SalesTotal),
			row + " .settled .n":       fmt.Sprint(rep.Settled.Count),
			row + " .settled .amt":     moneys(rep.Settled.Totals),
			row + " .collections .n":   fmt.Sprint(rep.Collections.Count),
			row + " .collections .amt": moneys(rep.Collections.Totals),
			row + " .voided .amt":      moneys(rep.Voided.Totals),
			row + " .quarantined .n":   fmt.Sprint(rep.Quarantined.Count),
		} {
			if got := b.Text(sel); got != want {
				t.Errorf("%s = %q, want %q (the report's)", sel, got, want)
			}
		}
		b.WaitTextIn("#live", "updated") // the poll swapped the rows in
		if got, want := b.Text(row+" .settled .amt"), moneys(rep.Settled.Totals); got != want {
			t.Errorf("after the poll: settled = %q, want %q", got, want)
		}
		b.Screenshot(filepath.Join(shots, "flights-1280.png"), 1280, 640)
		b.Screenshot(filepath.Join(shots, "flights-360.png"), 360, 740)
		b.SetViewport(1280, 900)
	})

	t.Run("OneFlight", func(t *testing.T) {
		b.Navigate(base + "/backoffice/flights/" + string(w.flight))
		b.WaitVisible("#recon")
		if !rep.Reconciled {
			t.Fatalf("the flight did not reconcile: %v", rep.Problems)
		}
		for sel, want := range map[string]string{
			"#verdict":              "Reconciled",
			"#reported-sales":       fmt.Sprint(rep.Reported.Sales),
			"#received-sales":       fmt.Sprint(rep.Received.Sales),
			"#reported-sales-total": moneys(rep.Reported.SalesTotal),
			"#received-sales-total": moneys(rep.Received.SalesTotal),
			"#received-voids":       fmt.Sprint(rep.Received.Voids),
			"#missing":              "0",
		} {
			if got := b.Text(sel); !strings.HasPrefix(got, want) {
				t.Errorf("%s = %q, want %q", sel, got, want)
			}
		}
		for name, bk := range map[string]clearing.Bucket{"Settled": rep.Settled, "Collections": rep.Collections,
			"Voided": rep.Voided, "Voids applied": rep.Voids, "Quarantined": rep.Quarantined, "Disputed": rep.Disputed} {
			got := b.Text(fmt.Sprintf(`tr[data-bucket=%q]`, name))
			if want := fmt.Sprintf("%s\t%d\t%s", name, bk.Count, moneys(bk.Totals)); got != want {
				t.Errorf("bucket %s = %q, want %q", name, got, want)
			}
		}
		amounts := browsertest.Eval[[]string](b, `[...document.querySelectorAll("#invoices tbody tr .amount")].map(e => e.innerText)`)
		var want []string
		for _, l := range rep.Invoices {
			want = append(want, l.Amount.String())
		}
		if strings.Join(amounts, "|") != strings.Join(want, "|") {
			t.Errorf("invoice amounts on the page = %v, want the report's %v", amounts, want)
		}
		if got := b.Text(fmt.Sprintf(`tr[data-invoice=%q] .items`, rep.Invoices[0].Invoice)); !strings.Contains(got, "1× coffee") {
			t.Errorf("first invoice's items = %q, want the coffee sold", got)
		}
		// The downloads are the CLI's exports, byte for byte (CSV has no
		// generation time).
		var csv bytes.Buffer
		if err := clearing.WriteReport(ctx, db, w.flight, "csv", clearing.Page{}, &csv); err != nil {
			t.Fatal(err)
		}
		got := browsertest.Eval[string](b, fmt.Sprintf(`fetch("/backoffice/flights/%s.csv").then(r => r.text())`, w.flight))
		if got != csv.String() {
			t.Errorf("CSV download differs from `ground report --format csv`:\n%s\nwant:\n%s", got, csv.String())
		}
		b.Screenshot(filepath.Join(shots, "flight-1280.png"), 1280, 1500)
		b.Screenshot(filepath.Join(shots, "flight-360.png"), 360, 740)
		// On a phone a chart keeps a readable width and scrolls sideways
		// in its card rather than shrink its labels to a few pixels.
		b.SetViewport(360, 740)
		b.WaitTrue(`(() => { const s = document.querySelector("svg.chart");
			return s.getBoundingClientRect().width >= 540 && s.parentElement.scrollWidth > s.parentElement.clientWidth })()`)
		axis := browsertest.Eval[float64](b, `(() => { const a = document.querySelector("svg.chart .axis").getBoundingClientRect();
			document.querySelector("svg.chart").scrollIntoView({block: "center"}); return a.height })()`)
		if axis < 9 {
			t.Errorf("a chart's axis label is %.1f px high at 360 px, want at least 9", axis)
		}
		b.Screenshot(filepath.Join(shots, "flight-chart-360.png"), 360, 740)
		b.SetViewport(1280, 900)
	})

	t.Run("PostWithoutCSRFRefused", func(t *testing.T) {
		status := browsertest.Eval[int](b, `fetch("/backoffice/setup/revoke", {method: "POST",
			headers: {"Content-Type": "application/x-www-form-urlencoded"}, body: "credential=`+strings.Repeat("ab", 16)+`"}).then(r => r.status)`)
		if status != 403 {
			t.Fatalf("POST without the CSRF token: status %d, want 403", status)
		}
	})

	t.Run("Collections", func(t *testing.T) {
		b.Navigate(base + "/backoffice/collections")
		row := fmt.Sprintf(`tr[data-passenger=%q]`, w.debtor)
		b.WaitVisible(row)
		if got, want := b.Text(row+" .owed"), moneys(rep.Collections.Totals); got != want {
			t.Errorf("owed = %q, want %q (the report's collections)", got, want)
		}
		b.WaitTextIn(row, "denied on "+string(w.flight))
		b.Screenshot(filepath.Join(shots, "collections-1280.png"), 1280, 640)
		b.SetViewport(1280, 900)
		b.Click(row + " button")
		waitAfterSubmit(t, b, "Retried the charges of "+w.debtor.String())
		b.WaitText("declined again")
	})

	t.Run("Settlement", func(t *testing.T) {
		st, err := clearing.Reports{DB: db}.Settlement(ctx, time.Now().UTC())
		if err != nil {
			t.Fatal(err)
		}
		b.Navigate(base + "/backoffice/settlement")
		b.WaitVisible("#net-EUR")
		if got, want := b.Text("#net-EUR"), st.Currencies[0].Net.String(); got != want {
			t.Errorf("net = %q, want %q", got, want)
		}
		if got, want := b.Text(`table[data-currency="EUR"] tr[data-row="Settled"]`),
			fmt.Sprintf("Settled\t%d\t%s", st.Currencies[0].Settled.Count, st.Currencies[0].Settled.Total); got != want {
			t.Errorf("settled row = %q, want %q", got, want)
		}
		b.WaitVisible("svg.chart rect")
		b.Screenshot(filepath.Join(shots, "settlement-1280.png"), 1280, 900)
	})

	t.Run("SetupRevoke", func(t *testing.T) {
		p, err := w.g.Main.Registry().Passenger(ctx, w.pax[2])
		if err != nil {
			t.Fatal(err)
		}
		cred := p.Credentials[0].Signed.Body.ID
		b.Navigate(base + "/backoffice/setup?flight=" + string(w.flight))
		b.WaitVisible("#selected-flight")
		b.WaitTextIn("#selected-flight", "coffee")
		b.Screenshot(filepath.Join(shots, "setup-1280.png"), 1280, 1100)
		b.SetViewport(1280, 900)
		b.Type("#rev-id", cred.String())
		b.Click(`form[action="/backoffice/setup/revoke"] button`)
		waitAfterSubmit(t, b, "Credential "+cred.String()+" revoked")
		ic, err := w.g.Main.Registry().IssuedCredentialByID(ctx, cred)
		if err != nil {
			t.Fatal(err)
		}
		if ic.RevokedAt.IsZero() {
			t.Fatal("the form said revoked, the registry does not")
		}
	})

	t.Run("SignOut", func(t *testing.T) {
		b.Click(".signout button")
		waitAfterSubmit(t, b, "Back-office token")
		b.Navigate(base + "/backoffice/flights")
		b.WaitText("Back-office token") // the session is gone
	})
}
