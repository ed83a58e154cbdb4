// Package lossyfs is a test filesystem that loses what was not synced when
// the power goes, as LazyFS does for Jepsen: a FUSE loopback over a backing
// directory (github.com/hanwen/go-fuse/v2) that remembers, for every file,
// what it held at its last fsync, and for every directory, the entries
// changed since its last fsync. Cut is the power cut: from that instant
// nothing more reaches the disk, and Unmount then rolls the backing
// directory back to what was durable. The power-loss trials put the cabin
// server's and ground's data directories on it.
//
// The durability rules, which are those POSIX promises and no more:
//
//   - File data: a write is durable once fsync or fdatasync of the file
//     returns. At a power cut every write since the file's last fsync is
//     dropped, size changes (truncate, extension) included. With tearing
//     (CutTorn), the last unsynced write of each file instead leaves a
//     prefix of a seeded number of bytes (none to all of it) on the disk,
//     as a disk does when the power fails in the middle of a write; the
//     earlier unsynced writes are still dropped.
//   - Directory entries: a create, link, unlink, rename or mkdir is durable
//     once the directory holding the entry is fsynced (both directories for
//     a rename). At a power cut the entries changed since then are put back
//     as they were: a file created since its directory's last fsync is gone
//     with its contents, even if the file itself was fsynced (ext4 may do
//     so with data=ordered; SQLite fsyncs the directory of a new WAL for
//     that reason); an unlinked or renamed-over file comes back.
//   - fsync of the backing files is not passed on: the backing directory
//     is on a disk that does not lose power during a test.
//   - Everything else (chmod, times, xattrs) passes through and is not
//     rolled back.
//
// Shared mmap works through the kernel's page cache (direct_io off, no
// writeback cache): pages dirtied through a mapping reach the filesystem
// as writes when the kernel writes them back, at the latest at fsync, and
// are rolled back like any other write. SQLite's WAL index (the -shm file)
// is such a mapping; it is never fsynced, and SQLite rebuilds it after a
// crash. File locks are the kernel's own (EnableLocks off), which is right
// for processes on one machine.
//
// The process that serves the filesystem must not map its files, nor run
// SQLite on it: a page fault on the mount blocks a thread that the Go
// runtime cannot stop, so a garbage collection waits for the fault while
// the fault waits for the server's goroutines, which the collection has
// stopped. Run the programs under test as child processes, and read what
// they left from the backing directory after Unmount.
//
// The filesystem is meant for tests: every write takes one lock and
// reads back the pages it overwrites, and the memory held for a file is
// bounded by its size at its last fsync.
package lossyfs

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// pageSize is the unit in which a file's durable contents are saved: the
// first write to a page since the file's last fsync saves the page.
const pageSize = 4096

// ErrUnavailable is wrapped by Mount's error when FUSE cannot be used here:
// no /dev/fuse, or mounting is not permitted.
var ErrUnavailable = errors.New("FUSE is not available")

// FS is a mounted lossy filesystem.
type FS struct {
	backing string // the backing directory
	mnt     string // the mount point
	trash   string // where unlinked and renamed-over entries wait, beside backing

	server *fuse.Server

	mu      sync.Mutex
	cut     bool
	tear    *rand.Rand            // tears last writes at the cut, when set
	armed   int                   // writes until the filesystem cuts itself; 0 when not armed
	armTear *rand.Rand            // the tear source for the armed cut
	cutCh   chan struct{}         // closed at the cut
	files   map[uint64]*fileState // files, by inode number, with writes since their last fsync
	entries []*entryOp            // directory changes not yet durable, oldest first
	rmdirs  map[uint64]bool       // inode numbers of directories removed by rmdir
	trashN  int                   // names in trash
}

// fileState is what a file held at its last fsync.
type fileState struct {
	fd       int              // the backing file, read-write
	origSize int64            // its size at the last fsync
	pages    map[int64][]byte // page index → its contents at the last fsync (within origSize)
	written  int64            // bytes written since the last fsync
	lastOff  int64            // the last unsynced write, for tearing
	last     []byte
}

