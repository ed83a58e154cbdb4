package clearing

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/airtab/airtab/ground/ledger"
	"github.com/airtab/airtab/protocol"
)

// Reconciliation for the back office, in plain Go over what the queries in
// sqlite.go return: per flight, what the aircraft reported in its close
// against what ground received, settled, put in collections and voided;
// sequence gaps, hash-chain breaks and the chain head; totals to the minor
// unit per currency. And a daily settlement summary per currency.

// Reports builds reconciliation reports from the ground database.
type Reports struct {
	// DB is the ground database.
	DB *sql.DB
	// Clock stamps GeneratedAt. Default time.Now.
	Clock func() time.Time
	// Logger receives internal errors of the HTTP handler. Default
	// slog.Default().
	Logger *slog.Logger
}

// Reports returns the report builder over the service's database and clock.
func (s *Service) Reports() Reports { return Reports{DB: s.db, Clock: s.clock, Logger: s.log} }

func (r Reports) now() time.Time {
	if r.Clock == nil {
		return time.Now().UTC()
	}
	return r.Clock().UTC()
}

// ErrNoData is returned for a flight of which clearing holds nothing: no
// invoice, no reject, no close report.
var ErrNoData = errors.New("nothing received for this flight")

// FlightReport reconciles one flight.
type FlightReport struct {
	Flight      protocol.FlightID   `json:"flight"`
	Aircraft    protocol.AircraftID `json:"aircraft,omitempty"`
	GeneratedAt time.Time           `json:"generated_at"`
	// Reconciled is true only when everything matches: a close report,
	// every sequence number 1..LastSeq received once, the chain intact, its
	// head equal to the close report's, counts and totals equal, every
	// sale settled, in collections or voided, every void applied, nothing
	// quarantined, disputed or rejected.
	Reconciled bool     `json:"reconciled"`
	Problems   []string `json:"problems"` // why not, for a person

	Reported *Reported `json:"reported"` // the latest close report; nil if none
	Received Received  `json:"received"`

	Settled      Bucket `json:"settled"`       // sales paid
	Collections  Bucket `json:"collections"`   // sales declined or with a charge of unknown outcome
	Posted       Bucket `json:"posted"`        // sales posted to the ledger, not yet charged (status posted; the CSV's total "charging")
	Voided       Bucket `json:"voided"`        // sales reversed by a void
	Voids        Bucket `json:"voids"`         // void invoices applied
	VoidsPending Bucket `json:"voids_pending"` // void invoices whose sale has not arrived
	Quarantined  Bucket `json:"quarantined"`   // invoices that failed verification
	// Disputed: sales both signatures authorize, refused on the ground by
	// a rule the cabin server should have enforced; not charged, never
	// silently: the flight does not reconcile while any is open.
	Disputed Bucket `json:"disputed"`
	Rejected int    `json:"rejected"` // messages not authenticated, or conflicting
	// Garbage counts the messages on the flight's subjects that decode as
	// no message at all (reason malformed, no invoice id): stray bytes,
	// kept among the rejects for a look, that name no invoice and move no
	// money. Counted apart, they do not stop the flight reconciling.
	Garbage int           `json:"garbage"`
	Reasons []ReasonCount `json:"quarantine_reasons"`

	Gaps          []SeqRange    `json:"gaps"`           // missing sequence numbers, at most maxListed ranges
	Missing       uint64        `json:"missing"`        // how many sequence numbers are missing
	DuplicateSeqs []uint64      `json:"duplicate_seqs"` // sequence numbers received more than once
	BeyondLast    []uint64      `json:"beyond_last"`    // received above the reported LastSeq
	ChainBreaks   []ChainBreak  `json:"chain_breaks"`
	Head          protocol.Hash `json:"head"`         // hash of the received invoice at LastSeq
	HeadMatches   bool          `json:"head_matches"` // Head equals the close report's

	Invoices []ReportLine `json:"invoices"` // one per invoice, in sequence order
}

// Reported is what the aircraft's flight-close report says.
type Reported struct {
	ClosedAt   time.Time        `json:"closed_at"`
	ReceivedAt time.Time        `json:"received_at"`
	Sales      uint64           `json:"sales"`
	Voids      uint64           `json:"voids"`
	SalesTotal []protocol.Money `json:"sales_total"`
	VoidsTotal []protocol.Money `json:"voids_total"`
	LastSeq    uint64           `json:"last_seq"`
	Head       protocol.Hash    `json:"head"`
}

