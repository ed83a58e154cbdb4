package browsertest_test

import (
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airtab/airtab/protocol"
	"github.com/airtab/airtab/protocol/browsertest"
)

func TestY4M(t *testing.T) {
	qr, _, err := protocol.RenderQR("AIRTAB TEST", 200)
	if err != nil {
		t.Fatal(err)
	}
	v, err := browsertest.QRVideo(qr)
	if err != nil {
		t.Fatal(err)
	}
	header := "YUV4MPEG2 W640 H480 F10:1 Ip A1:1 C420jpeg\n"
	if !bytes.HasPrefix(v, []byte(header)) {
		t.Fatalf("header = %q, want %q", v[:len(header)], header)
	}
	frame := len("FRAME\n") + 640*480*3/2
	if got, want := len(v), len(header)+10*frame; got != want {
		t.Fatalf("len = %d, want %d (10 frames)", got, want)
	}
	t.Run("ErrOddSize", func(t *testing.T) {
		img, _ := png.Decode(bytes.NewReader(qr))
		if _, err := browsertest.Y4M(img, 641, 480, 1); err == nil || !strings.Contains(err.Error(), "even") {
			t.Fatalf("odd width: err = %v, want one naming even sides", err)
		}
	})
	t.Run("ErrNotPNG", func(t *testing.T) {
		if _, err := browsertest.QRVideo([]byte("not a png")); err == nil {
			t.Fatal("no error for a non-PNG")
		}
	})
}

const page = `<!doctype html><title>t</title><body><p id="hello">Hello from the page</p>
<p id="later" hidden>Shown later</p>
<script type="module">
setTimeout(() => document.getElementById('later').hidden = false, 100);
</script>`

func TestBrowser(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, page)
	}))
	defer srv.Close()
	b := browsertest.New(t, browsertest.Options{TrustSPKI: []string{browsertest.SPKIHash(srv.Certificate())}})
	b.Navigate(srv.URL)
	b.WaitText("Hello from the page")
	b.WaitText("Shown later")
	if got, want := b.Text("#hello"), "Hello from the page"; got != want {
		t.Fatalf("text = %q, want %q", got, want)
	}
	if got := browsertest.Eval[bool](b, `window.isSecureContext`); !got {
		t.Fatal("page over the trusted test certificate is not a secure context")
	}
	path := filepath.Join(t.TempDir(), "shot.png")
	b.Screenshot(path, 360, 740)
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(f))
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds().Size(); got.X != 360 || got.Y != 740 {
		t.Fatalf("screenshot size = %v, want 360x740", got)
	}
}

// cameraPage reads one frame of the camera and reports the share of dark
// pixels: a QR code on white is neither all dark nor all light.
const cameraPage = `<!doctype html><title>cam</title><body><video id="v" playsinline muted></video><p id="out">waiting</p>
<script type="module">
const out = document.getElementById('out');
try {
  const s = await navigator.mediaDevices.getUserMedia({video: true});
  const v = document.getElementById('v');
  v.srcObject = s; await v.play();
  const c = document.createElement('canvas');
  const tick = () => {
    if (v.videoWidth === 0) { requestAnimationFrame(tick); return; }
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext('2d'); g.drawImage(v, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let dark = 0; for (let i = 0; i < d.length; i += 4) if (d[i] < 128) dark++;
    out.textContent = 'frame ' + c.width + 'x' + c.height + ' dark ' + Math.round(100 * dark / (d.length / 4));
  };
  tick();
} catch (e) { out.textContent = 'camera error ' + e.name; }
</script>`

func TestFakeCamera(t *testing.T) {
	qr, _, err := protocol.RenderQR("AIRTAB FAKE CAMERA", 400)
	if err != nil {
		t.Fatal(err)
	}
	video := filepath.Join(t.TempDir(), "qr.y4m")
	if err := browsertest.WriteQRVideo(video, qr); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, cameraPage)
	}))
	defer srv.Close()
	b := browsertest.New(t, browsertest.Options{FakeCamera: video, TrustSPKI: []string{browsertest.SPKIHash(srv.Certificate())}})
	b.Navigate(srv.URL)
	b.WaitText("frame 640x480")
	var dark int
	if _, err := fmt.Sscanf(b.Text("#out"), "frame 640x480 dark %d", &dark); err != nil {
		t.Fatalf("camera page said %q: %v", b.Text("#out"), err)
	}
	// The 400 px code covers about half of the 640x480 frame, and about
	// half of a code's modules are dark.
	if dark < 5 || dark > 50 {
		t.Fatalf("dark pixels = %d%%, want the QR code's 5..50%%", dark)
	}
}
