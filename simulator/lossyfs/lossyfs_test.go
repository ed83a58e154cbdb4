package lossyfs_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
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

// TestRemovedDirectory checks that a directory removed durably (its parent
// fsynced after the removal) stays removed at a cut, with the unsynced
// unlinks of what it held: nothing in it comes back, as JetStream's
// batch stores, made and removed around each atomic batch, need.
func TestRemovedDirectory(t *testing.T) {
	f, _, mnt := setup(t)
	d := filepath.Join(mnt, "batch")
	if err := os.MkdirAll(filepath.Join(d, "msgs"), 0o700); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(d, "msgs", "1.blk"), []byte("staged"), true)
	syncDir(t, filepath.Join(d, "msgs"))
	syncDir(t, d)
	syncDir(t, mnt)
	// Removed: the unlink in msgs is never synced (msgs is gone), the
	// removals of msgs and of the batch directory are.
	if err := os.RemoveAll(d); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	f.Cut()
	_, loss := remount(t, f)
	t.Log(loss)
	if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the durably removed directory after the cut: %v, want it gone", err)
	}
}

// TestRenamedThenRemovedDirectory checks the same for a directory renamed
// and then removed, as JetStream deletes a store: what was inside does not
// come back under either name.
func TestRenamedThenRemovedDirectory(t *testing.T) {
	f, _, mnt := setup(t)
	d := filepath.Join(mnt, "batch")
	if err := os.MkdirAll(filepath.Join(d, "msgs"), 0o700); err != nil {
		t.Fatal(err)
	}
	syncDir(t, d)
	syncDir(t, mnt)
	mustWrite(t, filepath.Join(d, "msgs", "1.blk"), []byte("staged"), true) // msgs is never fsynced
	gone := filepath.Join(mnt, "batch.deleting")
	if err := os.Rename(d, gone); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(gone); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	f.Cut()
	_, loss := remount(t, f)
	t.Log(loss)
	for _, p := range []string{d, gone} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s after the cut: %v, want it gone", p, err)
		}
	}
}