// Received is what ground received and authenticated for the flight.
type Received struct {
	Invoices   int              `json:"invoices"`
	Sales      int              `json:"sales"`
	Voids      int              `json:"voids"`
	SalesTotal []protocol.Money `json:"sales_total"`
	VoidsTotal []protocol.Money `json:"voids_total"`
	FirstSeq   uint64           `json:"first_seq"`
	LastSeq    uint64           `json:"last_seq"`
}

// Bucket counts invoices and sums their totals per currency.
type Bucket struct {
	Count  int              `json:"count"`
	Totals []protocol.Money `json:"totals"`

	sums map[protocol.Currency]int64
}

func (b *Bucket) add(m protocol.Money) {
	if b.sums == nil {
		b.sums = map[protocol.Currency]int64{}
	}
	b.Count++
	b.sums[m.Currency] += m.Minor
	b.Totals = sortedMoney(b.sums)
}

func sortedMoney(sums map[protocol.Currency]int64) []protocol.Money {
	out := make([]protocol.Money, 0, len(sums))
	for _, c := range slices.Sorted(maps.Keys(sums)) {
		out = append(out, protocol.M(sums[c], c))
	}
	return out
}

// SeqRange is a run of sequence numbers, From to To inclusive.
type SeqRange struct {
	From uint64 `json:"from"`
	To   uint64 `json:"to"`
}

// ChainBreak is an invoice whose Prev is not the hash of the invoice before
// it.
type ChainBreak struct {
	Seq     uint64        `json:"seq"`
	Invoice protocol.ID   `json:"invoice"`
	Prev    protocol.Hash `json:"prev"` // what the invoice says
	Want    protocol.Hash `json:"want"` // the hash of invoice Seq-1 as received
}

// ReasonCount counts quarantines and rejects by reason.
type ReasonCount struct {
	Code  protocol.Reason `json:"code"`
	Text  string          `json:"text"`
	Count int             `json:"count"`
}

// ReportLine is one invoice in a flight report: a record, or a rejected
// invoice message (Authenticated false).
type ReportLine struct {
	Seq           uint64          `json:"seq"`
	Invoice       protocol.ID     `json:"invoice"`
	Kind          string          `json:"kind"` // "sale", "void", or "unknown" for a reject that did not parse
	Status        Status          `json:"status"`
	Amount        protocol.Money  `json:"amount"` // zero for a reject
	Reason        protocol.Reason `json:"reason,omitzero"`
	Detail        string          `json:"detail,omitempty"`
	Decline       string          `json:"decline,omitempty"`
	Passenger     protocol.ID     `json:"passenger,omitzero"`
	Voids         protocol.ID     `json:"voids,omitzero"`
	Hash          protocol.Hash   `json:"hash"`
	Authenticated bool            `json:"authenticated"`
	ReceivedAt    time.Time       `json:"received_at"`
}

// maxListed bounds the gaps, duplicates and breaks a report lists.
const maxListed = 1000

// Flight builds the reconciliation report of flight f, in one read
// transaction. ErrNoData if clearing holds nothing for it.
func (r Reports) Flight(ctx context.Context, f protocol.FlightID) (*FlightReport, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	tx, err := r.DB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", f, err)
	}
	defer tx.Rollback()
	invs, err := flightInvoices(ctx, tx, f)
	if err != nil {
		return nil, err
	}
	rejects, err := flightRejects(ctx, tx, f)
	if err != nil {
		return nil, err
	}
	c, found, err := latestClose(ctx, tx, f)
	if err != nil {
		return nil, err
	}
	if len(invs) == 0 && len(rejects) == 0 && !found {
		return nil, fmt.Errorf("report %s: %w", f, ErrNoData)
	}
	var cp *CloseRecord
	if found {
		cp = &c
	}
	return buildFlightReport(f, invs, rejects, cp, r.now()), nil
}