// entryOp is a directory change since the last fsync of its directories.
type entryOp struct {
	what    string
	pending map[uint64]bool // directories still to be fsynced, by inode number
	undo    func() error
	in      []string // the directories' backing paths when it was made
	inos    []uint64 // and their inode numbers
}

// goneWith reports whether a directory the change was made in was removed
// by rmdir (under whatever name it had then: JetStream renames a store's
// directory before removing it) and is not at its old path when the changes
// newer than it are undone (newest first): that removal was durable (its
// parent was fsynced after it; one that was not is undone before this and
// the directory is back), so nothing in it comes back, as on a disk, where
// an entry lives only in its directory. A directory missing for any other
// reason (a rename that was durable while a change inside was not) is not
// skipped: its undo fails and the rollback says so, since POSIX does not
// promise the change survived.
func (e *entryOp) goneWith(rmdirs map[uint64]bool) bool {
	for i, d := range e.in {
		if !rmdirs[e.inos[i]] {
			continue
		}
		if _, err := os.Lstat(d); errors.Is(err, os.ErrNotExist) {
			return true
		}
	}
	return false
}

// Options configure Mount.
type Options struct {
	// Debug logs every FUSE request to stderr.
	Debug bool
}

// Mount mounts a lossy filesystem over the backing directory at mountpoint
// (both must exist). Mounting needs root (or fusermount3) and /dev/fuse;
// where either is missing the error wraps ErrUnavailable.
func Mount(backing, mountpoint string, opts Options) (*FS, error) {
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lossyfs: backing directory: %w", err)
	}
	f := &FS{backing: backing, mnt: mountpoint, files: map[uint64]*fileState{}, cutCh: make(chan struct{}),
		trash: filepath.Join(filepath.Dir(backing), "."+filepath.Base(backing)+".lossyfs-trash")}
	if err := os.MkdirAll(f.trash, 0o700); err != nil {
		return nil, fmt.Errorf("lossyfs: %w", err)
	}
	lr := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	root := &node{LoopbackNode: &fs.LoopbackNode{RootData: lr}, fs: f}
	lr.RootNode = root
	sec := time.Second
	zero := time.Duration(0)
	f.server, err = fs.Mount(mountpoint, root, &fs.Options{
		EntryTimeout: &sec, AttrTimeout: &sec, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{DirectMount: true, FsName: "lossyfs:" + backing, Name: "lossyfs", Debug: opts.Debug},
	})
	if err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.ENODEV) ||
			errors.Is(err, os.ErrNotExist) || strings.Contains(err.Error(), "fusermount") {
			return nil, fmt.Errorf("%w: mount %s: %v", ErrUnavailable, mountpoint, err)
		}
		return nil, fmt.Errorf("lossyfs: mount %s: %w", mountpoint, err)
	}
	return f, nil
}

// Dir is the mount point.
func (f *FS) Dir() string { return f.mnt }

// Backing is the backing directory.
func (f *FS) Backing() string { return f.backing }

// Sync makes everything written so far durable, as sync(1) does.
func (f *FS) Sync() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for n, st := range f.files {
		unix.Close(st.fd)
		delete(f.files, n)
	}
	f.entries = nil
}

// Cut is the power cut, without tearing: from now on every operation that
// would change a file or a directory fails with EIO, and nothing more
// becomes durable. Kill the processes using the filesystem, then Unmount
// to roll the backing directory back.
func (f *FS) Cut() { f.cutWith(nil) }

// CutTorn is Cut, and at Unmount the last unsynced write of each file
// leaves a prefix of a length drawn from rng on the disk.
func (f *FS) CutTorn(rng *rand.Rand) { f.cutWith(rng) }

func (f *FS) cutWith(rng *rand.Rand) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cutLocked(rng)
}

func (f *FS) cutLocked(rng *rand.Rand) {
	if f.cut {
		return
	}
	f.cut, f.tear, f.armed = true, rng, 0
	close(f.cutCh)
}

