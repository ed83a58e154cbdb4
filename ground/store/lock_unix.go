//go:build unix

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockDir takes an exclusive lock on dir's LOCK file for as long as the
// returned file stays open. Two ground services on one data directory would
// share the database and JetStream's files with neither knowing: the second
// is refused instead. Readers (ground report) do not lock. The kernel drops
// the lock when the process ends, killed or not.
func LockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another ground service (%s is locked)", dir, path)
		}
		return nil, fmt.Errorf("lock data dir: %s: %w", path, err)
	}
	return f, nil
}
