//go:build unix

package store

import (
	"strings"
	"testing"
)

// TestLockDirShared: processes on a shared database share the data
// directory (shared locks), and an exclusive lock (ground keys, a ground
// with its database in the directory) is refused while one runs, and
// refuses them while it is held.
func TestLockDirShared(t *testing.T) {
	dir := t.TempDir()
	a, err := LockDirShared(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LockDirShared(dir)
	if err != nil {
		t.Fatalf("second shared lock: %v", err)
	}
	if f, err := LockDir(dir); err == nil || !strings.Contains(err.Error(), "in use by another ground service") {
		if f != nil {
			f.Close()
		}
		t.Fatalf("exclusive lock beside shared ones: %v, want refused as in use", err)
	}
	a.Close()
	b.Close()
	ex, err := LockDir(dir)
	if err != nil {
		t.Fatalf("exclusive lock once the shared ones are gone: %v", err)
	}
	defer ex.Close()
	if f, err := LockDirShared(dir); err == nil {
		f.Close()
		t.Fatal("shared lock beside an exclusive one: nil, want refused")
	}
}
