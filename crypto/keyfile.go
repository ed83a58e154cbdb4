package crypto

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Key files hold one key's text form and a newline. Secret key files (private
// and seal keys) have mode 0600 and are refused, like ssh refuses an
// unprotected private key, when group or others have any access. Writes are
// atomic: a reader sees no file or the whole file, never part of one, even
// after a crash.

// maxKeyFileSize bounds what a key file read allocates, in bytes. Real key
// files are under 100 bytes.
const maxKeyFileSize = 4096

const (
	secretFileMode fs.FileMode = 0o600
	publicFileMode fs.FileMode = 0o644
)

// WriteKeyFile writes k's secret text form and a newline to a new file at
// path with mode 0600. It never overwrites: if path exists it fails with an
// error that names path and wraps fs.ErrExist.
func WriteKeyFile(path string, k PrivateKey) error {
	text, err := k.MarshalText()
	if err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return writeKeyFile(path, text, secretFileMode, false)
}

// ReadKeyFile reads a private key of purpose p written by WriteKeyFile. It
// refuses a file that group or others may access, and a file holding a key
// of another purpose or kind; the error names the path.
func ReadKeyFile(path string, p Purpose) (PrivateKey, error) {
	s, err := readKeyFile(path, true)
	if err != nil {
		return PrivateKey{}, err
	}
	k, err := ParsePrivateKey(p, s)
	if err != nil {
		return PrivateKey{}, keyFileParseError(path, s, p.String()+" private key", err)
	}
	return k, nil
}

// LoadOrCreateKeyFile reads the private key of purpose p at path, or, when
// there is no file, makes one from rnd (crypto/rand when nil) and writes it
// with WriteKeyFile. created reports whether the key is new. When two
// processes race to create the file, one creates it and both return its key.
func LoadOrCreateKeyFile(path string, p Purpose, rnd io.Reader) (k PrivateKey, created bool, err error) {
	k, err = ReadKeyFile(path, p)
	if !errors.Is(err, fs.ErrNotExist) {
		return k, false, err
	}
	if k, err = GenerateKey(p, rnd); err != nil {
		return PrivateKey{}, false, err
	}
	err = WriteKeyFile(path, k)
	if errors.Is(err, fs.ErrExist) {
		k, err = ReadKeyFile(path, p)
		return k, false, err
	}
	if err != nil {
		return PrivateKey{}, false, err
	}
	return k, true, nil
}

// WritePublicKeyFile writes k's text form and a newline to path with mode
// 0644, atomically replacing any file already there.
func WritePublicKeyFile(path string, k PublicKey) error {
	text, err := k.MarshalText()
	if err != nil {
		return fmt.Errorf("write public key file %s: %w", path, err)
	}
	return writeKeyFile(path, text, publicFileMode, true)
}

// ReadPublicKeyFile reads a public key of purpose p written by
// WritePublicKeyFile.
func ReadPublicKeyFile(path string, p Purpose) (PublicKey, error) {
	s, err := readKeyFile(path, false)
	if err != nil {
		return PublicKey{}, err
	}
	k, err := ParsePublicKey(p, s)
	if err != nil {
		return PublicKey{}, keyFileParseError(path, s, p.String()+" public key", err)
	}
	return k, nil
}

// WriteSealKeyFile writes k's secret text form and a newline to a new file at
// path with mode 0600. Like WriteKeyFile it never overwrites.
func WriteSealKeyFile(path string, k SealKey) error {
	text, err := k.MarshalText()
	if err != nil {
		return fmt.Errorf("write seal key file %s: %w", path, err)
	}
	return writeKeyFile(path, text, secretFileMode, false)
}

// ReadSealKeyFile reads a seal key written by WriteSealKeyFile, with the
// same mode checks as ReadKeyFile.
func ReadSealKeyFile(path string) (SealKey, error) {
	s, err := readKeyFile(path, true)
	if err != nil {
		return SealKey{}, err
	}
	k, err := ParseSealKey(s)
	if err != nil {
		return SealKey{}, keyFileParseError(path, s, "seal key", err)
	}
	return k, nil
}

// keyFileParseError says what the file holds when it holds the wrong kind of
// key, since "want prefix" alone leaves an operator guessing.
func keyFileParseError(path, s, want string, err error) error {
	if got := keyTextKind(s); got != "" && got != want {
		return fmt.Errorf("key file %s holds %s, want %s", path, withArticle(got), withArticle(want))
	}
	return fmt.Errorf("key file %s: %w", path, err)
}

func withArticle(kind string) string {
	if strings.HasPrefix(kind, "a") || strings.HasPrefix(kind, "i") {
		return "an " + kind
	}
	return "a " + kind
}

// keyTextKind names the kind of key text s starts with, or returns "".
func keyTextKind(s string) string {
	if strings.HasPrefix(s, sealPrefix) {
		return "seal key"
	}
	for p := range purposeNames {
		switch {
		case strings.HasPrefix(s, privPrefix(p)):
			return p.String() + " private key"
		case strings.HasPrefix(s, pubPrefix(p)):
			return p.String() + " public key"
		}
	}
	return ""
}

// readKeyFile returns the file's text without surrounding white space. For a
// secret file it first checks, on the open file, that only the owner has
// access.
func readKeyFile(path string, secret bool) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("read key file %s: not a regular file (mode %s)", path, fi.Mode())
	}
	// Windows has no Unix permission bits to check; Go reports 0666 there.
	if perm := fi.Mode().Perm(); secret && perm&0o077 != 0 && runtime.GOOS != "windows" {
		return "", fmt.Errorf("key file %s has mode %04o: group or others have access; want %04o (chmod %o %s)",
			path, perm, secretFileMode, secretFileMode, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return "", fmt.Errorf("read key file %s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return "", fmt.Errorf("key file %s: over the limit of %d bytes", path, maxKeyFileSize)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeKeyFile writes text and a newline to path atomically: a temporary file
// in the same directory is written, synced and then moved into place, and the
// directory is synced so the new name survives a crash. When replace is
// false the move is a hard link, which, unlike rename, fails if path exists,
// so two writers cannot both win.
func writeKeyFile(path string, text []byte, perm fs.FileMode, replace bool) error {
	if !replace {
		if _, err := os.Lstat(path); err == nil {
			return fmt.Errorf("write key file %s: %w", path, fs.ErrExist)
		}
	}
	dir := filepath.Dir(path)
	tmp, err := writeTempFile(dir, filepath.Base(path), append(text, '\n'), perm)
	if err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	defer os.Remove(tmp) // after a link or a failure; a no-op after a rename
	if replace {
		err = os.Rename(tmp, path)
	} else {
		err = os.Link(tmp, path)
	}
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("write key file %s: %w", path, fs.ErrExist)
	}
	if err != nil {
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("write key file %s: sync directory: %w", path, err)
	}
	return nil
}

// WriteFileAtomic replaces path with data, durably, the way key files are
// written: a temporary file with mode perm in the same directory, synced,
// renamed over path, then the directory synced, so a power cut leaves the
// old contents or the new, never a torn or vanished file.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := writeTempFile(dir, filepath.Base(path), data, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // a no-op after the rename
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// writeTempFile writes data to a new temporary file in dir with mode perm,
// syncs and closes it, and returns its name. On failure it leaves nothing.
func writeTempFile(dir, base string, data []byte, perm fs.FileMode) (name string, err error) {
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	// Chmod is not subject to the umask, so the mode is exactly perm.
	if err := f.Chmod(perm); err != nil {
		return "", err
	}
	if _, err := f.Write(data); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // directories cannot be opened for sync there
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
