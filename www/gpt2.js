// gpt2.js: the public JavaScript API. GPT-2 on WebGPU, running in a Web Worker (hidden here).
//
//   import { load } from "./gpt2.js";
//   const model = await load("models/tiny-gpt2-f32/", { onProgress: ({ phase, loaded, total }) => {}, signal });
//   for await (const piece of model.generate(prompt, { maxNewTokens, temperature, topK, topP,
//                                                      repetitionPenalty, seed, signal })) {
//     piece.text; piece.tokenId; piece.prob; piece.alternatives; // [{ tokenId, text, prob }]
//   }
//   model.info;      // adapter, model config, quantization, limits
//   model.dispose();
//
// Types: gpt2.d.ts (strict: a misspelled option is a type error). Errors are `GPT2Error`s: `message` is words to show people, `kind` is one of "no-webgpu", "gpu",
// "download", "corrupt", "package", "aborted", "wasm", "state", "error", "device-lost", "too-large".

/** Every error this API throws or rejects with: `message` is words to show people, `kind` a word to switch on.
 * @see {import("./gpt2.d.ts").GPT2ErrorKind} */
export class GPT2Error extends Error {
  /** @param {import("./gpt2.d.ts").GPT2ErrorKind} kind @param {string} message */
  constructor(kind, message) {
    super(message);
    this.name = "GPT2Error";
    this.kind = kind;
  }
}

export const NO_WEBGPU_MESSAGE =
  "This browser does not offer WebGPU, which GPT-2 here runs on. WebGPU is available in Chrome and Edge 113 or " +
  "newer (Windows, macOS, ChromeOS; Linux and Android with recent versions), Safari 26 or newer, and Firefox 141 " +
  "or newer on Windows. It may also be switched off by a policy or a flag (chrome://gpu shows its status).";

export const NO_ADAPTER_MESSAGE =
  "This browser has WebGPU but offers no GPU adapter: the GPU may be blocklisted, WebGPU switched off by a flag " +
  "or policy, or the graphics driver missing. WebGPU works in Chrome and Edge 113 or newer, Safari 26 or newer and " +
  "Firefox 141 or newer on Windows; chrome://gpu shows why it is unavailable here.";

/** Whether this browser exposes `navigator.gpu` (an adapter may still be missing: `load` says so).
 * @returns {boolean} */
export function hasWebGPU() {
  return typeof navigator !== "undefined" && "gpu" in navigator && !!navigator.gpu;
}

let nextId = 1;

class Model {
  #worker;
  #listeners = new Map(); // id -> handler(message)
  #busy = null; // the running generation's promise of completion
  #stopCurrent = null;
  info;
  notices;
  url;
  /** Words, once the GPU device is lost (then generate() fails: dispose and load again). */
  lost = null;
  /** Called with a GPT2Error of kind "device-lost" when the GPU device is lost (also while idle). */
  onDeviceLost = null;

  constructor(worker, info, notices, url, onDeviceLost) {
    this.#worker = worker;
    this.info = info;
    this.notices = notices;
    this.url = url;
    this.onDeviceLost = onDeviceLost || null;
    worker.onmessage = (ev) => {
      const m = ev.data;
      if (m.type === "device-lost") {
        this.lost = m.message;
        for (const l of this.#listeners.values()) l({ type: "error", kind: "device-lost", message: m.message });
        this.onDeviceLost?.(new GPT2Error("device-lost", m.message));
        return;
      }
      this.#listeners.get(m.id)?.(m);
    };
  }

  /** Destroys the worker's GPU device: a real device loss, for testing the page's recovery. */
  loseDeviceForTesting() {
    this.#worker?.postMessage({ type: "lose-device" });
  }

  /** Stream the continuation of `prompt`, one piece per token. Breaking out of the loop, or aborting
   * `opts.signal`, stops the generation (within one token). One generation at a time: starting a new
   * one stops the previous. Defaults: greedy (temperature 0), 50 tokens, stop at <|endoftext|>.
   * @param {string} prompt
   * @param {import("./gpt2.d.ts").GenerateOptions} [opts]
   * @returns {AsyncGenerator<import("./gpt2.d.ts").Piece, void, undefined>} */
  async *generate(prompt, opts = {}) {
    if (!this.#worker) throw new GPT2Error("state", "this model was disposed: load it again");
    if (this.lost) throw new GPT2Error("device-lost", this.lost);
    const { signal, ...rest } = opts;
    if (this.#busy) {
      this.#worker.postMessage({ type: "stop" });
      await this.#busy;
    }
    const id = nextId++;
    const queue = [];
    let wake = null;
    let finish;
    this.#busy = new Promise((r) => (finish = r));
    this.#listeners.set(id, (m) => {
      queue.push(m);
      if (wake) wake();
    });
    // After a stop, pieces still in flight (the step that was running) are dropped: the text ends
    // where the user stopped it.
    let stopped = false;
    const stop = () => {
      stopped = true;
      this.#worker?.postMessage({ type: "stop" });
    };
    this.#stopCurrent = stop;
    signal?.addEventListener("abort", stop);
    if (signal?.aborted) stop();
    this.#worker.postMessage({ type: "generate", id, prompt: String(prompt), opts: rest });
    let done = false;
    try {
      for (;;) {
        if (queue.length === 0) await new Promise((r) => (wake = r));
        wake = null;
        const m = queue.shift();
        if (m.type === "piece") {
          if (!stopped) yield m.piece;
        }
        else if (m.type === "started") this.lastStart = { promptTokens: m.promptTokens, notices: m.notices };
        else if (m.type === "error") throw new GPT2Error(m.kind, m.message);
        else if (m.type === "done") {
          done = true;
          return;
        }
      }
    } finally {
      signal?.removeEventListener("abort", stop);
      if (!done && !this.lost) {
        // Stopped early (break, abort, error): let the worker finish its step, then release.
        stop();
        await new Promise((resolve) => {
          const rest = () => resolve();
          this.#listeners.set(id, (m) => (m.type === "done" || m.type === "error") && rest());
          if (queue.some((m) => m.type === "done" || m.type === "error")) rest();
        });
      }
      this.#listeners.delete(id);
      this.#busy = null;
      this.#stopCurrent = null;
      finish();
    }
  }

