package browsertest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
)

// Y4M limits: the frame must be even in both sides (4:2:0 chroma halves
// them) and at most 1920x1080; at most 300 frames (the video loops).
const (
	maxY4MWidth  = 1920
	maxY4MHeight = 1080
	maxY4MFrames = 300
)

// Y4M returns a YUV4MPEG2 video (4:2:0, 10 frames per second) of frames
// copies of a width x height frame: a white background with img centred on
// it, scaled down to fit if it is larger. Chromium's fake camera
// (--use-file-for-fake-video-capture) plays such a file in a loop, so a page
// scanning the camera sees img as if held in front of it.
func Y4M(img image.Image, width, height, frames int) ([]byte, error) {
	if width <= 0 || height <= 0 || width%2 != 0 || height%2 != 0 || width > maxY4MWidth || height > maxY4MHeight {
		return nil, fmt.Errorf("y4m: frame %dx%d must be even sides within %dx%d", width, height, maxY4MWidth, maxY4MHeight)
	}
	if frames < 1 || frames > maxY4MFrames {
		return nil, fmt.Errorf("y4m: %d frames outside [1, %d]", frames, maxY4MFrames)
	}
	canvas := image.NewGray(image.Rect(0, 0, width, height))
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	placeCentred(canvas, img)

	var buf bytes.Buffer
	fmt.Fprintf(&buf, "YUV4MPEG2 W%d H%d F10:1 Ip A1:1 C420jpeg\n", width, height)
	chroma := bytes.Repeat([]byte{128}, (width/2)*(height/2)*2) // U then V: grey
	for range frames {
		buf.WriteString("FRAME\n")
		buf.Write(canvas.Pix) // stride == width for a fresh image.Gray
		buf.Write(chroma)
	}
	return buf.Bytes(), nil
}

// placeCentred draws src onto dst centred, scaled down by a whole factor
// (nearest neighbour, keeping a QR code's modules square) when larger.
func placeCentred(dst *image.Gray, src image.Image) {
	sb := src.Bounds()
	db := dst.Bounds()
	scale := 1
	for sb.Dx()/scale > db.Dx() || sb.Dy()/scale > db.Dy() {
		scale++
	}
	w, h := sb.Dx()/scale, sb.Dy()/scale
	x0, y0 := (db.Dx()-w)/2, (db.Dy()-h)/2
	for y := range h {
		for x := range w {
			c := color.GrayModel.Convert(src.At(sb.Min.X+x*scale, sb.Min.Y+y*scale)).(color.Gray)
			dst.SetGray(x0+x, y0+y, c)
		}
	}
}

// QRVideo decodes a PNG (a QR code from protocol.RenderQR) and returns it as
// a 640x480 Y4M video of 10 frames, the fake camera's input.
func QRVideo(pngBytes []byte) ([]byte, error) {
	img, err := png.Decode(bytes.NewReader(pngBytes))
	if err != nil {
		return nil, fmt.Errorf("qr video: decode png: %w", err)
	}
	return Y4M(img, 640, 480, 10)
}

// WriteQRVideo writes QRVideo(pngBytes) to path, for Options.FakeCamera.
func WriteQRVideo(path string, pngBytes []byte) error {
	v, err := QRVideo(pngBytes)
	if err != nil {
		return err
	}
	return os.WriteFile(path, v, 0o644)
}
