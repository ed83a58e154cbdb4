// The camera scanner: frames from the back camera decoded with the vendored
// jsQR 1.4.0 (Apache-2.0, vendor/jsqr; a classic script that defines
// self.jsQR). Used for the handheld's two-way order QR.

export class CameraError extends Error {
  constructor(message, cause) {
    super(message);
    this.name = "CameraError";
    this.cause = cause;
  }
}

// Scanner shows the camera in video and calls onText with each distinct
// QR text it reads, until stop().
export class Scanner {
  constructor(video, onText) {
    this.video = video;
    this.onText = onText;
    this.stream = null;
    this.timer = 0;
    this.last = "";
    this.canvas = document.createElement("canvas");
  }

  async start() {
    if (!navigator.mediaDevices?.getUserMedia) throw new CameraError("This browser gives no camera access (it needs HTTPS): type or paste the order text instead.");
    if (typeof self.jsQR !== "function") throw new CameraError("QR decoder missing (vendor/jsqr not loaded)");
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: "environment" }, audio: false });
    } catch (e) {
      const why = e.name === "NotAllowedError" ? "camera permission was refused" : e.name === "NotFoundError" ? "this device has no camera" : e.message;
      throw new CameraError(`Cannot use the camera: ${why}. Type or paste the order text instead.`, e);
    }
    this.video.srcObject = this.stream;
    this.video.setAttribute("playsinline", "");
    await this.video.play();
    this.timer = setInterval(() => this.tick(), 150);
  }

  tick() {
    const v = this.video;
    if (!v.videoWidth) return;
    const w = Math.min(v.videoWidth, 640), h = Math.round((v.videoHeight * w) / v.videoWidth);
    this.canvas.width = w;
    this.canvas.height = h;
    const g = this.canvas.getContext("2d", { willReadFrequently: true });
    g.drawImage(v, 0, 0, w, h);
    const img = g.getImageData(0, 0, w, h);
    const code = self.jsQR(img.data, w, h, { inversionAttempts: "dontInvert" });
    if (code?.data && code.data !== this.last) {
      this.last = code.data;
      this.onText(code.data);
    }
  }

  stop() {
    clearInterval(this.timer);
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
    this.video.srcObject = null;
  }
}
