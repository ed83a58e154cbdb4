//go:build !unix

package app

import (
	"os"
	"path/filepath"
)

// lockDataDir creates dir's LOCK file; outside Unix it does not lock it, so
// there nothing stops a second cabin server on the same data directory.
func lockDataDir(dir string) (*os.File, error) {
	return os.OpenFile(filepath.Join(dir, "LOCK"), os.O_RDWR|os.O_CREATE, 0o600)
}
