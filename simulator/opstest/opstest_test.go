// Package opstest tests what operators and the back office see of a real
// flight: a ground service and a cabin server run side by side (the
// simulator's harness), sales are made offline on a handheld, the link comes
// up, everything clears; then both /metrics endpoints are scraped and the
// back office is driven in headless Chromium, and what they show is checked
// against the ledger's report.
package opstest

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/api"
	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/onboard/linkemu"
	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/simulator/harness"
)

// world is a ground and one cabin server after a flight.
type world struct {
	g        *harness.Ground
	c        *harness.Cabin
	flight   protocol.FlightID
	sales    int // approved sales
	voids    int
	declined int // declined on board
	debtor   protocol.ID
	pax      []protocol.ID
	before   metricsPair
}

type metricsPair struct{ ground, cabin map[string]float64 }

// fixedScore scores every passenger the same.
type fixedScore int

func (f fixedScore) Score(context.Context, registry.Applicant) (int, error) { return int(f), nil }

// fly sets up ground, an aircraft, a flight and passengers, scrapes both
// metrics endpoints, sells offline (one code used twice, one sale voided),
// closes the flight, calls inAir (when set) while the link is still down,
// brings the link up and waits until every invoice is cleared and the close
// report accepted.
func fly(t *testing.T, inAir func(*world)) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	g, err := harness.StartGround(ctx, filepath.Join(dir, "ground"), harness.GroundOptions{
		Scorer: fixedScore(720)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	a, err := g.RegisterAircraft(ctx, "D-AIUA", filepath.Join(dir, "cabin"), nil)
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC()
	fv, err := g.API.RegisterFlight(ctx, api.FlightRequest{Carrier: "XX", Number: "123", Date: today.Format(time.DateOnly),
		Aircraft: a.ID, Currency: "EUR", Catalog: []protocol.CatalogItem{
			{SKU: "coffee", Name: "Coffee", Price: protocol.M(350, "EUR"), Category: "drink"},
			{SKU: "sandwich", Name: "Sandwich", Price: protocol.M(790, "EUR"), Category: "meal"},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.API.SetCrew(ctx, fv.ID, []api.CrewEntry{{ID: "p1", Role: "purser", PIN: "2468"}}); err != nil {
		t.Fatal(err)
	}
	w := &world{g: g, flight: fv.ID}
	var pax []*harness.Passenger
	for i := range 5 {
		ref := fmt.Sprintf("pax-%d", i)
		funding := ground.FundingSource{Kind: ground.FundingWallet}
		top := protocol.M(5000, "EUR")
		if i >= 3 {
			token := "tok_sim_ok"
			if i == 4 {
				token = "tok_insufficient_4" // the acquirer declines it: collections
			}
			funding = ground.FundingSource{Kind: ground.FundingCard, Network: ground.Visa, Token: token,
				Last4: "4242", ExpMonth: 12, ExpYear: today.Year() + 2}
			top = protocol.Money{}
		}
		p, err := g.RegisterPassenger(ctx, filepath.Join(dir, "wallets", ref), ref, funding, top, fv.ID, protocol.WalletOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Eligible {
			t.Fatalf("passenger %s ineligible", ref)
		}
		pax = append(pax, p)
	}
	w.debtor = pax[4].Account.Passenger
	for _, p := range pax {
		w.pax = append(w.pax, p.Account.Passenger)
	}
	c, err := harness.StartCabin(ctx, g, a, fv.ID, harness.CabinOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w.c = c
	w.before = w.scrape(t)

	hh, err := c.Handheld(ctx, "hh-1", "p1", "2468")
	if err != nil {
		t.Fatal(err)
	}
	defer hh.Close()
	c.Link.SetState(linkemu.Down) // in the air
	var voidable protocol.ID
	for round := range 2 {
		for _, p := range pax {
			code, err := p.Wallet.PaymentCode(fv.ID, false)
			if err != nil {
				t.Fatal(err)
			}
			lines := []onboard.Line{{SKU: "coffee", Quantity: 1}, {SKU: "sandwich", Quantity: int64(round + 1)}}
			d, err := hh.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: lines})
			if err != nil {
				t.Fatal(err)
			}
			if !d.Approved {
				t.Fatalf("sale declined: %+v", d.Decline)
			}
			w.sales++
			if round == 1 && p == pax[1] {
				voidable = d.Sale.InvoiceID // a wallet sale, voided below
			}
			if round == 0 && p == pax[0] { // the same code again: declined
				d, err := hh.Authorize(ctx, onboard.SaleRequest{InvoiceID: protocol.NewID(nil), Code: code, Lines: lines})
				if err != nil {
					t.Fatal(err)
				}
				if d.Approved {
					t.Fatal("a payment code was accepted twice")
				}
				w.declined++
			}
		}
	}
	if _, err := hh.Void(ctx, onboard.VoidRequest{InvoiceID: protocol.NewID(nil), SaleID: voidable}); err != nil {
		t.Fatal(err)
	}
	w.voids++
	if _, err := hh.CloseFlight(ctx); err != nil {
		t.Fatal(err)
	}
	if inAir != nil {
		inAir(w)
	}
	c.Link.SetState(linkemu.Up) // landed
	invoices := int64(w.sales + w.voids)
	if err := harness.Poll(ctx, 2*time.Minute, "every invoice cleared", func() (bool, error) {
		st, err := c.Main.Cabin().Status(ctx)
		return err == nil && st.Invoices.Cleared == invoices && st.Replay != nil && st.Replay.CloseAccepted, err
	}); err != nil {
		t.Fatal(err)
	}
	if err := harness.Poll(ctx, time.Minute, "the declined card in arrears", func() (bool, error) {
		l, _, err := g.Main.Registry().ListArrears(ctx, 10)
		return err == nil && len(l) > 0, err
	}); err != nil {
		t.Fatal(err)
	}
	return w
}

// scrape reads both /metrics endpoints.
func (w *world) scrape(t *testing.T) metricsPair {
	t.Helper()
	cabinHC := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		// The cabin server's certificate is self-signed; handhelds pin its
		// fingerprint, a scraper in a test needs neither.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	return metricsPair{
		ground: scrapeURL(t, http.DefaultClient, "http://"+w.g.Main.HTTPAddr()+"/metrics"),
		cabin:  scrapeURL(t, cabinHC, "https://"+w.c.Main.Addr()+"/metrics"),
	}
}

// scrapeURL fetches a Prometheus text page and returns each sample by its
// line's name and labels, as printed ("name{a=\"b\"}").
func scrapeURL(t *testing.T, hc *http.Client, url string) map[string]float64 {
	t.Helper()
	res, err := hc.Get(url)
	if err != nil {
		t.Fatalf("scrape %s: %v", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		t.Fatalf("scrape %s: %s\n%s", url, res.Status, b)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape %s: Content-Type %q, want the text format", url, ct)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape %s: line %q: %v", url, line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMetricsMoveWithAFlight(t *testing.T) {
	w := fly(t, nil)
	after := w.scrape(t)
	rep, err := clearing.Reports{DB: w.g.Main.DB()}.Flight(context.Background(), w.flight)
	if err != nil {
		t.Fatal(err)
	}
	type check struct {
		name      string
		got, want float64
	}
	cab, gr := after.cabin, after.ground
	delta := func(m map[string]float64, before map[string]float64, k string) float64 { return m[k] - before[k] }
	checks := []check{
		{"cabin approved sales (delta)", delta(cab, w.before.cabin, `airtab_cabin_sales_decided_total{decision="approved",reason="none"}`), float64(w.sales)},
		{"cabin declined code_reused", cab[`airtab_cabin_sales_decided_total{decision="declined",reason="code_reused"}`], float64(w.declined)},
		{"cabin journal cleared", cab[`airtab_cabin_journal_invoices{status="cleared"}`], float64(w.sales + w.voids)},
		{"cabin journal pending", cab[`airtab_cabin_journal_invoices{status="pending"}`], 0},
		{"cabin last seq", cab[`airtab_cabin_last_seq`], float64(w.sales + w.voids)},
		{"cabin flight closed", cab[`airtab_cabin_flight_closed`], 1},
		{"cabin close accepted", cab[`airtab_cabin_replay_close_accepted`], 1},
		{"cabin link up", cab[`airtab_cabin_link_up`], 1},
		{"cabin link state up", cab[`airtab_cabin_link_state{state="up"}`], 1},
		{"cabin group-commit invoices (sum delta)", delta(cab, w.before.cabin, `airtab_cabin_group_commit_invoices_sum`), float64(w.sales + w.voids)},
		{"cabin authorizations timed (delta)", delta(cab, w.before.cabin, `airtab_cabin_authorize_seconds_count`), float64(w.sales + w.declined)},
		{"ground invoices cleared (delta)", delta(gr, w.before.ground, `airtab_ground_clearing_messages_total{outcome="invoice"}`), float64(rep.Received.Invoices)},
		{"ground closes cleared (delta)", delta(gr, w.before.ground, `airtab_ground_clearing_messages_total{outcome="close"}`), 1},
		{"ground card declined", gr[`airtab_ground_charges_total{kind="capture",outcome="declined"}`], 2},
		{"ground card settled", gr[`airtab_ground_charges_total{kind="capture",outcome="settled"}`], 2},
		{"ground collections open", gr[`airtab_ground_collections_open_invoices{currency="EUR"}`], float64(rep.Collections.Count)},
		{"ground collections amount", gr[`airtab_ground_collections_open_minor_units{currency="EUR"}`], float64(totalOf(rep.Collections.Totals, "EUR"))},
		{"ground passengers in arrears", gr[`airtab_ground_arrears_passengers`], 1},
		{"ground ledger check ok", gr[`airtab_ground_ledger_check_ok`], 1},
		{"ground consumer pending", gr[`airtab_ground_clearing_consumer_pending_messages`], 0},
	}
	for _, c := range checks {
		t.Logf("%s = %v", c.name, c.got)
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	for _, k := range []string{"airtab_cabin_manifest_age_seconds", "airtab_cabin_manifest_serial", "airtab_cabin_journal_commit_seconds_count",
		"airtab_cabin_replay_last_heartbeat_timestamp_seconds"} {
		if _, ok := cab[k]; !ok {
			t.Errorf("cabin metric %s missing", k)
		}
	}
	for _, k := range []string{"airtab_ground_clearing_batch_seconds_count", "airtab_ground_ledger_check_timestamp_seconds"} {
		if gr[k] <= 0 {
			t.Errorf("ground metric %s = %v, want > 0", k, gr[k])
		}
	}
	if rep.Collections.Count != 2 {
		t.Errorf("report collections = %d, want the declined card's 2 sales", rep.Collections.Count)
	}
}

func totalOf(ms []protocol.Money, c protocol.Currency) int64 {
	for _, m := range ms {
		if m.Currency == c {
			return m.Minor
		}
	}
	return 0
}