// CutAtWrite arms a power cut that falls in the middle of the n-th data
// write from now (n ≥ 1): that write reaches the file as an unsynced
// write, and the power goes before its caller can fsync it. With rng, the
// cut tears as CutTorn does. Wait on CutDone to kill the processes.
func (f *FS) CutAtWrite(n int, rng *rand.Rand) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.armed, f.armTear = max(n, 1), rng
}

// CutDone is closed once the power is cut, by Cut, CutTorn or an armed
// CutAtWrite.
func (f *FS) CutDone() <-chan struct{} { return f.cutCh }

// Loss is what a power cut dropped.
type Loss struct {
	Files   int   // files rolled back to their last fsync
	Bytes   int64 // bytes written to them since
	Torn    int   // files left with a torn prefix of their last write
	Entries int   // directory changes undone
}

// String says what was lost in one line.
func (l Loss) String() string {
	return fmt.Sprintf("%d files rolled back (%d bytes unsynced, %d torn), %d directory entries undone", l.Files, l.Bytes, l.Torn, l.Entries)
}

// Unmount unmounts the filesystem. After Cut it then rolls the backing
// directory back to what was durable at the cut and returns what was lost;
// without a cut it keeps everything, as a clean shutdown does. Every
// process must have closed its files on the mount first (a killed one
// has); Unmount retries for a few seconds while the mount is busy.
func (f *FS) Unmount() (Loss, error) {
	var err error
	for range 100 {
		if err = f.server.Unmount(); err == nil || !errors.Is(err, syscall.EBUSY) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		// Detach, so that the mount point does not outlive the test.
		derr := syscall.Unmount(f.mnt, syscall.MNT_DETACH)
		return Loss{}, fmt.Errorf("lossyfs: unmount %s: %w (lazy unmount: %v)", f.mnt, err, derr)
	}
	f.server.Wait()
	f.mu.Lock()
	defer f.mu.Unlock()
	var loss Loss
	if f.cut {
		loss, err = f.rollback()
	}
	for _, st := range f.files {
		unix.Close(st.fd)
	}
	f.files, f.entries = nil, nil
	return loss, errors.Join(err, os.RemoveAll(f.trash))
}

// rollback puts the backing directory back as it was durable: each file's
// saved pages and size, a torn prefix of its last write, then the
// directory changes undone newest first.
func (f *FS) rollback() (Loss, error) {
	var loss Loss
	var errs []error
	// In a fixed order, so that a seed gives the same tears.
	for _, ino := range slices.Sorted(maps.Keys(f.files)) {
		st := f.files[ino]
		loss.Files++
		loss.Bytes += st.written
		if err := unix.Ftruncate(st.fd, st.origSize); err != nil {
			errs = append(errs, err)
			continue
		}
		for p, b := range st.pages {
			if _, err := unix.Pwrite(st.fd, b, p*pageSize); err != nil {
				errs = append(errs, err)
			}
		}
		if f.tear != nil && len(st.last) > 0 {
			if k := f.tear.IntN(len(st.last) + 1); k > 0 {
				if _, err := unix.Pwrite(st.fd, st.last[:k], st.lastOff); err != nil {
					errs = append(errs, err)
				}
				loss.Torn++
			}
		}
	}
	for i := len(f.entries) - 1; i >= 0; i-- {
		e := f.entries[i]
		if e.goneWith(f.rmdirs) {
			continue
		}
		if err := e.undo(); err != nil {
			errs = append(errs, fmt.Errorf("undo %s: %w", e.what, err))
		}
		loss.Entries++
	}
	if err := errors.Join(errs...); err != nil {
		return loss, fmt.Errorf("lossyfs: roll back %s: %w", f.backing, err)
	}
	return loss, nil
}

