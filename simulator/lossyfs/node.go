package lossyfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a file or directory of the lossy filesystem: go-fuse's loopback
// node, with every change to data or entries recorded first so that a
// power cut can undo it. Files are keyed by inode number, which stays the
// same while the kernel forgets and looks up a node again: an unlinked
// file keeps its inode in the trash, so a number is not reused before
// Unmount.
type node struct {
	*fs.LoopbackNode
	fs *FS
}

var (
	_ fs.NodeWrapChilder    = (*node)(nil)
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeWriter         = (*node)(nil)
	_ fs.NodeWritever       = (*node)(nil)
	_ fs.NodeFsyncer        = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeAllocater      = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeTmpfiler       = (*node)(nil)
	_ fs.NodeOpendirHandler = (*node)(nil)
	_ fs.FileReaddirenter   = (*dirHandle)(nil)
	_ fs.FileFsyncdirer     = (*dirHandle)(nil)
	_ fs.FileReader         = (*handle)(nil)
	_ fs.FileGetattrer      = (*handle)(nil)
	_ fs.FileReleaser       = (*handle)(nil)
	_ fs.FileFlusher        = (*handle)(nil)
	_ fs.FileLseeker        = (*handle)(nil)
	_ fs.FileSetattrer      = (*handle)(nil)
	_ fs.FileAllocater      = (*handle)(nil)
	_ fs.FileFsyncer        = (*handle)(nil)
	_ fs.FileWriter         = (*handle)(nil)
	_ fs.InodeEmbedder      = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeLookuper       = (*node)(nil)
	_ fs.NodeReaddirer      = (*node)(nil)
	_ fs.NodeStatfser       = (*node)(nil)
	_ fs.NodeReadlinker     = (*node)(nil)
)

// WrapChild makes every node below the root a lossy node too.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), fs: n.fs}
}

func (n *node) ino() uint64 { return n.StableAttr().Ino }

// backingPath is the node's path in the backing directory.
func (n *node) backingPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.RootData.RootNode.EmbeddedInode()))
}

// child is the backing path of name in directory n.
func (n *node) child(name string) string { return filepath.Join(n.backingPath(), name) }

// handleFd returns the backing descriptor of an open file, or -1.
func handleFd(f fs.FileHandle) int {
	h, ok := f.(*handle)
	if !ok {
		return -1
	}
	if p, ok := h.inner.(fs.FilePassthroughFder); ok {
		if fd, ok := p.PassthroughFd(); ok {
			return fd
		}
	}
	return -1
}

// inner unwraps a lossy file handle.
func inner(f fs.FileHandle) fs.FileHandle {
	if h, ok := f.(*handle); ok {
		return h.inner
	}
	return f
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if flags&syscall.O_TRUNC != 0 {
		if f.cut {
			return nil, 0, syscall.EIO
		}
		st, errno := f.stateLocked(n, -1)
		if errno != 0 {
			return nil, 0, errno
		}
		if errno := st.saveLocked(0, st.origSize); errno != 0 {
			return nil, 0, errno
		}
	}
	fh, ff, errno := n.LoopbackNode.Open(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &handle{inner: fh}, ff, 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return nil, nil, 0, syscall.EIO
	}
	p := n.child(name)
	_, existed := os.Lstat(p)
	ch, fh, ff, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return nil, nil, 0, errno
	}
	if existed != nil {
		f.logEntryLocked("create "+p, func() error { return os.Remove(p) }, n)
	}
	return ch, &handle{inner: fh}, ff, 0
}

func (n *node) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return 0, syscall.EIO
	}
	st, errno := f.stateLocked(n, handleFd(fh))
	if errno != 0 {
		return 0, errno
	}
	if errno := st.saveLocked(off, off+int64(len(data))); errno != 0 {
		return 0, errno
	}
	st.lastOff, st.last = off, append(st.last[:0], data...)
	st.written += int64(len(data))
	w, ok := inner(fh).(fs.FileWriter)
	if !ok {
		return 0, syscall.EBADF
	}
	written, errno := w.Write(ctx, data, off)
	if f.armed > 0 {
		if f.armed--; f.armed == 0 {
			f.cutLocked(f.armTear)
		}
	}
	return written, errno
}

func (n *node) Writev(ctx context.Context, fh fs.FileHandle, data [][]byte, off int64) (uint32, syscall.Errno) {
	var all []byte
	for _, b := range data {
		all = append(all, b...)
	}
	return n.Write(ctx, fh, all, off)
}

// Fsync makes the file's writes durable (fsync and fdatasync alike); the
// backing file is not synced.
func (n *node) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	f.syncLocked(n)
	return 0
}

func (n *node) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	if size, ok := in.GetSize(); ok {
		st, errno := f.stateLocked(n, handleFd(fh))
		if errno != 0 {
			return errno
		}
		if errno := st.saveLocked(int64(size), st.origSize); errno != 0 {
			return errno
		}
	}
	return n.LoopbackNode.Setattr(ctx, inner(fh), in, out)
}

func (n *node) Allocate(ctx context.Context, fh fs.FileHandle, off, size uint64, mode uint32) syscall.Errno {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	st, errno := f.stateLocked(n, handleFd(fh))
	if errno != 0 {
		return errno
	}
	if errno := st.saveLocked(int64(off), int64(off+size)); errno != 0 {
		return errno
	}
	a, ok := inner(fh).(fs.FileAllocater)
	if !ok {
		return syscall.EBADF
	}
	return a.Allocate(ctx, off, size, mode)
}

// CopyFileRange is refused, so that copy_file_range falls back to reads
// and writes, which are recorded.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle,
	offOut, length uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.EOPNOTSUPP
}

