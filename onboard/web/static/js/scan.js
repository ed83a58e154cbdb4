// Scanning a passenger's QR code: the rear camera, decoded in the page with
// the vendored jsQR (headless Chromium and many handhelds have no
// BarcodeDetector), or a hardware scanner that types the code like a
// keyboard and ends with Enter (the "keyboard wedge"), or a pasted code.
import { $, show } from './ui.js';

// PREFIXES are the QR texts each purpose accepts (protocol/paycode.go).
const PREFIXES = {
  pay: ['AT1:'],
  limit: ['AT1:'],
  consent: ['ATC1:'],
};
const WHAT = {
  pay: "the passenger's payment code",
  limit: "the passenger's payment code",
  consent: "the passenger's consent code",
};
// DECODE_EVERY_MS paces the decoder: about 8 tries a second is quick for
// a person and leaves the handheld's CPU cool.
const DECODE_EVERY_MS = 120;
// MAX_DECODE_WIDTH downsizes frames before decoding; a payment code fills
// a good part of the frame, so 640 px is plenty.
const MAX_DECODE_WIDTH = 640;
// HINT_AFTER_MS is when to suggest holding the code differently.
const HINT_AFTER_MS = 6000;

let active = null; // {purpose, resolve, stream, timer}

// CAMERA_KEY keeps the crew's choice to scan with the camera or not: a
// handheld with a built-in scanner does better without the camera running.
const CAMERA_KEY = 'airtab.camera';
const cameraOn = () => localStorage.getItem(CAMERA_KEY) !== 'off';

// classify says whether text is acceptable for purpose, or why not.
export function classify(purpose, text) {
  const t = text.trim();
  if (!t) return { ok: false, why: 'Empty code.' };
  if (PREFIXES[purpose].some((p) => t.startsWith(p))) return { ok: true, text: t };
  if (/^AT[A-Z]*\d+:/.test(t)) {
    return { ok: false, why: 'This is an Airtab code, but not ' + WHAT[purpose] + '.' };
  }
  return { ok: false, why: 'This QR code is not an Airtab code. Ask for the code in the Airtab wallet.' };
}

// scan shows the scan screen and resolves with the scanned text, or null
// when the crew member cancels.
export function scan(purpose, title, returnTo) {
  stop();
  return new Promise((resolve) => {
    active = { purpose, resolve, returnTo, stream: null, timer: 0, started: Date.now() };
    $('scan-title').textContent = title;
    $('scan-error').textContent = '';
    $('scan-hint').textContent = 'Hold ' + WHAT[purpose] + ' inside the frame.';
    $('wedge-input').value = '';
    show('scan');
    $('wedge-input').focus();
    cameraState(active);
  });
}

function finish(text) {
  const a = active;
  if (!a) return;
  stop();
  a.resolve(text);
}

function stop() {
  if (!active) return;
  stopCamera(active);
  active = null;
}

function stopCamera(a) {
  clearTimeout(a.timer);
  if (a.stream) for (const tr of a.stream.getTracks()) tr.stop();
  a.stream = null;
  a.camera = false;
  $('scan-video').srcObject = null;
}

// cameraState starts or stops the camera as the crew chose.
function cameraState(a) {
  const on = cameraOn();
  $('scan-camera').textContent = on ? 'Stop camera' : 'Start camera';
  document.querySelector('.viewfinder').hidden = !on;
  if (on && !a.camera) { a.camera = true; startCamera(a); }
  if (!on) {
    stopCamera(a);
    $('scan-hint').textContent = 'Camera off: scan with the handheld\'s scanner, or paste the code.';
  }
}

// accept checks a decoded or typed text and finishes the scan with it, or
// says why not and keeps scanning.
function accept(text) {
  if (!active) return;
  const c = classify(active.purpose, text);
  if (c.ok) { finish(c.text); return; }
  $('scan-error').textContent = c.why;
}

async function startCamera(a) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    $('scan-error').textContent = 'No camera here (the page needs HTTPS): use the scanner or paste the code.';
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: false, video: { facingMode: { ideal: 'environment' }, width: { ideal: 1280 }, height: { ideal: 720 } },
    });
  } catch (e) {
    if (active !== a) return;
    $('scan-error').textContent = cameraError(e);
    document.querySelector('.viewfinder').hidden = true;
    $('scan-hint').textContent = "Scan with the handheld's scanner, or paste the code and press Enter.";
    return;
  }
  if (active !== a || !a.camera) { for (const tr of stream.getTracks()) tr.stop(); return; }
  a.stream = stream;
  const v = $('scan-video');
  v.srcObject = stream;
  try { await v.play(); } catch (_) { /* a muted inline video plays; a failed play just shows no preview */ }
  const canvas = document.createElement('canvas');
  const g = canvas.getContext('2d', { willReadFrequently: true });
  const tick = () => {
    if (active !== a || !a.camera) return;
    if (v.videoWidth && typeof jsQR === 'function') {
      const scale = Math.min(1, MAX_DECODE_WIDTH / v.videoWidth);
      canvas.width = Math.round(v.videoWidth * scale);
      canvas.height = Math.round(v.videoHeight * scale);
      g.drawImage(v, 0, 0, canvas.width, canvas.height);
      const img = g.getImageData(0, 0, canvas.width, canvas.height);
      const code = jsQR(img.data, img.width, img.height, { inversionAttempts: 'dontInvert' });
      if (code && code.data) { accept(code.data); if (active !== a) return; }
      if (Date.now() - a.started > HINT_AFTER_MS && !$('scan-error').textContent) {
        $('scan-hint').textContent = 'Cannot read a code yet: ask the passenger to turn up the screen brightness and hold it flat, 15–25 cm away.';
      }
    }
    a.timer = setTimeout(tick, DECODE_EVERY_MS);
  };
  tick();
}

function cameraError(e) {
  switch (e && e.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Camera access denied: allow the camera for this site in Chrome (lock icon → Permissions), or use the scanner or paste the code.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera found: use the scanner or paste the code.';
    case 'NotReadableError':
      return 'The camera is busy in another app: close it, or use the scanner.';
  }
  return 'Camera failed (' + ((e && e.name) || 'error') + '): use the scanner or paste the code.';
}

export function initScan() {
  $('wedge-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    accept($('wedge-input').value);
    $('wedge-input').value = '';
  });
  $('scan-camera').addEventListener('click', () => {
    localStorage.setItem(CAMERA_KEY, cameraOn() ? 'off' : 'on');
    if (active) cameraState(active);
    $('wedge-input').focus();
  });
  $('scan-cancel').addEventListener('click', () => {
    const back = active && active.returnTo;
    finish(null);
    if (back) show(back);
  });
  // A keyboard-wedge scanner types wherever the focus is: on the scan
  // screen, send stray keys to the code field.
  document.addEventListener('keydown', (ev) => {
    if (active && document.activeElement !== $('wedge-input') && ev.key.length === 1 && !ev.ctrlKey && !ev.metaKey) {
      $('wedge-input').focus();
    }
  });
}
