// The service worker keeps the app shell so the app opens after a reload
// in the aisle even when the cabin server is briefly out of reach. The API
// (/v1) and the order QR images are never cached: a sale's answer must
// always come from the cabin server. The cache is named for the build.
const CACHE = 'airtab-shell-__VERSION__';
const SHELL = __SHELL__;

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
  // server answers; the cached copy when it does not.
  ev.respondWith(fetch(ev.request).then((resp) => {
    if (resp.ok) { const copy = resp.clone(); caches.open(CACHE).then((c) => c.put(url.pathname === '/' ? '/' : ev.request, copy)); }
    return resp;
  }).catch(() => caches.match(url.pathname === '/' || url.pathname === '/index.html' ? '/' : ev.request).then((r) => r || Response.error())));
});
