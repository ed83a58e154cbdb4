package onboard

import (
	"context"
	"fmt"

	"github.com/airtab/airtab/crypto"
	"github.com/airtab/airtab/protocol"
)

// CheckCrew checks a crew member's PIN against the argon2id hash in the
// manifest and returns the crew record. A wrong crew id and a wrong PIN get
// the same answer and take about the same time (an unknown id is hashed
// against another member's record), so crew ids cannot be probed. The
// answer names the manifest the roster on board comes from (serial and
// issue time) and says ground may have a newer one: a crew member added on
// the ground since then is told why, and learns nothing a wrong PIN would
// not. At most PINConcurrency hashes run at once; the rest wait, bounded by
// ctx.
//
// Sign-in works on an expired manifest, so crew can still void, look up and
// close the flight; selling is refused by the sale rules.
func (c *Cabin) CheckCrew(ctx context.Context, crewID, pin string) (protocol.CrewMember, error) {
	m := c.manifest.Load()
	if m == nil {
		return protocol.CrewMember{}, ReasonErrorf(CodeUnavailable, protocol.ReasonNoManifest,
			"no flight manifest: crew cannot sign in until one is loaded")
	}
	member, known := m.CrewMember(crewID)
	hash := member.PINHash
	if !known {
		crew := m.Crew()
		if len(crew) == 0 {
			return protocol.CrewMember{}, notOnRoster(m)
		}
		hash = crew[0].PINHash
	}
	select {
	case c.pins <- struct{}{}:
	case <-ctx.Done():
		return protocol.CrewMember{}, Errorf(CodeUnavailable, "sign-in is busy: %v", context.Cause(ctx))
	}
	ok, err := crypto.VerifyPIN(hash, pin)
	<-c.pins
	if err != nil {
		return protocol.CrewMember{}, fmt.Errorf("crew %q: PIN hash in manifest serial %d: %w", crewID, m.Serial(), err)
	}
	if !ok || !known {
		return protocol.CrewMember{}, notOnRoster(m)
	}
	return member, nil
}

// notOnRoster is the answer to a sign-in the roster on board refuses: the
// same for an unknown crew id and a wrong PIN.
func notOnRoster(m *Manifest) *Error {
	return Errorf(CodeUnauthorized, "crew id and PIN not on the roster on board, which is from %s: "+
		"check the PIN; a crew member added since is on ground's newer roster, which reaches the aircraft at its next sync",
		m.RosterFrom())
}
