// Package walletweb is the passenger web wallet: an installable web app
// (PWA) of plain HTML, CSS and JavaScript modules, embedded in the ground
// binary and served at /wallet/. It registers the passenger with a device
// key made in the browser (WebCrypto Ed25519, non-extractable, kept in
// IndexedDB), links funding, opts in to flights, and in the air makes
// payment codes and order consents with no network at all, from the
// protocol as protocol/SPEC.md writes it. After landing it shows the
// receipts and the final charge from ground's passenger API
// (protocol/passengerapi).
//
// Besides the files in static/, the handler serves sw.js, the service
// worker that caches the app, with its cache name derived from the files'
// hash and the list of files to cache filled in. Every answer carries the
// same security headers (setHeaders): a strict Content-Security-Policy
// with no inline script or style, no framing, no referrer, the camera for
// this origin only.
package walletweb

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"
)

//go:embed static
var files embed.FS

// Prefix is where ground serves the wallet.
const Prefix = "/wallet/"

// contentSecurityPolicy allows this origin's scripts, styles, workers and
// API calls only; media from the camera stream; QR canvases as blobs.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; " +
	"connect-src 'self'; media-src 'self' blob: mediastream:; worker-src 'self'; manifest-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Handler serves the wallet under Prefix.
type Handler struct {
	static  fs.FS
	files   http.Handler
	sw      []byte
	version string
	modTime time.Time
}

// New returns the wallet's handler.
func New() *Handler {
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic("walletweb: embedded static folder missing: " + err.Error())
	}
	h := &Handler{static: static, files: http.FileServerFS(static), modTime: time.Now().UTC().Truncate(time.Second)}
	names := fileList(static)
	h.version = contentVersion(static, names)
	sw, err := fs.ReadFile(static, "sw.js")
	if err != nil {
		panic("walletweb: embedded sw.js missing: " + err.Error())
	}
	cached := []string{"./"}
	for _, n := range names {
		if n != "sw.js" && !strings.HasSuffix(n, "LICENSE") && !strings.HasSuffix(n, "VERSION") {
			cached = append(cached, "./"+n)
		}
	}
	list, _ := json.Marshal(cached)
	sw = bytes.ReplaceAll(sw, []byte("__VERSION__"), []byte(h.version))
	h.sw = bytes.ReplaceAll(sw, []byte("__FILES__"), list)
	return h
}

// Version is the hash of the embedded files: the service worker's cache
// name.
func (h *Handler) Version() string { return h.version }

// ServeHTTP serves the app: Prefix itself is index.html.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setHeaders(w)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.Redirect(w, r, Prefix, http.StatusMovedPermanently)
		return
	}
	switch {
	case rest == "sw.js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeContent(w, r, "sw.js", h.modTime, bytes.NewReader(h.sw))
		return
	case strings.HasSuffix(rest, ".webmanifest"):
		w.Header().Set("Content-Type", "application/manifest+json")
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + rest
	h.files.ServeHTTP(w, r2)
}

// setHeaders sets the security headers of every answer: the one place
// they are decided.
func setHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Permissions-Policy", "camera=(self), microphone=(), geolocation=(), payment=()")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	// The service worker serves the app offline; the network copy is
	// always checked when there is a network.
	hd.Set("Cache-Control", "no-cache")
}

// fileList returns every embedded file's path, sorted.
func fileList(static fs.FS) []string {
	var names []string
	_ = fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	return names
}

// contentVersion hashes every embedded file's name and bytes.
func contentVersion(static fs.FS, names []string) string {
	sum := sha256.New()
	for _, n := range names {
		b, _ := fs.ReadFile(static, n)
		sum.Write([]byte(path.Clean(n) + "\x00"))
		sum.Write(b)
	}
	return hex.EncodeToString(sum.Sum(nil))[:16]
}