  /** Stop the running generation (its loop ends after at most one more piece). */
  stop() {
    if (this.#stopCurrent) this.#stopCurrent();
    else this.#worker?.postMessage({ type: "stop" });
  }

  /** Free the GPU memory and end the worker. */
  dispose() {
    if (!this.#worker) return;
    this.#worker.terminate();
    this.#worker = null;
  }
}

/** Download (or take from the cache), verify and upload the model package at `url` (a folder with
 * manifest.json). `onProgress({phase, loaded, total, file})`, phase: "downloading", "verifying",
 * "cache" or "uploading".
 * @param {string | URL} url the package folder, relative to the page
 * @param {import("./gpt2.d.ts").LoadOptions} [options]
 * @returns {Promise<import("./gpt2.d.ts").GPT2Model>} */
export async function load(url, { onProgress, signal, onDeviceLost } = {}) {
  if (!hasWebGPU()) throw new GPT2Error("no-webgpu", NO_WEBGPU_MESSAGE);
  if (signal?.aborted) throw new GPT2Error("aborted", "loading was cancelled");
  const abs = new URL(url, document.baseURI).href;
  const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  const id = nextId++;
  try {
    const r = await new Promise((resolve, reject) => {
      signal?.addEventListener("abort", () => {
        worker.postMessage({ type: "abort", id });
        reject(new GPT2Error("aborted", "loading was cancelled"));
      });
      worker.onerror = (e) => reject(new GPT2Error("wasm", `the model worker failed to start: ${e.message || "script error"}`));
      worker.onmessage = (ev) => {
        const m = ev.data;
        if (m.type === "error" && (m.id === id || m.id === null)) reject(new GPT2Error(m.kind, m.message));
        else if (m.id !== id) return;
        else if (m.type === "progress") onProgress?.({ phase: m.phase, loaded: m.loaded, total: m.total, file: m.file });
        else if (m.type === "loaded") resolve(m);
      };
      worker.postMessage({ type: "load", id, url: abs });
    });
    worker.onerror = null;
    return new Model(worker, r.info, r.notices, abs, onDeviceLost);
  } catch (e) {
    worker.terminate();
    throw e;
  }
}

export const CACHE_NAME = "gpt2-webgpu-files-v1";

// The package's manifest: from the network, else the copy the worker kept at the last load (offline).
async function manifestOf(base) {
  const u = new URL("manifest.json", base).href;
  try {
    const r = await fetch(u, { cache: "no-cache" });
    if (r.ok) return await r.json();
  } catch { /* offline */ }
  const hit = await (await caches.open(CACHE_NAME)).match(u);
  if (!hit) throw new Error("no manifest");
  return hit.json();
}

/** Delete every cached file of the package at `url` (its next load downloads it again). Returns the
 * number of bytes deleted.
 * @param {string | URL} url
 * @returns {Promise<number>} */
export async function deleteCached(url) {
  const base = new URL(url, document.baseURI).href;
  const cache = await caches.open(CACHE_NAME);
  let bytes = 0;
  for (const req of await cache.keys()) {
    if (!req.url.startsWith(base)) continue;
    const r = await cache.match(req);
    bytes += r ? (await r.arrayBuffer()).byteLength : 0;
    await cache.delete(req);
  }
  return bytes;
}

/** Whether every file of the package at `url` is in the cache (so loading it downloads nothing, and
 * works offline).
 * @param {string | URL} url
 * @returns {Promise<boolean>} */
export async function isCached(url) {
  try {
    const base = new URL(url, document.baseURI);
    const manifest = await manifestOf(base);
    const cache = await caches.open(CACHE_NAME);
    for (const f of [manifest.tokenizer, ...manifest.shards]) {
      if (!(await cache.match(`${new URL(f.file, base).href}?gpt2-sha256=${f.sha256}`))) return false;
    }
    return true;
  } catch {
    return false;
  }
}
