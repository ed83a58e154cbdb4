package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"sync"
)

// Every random choice of a run comes from a stream derived from the seed
// and a label, so one part's choices never shift another's: adding a fraud
// attempt does not change which passengers buy a coffee.

// seedBytes derives a ChaCha8 key from the run seed and a label.
func seedBytes(seed uint64, label string, i int) [32]byte {
	h := sha256.New()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], seed)
	binary.BigEndian.PutUint64(b[8:], uint64(i))
	h.Write(b[:])
	h.Write([]byte(label))
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// newRand returns the random stream named label and i.
func newRand(seed uint64, label string, i int) *rand.Rand {
	return rand.New(rand.NewChaCha8(seedBytes(seed, label, i)))
}

// newReader returns the byte stream named label and i, for keys and ids.
// It is not safe for concurrent use.
func newReader(seed uint64, label string, i int) io.Reader {
	return rand.NewChaCha8(seedBytes(seed, label, i))
}

// lockedReader makes a reader safe for concurrent use, for the parts that
// share one (ground's ids and PIN salts).
type lockedReader struct {
	mu sync.Mutex
	r  io.Reader
}

func (l *lockedReader) Read(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.r.Read(p)
}
