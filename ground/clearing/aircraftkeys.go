package clearing

import (
	"context"
	"fmt"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/protocol"
)

// verifyRetired reports whether one of aircraft a's keys from before a key
// rotation verifies, for a message the aircraft says it signed at signedAt:
// a retired key stands only for what was signed before it was replaced.
// (Not also after its Since: an aircraft's clock may run a little behind
// ground's, and no key serves two aircraft.) It is asked only after the
// current key failed, so it costs nothing on the common path. A Directory without
// ground.AircraftKeyHistory has no retired keys.
func (s *Service) verifyRetired(ctx context.Context, a protocol.AircraftID, signedAt time.Time, verify func(crypto.PublicKey) error) (bool, error) {
	h, ok := s.cfg.Directory.(ground.AircraftKeyHistory)
	if !ok {
		return false, nil
	}
	keys, err := h.RetiredAircraftKeys(ctx, a)
	if err != nil {
		return false, fmt.Errorf("retired keys of aircraft %s: %w", a, err)
	}
	for _, k := range keys {
		if !signedAt.Before(k.ReplacedAt) || k.Key.Purpose() != crypto.Aircraft {
			continue
		}
		if verify(k.Key) == nil {
			return true, nil
		}
	}
	return false, nil
}