// buildFlightReport is the reconciliation itself.
func buildFlightReport(f protocol.FlightID, invs []InvoiceRecord, rejects []RejectRecord, c *CloseRecord, now time.Time) *FlightReport {
	rep := &FlightReport{Flight: f, GeneratedAt: now}
	slices.SortStableFunc(invs, func(a, b InvoiceRecord) int {
		return cmp.Or(cmp.Compare(a.Seq, b.Seq), a.ReceivedAt.Compare(b.ReceivedAt))
	})
	if c != nil {
		rep.Aircraft = c.Aircraft
		rep.Reported = &Reported{
			ClosedAt: c.ClosedAt, ReceivedAt: c.ReceivedAt, Sales: c.Sales, Voids: c.Voids,
			SalesTotal: c.SalesTotal, VoidsTotal: c.VoidsTotal, LastSeq: c.LastSeq, Head: c.Head,
		}
	}
	reasons := map[protocol.Reason]int{}
	rep.tally(invs, reasons)
	rep.addRejects(rejects, reasons)
	for _, code := range slices.Sorted(maps.Keys(reasons)) {
		rep.Reasons = append(rep.Reasons, ReasonCount{Code: code, Text: code.String(), Count: reasons[code]})
	}
	rep.checkSequence(invs)
	rep.decide()
	return rep
}

// tally fills Received, the buckets and the lines from the records.
func (rep *FlightReport) tally(invs []InvoiceRecord, reasons map[protocol.Reason]int) {
	sales, voids := map[protocol.Currency]int64{}, map[protocol.Currency]int64{}
	for _, r := range invs {
		if rep.Aircraft == "" {
			rep.Aircraft = r.Aircraft
		}
		rep.Received.Invoices++
		if rep.Received.FirstSeq == 0 || r.Seq < rep.Received.FirstSeq {
			rep.Received.FirstSeq = r.Seq
		}
		rep.Received.LastSeq = max(rep.Received.LastSeq, r.Seq)
		kind := "sale"
		if r.Kind == protocol.KindVoid {
			kind = "void"
			rep.Received.Voids++
			voids[r.Total.Currency] += r.Total.Minor
		} else {
			rep.Received.Sales++
			sales[r.Total.Currency] += r.Total.Minor
		}
		rep.bucket(r).add(r.Total)
		if r.Status == StatusQuarantined || r.Status == StatusDisputed {
			reasons[r.Reason]++
		}
		rep.Invoices = append(rep.Invoices, ReportLine{
			Seq: r.Seq, Invoice: r.ID, Kind: kind, Status: r.Status, Amount: r.Total, Reason: r.Reason, Detail: r.Detail,
			Decline: r.Decline, Passenger: r.Passenger, Voids: r.Voids, Hash: r.Hash, Authenticated: true, ReceivedAt: r.ReceivedAt,
		})
	}
	rep.Received.SalesTotal, rep.Received.VoidsTotal = sortedMoney(sales), sortedMoney(voids)
}

// bucket returns the bucket an invoice record counts in.
func (rep *FlightReport) bucket(r InvoiceRecord) *Bucket {
	switch {
	case r.Status == StatusQuarantined:
		return &rep.Quarantined
	case r.Status == StatusDisputed:
		return &rep.Disputed
	case r.Kind == protocol.KindVoid && r.Status == StatusVoidPending:
		return &rep.VoidsPending
	case r.Kind == protocol.KindVoid:
		return &rep.Voids
	case r.Status == StatusSettled:
		return &rep.Settled
	case r.Status == StatusCollections || r.Status == StatusPendingRetry:
		return &rep.Collections
	case r.Status == StatusVoided:
		return &rep.Voided
	}
	return &rep.Posted
}

func (rep *FlightReport) addRejects(rejects []RejectRecord, reasons map[protocol.Reason]int) {
	for _, r := range rejects {
		if isGarbage(r) {
			rep.Garbage++
			continue
		}
		rep.Rejected++
		reasons[r.Reason]++
		if r.Kind != "invoice" {
			continue
		}
		kind := "invoice"
		if r.Invoice.IsZero() {
			kind = "unknown"
		}
		rep.Invoices = append(rep.Invoices, ReportLine{
			Seq: r.Seq, Invoice: r.Invoice, Kind: kind, Status: StatusQuarantined, Reason: r.Reason, Detail: r.Detail,
			Hash: r.Hash, ReceivedAt: r.ReceivedAt,
		})
	}
}

// isGarbage reports whether a reject decoded as no message at all: it
// names no invoice, so it can neither stand for a sale nor hide one.
func isGarbage(r RejectRecord) bool {
	return r.Reason == protocol.ReasonMalformed && r.Invoice.IsZero()
}

