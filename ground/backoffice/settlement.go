package backoffice

import (
	"bytes"
	"net/http"
	"strings"
	"time"

	"github.com/airtab/airtab/ground/clearing"
)

// chartDays is how many days the settlement chart covers, ending on the
// day shown.
const chartDays = 14

// SettlementRow is one line of the settlement table.
type SettlementRow struct {
	Name string
	clearing.Amounts
}

func (s *Server) settlementPage(w http.ResponseWriter, r *http.Request, sess *session) {
	day := s.now()
	if v := r.URL.Query().Get("date"); v != "" {
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			s.fail(w, r, sess, http.StatusBadRequest, "date: want YYYY-MM-DD (UTC)")
			return
		}
		day = d
	}
	var days []*clearing.Settlement
	for i := chartDays - 1; i >= 0; i-- {
		st, err := s.reports.Settlement(r.Context(), day.AddDate(0, 0, -i))
		if err != nil {
			s.fail(w, r, sess, http.StatusInternalServerError, "", err)
			return
		}
		days = append(days, st)
	}
	today := days[len(days)-1]
	type currencyTable struct {
		clearing.SettlementLine
		Rows []SettlementRow
	}
	var tables []currencyTable
	for _, l := range today.Currencies {
		tables = append(tables, currencyTable{SettlementLine: l, Rows: []SettlementRow{
			{"Sales posted", l.Sales}, {"Sales voided", l.Voided}, {"Wallet charged", l.WalletCharged},
			{"Card captured", l.CardCaptured}, {"Settled", l.Settled}, {"Refunded", l.Refunded},
			{"Wallet top-ups", l.TopUps}, {"Entered collections (still open)", l.Collections},
		}})
	}
	s.render(w, r, http.StatusOK, "settlement", sess, map[string]any{
		"Day": today, "Tables": tables, "Charts": settlementChart(days),
		"Prev": day.AddDate(0, 0, -1).Format(time.DateOnly), "Next": day.AddDate(0, 0, 1).Format(time.DateOnly),
	})
}

// settlementDownload serves /settlement/YYYY-MM-DD.csv or .json with the
// report's own writers.
func (s *Server) settlementDownload(w http.ResponseWriter, r *http.Request, sess *session) {
	name := r.PathValue("day")
	base, isCSV := strings.CutSuffix(name, ".csv")
	if !isCSV {
		var ok bool
		if base, ok = strings.CutSuffix(name, ".json"); !ok {
			s.fail(w, r, sess, http.StatusNotFound, "Want settlement/YYYY-MM-DD.csv or .json.")
			return
		}
	}
	day, err := time.Parse(time.DateOnly, base)
	if err != nil {
		s.fail(w, r, sess, http.StatusBadRequest, "date: want YYYY-MM-DD (UTC)")
		return
	}
	st, err := s.reports.Settlement(r.Context(), day)
	if err != nil {
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	var buf bytes.Buffer
	if isCSV {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		err = st.WriteCSV(&buf)
	} else {
		w.Header().Set("Content-Type", "application/json")
		err = st.WriteJSON(&buf)
	}
	if err != nil {
		s.fail(w, r, sess, http.StatusInternalServerError, "", err)
		return
	}
	w.Header().Set("Content-Disposition", `attachment; filename="settlement-`+name+`"`)
	w.Write(buf.Bytes())
}
