package clearing

import (
	"context"
	"fmt"
	"time"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/ground"
	"github.com/airtab/airtab/ground/registry"
	"github.com/airtab/airtab/protocol"
)

// verifyRetired reports whether one of aircraft a's keys from before a key
// rotation verifies a message for flight f that says it was signed at
// signedAt.
//
// A retired key is accepted only for a flight whose credential window
// (registry.CredentialWindow of the flight date) opened before the key was
// replaced. No passenger credential for f is valid before that window opens,
// so no sale or void of f, nor its close, can honestly have been signed
// before it: if the window opened after the rotation, everything f has was
// signed after it, by the new key. The flight date comes from the flight id,
// which the subject and the registry pin to this aircraft (checkFlight), and
// the window is ground's own rule, so the holder of the old key cannot move
// it. signedAt is the message's own time, chosen by whoever signed it: it can
// only refuse (a retired key that says it signed after its replacement), it
// never accepts. A key retired as compromised is accepted for nothing.
//
// It is asked only after the current key failed, so it costs nothing on the
// common path. A Directory without ground.AircraftKeyHistory has no retired
// keys.
func (s *Service) verifyRetired(ctx context.Context, a protocol.AircraftID, f protocol.FlightID, signedAt time.Time, verify func(crypto.PublicKey) error) (bool, error) {
	h, ok := s.cfg.Directory.(ground.AircraftKeyHistory)
	if !ok {
		return false, nil
	}
	opens, _ := registry.CredentialWindow(f.Date())
	if f.Date().IsZero() {
		return false, nil
	}
	keys, err := h.RetiredAircraftKeys(ctx, a)
	if err != nil {
		return false, fmt.Errorf("retired keys of aircraft %s: %w", a, err)
	}
	for _, k := range keys {
		switch {
		case k.Compromised, k.Key.Purpose() != crypto.Aircraft:
			continue
		case !opens.Before(k.ReplacedAt): // the flight began after the rotation
			continue
		case !signedAt.Before(k.ReplacedAt):
			continue
		}
		if verify(k.Key) == nil {
			return true, nil
		}
	}
	return false, nil
}
