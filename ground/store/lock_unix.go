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
func LockDir(dir string) (*os.File, error) { return lockDir(dir, syscall.LOCK_EX) }

// LockDirShared takes a shared lock on dir's LOCK file for as long as the
// returned file stays open: for ground processes on a shared database and
// an external NATS, whose data directory holds only their keys and token.
// Any number of them may share the directory (an API server and clearing
// workers on one machine); LockDir, which "ground keys" takes to change
// the keys, and a ground service that keeps its database or JetStream in
// the directory are refused while they run, and they while it does.
func LockDirShared(dir string) (*os.File, error) { return lockDir(dir, syscall.LOCK_SH) }

func lockDir(dir string, how int) (*os.File, error) {
	path := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another ground service (%s is locked)", dir, path)
		}
		return nil, fmt.Errorf("lock data dir: %s: %w", path, err)
	}
	return f, nil
}