// checkSequence finds gaps, duplicates, numbers beyond the reported last,
// chain breaks and the head.
func (rep *FlightReport) checkSequence(invs []InvoiceRecord) {
	bySeq := map[uint64][]InvoiceRecord{}
	for _, r := range invs {
		bySeq[r.Seq] = append(bySeq[r.Seq], r)
	}
	last := rep.Received.LastSeq
	if rep.Reported != nil {
		last = rep.Reported.LastSeq
	}
	for s := uint64(1); s <= max(last, rep.Received.LastSeq); s++ {
		rs := bySeq[s]
		switch {
		case len(rs) == 0:
			rep.Missing++
			if n := len(rep.Gaps); n > 0 && rep.Gaps[n-1].To == s-1 {
				rep.Gaps[n-1].To = s
			} else if n < maxListed {
				rep.Gaps = append(rep.Gaps, SeqRange{From: s, To: s})
			}
			continue
		case len(rs) > 1 && len(rep.DuplicateSeqs) < maxListed:
			rep.DuplicateSeqs = append(rep.DuplicateSeqs, s)
		}
		if s > last && len(rep.BeyondLast) < maxListed {
			rep.BeyondLast = append(rep.BeyondLast, s)
		}
		prev := bySeq[s-1]
		if s > 1 && len(rs) == 1 && len(prev) == 1 && rs[0].Prev != prev[0].Hash && len(rep.ChainBreaks) < maxListed {
			rep.ChainBreaks = append(rep.ChainBreaks, ChainBreak{Seq: s, Invoice: rs[0].ID, Prev: rs[0].Prev, Want: prev[0].Hash})
		}
	}
	if rs := bySeq[last]; len(rs) == 1 {
		rep.Head = rs[0].Hash
	}
	rep.HeadMatches = rep.Reported != nil && rep.Head == rep.Reported.Head
}

// decide lists every problem and sets Reconciled when there is none.
func (rep *FlightReport) decide() {
	p := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	if rep.Reported == nil {
		p("no flight-close report received")
	} else {
		c := rep.Reported
		if uint64(rep.Received.Sales) != c.Sales || uint64(rep.Received.Voids) != c.Voids {
			p("aircraft reported %d sales and %d voids, ground received %d and %d", c.Sales, c.Voids, rep.Received.Sales, rep.Received.Voids)
		}
		if !sameTotals(rep.Received.SalesTotal, c.SalesTotal) {
			p("sales total: aircraft reported %s, ground received %s", fmtMoney(c.SalesTotal), fmtMoney(rep.Received.SalesTotal))
		}
		if !sameTotals(rep.Received.VoidsTotal, c.VoidsTotal) {
			p("voids total: aircraft reported %s, ground received %s", fmtMoney(c.VoidsTotal), fmtMoney(rep.Received.VoidsTotal))
		}
		if !rep.HeadMatches {
			p("chain head %s differs from the reported head %s", rep.Head, c.Head)
		}
	}
	if rep.Missing > 0 {
		p("%d sequence numbers missing", rep.Missing)
	}
	if len(rep.DuplicateSeqs) > 0 {
		p("%d sequence numbers received more than once", len(rep.DuplicateSeqs))
	}
	if len(rep.BeyondLast) > 0 {
		p("%d invoices beyond the reported last sequence number", len(rep.BeyondLast))
	}
	if len(rep.ChainBreaks) > 0 {
		p("hash chain broken at %d invoices", len(rep.ChainBreaks))
	}
	if rep.Posted.Count > 0 {
		p("%d sales posted, not yet charged", rep.Posted.Count)
	}
	if rep.VoidsPending.Count > 0 {
		p("%d voids whose sale has not arrived", rep.VoidsPending.Count)
	}
	if rep.Quarantined.Count > 0 {
		p("%d invoices quarantined", rep.Quarantined.Count)
	}
	if rep.Disputed.Count > 0 {
		p("%d sales disputed (approved on board, not charged): %s", rep.Disputed.Count, fmtMoney(rep.Disputed.Totals))
	}
	if rep.Rejected > 0 {
		p("%d messages rejected", rep.Rejected)
	}
	rep.Reconciled = len(rep.Problems) == 0
	if rep.Problems == nil {
		rep.Problems = []string{}
	}
}

// sameTotals compares per-currency totals, ignoring zero entries.
func sameTotals(a, b []protocol.Money) bool {
	m := func(ms []protocol.Money) map[protocol.Currency]int64 {
		out := map[protocol.Currency]int64{}
		for _, x := range ms {
			if x.Minor != 0 {
				out[x.Currency] += x.Minor
			}
		}
		return out
	}
	return maps.Equal(m(a), m(b))
}

