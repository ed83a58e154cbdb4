package protocol

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/makiuchi-d/gozxing"
	zxqr "github.com/makiuchi-d/gozxing/qrcode"
	"github.com/makiuchi-d/gozxing/qrcode/decoder"
	"github.com/makiuchi-d/gozxing/qrcode/detector"
)

// qrModeAlphanumeric is the 4-bit QR mode indicator of alphanumeric mode
// (ISO/IEC 18004 table 2); byte mode is 0b0100.
const qrModeAlphanumeric = 0b0010

// scannedQR is what an independent decoder (gozxing) reads from an image.
type scannedQR struct {
	text    string
	version int    // read from the symbol's version information or its size
	ecLevel string // error-correction level letter
	mode    byte   // mode indicator of the first segment
}

// scanQR decodes the QR code in img with gozxing, reading the version from
// the detected symbol since gozxing does not put it in the result metadata.
func scanQR(t *testing.T, img image.Image) scannedQR {
	t.Helper()
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatalf("gozxing bitmap: %v", err)
	}
	res, err := zxqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("gozxing decode: %v", err)
	}
	black, err := bmp.GetBlackMatrix()
	if err != nil {
		t.Fatalf("gozxing black matrix: %v", err)
	}
	det, err := detector.NewDetector(black).Detect(nil)
	if err != nil {
		t.Fatalf("gozxing detect: %v", err)
	}
	parser, err := decoder.NewBitMatrixParser(det.GetBits())
	if err != nil {
		t.Fatalf("gozxing bit matrix parser: %v", err)
	}
	v, err := parser.ReadVersion()
	if err != nil {
		t.Fatalf("gozxing read version: %v", err)
	}
	ec, _ := res.GetResultMetadata()[gozxing.ResultMetadataType_ERROR_CORRECTION_LEVEL].(string)
	raw := res.GetRawBytes()
	if len(raw) == 0 {
		t.Fatalf("gozxing returned no raw bytes")
	}
	return scannedQR{text: res.GetText(), version: v.GetVersionNumber(), ecLevel: ec, mode: raw[0] >> 4}
}

// randomBase45 returns Base45 text of n seeded random bytes.
func randomBase45(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.UintN(256))
	}
	return Base45Encode(b)
}

// TestRenderQRRoundTrip renders PNGs, decodes them with image/png and reads
// them back with gozxing, which checks the text, version, level and mode
// independently of go-qrcode.
func TestRenderQRRoundTrip(t *testing.T) {
	const seed = 6
	rng := rand.New(rand.NewPCG(seed, seed))
	payment := "AT1:" + randomBase45(rng, 97)
	version10Text := "AT1:" + randomBase45(rng, 250)
	for _, tc := range []struct {
		name      string
		text      string
		size      int
		alphaMode bool
	}{
		{"PaymentCode", payment, 256, true},
		{"PaymentCodeOddSize", payment, 333, true},
		{"PaymentCodeMinSize", payment, 64, true},
		{"ShortAlnum", "AB", 64, true},
		{"ByteMode", "airtab: hello, cabin 12C ünïcode", 200, false},
		{"Version10Plus", version10Text, 512, true},
		{"Version10PlusOnePixelModules", version10Text, 80, true},
		{"Version27Plus", "AT1:" + randomBase45(rng, 1100), 2048, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pngBytes, version, err := RenderQR(tc.text, tc.size)
			if err != nil {
				t.Fatalf("RenderQR(%d chars, %d): %v", len(tc.text), tc.size, err)
			}
			img, err := png.Decode(bytes.NewReader(pngBytes))
			if err != nil {
				t.Fatalf("png.Decode: %v", err)
			}
			if got, want := img.Bounds(), image.Rect(0, 0, tc.size, tc.size); got != want {
				t.Fatalf("image bounds = %v, want %v", got, want)
			}
			scan := scanQR(t, img)
			if scan.text != tc.text {
				t.Fatalf("scanned text = %q, want %q", scan.text, tc.text)
			}
			if got, want := scan.version, version; got != want {
				t.Errorf("scanned version = %d, RenderQR reported %d", got, want)
			}
			if qv, err := QRVersion(tc.text); err != nil || qv != version {
				t.Errorf("QRVersion = %d, %v; RenderQR reported %d", qv, err, version)
			}
			if got, want := scan.ecLevel, QRLevel; got != want {
				t.Errorf("scanned error-correction level = %q, want %q", got, want)
			}
			if isAlpha := scan.mode == qrModeAlphanumeric; isAlpha != tc.alphaMode {
				t.Errorf("first segment mode = %04b, want alphanumeric %v", scan.mode, tc.alphaMode)
			}
			t.Logf("%d chars: version %d, %d-byte PNG at %d px", len(tc.text), version, len(pngBytes), tc.size)
		})
	}
}

// TestQRVersionPaymentCode checks that a 150-character payment code fits
// version 6 at level M, which it only does in alphanumeric mode (6-M holds
// 154 alphanumeric characters but 106 bytes).
func TestQRVersionPaymentCode(t *testing.T) {
	const seed = 97
	rng := rand.New(rand.NewPCG(seed, seed))
	text := "AT1:" + randomBase45(rng, 97)
	if got, want := len(text), 150; got != want {
		t.Fatalf("len(text) = %d, want %d", got, want)
	}
	v, err := QRVersion(text)
	if err != nil {
		t.Fatal(err)
	}
	if v > 6 {
		t.Fatalf("QRVersion(150 alphanumeric chars) = %d, want <= 6", v)
	}
	t.Logf("150 alphanumeric characters: version %d-M", v)
}

