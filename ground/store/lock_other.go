//go:build !unix

package store

import (
	"os"
	"path/filepath"
)

// LockDir creates dir's LOCK file; outside Unix it does not lock it, so
// there nothing stops a second ground service on the same data directory.
func LockDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
}

// LockDirShared is LockDir: outside Unix nothing is locked.
func LockDirShared(dir string) (*os.File, error) { return LockDir(dir) }