// Tmpfile is refused: an O_TMPFILE file has no entry to drop.
func (n *node) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// created records a new entry in n that a power cut removes, unless n is
// fsynced first.
func (n *node) created(what, p string, dir bool) {
	undo := func() error { return os.Remove(p) }
	if dir {
		undo = func() error { return os.RemoveAll(p) }
	}
	n.fs.logEntryLocked(what+" "+p, undo, n)
}

// createEntry runs op, which makes the entry name in n on the backing
// directory, unless the power is cut, and logs the new entry so a cut
// before the directory's next fsync takes it away again.
func (n *node) createEntry(what, name string, dir bool, op func() (*fs.Inode, syscall.Errno)) (*fs.Inode, syscall.Errno) {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return nil, syscall.EIO
	}
	ch, errno := op()
	if errno == 0 {
		n.created(what, n.child(name), dir)
	}
	return ch, errno
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return n.createEntry("mkdir", name, true, func() (*fs.Inode, syscall.Errno) {
		return n.LoopbackNode.Mkdir(ctx, name, mode, out)
	})
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return n.createEntry("mknod", name, false, func() (*fs.Inode, syscall.Errno) {
		return n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	})
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return n.createEntry("symlink", name, false, func() (*fs.Inode, syscall.Errno) {
		return n.LoopbackNode.Symlink(ctx, target, name, out)
	})
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if t, ok := target.(*node); ok {
		target = t.LoopbackNode
	}
	return n.createEntry("link", name, false, func() (*fs.Inode, syscall.Errno) {
		return n.LoopbackNode.Link(ctx, target, name, out)
	})
}

// Unlink moves the entry to the trash, from where a power cut brings it
// back unless the directory is fsynced first.
func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	p := n.child(name)
	restore, err := f.toTrashLocked(p)
	if err != nil {
		return fs.ToErrno(err)
	}
	f.logEntryLocked("unlink "+p, restore, n)
	return 0
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	p := n.child(name)
	fi, err := os.Lstat(p)
	if err != nil {
		return fs.ToErrno(err)
	}
	if err := syscall.Rmdir(p); err != nil {
		return fs.ToErrno(err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok { // the same number as the node's: see fs.LoopbackRoot
		if f.rmdirs == nil {
			f.rmdirs = map[uint64]bool{}
		}
		f.rmdirs[st.Ino] = true
	}
	f.logEntryLocked("rmdir "+p, func() error { return os.Mkdir(p, fi.Mode().Perm()) }, n)
	return 0
}

// Rename renames within the backing directory; an entry it replaces goes
// to the trash first. A power cut undoes the rename unless both
// directories are fsynced first.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	f := n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	np, ok := newParent.(*node)
	if !ok || np.fs != f {
		return syscall.EXDEV
	}
	if flags&^unix.RENAME_NOREPLACE != 0 {
		return syscall.EINVAL // exchange and whiteout are not recorded
	}
	src, dst := n.child(name), np.child(newName)
	restoreDst := func() error { return nil }
	if fi, err := os.Lstat(dst); err == nil {
		if flags&unix.RENAME_NOREPLACE != 0 {
			return syscall.EEXIST
		}
		if fi.IsDir() {
			// An empty directory: rename(2) replaces it, and the undo
			// makes it again.
			restoreDst = func() error { return os.Mkdir(dst, fi.Mode().Perm()) }
		} else if restoreDst, err = f.toTrashLocked(dst); err != nil {
			return fs.ToErrno(err)
		}
	}
	if err := os.Rename(src, dst); err != nil {
		if rerr := restoreDst(); rerr != nil {
			return fs.ToErrno(fmt.Errorf("%w (and put back %s: %v)", err, dst, rerr))
		}
		return fs.ToErrno(err)
	}
	f.logEntryLocked("rename "+src+" "+dst, func() error {
		if err := os.Rename(dst, src); err != nil {
			return err
		}
		return restoreDst()
	}, n, np)
	return 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return nil, 0, errno
	}
	return &dirHandle{n: n, inner: fh}, ff, 0
}

// dirHandle is an open directory; its fsync makes the directory's entries
// durable.
type dirHandle struct {
	n     *node
	inner fs.FileHandle
}

func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return d.inner.(fs.FileReaddirenter).Readdirent(ctx)
}

func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	if s, ok := d.inner.(fs.FileSeekdirer); ok {
		return s.Seekdir(ctx, off)
	}
	return syscall.ENOTSUP
}

func (d *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	if r, ok := d.inner.(fs.FileReleasedirer); ok {
		r.Releasedir(ctx, flags)
	}
}

func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	f := d.n.fs
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.cut {
		return syscall.EIO
	}
	f.syncDirLocked(d.n)
	return 0
}

// handle is an open file. It hides the loopback file's passthrough
// descriptor, with which the kernel would write to the backing file
// directly, past the records a power cut needs; writes, fsync, truncation
// and allocation go through the node.
type handle struct {
	inner fs.FileHandle
}

func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	return h.inner.(fs.FileReader).Read(ctx, dest, off)
}

func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	return 0, syscall.EBADF // the node's Write is used
}

func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return syscall.EBADF // the node's Fsync is used
}

func (h *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return h.inner.(fs.FileGetattrer).Getattr(ctx, out)
}

func (h *handle) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EBADF // the node's Setattr is used
}

func (h *handle) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	return syscall.EBADF // the node's Allocate is used
}

func (h *handle) Release(ctx context.Context) syscall.Errno {
	return h.inner.(fs.FileReleaser).Release(ctx)
}

func (h *handle) Flush(ctx context.Context) syscall.Errno {
	return h.inner.(fs.FileFlusher).Flush(ctx)
}

func (h *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	return h.inner.(fs.FileLseeker).Lseek(ctx, off, whence)
}
