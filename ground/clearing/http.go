package clearing

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/airtab/airtab/protocol"
)

// The back-office report API. It does no authentication: mount it behind
// the back-office token.
//
//	GET /v1/reports/flights/{flight}          the flight report, JSON: the summary and invoice_count
//	GET /v1/reports/flights/{flight}?sales=all                 and every invoice line
//	GET /v1/reports/flights/{flight}?sales=500[&after=SEQ]     and a page of lines (next_after: the next page's after)
//	GET /v1/reports/flights/{flight}.csv      one row per invoice, then the totals and the reconciled flag, CSV
//	GET /v1/reports/flights/{flight}?format=csv
//	GET /v1/reports/settlement?date=YYYY-MM-DD[&format=csv]
//
// Errors are JSON {"error": {"code": ..., "message": ...}} with code
// "invalid" (400), "not_found" (404) or "internal" (500, details logged).

// Handler returns the back-office report API.
func (r Reports) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/reports/flights/{flight}", r.serveFlight)
	mux.HandleFunc("GET /v1/reports/settlement", r.serveSettlement)
	return mux
}

func (r Reports) logger() *slog.Logger {
	if r.Logger == nil {
		return slog.Default()
	}
	return r.Logger
}

func (r Reports) serveFlight(w http.ResponseWriter, req *http.Request) {
	name, csvSuffix := strings.CutSuffix(req.PathValue("flight"), ".csv")
	format, err := ParseFormat(req.URL.Query().Get("format"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	if csvSuffix {
		format = FormatCSV
	}
	page, err := ParsePage(req.URL.Query().Get("sales"), req.URL.Query().Get("after"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	f, err := protocol.ParseFlightID(name)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	rep, err := r.Flight(req.Context(), f)
	if err != nil {
		r.fail(w, req, err)
		return
	}
	var buf bytes.Buffer
	if format == FormatCSV {
		err = rep.WriteCSV(&buf)
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+string(f)+`.csv"`)
	} else {
		err = rep.WriteJSONPage(&buf, page)
		w.Header().Set("Content-Type", "application/json")
	}
	if err != nil {
		r.fail(w, req, err)
		return
	}
	w.Write(buf.Bytes())
}

func (r Reports) serveSettlement(w http.ResponseWriter, req *http.Request) {
	q := req.URL.Query()
	format, err := ParseFormat(q.Get("format"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", err.Error())
		return
	}
	day, err := time.Parse(time.DateOnly, q.Get("date"))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid", "date: want YYYY-MM-DD (UTC)")
		return
	}
	s, err := r.Settlement(req.Context(), day)
	if err != nil {
		r.fail(w, req, err)
		return
	}
	var buf bytes.Buffer
	if format == FormatCSV {
		err = s.WriteCSV(&buf)
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	} else {
		err = s.WriteJSON(&buf)
		w.Header().Set("Content-Type", "application/json")
	}
	if err != nil {
		r.fail(w, req, err)
		return
	}
	w.Write(buf.Bytes())
}

func (r Reports) fail(w http.ResponseWriter, req *http.Request, err error) {
	if errors.Is(err, ErrNoData) {
		writeError(w, http.StatusNotFound, "not_found", err.Error())
		return
	}
	r.logger().Error("report failed", "path", req.URL.Path, "err", err)
	writeError(w, http.StatusInternalServerError, "internal", "internal error")
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	writeJSON(w, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}