// TestQRVersionCapacity pins the version 6/7 boundary of level M (ISO/IEC
// 18004 table 7) for both modes, so a change of mode or level shows up.
func TestQRVersionCapacity(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want int
	}{
		{"Alnum154", strings.Repeat("A", 154), 6},
		{"Alnum155", strings.Repeat("A", 155), 7},
		{"Base45Alphabet154", strings.Repeat(base45Alphabet, 4)[:154], 6},
		{"Byte106", strings.Repeat("a", 106), 6},
		{"Byte107", strings.Repeat("a", 107), 7},
		{"Alnum20", strings.Repeat("Z", 20), 1},
		{"Alnum21", strings.Repeat("Z", 21), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := QRVersion(tc.text)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("QRVersion(%d chars) = %d, want %d", len(tc.text), got, tc.want)
			}
		})
	}
}

func TestRenderQRErrors(t *testing.T) {
	tooBigForSmallImage := strings.Repeat("A", 2000) // needs a version over 11, more than 64 modules
	for _, tc := range []struct {
		name    string
		text    string
		size    int
		wantErr string
	}{
		{"ErrSizeZero", "AB", 0, "outside [64, 2048]"},
		{"ErrSizeNegative", "AB", -4, "outside [64, 2048]"},
		{"ErrSizeBelowMin", "AB", QRMinSizePixels - 1, "size 63 px outside [64, 2048]"},
		{"ErrSizeAboveMax", "AB", QRMaxSizePixels + 1, "size 2049 px outside [64, 2048]"},
		{"ErrSizeBelowModules", tooBigForSmallImage, QRMinSizePixels, "below the"},
		{"ErrEmpty", "", 256, "encode 0-byte text"},
		{"ErrTooLong", strings.Repeat("A", 5000), 256, "encode 5000-byte text"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			png, v, err := RenderQR(tc.text, tc.size)
			if err == nil {
				t.Fatalf("RenderQR(%d chars, %d) = %d bytes, version %d; want error", len(tc.text), tc.size, len(png), v)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
	for _, size := range []int{QRMinSizePixels, QRMaxSizePixels} {
		if _, _, err := RenderQR("AB", size); err != nil {
			t.Errorf("RenderQR at size %d: %v", size, err)
		}
	}
	for _, text := range []string{"", strings.Repeat("A", 5000)} {
		if v, err := QRVersion(text); err == nil {
			t.Errorf("QRVersion(%d chars) = %d, want error", len(text), v)
		}
		if s, err := TerminalQR(text); err == nil {
			t.Errorf("TerminalQR(%d chars) = %d bytes, want error", len(text), len(s))
		}
	}
}

// qrModules returns the side of a version's symbol in modules with the
// 4-module quiet zone the QR standard asks for on each side.
func qrModules(version int) int {
	return 17 + 4*version + 2*4
}

// TestTerminalQR checks the shape of the half-block rendering and then reads
// it back: each character becomes two modules, scaled up into an image that
// gozxing must decode to the same text.
func TestTerminalQR(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	text := "AT1:" + randomBase45(rng, 97)
	out, err := TerminalQR(text)
	if err != nil {
		t.Fatal(err)
	}
	version, err := QRVersion(text)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("output does not end in a newline")
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	modules := qrModules(version)
	if got, want := len(lines), (modules+1)/2; got != want {
		t.Fatalf("%d lines, want %d", got, want)
	}
	for i, line := range lines {
		if got, want := utf8.RuneCountInString(line), modules; got != want {
			t.Fatalf("line %d is %d characters wide, want %d", i, got, want)
		}
		if strings.Trim(line, "█▀▄ ") != "" {
			t.Fatalf("line %d holds characters other than half blocks: %q", i, line)
		}
		if !strings.HasPrefix(line, "█") || !strings.HasSuffix(line, "█") {
			t.Fatalf("line %d lacks the light quiet zone at its ends: %q", i, line)
		}
	}
	for _, line := range []string{lines[0], lines[1], lines[len(lines)-1]} {
		if strings.Trim(line, "█") != "" {
			t.Fatalf("quiet-zone line is not all light: %q", line)
		}
	}
	scan := scanQR(t, terminalImage(t, lines, 4))
	if scan.text != text {
		t.Fatalf("scanned text = %q, want %q", scan.text, text)
	}
	if scan.version != version {
		t.Fatalf("scanned version = %d, want %d", scan.version, version)
	}
}

// terminalImage turns TerminalQR lines back into a grayscale image with
// scale pixels per module, light modules white.
func terminalImage(t *testing.T, lines []string, scale int) image.Image {
	t.Helper()
	width := utf8.RuneCountInString(lines[0])
	img := image.NewGray(image.Rect(0, 0, width*scale, len(lines)*2*scale))
	for row, line := range lines {
		for col, r := range []rune(line) {
			var topLight, bottomLight bool
			switch r {
			case '█':
				topLight, bottomLight = true, true
			case '▀':
				topLight = true
			case '▄':
				bottomLight = true
			case ' ':
			default:
				t.Fatalf("unexpected rune %q at line %d column %d", r, row, col)
			}
			for half, light := range []bool{topLight, bottomLight} {
				if !light {
					continue
				}
				for dy := range scale {
					for dx := range scale {
						img.SetGray(col*scale+dx, (row*2+half)*scale+dy, color.Gray{Y: 0xff})
					}
				}
			}
		}
	}
	return img
}

func BenchmarkRenderQRPaymentCode(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	text := "AT1:" + randomBase45(rng, 97)
	for b.Loop() {
		if _, _, err := RenderQR(text, 256); err != nil {
			b.Fatal(err)
		}
	}
}
