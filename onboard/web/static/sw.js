// The service worker keeps the app shell so the app opens after a reload
// in the aisle even when the cabin server is briefly out of reach. The API
// (/v1) and the order QR images are never cached: a sale's answer must
// always come from the cabin server. The cache is named for the build.
const CACHE = 'airtab-shell-__VERSION__';
const SHELL = __SHELL__;
// SHELL_WAIT_MS is how long a shell file may take from the cabin server
// before the cached copy is used.
const SHELL_WAIT_MS = 3000;

self.addEventListener('install', (ev) => {
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (ev) => {
  ev.waitUntil(caches.keys()
    .then((keys) => Promise.all(keys.filter((k) => k.startsWith('airtab-shell-') && k !== CACHE).map((k) => caches.delete(k))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (ev) => {
  const url = new URL(ev.request.url);
  if (ev.request.method !== 'GET' || url.origin !== self.location.origin) return;
  if (url.pathname.startsWith('/v1/') || url.pathname === '/qr.png' || url.pathname === '/ca.crt' || url.pathname === '/healthz') return;
  // The shell: network first, so a new build shows at once when the cabin
  // server answers; the cached copy when it does not, or not within
  // SHELL_WAIT_MS (a Wi-Fi that drops packets must not hang the aisle).
  const key = url.pathname === '/' || url.pathname === '/index.html' ? '/' : url.pathname;
  ev.respondWith((async () => {
    const net = fetch(ev.request).then((resp) => {
      if (resp.ok) { const copy = resp.clone(); caches.open(CACHE).then((c) => c.put(key, copy)); }
      return resp;
    });
    try {
      return await Promise.race([net, new Promise((_, reject) => setTimeout(() => reject(new Error('slow')), SHELL_WAIT_MS))]);
    } catch (_) {
      const cached = await caches.match(key);
      return cached || net;
    }
  })());
});
