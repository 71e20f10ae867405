// What the page-side API (gpt2.js) and the inference worker (worker.js) must agree on, written once.
// sw.js is a classic-script service worker and cannot import this module; it caches the app shell
// under its own per-build names and never touches the model-file cache named here.

/** The Cache API cache that holds verified model-package files (manifest.json and tokenizer.json included). */
export const CACHE_NAME = "gpt2-webgpu-files-v1";

/** The package's manifest file, next to its shards. */
export const MANIFEST_FILE = "manifest.json";

/** The cache key of a package file: its URL plus its SHA-256 from the manifest, so a changed package never
 * serves stale bytes and gpt2.js can tell whether the worker has a file. */
export function cacheKey(url, entry) {
  return `${url}?gpt2-sha256=${entry.sha256}`;
}
