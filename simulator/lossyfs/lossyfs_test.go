package lossyfs_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/airtab/airtab/simulator/lossyfs"
)

// setup mounts a lossy filesystem over a fresh backing directory.
func setup(t *testing.T) (*lossyfs.FS, string, string) {
	t.Helper()
	dir := t.TempDir()
	backing, mnt := filepath.Join(dir, "backing"), filepath.Join(dir, "mnt")
	for _, d := range []string{backing, mnt} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return lossyfs.MountForTest(t, backing, mnt), backing, mnt
}

// remount unmounts f (rolling back after a cut) and mounts again.
func remount(t *testing.T, f *lossyfs.FS) (*lossyfs.FS, lossyfs.Loss) {
	t.Helper()
	loss, err := f.Unmount()
	if err != nil {
		t.Fatal(err)
	}
	return lossyfs.MountForTest(t, f.Backing(), f.Dir()), loss
}

func mustWrite(t *testing.T, p string, data []byte, sync bool) {
	t.Helper()
	fh, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := fh.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := fh.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

func syncDir(t *testing.T, dir string) {
	t.Helper()
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", dir, err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestUnsyncedWritesDropped(t *testing.T) {
	f, _, mnt := setup(t)
	p := filepath.Join(mnt, "a")
	mustWrite(t, p, []byte("durable"), true)
	syncDir(t, mnt)
	mustWrite(t, p, []byte("LOST-LOST-LOST"), false) // overwrites and extends
	if got, want := readFile(t, p), "LOST-LOST-LOST"; got != want {
		t.Fatalf("before the cut: %q, want %q", got, want)
	}
	f.Cut()
	if err := os.WriteFile(filepath.Join(mnt, "after"), []byte("x"), 0o600); !errors.Is(err, syscall.EIO) {
		t.Fatalf("create after the cut: %v, want EIO", err)
	}
	f, loss := remount(t, f)
	if got, want := readFile(t, p), "durable"; got != want {
		t.Fatalf("after the cut: %q, want %q", got, want)
	}
	if loss.Files != 1 || loss.Bytes != 14 {
		t.Fatalf("loss = %v, want 1 file, 14 bytes", loss)
	}
	t.Log(loss)
	// A clean unmount keeps everything.
	mustWrite(t, p, []byte("kept"), false)
	f, _ = remount(t, f)
	if got, want := readFile(t, p), "kept"; got != want {
		t.Fatalf("after a clean unmount: %q, want %q", got, want)
	}
	_ = f
}

func TestDirectoryEntries(t *testing.T) {
	f, _, mnt := setup(t)
	mustWrite(t, filepath.Join(mnt, "old"), []byte("old"), true)
	mustWrite(t, filepath.Join(mnt, "target"), []byte("target"), true)
	syncDir(t, mnt)
	// Since the directory's last fsync: a new file fsynced itself, an
	// unlink, a rename over an existing file.
	mustWrite(t, filepath.Join(mnt, "new"), []byte("new"), true)
	if err := os.Remove(filepath.Join(mnt, "old")); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(mnt, "tmp"), []byte("replacement"), true)
	if err := os.Rename(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "target")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(mnt, "sub", "f"), []byte("f"), true)
	syncDir(t, filepath.Join(mnt, "sub")) // sub's entry itself is not durable
	f.Cut()
	f, loss := remount(t, f)
	t.Log(loss)
	entries, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got, want := fmt.Sprint(names), "[old target]"; got != want {
		t.Fatalf("entries after the cut = %v, want %v", got, want)
	}
	if got, want := readFile(t, filepath.Join(mnt, "target")), "target"; got != want {
		t.Fatalf("target = %q, want %q", got, want)
	}

	// Once the directory is fsynced, the same changes survive.
	mustWrite(t, filepath.Join(mnt, "tmp"), []byte("replacement"), true)
	if err := os.Rename(filepath.Join(mnt, "tmp"), filepath.Join(mnt, "target")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(mnt, "old")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	f.Cut()
	_, _ = remount(t, f)
	if got, want := readFile(t, filepath.Join(mnt, "target")), "replacement"; got != want {
		t.Fatalf("target = %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(mnt, "old")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("old after a durable unlink: %v", err)
	}
}

func TestTornWrite(t *testing.T) {
	f, _, mnt := setup(t)
	p := filepath.Join(mnt, "a")
	mustWrite(t, p, bytes.Repeat([]byte("d"), 100), true)
	syncDir(t, mnt)
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteAt(bytes.Repeat([]byte("x"), 50), 0)
	fh.WriteAt(bytes.Repeat([]byte("y"), 100), 50) // the last write: torn
	fh.Close()
	rng := rand.New(rand.NewPCG(7, 0))
	k := rand.New(rand.NewPCG(7, 0)).IntN(101)
	f.CutTorn(rng)
	_, loss := remount(t, f)
	want := bytes.Repeat([]byte("d"), 100)
	if k > 0 {
		want = append(want[:50], bytes.Repeat([]byte("y"), k)...)
		if len(want) < 100 {
			want = append(want, bytes.Repeat([]byte("d"), 100-len(want))...)
		}
	}
	if got := readFile(t, p); got != string(want) {
		t.Fatalf("after a torn cut (k=%d): %q, want %q", k, got, want)
	}
	if k > 0 && loss.Torn != 1 {
		t.Fatalf("loss = %v, want one torn file", loss)
	}
}

// TestSharedMmap writes through a shared mapping, as SQLite does to its
// WAL index: a second mapping sees the writes, fsync makes them durable,
// and writes after the fsync are dropped by a cut.
func TestSharedMmap(t *testing.T) {
	f, _, mnt := setup(t)
	p := filepath.Join(mnt, "shm")
	mustWrite(t, p, make([]byte, 8192), true)
	syncDir(t, mnt)
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := syscall.Mmap(int(fh.Fd()), 0, 8192, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("shared mmap: %v", err)
	}
	fh2, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := syscall.Mmap(int(fh2.Fd()), 0, 8192, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("second shared mmap: %v", err)
	}
	copy(m1[100:], "synced")
	if got := string(m2[100:106]); got != "synced" {
		t.Fatalf("second mapping reads %q, want %q", got, "synced")
	}
	if err := fh.Sync(); err != nil {
		t.Fatal(err)
	}
	copy(m2[5000:], "unsynced")
	if err := syscall.Munmap(m1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Munmap(m2); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	fh2.Close() // the last close writes the dirty page back
	f.Cut()
	_, _ = remount(t, f)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(b[100:106]); got != "synced" {
		t.Fatalf("synced bytes after the cut = %q", got)
	}
	if got := b[5000:5008]; !bytes.Equal(got, make([]byte, 8)) {
		t.Fatalf("unsynced bytes after the cut = %q, want zeros", got)
	}
}

// TestSQLiteWAL commits rows to a WAL database on the filesystem, with the
// journal's settings (synchronous=FULL, a writer and a reader connection
// sharing the WAL index), cuts the power with a transaction in flight, and
// finds every committed row and a sound database afterwards.
func TestSQLiteWAL(t *testing.T) {
	f, _, mnt := setup(t)
	ctx := context.Background()
	path := filepath.Join(mnt, "db.sqlite")
	open := func() (*sql.DB, *sql.DB) {
		dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)"
		w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
		if err != nil {
			t.Fatal(err)
		}
		w.SetMaxOpenConns(1)
		r, err := sql.Open("sqlite", dsn)
		if err != nil {
			t.Fatal(err)
		}
		return w, r
	}
	w, r := open()
	if _, err := w.ExecContext(ctx, `CREATE TABLE t (n INTEGER PRIMARY KEY, pad BLOB)`); err != nil {
		t.Fatal(err)
	}
	const committed = 250 // and 50 more after the checkpoint
	for i := range committed {
		if _, err := w.ExecContext(ctx, `INSERT INTO t VALUES (?, randomblob(300))`, i); err != nil {
			t.Fatal(err)
		}
		if i%50 == 0 {
			var n int
			if err := r.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != i+1 {
				t.Fatalf("reader sees %d rows (%v), want %d", n, err, i+1)
			}
		}
	}
	if _, err := w.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
		t.Fatalf("checkpoint: %v", err)
	}
	for i := range 50 { // after the checkpoint, into the WAL again
		if _, err := w.ExecContext(ctx, `INSERT INTO t VALUES (?, randomblob(300))`, committed+i); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (?, randomblob(300))`, committed+50+i); err != nil {
			t.Fatal(err)
		}
	}
	f.Cut() // the transaction never commits
	tx.Rollback()
	w.Close()
	r.Close()
	f, loss := remount(t, f)
	t.Log(loss)
	w, r = open()
	defer w.Close()
	defer r.Close()
	var n int
	if err := w.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != committed+50 {
		t.Fatalf("rows after the cut = %d, want %d", n, committed+50)
	}
	var ok string
	if err := w.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
	_ = f
}