func fmtMoney(ms []protocol.Money) string {
	if len(ms) == 0 {
		return "nothing"
	}
	s := ""
	for i, m := range ms {
		if i > 0 {
			s += ", "
		}
		s += m.String()
	}
	return s
}

// Settlement is the settlement summary of one UTC day, per currency.
type Settlement struct {
	Date       string           `json:"date"` // YYYY-MM-DD, UTC
	From       time.Time        `json:"from"`
	To         time.Time        `json:"to"` // exclusive
	Currencies []SettlementLine `json:"currencies"`
}

// SettlementLine is one currency's money movements of the day, from the
// ledger: sales posted and voided, charges settled (wallet and card) and
// refunded, wallet top-ups; and the sales that went to collections that day
// and are still there.
type SettlementLine struct {
	Currency      protocol.Currency `json:"currency"`
	Sales         Amounts           `json:"sales"`
	Voided        Amounts           `json:"voided"`
	WalletCharged Amounts           `json:"wallet_charged"`
	CardCaptured  Amounts           `json:"card_captured"`
	Settled       Amounts           `json:"settled"` // wallet charged + card captured
	Refunded      Amounts           `json:"refunded"`
	Net           protocol.Money    `json:"net"` // settled - refunded
	TopUps        Amounts           `json:"top_ups"`
	Collections   Amounts           `json:"collections"` // entered collections that day, still open
}

// Amounts is a count of transfers or invoices and their sum.
type Amounts struct {
	Count int64          `json:"count"`
	Total protocol.Money `json:"total"`
}

func (a *Amounts) add(n int64, m protocol.Money) {
	a.Count += n
	a.Total = protocol.M(a.Total.Minor+m.Minor, m.Currency)
}

// Settlement builds the settlement summary of the UTC day holding day.
func (r Reports) Settlement(ctx context.Context, day time.Time) (*Settlement, error) {
	from := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 0, 1)
	tx, err := r.DB.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("settlement %s: %w", from.Format(time.DateOnly), err)
	}
	defer tx.Rollback()
	totals, err := ledger.TotalsByCode(ctx, tx, from, to)
	if err != nil {
		return nil, err
	}
	coll, err := collectionsOpened(ctx, tx, from, to)
	if err != nil {
		return nil, err
	}
	return buildSettlement(from, to, totals, coll), nil
}

func buildSettlement(from, to time.Time, totals []ledger.CodeTotal, coll map[protocol.Currency]bucketSum) *Settlement {
	lines := map[protocol.Currency]*SettlementLine{}
	line := func(c protocol.Currency) *SettlementLine {
		if lines[c] == nil {
			z := protocol.M(0, c)
			lines[c] = &SettlementLine{Currency: c, Net: z}
			for _, a := range []*Amounts{&lines[c].Sales, &lines[c].Voided, &lines[c].WalletCharged, &lines[c].CardCaptured,
				&lines[c].Settled, &lines[c].Refunded, &lines[c].TopUps, &lines[c].Collections} {
				a.Total = z
			}
		}
		return lines[c]
	}
	for _, t := range totals {
		l := line(t.Amount.Currency)
		switch {
		case t.Code == ledger.TransferSale && !t.Reversal:
			l.Sales.add(t.Count, t.Amount)
		case t.Code == ledger.TransferSale:
			l.Voided.add(t.Count, t.Amount)
		case t.Code == ledger.TransferWalletCharge && !t.Reversal:
			l.WalletCharged.add(t.Count, t.Amount)
			l.Settled.add(t.Count, t.Amount)
		case t.Code == ledger.TransferCardCapture && !t.Reversal:
			l.CardCaptured.add(t.Count, t.Amount)
			l.Settled.add(t.Count, t.Amount)
		case t.Code == ledger.TransferWalletCharge || t.Code == ledger.TransferCardCapture:
			l.Refunded.add(t.Count, t.Amount)
		case t.Code == ledger.TransferTopUp && !t.Reversal:
			l.TopUps.add(t.Count, t.Amount)
		}
	}
	for c, b := range coll {
		line(c).Collections.add(b.count, protocol.M(b.minor, c))
	}
	s := &Settlement{Date: from.Format(time.DateOnly), From: from, To: to, Currencies: []SettlementLine{}}
	for _, c := range slices.Sorted(maps.Keys(lines)) {
		l := lines[c]
		l.Net = protocol.M(l.Settled.Total.Minor-l.Refunded.Total.Minor, c)
		s.Currencies = append(s.Currencies, *l)
	}
	return s
}
