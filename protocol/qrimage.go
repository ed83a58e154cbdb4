package protocol

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strings"

	"github.com/skip2/go-qrcode"
)

// QRLevel is the error-correction level; Airtab uses M for payment codes.
//
// M recovers about 15% of damaged codewords, enough for glare on a phone
// screen, while version 6 still holds 154 alphanumeric characters. The value
// is the level's letter as QR decoders report it.
const QRLevel = "M"

// qrRecovery is QRLevel in go-qrcode's terms.
const qrRecovery = qrcode.Medium

// QRMinSizePixels is the smallest image side RenderQR accepts, in pixels.
const QRMinSizePixels = 64

// QRMaxSizePixels is the largest image side RenderQR accepts, in pixels; it
// bounds the memory one render can take (2048² pixels, one byte each).
const QRMaxSizePixels = 2048

// RenderQR returns a PNG of text at error correction M, with `size` pixels
// per side (min 64, max 2048; error otherwise), and the QR version used
// (1..40).
//
// Every module is drawn with the same whole number of pixels, size divided
// by the module count, and the leftover pixels widen the quiet zone; so size
// must also be at least the symbol's module count, quiet zone included (49
// for a version 6 payment code), and is an error otherwise. go-qrcode's own
// PNG method is not used: it scales by nearest neighbour, giving modules of
// uneven width, and gozxing could not read a version 6 code it drew at 64 px.
func RenderQR(text string, size int) (png []byte, version int, err error) {
	if size < QRMinSizePixels || size > QRMaxSizePixels {
		return nil, 0, fmt.Errorf("render qr: size %d px outside [%d, %d] (QRMinSizePixels, QRMaxSizePixels)",
			size, QRMinSizePixels, QRMaxSizePixels)
	}
	q, err := newQR(text)
	if err != nil {
		return nil, 0, fmt.Errorf("render qr: %w", err)
	}
	bitmap := q.Bitmap()
	if size < len(bitmap) {
		return nil, 0, fmt.Errorf("render qr: size %d px is below the %d modules of a version %d code with its quiet zone",
			size, len(bitmap), q.VersionNumber)
	}
	png, err = encodePNG(drawQR(bitmap, size))
	if err != nil {
		return nil, 0, fmt.Errorf("render qr: %w", err)
	}
	return png, q.VersionNumber, nil
}

// QRVersion returns the smallest QR version that holds text at error
// correction M.
//
// Text made only of the QR alphanumeric set (0-9 A-Z space $ % * + - . / :),
// such as Base45, is encoded in alphanumeric mode at 5.5 bits per character;
// any other byte puts the text in byte mode at 8 bits per character.
func QRVersion(text string) (int, error) {
	q, err := newQR(text)
	if err != nil {
		return 0, fmt.Errorf("qr version: %w", err)
	}
	return q.VersionNumber, nil
}

// TerminalQR renders text as a QR code with Unicode half-block characters,
// for printing in a terminal (the simulator shows one payment code this way);
// quiet zone included.
//
// Each character covers one module across and two down. Light modules are
// drawn as blocks and dark modules as spaces, so on the usual light-on-dark
// terminal the code reads dark-on-light as scanners expect. Every line has
// the same number of characters and ends in a newline.
func TerminalQR(text string) (string, error) {
	q, err := newQR(text)
	if err != nil {
		return "", fmt.Errorf("terminal qr: %w", err)
	}
	return halfBlocks(q.Bitmap()), nil
}

// newQR encodes text at QRLevel and checks the version is one QR defines.
func newQR(text string) (*qrcode.QRCode, error) {
	q, err := qrcode.New(text, qrRecovery)
	if err != nil {
		return nil, fmt.Errorf("encode %d-byte text: %w", len(text), err)
	}
	if q.VersionNumber < 1 || q.VersionNumber > 40 {
		panic(fmt.Sprintf("go-qrcode chose version %d, outside 1..40", q.VersionNumber))
	}
	return q, nil
}

// drawQR draws bitmap (true is dark, bitmap[y][x], square, quiet zone
// included) centred on a white size×size image, each module a square of
// size/len(bitmap) pixels.
func drawQR(bitmap [][]bool, size int) *image.Paletted {
	img := image.NewPaletted(image.Rect(0, 0, size, size), color.Palette{color.White, color.Black})
	scale := size / len(bitmap)
	offset := (size - scale*len(bitmap)) / 2
	for y, row := range bitmap {
		for x, dark := range row {
			if !dark {
				continue
			}
			for dy := range scale {
				start := img.PixOffset(offset+x*scale, offset+y*scale+dy)
				for dx := range scale {
					img.Pix[start+dx] = 1
				}
			}
		}
	}
	return img
}

// encodePNG returns img as PNG bytes.
func encodePNG(img image.Image) ([]byte, error) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode png: %w", err)
	}
	return buf.Bytes(), nil
}

// halfBlocks draws bitmap (true is dark, bitmap[y][x]) two rows per line. A
// missing last row, when the row count is odd, is drawn light: it extends the
// quiet zone.
func halfBlocks(bitmap [][]bool) string {
	var sb strings.Builder
	for y := 0; y < len(bitmap); y += 2 {
		for x := range bitmap[y] {
			topLight := !bitmap[y][x]
			bottomLight := y+1 >= len(bitmap) || !bitmap[y+1][x]
			switch {
			case topLight && bottomLight:
				sb.WriteString("█")
			case topLight:
				sb.WriteString("▀")
			case bottomLight:
				sb.WriteString("▄")
			default:
				sb.WriteString(" ")
			}
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}
