//go:build unix

package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDataDir takes an exclusive lock on dir's LOCK file for as long as the
// returned file stays open. Two cabin servers on one journal would each
// keep their own sequence and chain head in memory and write interleaved
// invoices into one file: the second is refused instead. The kernel drops
// the lock when the process ends, killed or not.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another cabin server (%s is locked)", dir, path)
		}
		return nil, fmt.Errorf("lock data dir: %s: %w", path, err)
	}
	return f, nil
}
