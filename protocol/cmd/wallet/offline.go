package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/airtab/airtab/protocol"
)

// defaultPNGSize is the side of a --png image in pixels: large enough for a
// phone camera at arm's length.
const defaultPNGSize = 400

// codeCommand makes a payment code offline and shows it.
func codeCommand(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("code", fmt.Sprintf(`usage: wallet code --dir DIR --flight FLIGHT [--full] [--qr] [--png FILE]

Makes a fresh payment code for a flight the wallet holds a credential for,
with no network: signed by the device key over a counter that never repeats
and the current time. Prints the code's text ("%s…") on the last line of
stdout; above it the QR code drawn in the terminal when stdout is a terminal
(or with --qr). A cabin server accepts a code for a short while only (the
flight's code freshness, 120 s by default) and each code once: make it when
the crew is about to scan.

--full embeds the credential, for a cabin server whose manifest does not list
it yet (the passenger opted in after the aircraft last synced).
`, protocol.PrefixPaymentCode), stdout, stderr)
	dir := fs.String("dir", "", "wallet `directory`, made by wallet register (required)")
	flight := fs.String("flight", "", "flight `id`, for example XX123-2026-11-21 (required)")
	full := fs.Bool("full", false, "embed the credential in the code (longer; for a cabin server that has not synced it)")
	qr := fs.Bool("qr", false, "draw the QR code in the terminal (default: when stdout is a terminal; --qr=false never)")
	pngFile := fs.String("png", "", "also write the QR code as a PNG image to this `file`")
	pngSize := fs.Int("png-size", defaultPNGSize, "side of the --png image in `pixels`")
	if code, ok := parseFlags(fs, args, dir, stdout, stderr); !ok {
		return code
	}
	f, err := protocol.ParseFlightID(*flight)
	if err != nil {
		return usageError(stderr, fs.Name(), "--flight: %v", err)
	}
	if *pngSize < protocol.QRMinSizePixels || *pngSize > protocol.QRMaxSizePixels {
		return usageError(stderr, fs.Name(), "--png-size %d: want %d to %d pixels", *pngSize, protocol.QRMinSizePixels, protocol.QRMaxSizePixels)
	}
	showQR := isTerminal(stdout)
	if given(fs, "qr") {
		showQR = *qr
	}
	w, err := openWallet(*dir, false)
	if err != nil {
		return failure(stderr, fs.Name(), err)
	}
	cred, ok := w.Credential(f)
	if !ok {
		return failure(stderr, fs.Name(), fmt.Errorf("%w %s in %s: run wallet opt-in --dir %s --flight %s first", protocol.ErrNoCredential, f, *dir, *dir, f))
	}
	if v := validity(cred.Body, time.Now()); v != "" {
		fmt.Fprintf(stderr, "%s: warning: the credential for %s is valid from %s to %s%s: the cabin server will decline this code\n", fs.Name(), f,
			cred.Body.NotBefore.UTC().Format(time.RFC3339), cred.Body.NotAfter.UTC().Format(time.RFC3339), v)
	}
	text, err := w.PaymentCode(f, *full)
	if err != nil {
		return failure(stderr, fs.Name(), err)
	}
	if *pngFile != "" {
		img, _, err := protocol.RenderQR(text, *pngSize)
		if err != nil {
			return failure(stderr, fs.Name(), err)
		}
		// A code pays once, but until then whoever holds the image can
		// spend it: readable by the owner only.
		if err := os.WriteFile(*pngFile, img, 0o600); err != nil {
			return failure(stderr, fs.Name(), fmt.Errorf("--png: %w", err))
		}
	}
	if showQR {
		q, err := protocol.TerminalQR(text)
		if err != nil {
			return failure(stderr, fs.Name(), err)
		}
		fmt.Fprint(stdout, q)
	}
	fmt.Fprintln(stdout, text)
	return 0
}

// showCommand prints what the wallet holds, offline.
func showCommand(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("show", `usage: wallet show --dir DIR

Prints what the wallet holds, with no network: the device key, the passenger
it was registered as, and the credentials with their flights, limits and
validity.
`, stdout, stderr)
	dir := fs.String("dir", "", "wallet `directory`, made by wallet register (required)")
	if code, ok := parseFlags(fs, args, dir, stdout, stderr); !ok {
		return code
	}
	w, err := openWallet(*dir, false)
	if err != nil {
		return failure(stderr, fs.Name(), err)
	}
	creds := w.Credentials()
	line := func(k, format string, args ...any) {
		fmt.Fprintf(stdout, "%-13s %s\n", k, fmt.Sprintf(format, args...))
	}
	line("wallet", "%s", *dir)
	line("device", "%s", w.DeviceKey())
	line("device id", "%s", w.DeviceKey().ID())
	p, err := readPassenger(*dir)
	switch {
	case err != nil:
		return failure(stderr, fs.Name(), err)
	case !p.IsZero():
		line("passenger", "%s", p)
	case len(creds) > 0:
		line("passenger", "%s", creds[0].Body.Passenger)
	default:
		line("passenger", "not registered from this directory (wallet register)")
	}
	if len(creds) == 0 {
		line("credentials", "none (wallet opt-in)")
	}
	now := time.Now()
	for _, c := range creds {
		b := c.Body
		line("credential", "%s %s, %s per flight, %s per sale, valid to %s%s", b.Flight, b.ID, b.Limit, b.TxCap, b.NotAfter.UTC().Format(time.RFC3339), validity(b, now))
	}
	return 0
}
