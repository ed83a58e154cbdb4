package onboard_test

import (
	"testing"

	ft "github.com/airtab/airtab/onboard/internal/flighttest"
	"github.com/airtab/airtab/protocol"
)

// TestEveryBitFlipRefused flips each bit of a compact and of a full-form
// payment code in turn, re-encodes it as QR text and presents it: every one
// of them must be refused, and nothing written. Then the untouched codes
// are approved, so the refusals were the flips' doing.
func TestEveryBitFlipRefused(t *testing.T) {
	f := ft.New(t, ft.Options{Passengers: 2})
	c, j := f.OpenCabin(f.SignManifest(nil), nil)
	codes := map[string]string{"compact": f.Passengers[0].Code(), "full": f.Passengers[1].FullCode()}
	for name, code := range codes {
		raw, err := protocol.FromQRText(protocol.PrefixPaymentCode, code)
		if err != nil {
			t.Fatal(err)
		}
		refused := map[protocol.Reason]int{}
		for bit := range 8 * len(raw) {
			flipped := append([]byte(nil), raw...)
			flipped[bit/8] ^= 1 << (bit % 8)
			d, err := c.Authorize(ctx, sale(protocol.QRText(protocol.PrefixPaymentCode, flipped), coffee(1)...))
			r := reasonOf(t, d, err)
			if r == 0 {
				t.Fatalf("%s code with bit %d flipped was approved", name, bit)
			}
			refused[r]++
		}
		t.Logf("%s code, %d flips refused: %v", name, 8*len(raw), refused)
	}
	if n := countInvoices(t, j); n != 0 {
		t.Fatalf("%d invoices written by refused codes, want 0", n)
	}
	for name, code := range codes {
		if d, err := c.Authorize(ctx, sale(code, coffee(1)...)); err != nil || !d.Approved {
			t.Fatalf("untouched %s code: %+v, %v; want approved", name, d, err)
		}
	}
}
