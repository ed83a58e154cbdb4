package clearing

import (
	"context"
	"errors"
	"fmt"

	"github.com/airtab/airtab/protocol"
)

// FlightOutcome says whether flight f has closed (its aircraft's
// flight-close report was received) and, if so, whether it reconciles
// (FlightReport.Reconciled). The back office's flight listing shows it as
// the flight's state; a closed flight's catalog can no longer change.
func (s *Service) FlightOutcome(ctx context.Context, f protocol.FlightID) (closed, reconciled bool, err error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM clearing_closes WHERE flight = ?`, string(f)).Scan(&n); err != nil {
		return false, false, fmt.Errorf("clearing: outcome of %s: %w", f, err)
	}
	if n == 0 {
		return false, false, nil
	}
	rep, err := s.Reports().Flight(ctx, f)
	if errors.Is(err, ErrNoData) {
		return true, false, nil
	}
	if err != nil {
		return true, false, fmt.Errorf("clearing: outcome of %s: %w", f, err)
	}
	return true, rep.Reconciled, nil
}