// TestRenamedDirectoryKeepsItsLoss checks that the rule above is for
// removed directories only: a file created in a directory that was never
// fsynced, which is then renamed durably, is not promised to survive, and
// the rollback says it cannot put that right rather than pass over it.
func TestRenamedDirectoryKeepsItsLoss(t *testing.T) {
	f, _, mnt := setup(t)
	d := filepath.Join(mnt, "d")
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	mustWrite(t, filepath.Join(d, "f"), []byte("unsynced entry"), true) // d itself is never fsynced
	if err := os.Rename(d, filepath.Join(mnt, "d2")); err != nil {
		t.Fatal(err)
	}
	syncDir(t, mnt)
	f.Cut()
	_, err := f.Unmount()
	if err == nil {
		t.Fatal("rollback after a durable rename of a directory holding an unsynced entry: no error, want one naming the entry it could not undo")
	}
	t.Log(err)
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

// childEnv names the work a child process of this test binary does on a
// lossy filesystem: the process that serves a FUSE filesystem must not map
// its files itself (see the package doc), so the mmap and SQLite tests run
// their writers as children.
const childEnv = "LOSSYFS_TEST_CHILD"

func TestMain(m *testing.M) {
	if work := os.Getenv(childEnv); work != "" {
		if err := runChild(work, os.Args[len(os.Args)-1]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(work, dir string) error {
	switch work {
	case "mmap":
		return mmapChild(filepath.Join(dir, "shm"))
	case "sqlite":
		return sqliteChild(filepath.Join(dir, "db.sqlite"))
	}
	return fmt.Errorf("unknown child work %q", work)
}

// startChild runs work in a child process on dir and waits until it says
// "ready" (or exits).
func startChild(t *testing.T, work, dir string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", dir)
	cmd.Env = append(os.Environ(), childEnv+"="+work)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, _ := bufio.NewReader(out).ReadString('\n')
	if line != "ready\n" {
		cmd.Wait()
		t.Fatalf("child %s: %q, %v", work, line, cmd.ProcessState)
	}
	return cmd
}

// mmapChild writes to p through two shared mappings: "synced" at 100,
// fsynced, then "unsynced" at 5000. It checks that the second mapping sees
// the first's write.
func mmapChild(p string) error {
	fh, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	m1, err := syscall.Mmap(int(fh.Fd()), 0, 8192, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("shared mmap: %w", err)
	}
	fh2, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	m2, err := syscall.Mmap(int(fh2.Fd()), 0, 8192, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("second shared mmap: %w", err)
	}
	copy(m1[100:], "synced")
	if got := string(m2[100:106]); got != "synced" {
		return fmt.Errorf("second mapping reads %q, want %q", got, "synced")
	}
	if err := fh.Sync(); err != nil {
		return err
	}
	copy(m2[5000:], "unsynced")
	if err := syscall.Munmap(m1); err != nil {
		return err
	}
	if err := syscall.Munmap(m2); err != nil {
		return err
	}
	fh.Close()
	fh2.Close() // the last close writes the dirty page back
	fmt.Println("ready")
	select {} // until killed
}

// TestSharedMmap writes through shared mappings, as SQLite does to its WAL
// index: a second mapping sees the writes, fsync makes them durable, and
// writes after the fsync are dropped by a cut.
func TestSharedMmap(t *testing.T) {
	f, backing, mnt := setup(t)
	p := filepath.Join(mnt, "shm")
	mustWrite(t, p, make([]byte, 8192), true)
	syncDir(t, mnt)
	child := startChild(t, "mmap", mnt)
	f.Cut()
	child.Process.Kill()
	child.Wait()
	loss, err := f.Unmount()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(loss)
	b, err := os.ReadFile(filepath.Join(backing, "shm"))
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

// SQLite as the journal sets it: WAL, synchronous=FULL, a writer and a
// reader connection sharing the WAL index.
const sqliteDSN = "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(5000)"

// sqliteCommitted is how many rows sqliteChild commits.
const sqliteCommitted = 300

// sqliteChild commits sqliteCommitted rows to a new database at path, a
// checkpoint in the middle, then leaves a transaction of 10000 more rows
// open, more than the page cache holds, so that SQLite has spilled some
// of it into the WAL unsynced, and says "ready".
func sqliteChild(path string) error {
	ctx := context.Background()
	w, err := sql.Open("sqlite", "file:"+path+sqliteDSN+"&_txlock=immediate")
	if err != nil {
		return err
	}
	w.SetMaxOpenConns(1)
	r, err := sql.Open("sqlite", "file:"+path+sqliteDSN)
	if err != nil {
		return err
	}
	if _, err := w.ExecContext(ctx, `CREATE TABLE t (n INTEGER PRIMARY KEY, pad BLOB)`); err != nil {
		return err
	}
	for i := range sqliteCommitted {
		if _, err := w.ExecContext(ctx, `INSERT INTO t VALUES (?, randomblob(300))`, i); err != nil {
			return err
		}
		if i%50 == 0 {
			var n int
			if err := r.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != i+1 {
				return fmt.Errorf("reader sees %d rows (%v), want %d", n, err, i+1)
			}
		}
		if i == sqliteCommitted/2 {
			if _, err := w.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`); err != nil {
				return fmt.Errorf("checkpoint: %w", err)
			}
		}
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	for i := range 10000 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO t VALUES (?, randomblob(300))`, sqliteCommitted+i); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	select {} // until killed
}

// TestSQLiteWAL has a child commit rows to a WAL database on the
// filesystem and cuts the power with a transaction open; every committed
// row is there afterwards, and the database is sound.
func TestSQLiteWAL(t *testing.T) {
	f, backing, mnt := setup(t)
	child := startChild(t, "sqlite", mnt)
	f.CutTorn(rand.New(rand.NewPCG(1, 2)))
	child.Process.Kill()
	child.Wait()
	loss, err := f.Unmount()
	if err != nil {
		t.Fatal(err)
	}
	t.Log(loss)
	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(backing, "db.sqlite")+sqliteDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != sqliteCommitted {
		t.Fatalf("rows after the cut = %d, want %d", n, sqliteCommitted)
	}
	var ok string
	if err := db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&ok); err != nil || ok != "ok" {
		t.Fatalf("integrity_check = %q, %v", ok, err)
	}
}
