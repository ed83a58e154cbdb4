// The wallet's service worker: it caches the whole app at install, so the
// wallet opens and makes payment codes with no network at all. The cache
// name carries a hash of the files (filled in by the Go handler), so a new
// release replaces the old cache. API calls (/v1/…) always go to the
// network: the wallet keeps its own copies of what it needs in IndexedDB.
const CACHE = "airtab-wallet-__VERSION__";
const FILES = __FILES__;

self.addEventListener("install", (ev) => {
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (ev) => {
  ev.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith("airtab-wallet-") && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (ev) => {
  const url = new URL(ev.request.url);
  if (ev.request.method !== "GET" || url.origin !== location.origin || !url.pathname.startsWith(new URL("./", location).pathname)) return;
  ev.respondWith(
    caches.open(CACHE).then(async (c) => {
      const hit = await c.match(ev.request, { ignoreSearch: true });
      if (hit) return hit;
      try {
        return await fetch(ev.request);
      } catch (e) {
        if (ev.request.mode === "navigate") {
          const shell = await c.match("./");
          if (shell) return shell;
        }
        throw e;
      }
    }),
  );
});
