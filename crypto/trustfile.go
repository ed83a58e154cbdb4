package crypto

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Trust files hold a trust list for one purpose in text, one key a line:
//
//	# comment
//	airtab-issuer-pub:<64 hex> 2026-12-03T08:00:00Z 2036-12-03T08:00:00Z
//
// each key's text form, then its window [NotBefore, NotAfter) in RFC 3339.
// A line with the key alone trusts it with no window (WideWindow), so a
// public key file written by WritePublicKeyFile is a trust file of one key.
// Blank lines and lines starting with # are ignored.

// maxTrustFileSize bounds what a trust file read allocates, in bytes: far
// above MaxTrustListLen lines would need, and far above any real file.
const maxTrustFileSize = 1 << 20

// WideWindow is the window of a key given in a trust file without one: in
// effect, no window at all.
var WideWindow = [2]time.Time{time.Unix(0, 0).UTC(), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}

// WriteTrustFile writes keys, each with its window, to path with mode 0644,
// atomically replacing any file already there. heading, when not empty, is
// written first as comment lines.
func WriteTrustFile(path, heading string, keys []TrustedKey) error {
	var b strings.Builder
	for line := range strings.Lines(heading) {
		fmt.Fprintf(&b, "# %s\n", strings.TrimRight(line, "\n"))
	}
	for _, k := range keys {
		if err := k.check(); err != nil {
			return fmt.Errorf("write trust file %s: %w", path, err)
		}
		fmt.Fprintf(&b, "%s %s %s\n", k.Key, k.NotBefore.UTC().Format(time.RFC3339), k.NotAfter.UTC().Format(time.RFC3339))
	}
	text := strings.TrimSuffix(b.String(), "\n")
	return writeKeyFile(path, []byte(text), publicFileMode, true)
}

// ReadTrustFile reads a trust file of keys of purpose p (see WriteTrustFile)
// into a new trust list. It refuses an empty list, a key of another purpose,
// a window that does not parse or is empty, and the same key with the same
// window twice; the error names the file and the line.
func ReadTrustFile(path string, p Purpose) (*TrustList, error) {
	text, err := readFileLimited(path, maxTrustFileSize)
	if err != nil {
		return nil, err
	}
	t := &TrustList{}
	n := 0
	for line := range strings.Lines(text) {
		n++
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseTrustLine(line, p)
		if err == nil {
			err = t.Add(k)
		}
		if err != nil {
			return nil, fmt.Errorf("trust file %s line %d: %w", path, n, err)
		}
	}
	if t.Len() == 0 {
		return nil, fmt.Errorf("trust file %s: no %s key in it", path, p)
	}
	return t, nil
}

func parseTrustLine(line string, p Purpose) (TrustedKey, error) {
	f := strings.Fields(line)
	if len(f) != 1 && len(f) != 3 {
		return TrustedKey{}, fmt.Errorf("want a key, or a key, a valid-from time and a valid-until time (RFC 3339); got %d fields", len(f))
	}
	pub, err := ParsePublicKey(p, f[0])
	if err != nil {
		if got := keyTextKind(f[0]); got != "" && got != p.String()+" public key" {
			return TrustedKey{}, fmt.Errorf("holds %s, want %s", withArticle(got), withArticle(p.String()+" public key"))
		}
		return TrustedKey{}, err
	}
	k := TrustedKey{Key: pub, NotBefore: WideWindow[0], NotAfter: WideWindow[1]}
	if len(f) == 1 {
		return k, nil
	}
	if k.NotBefore, err = time.Parse(time.RFC3339, f[1]); err != nil {
		return TrustedKey{}, fmt.Errorf("valid-from %q: want an RFC 3339 time such as 2026-12-03T08:00:00Z", f[1])
	}
	if k.NotAfter, err = time.Parse(time.RFC3339, f[2]); err != nil {
		return TrustedKey{}, fmt.Errorf("valid-until %q: want an RFC 3339 time such as 2036-12-03T08:00:00Z", f[2])
	}
	return k, nil
}

// readFileLimited reads a regular file of at most limit bytes.
func readFileLimited(path string, limit int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read trust file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read trust file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("read trust file %s: not a regular file (mode %s)", path, fi.Mode())
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return "", fmt.Errorf("read trust file %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return "", fmt.Errorf("trust file %s: over the limit of %d bytes", path, limit)
	}
	return string(b), nil
}
