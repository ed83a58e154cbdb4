// QR codes drawn on a canvas, with the vendored qrcode-generator 1.4.4 (MIT,
// vendor/qrcode-generator; a classic script that defines self.qrcode).
// Airtab texts are all QR alphanumeric characters, so they are encoded in
// alphanumeric mode at error correction M (SPEC.md §4.4: a compact payment
// code fits version 6-M).

// render draws text as a QR code on canvas, moduleSize pixels a module with
// a 4-module quiet zone, and returns the QR version used.
export function render(canvas, text, { ecc = "M", maxPixels = 720 } = {}) {
  if (typeof self.qrcode !== "function") throw new Error("QR encoder missing (vendor/qrcode-generator not loaded)");
  const qr = self.qrcode(0, ecc);
  qr.addData(text, /^[0-9A-Z $%*+\-./:]*$/.test(text) ? "Alphanumeric" : "Byte");
  qr.make();
  const n = qr.getModuleCount();
  const side = n + 8;
  const scale = Math.max(1, Math.floor(maxPixels / side));
  canvas.width = canvas.height = side * scale;
  const g = canvas.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = "#000";
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.isDark(r, c)) g.fillRect((c + 4) * scale, (r + 4) * scale, scale, scale);
    }
  }
  return (n - 17) / 4;
}
