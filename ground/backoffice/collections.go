package backoffice

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/airtab/airtab/ground/clearing"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// maxArrearsListed bounds the arrears the collections screen lists.
const maxArrearsListed = 200

// Debtor is a passenger in arrears, with every open debt.
type Debtor struct {
	Passenger protocol.ID
	Since     time.Time        // the oldest open arrears
	Owed      []protocol.Money // per currency
	Debts     []Debt
	Score     int
	// DeniedOn lists the flights whose manifests and deltas carry the
	// passenger on their deny list: those they hold a live credential for.
	DeniedOn []protocol.FlightID
}

// Debt is one invoice in arrears.
type Debt struct {
	registry.Arrears
	Record clearing.InvoiceRecord
}

func (s *Server) debtors(ctx context.Context) ([]Debtor, bool, error) {
	list, more, err := s.reg.ListArrears(ctx, maxArrearsListed)
	if err != nil {
		return nil, false, err
	}
	byPax := map[protocol.ID]*Debtor{}
	var order []protocol.ID
	sums := map[protocol.ID]map[protocol.Currency]int64{}
	for _, a := range list {
		rec, ok, err := clearing.LookupInvoice(ctx, s.cfg.DB, a.Invoice)
		if err != nil {
			return nil, false, err
		}
		if !ok {
			return nil, false, fmt.Errorf("arrears of %s name invoice %s, which clearing does not hold", a.Passenger, a.Invoice)
		}
		d := byPax[a.Passenger]
		if d == nil {
			d = &Debtor{Passenger: a.Passenger, Since: a.MarkedAt}
			byPax[a.Passenger] = d
			sums[a.Passenger] = map[protocol.Currency]int64{}
			order = append(order, a.Passenger)
		}
		d.Debts = append(d.Debts, Debt{Arrears: a, Record: rec})
		sums[a.Passenger][rec.Total.Currency] += rec.Total.Minor
	}
	out := make([]Debtor, 0, len(order))
	for _, id := range order {
		d := byPax[id]
		for _, c := range slices.Sorted(maps.Keys(sums[id])) {
			d.Owed = append(d.Owed, protocol.M(sums[id][c], c))
		}
		p, err := s.reg.Passenger(ctx, id)
		if err != nil {
			return nil, false, err
		}
		d.Score = p.Score
		for _, c := range p.Credentials {
			if c.RevokedAt.IsZero() && !slices.Contains(d.DeniedOn, c.Signed.Body.Flight) {
				d.DeniedOn = append(d.DeniedOn, c.Signed.Body.Flight)
			}
		}
		out = append(out, *d)
	}
	return out, more, nil
}

func (s *Server) collectionsPage(w http.ResponseWriter, r *http.Request, sess *session) {
	ds, more, err := s.debtors(r.Context())
	if err != nil {
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	s.render(w, r, http.StatusOK, "collections", sess, map[string]any{
		"Debtors": ds, "More": more, "CanRetry": s.cfg.Retrier != nil, "Penalty": registry.ArrearsPenalty,
	})
}

// retry makes the passenger's declined charges due and runs a retry round
// at once.
func (s *Server) retry(w http.ResponseWriter, r *http.Request, sess *session) {
	if s.cfg.Retrier == nil {
		s.fail(w, r, sess, http.StatusServiceUnavailable, "Charges cannot be retried from here: this ground runs without its clearing service.")
		return
	}
	id, err := protocol.ParseID(r.PostFormValue("passenger"))
	if err != nil {
		s.fail(w, r, sess, http.StatusBadRequest, "passenger: "+err.Error())
		return
	}
	if err := s.cfg.Retrier.RetryPassenger(r.Context(), id); err != nil {
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	st, err := s.cfg.Retrier.RetryCollections(r.Context())
	if err != nil {
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	s.log.Info("back office retried charges", "passenger", id, "settled", st.Settled, "declined", st.Declined, "pending", st.Pending)
	done := fmt.Sprintf("Retried the charges of %s: %d settled, %d declined again, %d with no answer yet.", id, st.Settled, st.Declined, st.Pending)
	http.Redirect(w, r, Prefix+"collections?done="+url.QueryEscape(done), http.StatusSeeOther)
}
