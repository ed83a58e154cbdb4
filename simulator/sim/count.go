package sim

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/onboard"
	"github.com/airtab/airtab/protocol"
)

// Counting. Every figure comes from a part: approvals and declines from
// the handhelds' own records, sales and voids from the cabin server's close
// report and journal status, settled, collections and voided from ground's
// clearing records, postings from the ledger's transfers table, captures
// from the acquirer.

// postings counts, per invoice id, the ledger transfers that post its sale
// and that charge it (wallet charge or card capture), net of reversals.
type postings struct {
	sales   map[protocol.ID]int // TransferSale, not reversals
	charges map[protocol.ID]int // wallet charges and card captures, net of refunds
}

// readPostings reads the ledger's transfers (ledger_transfers: ref is the
// invoice id, code the transfer code, reverses set on a reversal).
func readPostings(ctx context.Context, db *sql.DB) (postings, error) {
	p := postings{sales: map[protocol.ID]int{}, charges: map[protocol.ID]int{}}
	rows, err := db.QueryContext(ctx, `SELECT ref, code, reverses IS NOT NULL, COUNT(*) FROM ledger_transfers
		WHERE code IN (?, ?, ?) GROUP BY ref, code, reverses IS NOT NULL`,
		ledger.TransferSale, ledger.TransferWalletCharge, ledger.TransferCardCapture)
	if err != nil {
		return p, fmt.Errorf("read ledger transfers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ref []byte
		var code ledger.TransferCode
		var reversal bool
		var n int
		if err := rows.Scan(&ref, &code, &reversal, &n); err != nil {
			return p, err
		}
		var id protocol.ID
		if len(ref) != len(id) {
			return p, fmt.Errorf("ledger transfer ref of %d bytes", len(ref))
		}
		copy(id[:], ref)
		switch {
		case code == ledger.TransferSale && !reversal:
			p.sales[id] += n
		case code != ledger.TransferSale && !reversal:
			p.charges[id] += n
		case code != ledger.TransferSale:
			p.charges[id] -= n
		}
	}
	return p, rows.Err()
}

// count builds the report.
func (r *run) count(ctx context.Context) (*Report, error) {
	rep := &Report{Seed: r.cfg.Seed, Options: Options{Passengers: r.cfg.Passengers, Handhelds: r.cfg.Handhelds,
		Flights: r.cfg.Flights, Outages: r.cfg.Outages, Crash: r.cfg.Crash, Fraud: r.cfg.Fraud, DeclineRate: r.cfg.DeclineRate}}
	iv := Invariants{NoLostInvoice: true, ExactlyOnce: true, LedgerBalanced: true, LimitsRespected: true, FraudRejected: true, Reconciled: true,
		NoneUnpaid: true, ChangesOnBoard: true, PrepaidCovered: true}
	db := r.g.Main.DB()
	if err := ledger.Check(ctx, db); err != nil {
		iv.LedgerBalanced = false
		rep.LedgerProblem = err.Error()
		rep.Violations = append(rep.Violations, "ledger: "+err.Error())
	}
	posts, err := readPostings(ctx, db)
	if err != nil {
		return nil, err
	}
	c := &counter{run: r, posts: posts, iv: &iv, rep: rep}
	for _, f := range r.flights {
		fr, err := c.flight(ctx, f)
		if err != nil {
			return nil, err
		}
		rep.Flights = append(rep.Flights, fr)
		t := &rep.Totals
		t.Approved += fr.Approved
		t.Declined += fr.Declined
		t.Settled += fr.Settled
		t.Collections += fr.Collections
		t.Voided += fr.Voided
		t.FraudAttempts += fr.FraudAttempts
		t.FraudAccepted += fr.FraudAccepted
	}
	fr, err := c.flight(ctx, r.feeder)
	if err != nil {
		return nil, err
	}
	fr.Role = "feeder"
	rep.Feeder = &fr
	c.strayDoubles()
	rep.Totals.Lost, rep.Totals.DoubleCharged = c.lost, c.double
	if len(r.flights) > 0 {
		rep.SampleCode = r.flights[0].sample
	}
	if r.cfg.QROut != "" {
		if rep.QRFiles, err = r.writeQR(); err != nil {
			return nil, err
		}
	}
	rep.Invariants = iv
	rep.OK = iv.OK()
	r.mark("counting")
	rep.Timings = r.timings
	rep.Seconds = time.Since(r.start).Seconds()
	return rep, nil
}

// counter accumulates the cross-flight figures.
type counter struct {
	run          *run
	posts        postings
	iv           *Invariants
	rep          *Report
	lost, double int
	seen         map[protocol.ID]bool // invoice ids the handhelds hold as approvals
}

func (c *counter) violation(iv *bool, format string, args ...any) {
	*iv = false
	if len(c.rep.Violations) < 50 {
		c.rep.Violations = append(c.rep.Violations, fmt.Sprintf(format, args...))
	}
}

// flight counts one flight and checks its invariants.
func (c *counter) flight(ctx context.Context, f *flight) (FlightReport, error) {
	cur := c.run.cfg.Currency
	fr := FlightReport{Flight: string(f.id), Aircraft: string(f.aircraft.ID), Currency: string(cur), Passengers: len(f.pax),
		Crashes: int(f.crashes.Load()), Outages: f.outages, ReplaySeconds: f.landed.Seconds(), Declines: map[string]int{}}
	if f.feeder {
		fr.Passengers = len(f.pax)
	}
	for _, p := range f.pax {
		if p.reg == nil || f.feeder {
			continue
		}
		fr.Registered++
		if !p.reg.Eligible {
			fr.Refused++
		}
		if p.kind == paxLate {
			fr.Late++
		}
	}
	// The handhelds' records.
	var sales, voids []onboard.Sale
	for _, h := range f.hh {
		a, v, d := h.record()
		sales, voids = append(sales, a...), append(voids, v...)
		for k, n := range d {
			fr.Declines[k] += n
			fr.Declined += n
		}
	}
	fr.Approved = len(sales)
	for _, s := range sales {
		fr.ApprovedMinor += s.Total.Minor
	}
	// The cabin server's close report and journal.
	if cr := f.closed; cr != nil {
		fr.Journal = JournalCounts{Sales: cr.Sales, Voids: cr.Voids, SalesMinor: in(cr.SalesTotal, cur), VoidsMinor: in(cr.VoidsTotal, cur), LastSeq: cr.LastSeq}
	}
	// Read the journal again now, rather than trusting the state the
	// landing wait saw.
	st, err := f.status(ctx)
	if err != nil {
		return fr, fmt.Errorf("cabin status %s: %w", f.id, err)
	}
	fr.Journal.Cleared = st.Invoices.Cleared
	fr.Journal.Outstanding = st.Invoices.Pending + st.Invoices.Sent
	// Ground's clearing records.
	crep, err := c.run.g.Main.Clearing().Reports().Flight(ctx, f.id)
	if err != nil {
		return fr, fmt.Errorf("reconciliation report %s: %w", f.id, err)
	}
	fr.Settled, fr.SettledMinor = crep.Settled.Count, in(crep.Settled.Totals, cur)
	fr.Collections, fr.CollectionsMinor = crep.Collections.Count, in(crep.Collections.Totals, cur)
	fr.Voided, fr.VoidedMinor = crep.Voided.Count, in(crep.Voided.Totals, cur)
	fr.Quarantined, fr.Disputed = crep.Quarantined.Count, crep.Disputed.Count
	fr.Ground = GroundCounts{Sales: crep.Received.Sales, Voids: crep.Received.Voids, SalesMinor: in(crep.Received.SalesTotal, cur),
		VoidsMinor: in(crep.Received.VoidsTotal, cur), LastSeq: crep.Received.LastSeq, Missing: crep.Missing, HeadMatch: crep.HeadMatches}
	fr.Problems = append(fr.Problems, crep.Problems...)
	c.reconcile(&fr, len(voids))
	c.nonePaid(f, &fr, sales, crep)
	c.pushedAndCovered(f, &fr, crep)
	c.exactlyOnce(f, sales)
	c.limits(f, sales, voids)
	c.fraud(f, &fr)
	return fr, nil
}

// reconcile checks that the handhelds, the journal and ground agree, and
// that every approved sale ended settled, in collections or voided.
func (c *counter) reconcile(fr *FlightReport, voids int) {
	p := func(format string, args ...any) { fr.Problems = append(fr.Problems, fmt.Sprintf(format, args...)) }
	j := fr.Journal
	if j.Sales != uint64(fr.Approved) || j.SalesMinor != fr.ApprovedMinor {
		p("handhelds hold %d approvals of %s, the aircraft's close report %d of %s", fr.Approved, money(fr.ApprovedMinor, fr.Currency), j.Sales, money(j.SalesMinor, fr.Currency))
	}
	if j.Voids != uint64(voids) {
		p("handhelds hold %d voids, the close report %d", voids, j.Voids)
	}
	if j.Outstanding != 0 || j.Cleared != int64(j.LastSeq) {
		p("the journal holds %d invoices without a clearing receipt (%d of %d cleared)", j.Outstanding, j.Cleared, j.LastSeq)
	}
	if n := fr.Settled + fr.Collections + fr.Voided; n != fr.Approved {
		p("%d approved sales, but %d settled + %d in collections + %d voided = %d", fr.Approved, fr.Settled, fr.Collections, fr.Voided, n)
	}
	if m := fr.SettledMinor + fr.CollectionsMinor + fr.VoidedMinor; m != fr.ApprovedMinor {
		p("%s approved, but settled, collections and voided add up to %s", money(fr.ApprovedMinor, fr.Currency), money(m, fr.Currency))
	}
	fr.Reconciled = len(fr.Problems) == 0
	if !fr.Reconciled {
		c.violation(&c.iv.Reconciled, "%s not reconciled: %v", fr.Flight, fr.Problems)
	}
}

// pushedAndCovered counts the two figures of ground's promptness and of
// the prepaid hold: sales declined unknown_credential for passengers whose
// credential was issued with the link up (the handhelds' answers, as the
// flight's sell saw them), and prepaid sales in collections for want of
// balance (clearing's records). Both must be 0.
func (c *counter) pushedAndCovered(f *flight, fr *FlightReport, crep *clearing.FlightReport) {
	fr.UnknownAfterIssue = int(f.unknownAfterIssue.Load())
	if fr.UnknownAfterIssue > 0 {
		c.violation(&c.iv.ChangesOnBoard, "%s: %d sales declined unknown_credential for passengers whose credential was issued with the link up",
			f.id, fr.UnknownAfterIssue)
	}
	for _, l := range crep.Invoices {
		if l.Kind == "sale" && l.Status == clearing.StatusCollections && l.Decline == string(clearing.DeclineWalletShort) {
			fr.WalletShort++
			c.violation(&c.iv.PrepaidCovered, "%s: prepaid sale %s (seq %d, %s) in collections: the wallet could not pay",
				f.id, l.Invoice, l.Seq, l.Amount)
		}
	}
}

// nonePaid checks that every sale a handheld holds as approved ended
// settled, in collections or voided on the ground. A sale the aircraft
// approved is a real authorization: quarantined, disputed, still posted or
// missing, it is a sale nobody pays for.
func (c *counter) nonePaid(f *flight, fr *FlightReport, sales []onboard.Sale, crep *clearing.FlightReport) {
	status := make(map[protocol.ID]clearing.ReportLine, len(crep.Invoices))
	for _, l := range crep.Invoices {
		if l.Kind == "sale" {
			status[l.Invoice] = l
		}
	}
	for _, s := range sales {
		l, ok := status[s.InvoiceID]
		switch {
		case !ok:
			fr.Unpaid++
			c.violation(&c.iv.NoneUnpaid, "%s: approved sale %s (seq %d, %s) has no clearing record: unpaid", f.id, s.InvoiceID, s.Seq, s.Total)
		case l.Status == clearing.StatusSettled, l.Status == clearing.StatusCollections, l.Status == clearing.StatusPendingRetry,
			l.Status == clearing.StatusVoided:
		default:
			fr.Unpaid++
			c.violation(&c.iv.NoneUnpaid, "%s: approved sale %s (seq %d, %s) is %s (%s: %s): unpaid", f.id, s.InvoiceID, s.Seq, s.Total,
				l.Status, l.Reason, l.Detail)
		}
	}
}

// exactlyOnce checks each approval against the ledger and the acquirer:
// posted exactly once (never lost), charged at most once.
func (c *counter) exactlyOnce(f *flight, sales []onboard.Sale) {
	if c.seen == nil {
		c.seen = map[protocol.ID]bool{}
	}
	for _, s := range sales {
		id := s.InvoiceID
		c.seen[id] = true
		switch n := c.posts.sales[id]; {
		case n == 0:
			c.lost++
			c.violation(&c.iv.NoLostInvoice, "%s: approved sale %s (seq %d, %s) never reached the ledger", f.id, id, s.Seq, s.Total)
		case n > 1:
			c.double++
			c.violation(&c.iv.ExactlyOnce, "%s: sale %s posted %d times", f.id, id, n)
		case c.posts.charges[id] > 1 || c.run.acq.Captures(id) > 1:
			c.double++
			c.violation(&c.iv.ExactlyOnce, "%s: sale %s charged %d times in the ledger, captured %d times by the acquirer",
				f.id, id, c.posts.charges[id], c.run.acq.Captures(id))
		}
	}
}

// strayDoubles counts invoices posted more than once that no handheld
// holds as an approval (an answer lost on the way, or a fraud attempt that
// got through): exactlyOnce only looks at the handhelds' approvals.
func (c *counter) strayDoubles() {
	for id, n := range c.posts.sales {
		if n > 1 && !c.seen[id] {
			c.double++
			c.violation(&c.iv.ExactlyOnce, "sale %s, held by no handheld, posted %d times", id, n)
		}
	}
}

// limits checks, per credential, that the approved spend net of voids is
// within the credential's limit.
func (c *counter) limits(f *flight, sales, voids []onboard.Sale) {
	limit := map[protocol.ID]protocol.Money{}
	for _, p := range append(slices.Clone(f.pax), f.guests...) {
		if p.reg == nil {
			continue
		}
		if cred, ok := p.reg.Wallet.Credential(f.id); ok {
			limit[cred.Body.ID] = cred.Body.Limit
		}
	}
	voided := map[protocol.ID]bool{}
	for _, v := range voids {
		voided[v.Voids] = true
	}
	spent := map[protocol.ID]int64{}
	for _, s := range sales {
		if _, ok := limit[s.Credential]; !ok {
			c.violation(&c.iv.LimitsRespected, "%s: sale %s on credential %s that no passenger of the flight holds", f.id, s.InvoiceID, s.Credential)
			continue
		}
		if !voided[s.InvoiceID] {
			spent[s.Credential] += s.Total.Minor
		}
	}
	for _, id := range slices.SortedFunc(maps.Keys(spent), func(a, b protocol.ID) int { return bytes.Compare(a[:], b[:]) }) {
		if l := limit[id]; spent[id] > l.Minor {
			c.violation(&c.iv.LimitsRespected, "%s: credential %s spent %s over its limit %s", f.id, id, protocol.M(spent[id], l.Currency), l)
		}
	}
}

// fraud copies the fraud log and checks nothing got through.
func (c *counter) fraud(f *flight, fr *FlightReport) {
	l := f.fraud
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.run.cfg.Fraud && f != c.run.feeder {
		for k := fraudForged; k <= fraudDenyListed; k++ {
			if l.attempts[k.String()] == 0 {
				c.violation(&c.iv.FraudRejected, "%s: no %s attempt was made: the fraud run did not test it", f.id, k)
			}
		}
	}
	if len(l.attempts) == 0 {
		return
	}
	fr.Fraud, fr.Rejections = maps.Clone(l.attempts), maps.Clone(l.reasons)
	for k, n := range l.attempts {
		fr.FraudAttempts += n
		if a := l.accepted[k]; a > 0 {
			fr.FraudAccepted += a
			c.violation(&c.iv.FraudRejected, "%s: %d %s attempts approved", f.id, a, k)
		}
	}
}

// in returns the amount in currency cur of a per-currency list.
func in(ms []protocol.Money, cur protocol.Currency) int64 {
	var n int64
	for _, m := range ms {
		if m.Currency == cur {
			n += m.Minor
		}
	}
	return n
}

func money(minor int64, cur string) string { return protocol.M(minor, protocol.Currency(cur)).String() }

// writeQR writes a few payment codes as PNG files: the first flight's
// sample, and a fresh code from each of the first few eligible wallets.
func (r *run) writeQR() ([]string, error) {
	if err := os.MkdirAll(r.cfg.QROut, 0o755); err != nil {
		return nil, err
	}
	f := r.flights[0]
	var codes []string
	if f.sample != "" {
		codes = append(codes, f.sample)
	}
	for _, p := range f.pax {
		if len(codes) >= 4 {
			break
		}
		if p.eligible() {
			code, err := f.code(p)
			if err != nil {
				return nil, err
			}
			codes = append(codes, code)
		}
	}
	var files []string
	for i, code := range codes {
		png, version, err := protocol.RenderQR(code, 512)
		if err != nil {
			return nil, err
		}
		name := filepath.Join(r.cfg.QROut, fmt.Sprintf("%s-code-%d-v%d.png", f.id, i+1, version))
		if err := os.WriteFile(name, png, 0o644); err != nil {
			return nil, err
		}
		files = append(files, name)
	}
	return files, nil
}
