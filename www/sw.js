// The service worker: keeps the app shell (HTML, JS, the wasm module) in a cache named after the build,
// so the page opens with no network, and one page load is always served by one build (never old JS with
// new wasm). Model files are not handled here: the inference worker keeps them, verified, in its own
// cache (CACHE_NAME in shared.js), manifest.json and tokenizer.json included.
//
// version.js (written by build.sh) sets self.GPT2_BUILD, a hash of the shell's files. A new build changes
// it, so the browser installs the new service worker, which fills a new cache; it waits until no page
// of the old build is open (no skipWaiting) and then deletes the old cache.
importScripts("version.js");

const BUILD = self.GPT2_BUILD || "dev";
const PREFIX = "gpt2-webgpu-shell-";
const CACHE = PREFIX + BUILD;
const SHELL = ["./", "index.html", "embed.html", "embed.js", "embed.css", "app.js", "app.css", "inspect-panel.js", "gpt2.js", "gpt2-element.js", "shared.js", "worker.js", "version.js",
  "pkg/gpt2_webgpu.js", "pkg/gpt2_webgpu_bg.wasm", "models/index.json"];
const scope = new URL(self.registration.scope);
const shellPaths = new Set(SHELL.map((u) => new URL(u, scope).pathname));
const INDEX = new URL("models/index.json", scope).pathname;

self.addEventListener("install", (ev) => {
  // All or nothing: addAll fails (and the install with it) if any file fails.
  ev.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL.map((u) => new Request(u, { cache: "reload" })))));
});

self.addEventListener("activate", (ev) => {
  ev.waitUntil((async () => {
    for (const k of await caches.keys()) if (k.startsWith(PREFIX) && k !== CACHE) await caches.delete(k);
    await self.clients.claim(); // the first visit's page works offline without a reload
  })());
});

self.addEventListener("message", (ev) => {
  if (ev.data?.type === "build") ev.source?.postMessage({ type: "build", build: BUILD });
});

self.addEventListener("fetch", (ev) => {
  const req = ev.request;
  if (req.method !== "GET") return;
  const url = new URL(req.url);
  if (url.origin !== scope.origin) return;
  if (url.pathname === INDEX) {
    // The model list: fresh when online, the kept copy when not.
    ev.respondWith((async () => {
      const cache = await caches.open(CACHE);
      try {
        const r = await fetch(req, { cache: "no-cache" });
        if (r.ok) await cache.put(INDEX, r.clone());
        return r;
      } catch (e) {
        return (await cache.match(INDEX)) || Promise.reject(e);
      }
    })());
    return;
  }
  if (!shellPaths.has(url.pathname)) return; // model files and anything else: the network, as usual
  ev.respondWith((async () => {
    const cache = await caches.open(CACHE);
    return (await cache.match(url.origin + url.pathname)) || fetch(req);
  })());
});
