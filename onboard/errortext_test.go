package onboard_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/airtab/airtab/onboard"
	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// doubled returns the first prefix that a message repeats, as in "payment
// code QR: payment code QR: want prefix", or "" when there is none.
func doubled(msg string) string {
	parts := strings.Split(msg, ": ")
	for i := 1; i < len(parts); i++ {
		if parts[i] == parts[i-1] {
			return parts[i]
		}
	}
	for _, kind := range []string{"payment code", "order consent", "order"} {
		if strings.Count(msg, kind+" QR") > 1 || strings.Count(msg, kind+":") > 1 {
			return kind
		}
	}
	return ""
}

// TestErrorTextsSayTheirKindOnce: a malformed code's message names what
// was malformed once, not once per layer it passed.
func TestErrorTextsSayTheirKindOnce(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 1})
	c, _ := f.OpenCabin(f.SignManifest(nil), nil)
	for _, tc := range []struct {
		name, code, want string
	}{
		{"NoPrefix", "hello", `payment code QR: want prefix "AT1:"`},
		{"OtherVersion", "AT2:ABC", `payment code QR: unsupported version "AT2:"`},
		{"BadBase45", "AT1:abc", "payment code QR: bad Base45"},
		{"NotCOSE", "AT1:" + protocol.Base45Encode([]byte{1, 2, 3}), "payment code: not a COSE_Sign1 message"},
		{"ConsentBadBase45", "ATC1:abc", "order consent QR: bad Base45"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Authorize(ctx, sale(tc.code, coffee(1)...))
			e, ok := errors.AsType[*onboard.Error](err)
			if !ok || e.Reason != protocol.ReasonMalformed {
				t.Fatalf("err = %v, want a malformed-request error", err)
			}
			if !strings.HasPrefix(e.Message, tc.want) {
				t.Errorf("message %q, want it to start %q", e.Message, tc.want)
			}
			if d := doubled(e.Message); d != "" {
				t.Errorf("message %q says %q twice", e.Message, d)
			}
		})
	}
}

// TestManifestErrorSaysManifestOnce: a manifest that does not parse is
// "manifest: ...", not "manifest: manifest: ...".
func TestManifestErrorSaysManifestOnce(t *testing.T) {
	for name, raw := range map[string][]byte{"Empty": nil, "NotCOSE": {1, 2, 3}} {
		t.Run(name, func(t *testing.T) {
			_, err := onboard.VerifyManifest(raw, nil, onboard.Identity{}, time.Now(), nil)
			if err == nil {
				t.Fatal("VerifyManifest of garbage = nil error")
			}
			if msg := err.Error(); !strings.HasPrefix(msg, "manifest: ") || doubled(msg) != "" || strings.Count(msg, "manifest") != 1 {
				t.Errorf("error %q, want it to name the manifest once", msg)
			}
		})
	}
}
