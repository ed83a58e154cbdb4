// Package web is the crew handheld app: plain HTML, CSS and JavaScript
// modules embedded in the cabin server and served at "/" on its HTTPS
// listener, beside the JSON API under /v1 that the app calls. There is no
// build step and nothing is fetched from the internet: the aircraft has
// none.
//
// Besides the files in static/, the handler serves:
//
//	GET /sw.js         the service worker, with the cache name derived from the files' hash
//	GET /qr.png?t=TEXT a QR code of TEXT (at most MaxQRText bytes), for the two-way order QR
//	GET /ca.crt        the aircraft's CA certificate, when Config.CACert is set
//
// Every answer carries the same security headers (see setHeaders): a strict
// Content-Security-Policy with no inline script or style, no framing, no
// referrer, and the camera allowed for this origin only.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/airtab/airtab/protocol"
)

//go:embed static
var files embed.FS

// MaxQRText bounds the text /qr.png renders, in bytes: an order QR is about
// 200 characters; a full-form payment code, the longest Airtab QR, 1 200.
const MaxQRText = 1500

// qrSizePixels is the side of the order QR image: sharp on a 360 px wide
// screen at device scale 2 to 3.
const qrSizePixels = 600

// Config configures the app's handler.
type Config struct {
	// CACert is the aircraft CA's certificate in PEM, offered at /ca.crt
	// so a handheld can install it. Optional.
	CACert []byte
	// Logger receives structured logs. Default: discard.
	Logger *slog.Logger
}

// Handler serves the app.
type Handler struct {
	cfg     Config
	static  fs.FS
	files   http.Handler
	sw      []byte // sw.js with its cache version filled in
	version string
	modTime time.Time
}

// New returns the app's handler.
func New(cfg Config) *Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		panic("web: embedded static folder missing: " + err.Error())
	}
	h := &Handler{cfg: cfg, static: static, files: http.FileServerFS(static)}
	h.version = contentVersion(static)
	sw, err := fs.ReadFile(static, "sw.js")
	if err != nil {
		panic("web: embedded sw.js missing: " + err.Error())
	}
	shell, _ := json.Marshal(append([]string{"/"}, ShellFiles()...))
	sw = bytes.ReplaceAll(sw, []byte("__SHELL__"), shell)
	h.sw = bytes.ReplaceAll(sw, []byte("__VERSION__"), []byte(h.version))
	return h
}

// Version is the hash of the embedded files that names the service
// worker's cache: a new cabin server build replaces the cached shell.
func (h *Handler) Version() string { return h.version }

// ShellFiles lists the files the service worker caches: every embedded
// file except the service worker itself, as absolute paths.
func ShellFiles() []string {
	static, _ := fs.Sub(files, "static")
	var out []string
	fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && p != "sw.js" {
			out = append(out, "/"+p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// contentVersion is a short hash over every embedded file's path and bytes.
func contentVersion(static fs.FS) string {
	sum := sha256.New()
	fs.WalkDir(static, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(static, p)
		if err != nil {
			return err
		}
		sum.Write([]byte(p))
		sum.Write([]byte{0})
		sum.Write(b)
		return nil
	})
	return hex.EncodeToString(sum.Sum(nil))[:16]
}

// csp is the Content-Security-Policy of every answer: only this origin's
// scripts, styles, images and API; the camera stream and the order QR as
// blob or same-origin images; no inline code, no plugins, no framing.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"media-src 'self' blob: mediastream:; connect-src 'self'; worker-src 'self'; manifest-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// setHeaders sets the security headers of every answer: the one place they
// are set.
func setHeaders(w http.ResponseWriter) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	hd.Set("Cross-Origin-Resource-Policy", "same-origin")
	hd.Set("Permissions-Policy", "camera=(self), microphone=(), geolocation=(), payment=()")
	hd.Set("Strict-Transport-Security", "max-age=31536000")
}

// ServeHTTP serves the app's files, the service worker, order QR images and
// the CA certificate. Only GET and HEAD are answered.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	setHeaders(w)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch p := path.Clean(r.URL.Path); p {
	case "/sw.js":
		// The shell's freshness is the service worker's job; the worker
		// script itself must always be checked with the server.
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Service-Worker-Allowed", "/")
		w.Write(h.sw)
	case "/qr.png":
		h.qr(w, r)
	case "/ca.crt":
		h.caCert(w)
	default:
		if _, err := fs.Stat(h.static, strings.TrimPrefix(p, "/")); p != "/" && err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		h.files.ServeHTTP(w, r)
	}
}

func (h *Handler) qr(w http.ResponseWriter, r *http.Request) {
	text := r.URL.Query().Get("t")
	if text == "" || len(text) > MaxQRText {
		http.Error(w, "qr: parameter t must hold 1 to 1500 bytes of text", http.StatusBadRequest)
		return
	}
	png, _, err := protocol.RenderQR(text, qrSizePixels)
	if err != nil {
		http.Error(w, "qr: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(png)
}

func (h *Handler) caCert(w http.ResponseWriter) {
	if len(h.cfg.CACert) == 0 {
		http.Error(w, "this cabin server has no CA certificate", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/x-x509-ca-cert")
	w.Header().Set("Content-Disposition", `attachment; filename="airtab-cabin-ca.crt"`)
	w.Write(h.cfg.CACert)
}
