package clearing

import (
	"context"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/airtab/airtab/protocol"
)

// What clearing says at info level, for an operator watching flights land:
// one line per flight per cleared batch ("invoices cleared": how many, what
// became of them in the report's buckets and by their names, posted being
// "posted, not yet charged", the amount), and one line when a closed flight's
// reconciliation verdict is reached or changes ("flight reconciled", or
// "flight not reconciled" with the problems).

// reconLog remembers, per flight whose close report clearing has seen, the
// last verdict it logged, so each verdict is logged once.
type reconLog struct {
	mu      sync.Mutex
	verdict map[protocol.FlightID]string // "" until logged; "reconciled" or the problems
}

// flightTally is what one batch cleared of one flight.
type flightTally struct {
	aircraft                               protocol.AircraftID
	invoices, sales, voids                 int
	settled, collections, posted, disputed int
	quarantined                            int
	sold                                   map[protocol.Currency]int64
}

// logCleared logs what the batch cleared, one line per flight, then the
// reconciliation verdict of every closed flight the batch touched.
func (s *Service) logCleared(ctx context.Context, items []*item) {
	tallies := map[protocol.FlightID]*flightTally{}
	var touched []protocol.FlightID
	for _, it := range items {
		if it.verdict == retry {
			continue
		}
		if it.kind == "close" && it.close != nil {
			s.recon.watch(it.close.Body.Flight)
			touched = append(touched, it.close.Body.Flight)
			continue
		}
		r := it.rec
		if r == nil {
			continue
		}
		t := tallies[r.Flight]
		if t == nil {
			t = &flightTally{aircraft: r.Aircraft, sold: map[protocol.Currency]int64{}}
			tallies[r.Flight] = t
			touched = append(touched, r.Flight)
		}
		t.invoices++
		if r.Kind == protocol.KindVoid {
			t.voids++
		} else {
			t.sales++
			t.sold[r.Total.Currency] += r.Total.Minor
		}
		switch r.Status {
		case StatusSettled:
			t.settled++
		case StatusCollections, StatusPendingRetry:
			// As in the report: a charge of unknown outcome is in
			// collections.
			t.collections++
		case StatusPosted:
			t.posted++
		case StatusDisputed:
			t.disputed++
		case StatusQuarantined:
			t.quarantined++
		}
	}
	for _, f := range slices.Sorted(maps.Keys(tallies)) {
		t := tallies[f]
		s.log.Info("invoices cleared", "flight", f, "aircraft", t.aircraft, "invoices", t.invoices, "sales", t.sales, "voids", t.voids,
			"settled", t.settled, "collections", t.collections, "posted", t.posted, "disputed", t.disputed, "quarantined", t.quarantined,
			"sales_amount", fmtMoney(sortedMoney(t.sold)))
	}
	s.logReconciliations(ctx, touched)
}

// logReconciliations logs the verdict of each watched flight among flights
// (every watched flight when flights is nil) whose verdict differs from the
// one logged last.
func (s *Service) logReconciliations(ctx context.Context, flights []protocol.FlightID) {
	for _, f := range s.recon.watched(flights) {
		rep, err := s.Reports().Flight(ctx, f)
		if err != nil {
			s.log.Warn("reconciliation not computed", "flight", f, "err", err)
			continue
		}
		verdict := "reconciled"
		if !rep.Reconciled {
			verdict = strings.Join(rep.Problems, "; ")
		}
		if !s.recon.changed(f, verdict) {
			continue
		}
		if rep.Reconciled {
			s.log.Info("flight reconciled", "flight", f, "aircraft", rep.Aircraft, "sales", rep.Received.Sales, "voids", rep.Received.Voids,
				"settled", fmtMoney(rep.Settled.Totals), "collections", fmtMoney(rep.Collections.Totals), "voided", fmtMoney(rep.Voided.Totals))
		} else {
			s.log.Info("flight not reconciled", "flight", f, "aircraft", rep.Aircraft, "problems", verdict)
		}
	}
}

// watch starts following flight f's verdict.
func (l *reconLog) watch(f protocol.FlightID) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.verdict == nil {
		l.verdict = map[protocol.FlightID]string{}
	}
	if _, ok := l.verdict[f]; !ok {
		l.verdict[f] = ""
	}
}

// watched returns the watched flights among flights (all of them when
// flights is nil), sorted and without repeats.
func (l *reconLog) watched(flights []protocol.FlightID) []protocol.FlightID {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []protocol.FlightID
	if flights == nil {
		out = slices.Collect(maps.Keys(l.verdict))
	}
	for _, f := range flights {
		if _, ok := l.verdict[f]; ok {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// changed records verdict v for f and reports whether it differs from the
// last one. A reconciled flight stops being watched until its next close.
func (l *reconLog) changed(f protocol.FlightID, v string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.verdict[f] == v {
		return false
	}
	if v == "reconciled" {
		delete(l.verdict, f)
	} else {
		l.verdict[f] = v
	}
	return true
}
