package registry

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/airtab/airtab/protocol"
)

// rosterHash identifies a crew roster's content: SHA-256 over each
// member's id, role and PIN hash, length-framed, in roster order. The
// registry records the hash each manifest and delta carried, and a roster
// that hashes differently goes in the next delta (ManifestDelta.Crew).
func rosterHash(crew []protocol.CrewMember) []byte {
	h := sha256.New()
	h.Write([]byte("airtab/registry/roster/v1"))
	for _, m := range crew {
		for _, f := range []string{m.ID, m.Role, m.PINHash} {
			h.Write(binary.BigEndian.AppendUint32(nil, uint32(len(f))))
			h.Write([]byte(f))
		}
	}
	return h.Sum(nil)
}