// stateLocked returns the file's durable state, saving it on the first
// change since its last fsync: fd is a descriptor of the backing file to
// reopen, or -1 to open it by path.
func (f *FS) stateLocked(n *node, fd int) (*fileState, syscall.Errno) {
	if st := f.files[n.ino()]; st != nil {
		return st, 0
	}
	var rw int
	var err error
	if fd >= 0 {
		// Through /proc, so that a file already unlinked can be reopened.
		rw, err = unix.Open(fmt.Sprintf("/proc/self/fd/%d", fd), unix.O_RDWR|unix.O_CLOEXEC, 0)
	} else {
		rw, err = unix.Open(n.backingPath(), unix.O_RDWR|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, fs.ToErrno(err)
	}
	var s unix.Stat_t
	if err := unix.Fstat(rw, &s); err != nil {
		unix.Close(rw)
		return nil, fs.ToErrno(err)
	}
	st := &fileState{fd: rw, origSize: s.Size, pages: map[int64][]byte{}}
	f.files[n.ino()] = st
	return st, 0
}

// saveLocked saves the durable contents of the pages [off, end) that have
// not been saved since the file's last fsync.
func (st *fileState) saveLocked(off, end int64) syscall.Errno {
	end = min(end, st.origSize)
	for p := off / pageSize; p*pageSize < end; p++ {
		if _, ok := st.pages[p]; ok {
			continue
		}
		b := make([]byte, min(pageSize, st.origSize-p*pageSize))
		n, err := unix.Pread(st.fd, b, p*pageSize)
		if err != nil {
			return fs.ToErrno(err)
		}
		st.pages[p] = b[:n]
	}
	return 0
}

// syncLocked makes the file's writes durable.
func (f *FS) syncLocked(n *node) {
	if st := f.files[n.ino()]; st != nil {
		unix.Close(st.fd)
		delete(f.files, n.ino())
	}
}

// syncDirLocked makes the changes to dir's entries durable.
func (f *FS) syncDirLocked(dir *node) {
	kept := f.entries[:0]
	for _, e := range f.entries {
		delete(e.pending, dir.ino())
		if len(e.pending) > 0 {
			kept = append(kept, e)
		}
	}
	clear(f.entries[len(kept):])
	f.entries = kept
}

// logEntryLocked records a directory change in dirs and how to undo it.
func (f *FS) logEntryLocked(what string, undo func() error, dirs ...*node) {
	e := &entryOp{what: what, pending: map[uint64]bool{}, undo: undo}
	for _, d := range dirs {
		e.pending[d.ino()] = true
		e.in = append(e.in, d.backingPath())
		e.inos = append(e.inos, d.ino())
	}
	f.entries = append(f.entries, e)
}

// toTrashLocked moves the backing entry p aside and returns how to put it
// back.
func (f *FS) toTrashLocked(p string) (func() error, error) {
	f.trashN++
	t := filepath.Join(f.trash, fmt.Sprint(f.trashN))
	if err := os.Rename(p, t); err != nil {
		return nil, err
	}
	return func() error { return os.Rename(t, p) }, nil
}

// MountForTest mounts a lossy filesystem over backing at mountpoint for a
// test, and unmounts it (keeping everything, unless it was cut) when the
// test ends, if the test has not. Where FUSE is not available the test is
// skipped with the reason, except under CI=true, where it fails: CI has
// /dev/fuse and runs as root, and a skipped power-loss trial there would
// be a silent pass.
func MountForTest(tb testing.TB, backing, mountpoint string) *FS {
	tb.Helper()
	f, err := Mount(backing, mountpoint, Options{Debug: os.Getenv("AIRTAB_LOSSYFS_DEBUG") != ""})
	if errors.Is(err, ErrUnavailable) {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("power-loss test needs FUSE, and CI=true: %v", err)
		}
		tb.Skipf("FUSE not available, power-loss test skipped (it needs /dev/fuse and root, or fusermount3): %v", err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if f.mounted() {
			if _, err := f.Unmount(); err != nil {
				tb.Errorf("unmount at the end of the test: %v", err)
			}
		}
	})
	return f
}

// mounted reports whether Unmount has not run yet.
func (f *FS) mounted() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.files != nil
}
