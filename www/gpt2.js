// gpt2.js: the public JavaScript API. GPT-2 on WebGPU, or on the CPU engine (wasm SIMD) where WebGPU has
// no GPU to offer, running in a Web Worker (hidden here).
//
//   import { load } from "./gpt2.js";
//   const model = await load("models/tiny-gpt2-f32/", { onProgress: ({ phase, loaded, total }) => {}, signal,
//                                                     device: "auto" }); // or "webgpu", "cpu"
//   for await (const piece of model.generate(prompt, { maxNewTokens, temperature, topK, topP,
//                                                      repetitionPenalty, seed, signal })) {
//     piece.text; piece.tokenId; piece.prob; piece.alternatives; // [{ tokenId, text, prob }]
//   }
//   model.info;      // device ("webgpu" | "cpu"), deviceName, adapter, model config, quantization, limits
//   model.dispose();   // safe at any time
//
// Types: gpt2.d.ts (strict: a misspelled option is a type error). Errors are `GPT2Error`s: `message` is
// words to show people, `kind` is one of "no-webgpu", "gpu", "download", "corrupt", "package", "aborted",
// "wasm", "state", "error", "device-lost", "too-large", "invalid-option" (then `option` names it),
// "worker" (the worker crashed: load the model again).
// Every promise settles: nothing here waits on the worker without a way out (abort, dispose, a crash).

import { CACHE_NAME as FILES_CACHE, MANIFEST_FILE, cacheKey } from "./shared.js";

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

/** Whether a GPUAdapter is a software one (SwiftShader in Chromium, llvmpipe/lavapipe, WARP): the browser
 * marks it as a fallback adapter; older browsers only name it.
 * @param {GPUAdapter} adapter @returns {boolean} */
export function isSoftwareAdapter(adapter) {
  const i = adapter.info || {};
  return i.isFallbackAdapter === true || adapter.isFallbackAdapter === true ||
    /swiftshader|llvmpipe|lavapipe|softpipe|warp|basic render/i.test(`${i.vendor} ${i.architecture} ${i.description} ${i.device}`);
}

/** The engine `device` runs on here: `{ device: "webgpu" | "cpu", why, adapter }`; `why` says in words why
 * "auto" chose the CPU engine (else null), `adapter` is the GPUAdapter found (or null).
 * The rule for "auto": WebGPU when the browser offers a hardware adapter; the CPU engine when it offers no
 * WebGPU, no adapter, or only a software adapter. A software adapter is far slower than the CPU engine:
 * on this project's 2-core test machine SwiftShader WebGPU decodes gpt2 q8 at 0.6-1 token/s (ours and
 * transformers.js alike), the CPU engine at 17-25 tokens/s even with the machine loaded (README, "The CPU
 * engine in the browser").
 * "webgpu" without the API rejects (kind "no-webgpu"); without an adapter, load() rejects in words.
 * @param {"auto" | "webgpu" | "cpu"} device */
export async function chooseDevice(device = "auto") {
  if (device === "cpu") return { device, why: null, adapter: null };
  if (!hasWebGPU()) {
    if (device === "webgpu") throw new GPT2Error("no-webgpu", NO_WEBGPU_MESSAGE);
    return { device: "cpu", why: "this browser does not offer WebGPU", adapter: null };
  }
  let adapter = null;
  try { adapter = await navigator.gpu.requestAdapter(); } catch { adapter = null; }
  if (device === "webgpu") return { device, why: null, adapter };
  if (!adapter) return { device: "cpu", why: "this browser offers WebGPU but no GPU adapter", adapter };
  if (isSoftwareAdapter(adapter)) {
    return { device: "cpu", why: "WebGPU here has only a software adapter (no GPU), which is much slower than the CPU engine", adapter };
  }
  return { device: "webgpu", why: null, adapter };
}

// The generation options, their allowed values and the words that say so. gpt2.js checks every option
// against this table before anything reaches the worker; the page and the element use it to check
// their fields.
export const GENERATE_OPTIONS = {
  maxNewTokens: { whole: true, min: 1, max: 1_000_000, range: "a whole number from 1 to 1000000" },
  temperature: { min: 0, range: "a number >= 0 (0 = greedy)" },
  topK: { whole: true, min: 0, max: 4294967295, range: "a whole number >= 0 (0 = off)" },
  topP: { above: 0, max: 1, range: "a number above 0 and at most 1 (1 = off)" },
  repetitionPenalty: { above: 0, range: "a number above 0 (1 = off)" },
  seed: { whole: true, min: 0, max: Number.MAX_SAFE_INTEGER, range: `a whole number from 0 to ${Number.MAX_SAFE_INTEGER}` },
  alternatives: { whole: true, min: 0, max: 8, range: "a whole number from 0 to 8" },
  stopAtEos: { boolean: true, range: "true or false" },
};

/** What is wrong with `value` for the generation option `name`, in words ("must be ..., got ..."), or
 * null when it is allowed. `undefined` is allowed (the default). */
export function optionProblem(name, value) {
  const o = GENERATE_OPTIONS[name];
  if (!o) return `is not an option (the options are ${Object.keys(GENERATE_OPTIONS).join(", ")} and signal)`;
  if (value === undefined) return null;
  const got = typeof value === "string" ? JSON.stringify(value) : String(value);
  if (o.boolean) return typeof value === "boolean" ? null : `must be ${o.range}, got ${got}`;
  const ok = typeof value === "number" && Number.isFinite(value) && (!o.whole || Number.isInteger(value)) &&
    (o.min === undefined || value >= o.min) && (o.above === undefined || value > o.above) &&
    (o.max === undefined || value <= o.max);
  return ok ? null : `must be ${o.range}, got ${got}`;
}

function checkOptions(opts) {
  if (opts === null || typeof opts !== "object" || Array.isArray(opts)) {
    throw new GPT2Error("invalid-option", `generation options must be an object such as { maxNewTokens: 20 }, got ${String(opts)}`);
  }
  for (const [name, value] of Object.entries(opts)) {
    if (name === "signal") continue; // checked by generate()
    const p = optionProblem(name, value);
    if (p) {
      const e = new GPT2Error("invalid-option", `${name} ${p}.`);
      e.option = name;
      throw e;
    }
  }
}

const DISPOSED = "this model was disposed: load it again";
let nextId = 1;

class Model {
  #worker;
  #listeners = new Map(); // generation id -> handler(message)
  #tail = Promise.resolve(); // settles when the last generation queued so far has ended in the worker
  #current = null; // the running generation's stop()
  #broken = null; // a GPT2Error once the worker crashed
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
        this.#endAll({ type: "error", kind: "device-lost", message: m.message });
        this.onDeviceLost?.(new GPT2Error("device-lost", m.message));
        return;
      }
      this.#listeners.get(m.id)?.(m);
    };
    // An uncaught error in the worker (or a message it cannot read): the worker's state is unknown, so
    // the model is done for. Every generation ends with the error; later ones fail at once.
    const crash = (why) => {
      if (this.#broken || !this.#worker) return;
      const message = `The model's worker crashed (${why}). Load the model again to continue.`;
      this.#broken = new GPT2Error("worker", message);
      this.#worker.terminate();
      this.#worker = null;
      this.#endAll({ type: "error", kind: "worker", message });
    };
    worker.onerror = (e) => {
      e.preventDefault?.();
      crash(e.message || "a script error");
    };
    worker.onmessageerror = () => crash("a message could not be read");
  }

  // Ends every generation, running or queued, with `m` (an error or done).
  #endAll(m) {
    for (const l of [...this.#listeners.values()]) l(m);
  }

  /** The worker's WebAssembly memory in bytes (it only grows, so this is its peak) and the bytes of the
   * GPU buffers the model holds (0 on the CPU engine).
   * @returns {Promise<{ wasmBytes: number, gpuBytes: number }>} */
  memory() {
    return this.#ask("memory", (m) => ({ wasmBytes: m.wasmBytes, gpuBytes: m.gpuBytes }));
  }

  /** What the engine has submitted to the GPU and read back since the load (all 0 on the CPU engine):
   * the difference over a generation, divided by its tokens, is `gpt2 bench --json`'s submits_per_token,
   * readbacks_per_token and readback_bytes_per_token. `pipelines`: the compute pipelines built so far (the
   * load builds all a step needs, so generating leaves it unchanged). Answered between two steps.
   * @returns {Promise<{ submits: number, readbacks: number, readbackBytes: number, pipelines: number }>} */
  counters() {
    return this.#ask("counters", (m) => ({ submits: m.submits, readbacks: m.readbacks, readbackBytes: m.readbackBytes, pipelines: m.pipelines }));
  }

  // One question to the worker that it answers with one message of the same `type`: `pick` turns that
  // answer into the result; any other answer (an error, the worker gone) rejects in words.
  #ask(type, pick) {
    if (this.#broken) return Promise.reject(this.#broken);
    if (!this.#worker) return Promise.reject(new GPT2Error("state", DISPOSED));
    const id = nextId++;
    return new Promise((resolve, reject) => {
      this.#listeners.set(id, (m) => {
        this.#listeners.delete(id);
        if (m.type === type) resolve(pick(m));
        else reject(new GPT2Error(m.kind || "state", m.message || DISPOSED));
      });
      this.#worker.postMessage({ type, id });
    });
  }

  /** Sets the deadline of the worker's GPU waits in ms (0: the default, 300 s): for testing what a GPU
   * that never answers does to a generation. */
  setGpuWaitLimitForTesting(ms) {
    this.#worker?.postMessage({ type: "gpu-wait-limit", ms });
  }

  /** Destroys the worker's GPU device: a real device loss, for testing the page's recovery. */
  loseDeviceForTesting() {
    this.#worker?.postMessage({ type: "lose-device" });
  }

  /** Stream the continuation of `prompt`, one piece per token. Breaking out of the loop, calling stop()
   * or aborting `opts.signal` ends the stream at once (the worker finishes its step, whose piece is
   * dropped). Generations on one model run one after another, in the order generate() was called;
   * each gives the text it would give alone. A bad option rejects (GPT2Error, kind "invalid-option",
   * `option` names it) before anything is sent; the model stays usable.
   * Defaults: greedy (temperature 0), 50 tokens, stop at <|endoftext|>.
   * @param {string} prompt
   * @param {import("./gpt2.d.ts").GenerateOptions} [opts]
   * @returns {AsyncGenerator<import("./gpt2.d.ts").Piece, void, undefined>} */
  async *generate(prompt, opts = {}) {
    checkOptions(opts);
    const { signal, ...rest } = opts;
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      const e = new GPT2Error("invalid-option", "signal must be an AbortSignal (from an AbortController).");
      e.option = "signal";
      throw e;
    }
    if (this.#broken) throw this.#broken;
    if (!this.#worker) throw new GPT2Error("state", DISPOSED);
    if (this.lost) throw new GPT2Error("device-lost", this.lost);
    if (signal?.aborted) return;

    const id = nextId++;
    const inbox = [];
    let wake = null;
    const push = (m) => {
      inbox.push(m);
      wake?.();
      wake = null;
    };
    // Our turn comes when every generation queued before this one has ended in the worker.
    const prev = this.#tail;
    let release;
    const ended = new Promise((r) => (release = r));
    this.#tail = prev.then(() => ended);
    let started = false, finished = false;
    this.#listeners.set(id, (m) => {
      if (m.type === "done" || m.type === "error") {
        finished = true;
        this.#listeners.delete(id);
        release();
      }
      push(m);
    });
    let stopped = false;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      if (started && !finished) this.#worker?.postMessage({ type: "stop", id });
      push({ type: "stopped" });
    };
    signal?.addEventListener("abort", stop);
    prev.then(() => push({ type: "turn" }));
    try {
      for (;;) {
        while (inbox.length === 0) await new Promise((r) => (wake = r));
        const m = inbox.shift();
        if (m.type === "stopped") return;
        if (m.type === "error") throw new GPT2Error(m.kind, m.message);
        if (m.type === "done") return;
        if (m.type === "turn") {
          if (stopped || finished) continue;
          if (!this.#worker) throw this.#broken || new GPT2Error("state", DISPOSED);
          if (this.lost) throw new GPT2Error("device-lost", this.lost);
          started = true;
          this.#current = stop;
          this.#worker.postMessage({ type: "generate", id, prompt: String(prompt), opts: rest });
        } else if (m.type === "started") {
          this.lastStart = { promptTokens: m.promptTokens, notices: m.notices, ids: m.promptIds };
        } else if (m.type === "piece" && !stopped) {
          yield m.piece;
          if (stopped) return;
        }
      }
    } finally {
      signal?.removeEventListener("abort", stop);
      if (this.#current === stop) this.#current = null;
      if (!started && !finished) {
        // Never sent: nothing to wait for.
        this.#listeners.delete(id);
        release();
      } else if (!finished) {
        // Ended early (break, stop, abort, an exception in the loop's body): the worker stops after its
        // step; the next generation starts once it says so (the listener above releases the turn).
        stopped = true;
        this.#worker?.postMessage({ type: "stop", id });
      }
    }
  }

  /** Look inside the model: every block's attention probabilities and the logit lens, for a text or token
   * ids (at most the context length), run from position 0 in a pass of its own. A generation in progress
   * keeps its place (the inspection runs between two of its steps).
   * Resolves to `{ ids, layers, heads, position, attention: Float32Array [layers, heads, T, T] (row = query,
   * column = key), lens: Float32Array [layers, V] (ln_f(residual after block l) @ wte^T at `position`),
   * tokens: the text of each id, lensTop: the 5 likeliest tokens of each lens row }`.
   * @param {string | readonly number[]} textOrIds
   * @param {import("./gpt2.d.ts").InspectOptions} [opts] `position`: where the lens is taken (default the last)
   * @returns {Promise<import("./gpt2.d.ts").Inspection>} */
  async inspect(textOrIds, opts = {}) {
    const bad = (m, option) => Object.assign(new GPT2Error("invalid-option", m), option ? { option } : {});
    if (typeof textOrIds !== "string" && !(Array.isArray(textOrIds) && textOrIds.every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32))) {
      throw bad(`inspect takes a text or an array of token ids (whole numbers >= 0), got ${String(textOrIds).slice(0, 40)}`);
    }
    if (opts === null || typeof opts !== "object") throw bad("inspect's options must be an object such as { position: 3 }");
    for (const k of Object.keys(opts)) if (k !== "position") throw bad(`${k} is not an option of inspect (the option is position)`, k);
    const { position } = opts;
    if (position !== undefined && !(Number.isInteger(position) && position >= 0)) {
      throw bad(`position must be a whole number >= 0 (a token index), got ${String(position)}`, "position");
    }
    if (this.#broken) throw this.#broken;
    if (!this.#worker) throw new GPT2Error("state", DISPOSED);
    if (this.lost) throw new GPT2Error("device-lost", this.lost);
    const id = nextId++;
    return new Promise((resolve, reject) => {
      this.#listeners.set(id, (m) => {
        if (m.type !== "inspected" && m.type !== "error") return;
        this.#listeners.delete(id);
        if (m.type === "inspected") resolve(m.result);
        else reject(new GPT2Error(m.kind, m.message));
      });
      this.#worker.postMessage({ type: "inspect", id, input: typeof textOrIds === "string" ? textOrIds : [...textOrIds], position });
    });
  }

  /** Stop the running generation: its loop ends at once. Queued generations still run. */
  stop() {
    this.#current?.();
  }

  /** Free the GPU memory and end the worker. Safe at any time: a running or queued generation ends
   * with a GPT2Error of kind "state". */
  dispose() {
    if (!this.#worker) return;
    this.#worker.terminate();
    this.#worker = null;
    this.#endAll({ type: "error", kind: "state", message: "the model was disposed during this generation" });
  }
}

// A model package URL as a folder URL ending in "/" (".../manifest.json" names its folder).
function packageBase(url) {
  const u = new URL(url, document.baseURI);
  u.search = "";
  u.hash = "";
  if (u.pathname.endsWith("/manifest.json")) u.pathname = u.pathname.slice(0, -"manifest.json".length);
  if (!u.pathname.endsWith("/")) u.pathname += "/";
  return u.href;
}

/** The kernel tunings `load`'s `tuning` option takes (src/gpu/tuning.rs `TuningKind`): "gpu" (many lanes
 * per row, tiled matmul, split attention), "cpu" (16 rows per thread, weights in textures) and
 * "swiftshader" (the CPU tuning with prompts through its gemv too). */
export const TUNINGS = ["gpu", "cpu", "swiftshader"];

/** Download (or take from the cache), verify and upload the model package at `url` (a folder with
 * manifest.json). `device`: "auto" (the default) runs on WebGPU when the browser offers a hardware GPU
 * adapter, else on the CPU engine (WebAssembly SIMD in the worker, one thread) with no error: no WebGPU,
 * no adapter, or only a software adapter such as SwiftShader, which is far slower than the CPU engine.
 * `model.info.device` says which ran ("webgpu" or "cpu"; `info.fallbackReason` says why auto chose the
 * CPU). "webgpu" rejects with kind "no-webgpu" where there is none; "cpu" always runs on the CPU. `onProgress({phase, loaded, total, file})`, phase: "downloading", "verifying",
 * "cache" or "uploading". Aborting `signal` rejects at once (kind "aborted"), cancels the downloads
 * and ends the worker; files already verified stay cached, nothing else is. `tuning` forces the shapes of
 * the WebGPU kernels whatever the adapter (one of TUNINGS; absent: chosen by the adapter, as `info.tuning`
 * reports): for tests and measurements, as GPT2_TUNING natively. Refused with device "cpu"; where "auto"
 * runs the CPU engine it has nothing to shape.
 * @param {string | URL} url the package folder, relative to the page
 * @param {import("./gpt2.d.ts").LoadOptions} [options]
 * @returns {Promise<import("./gpt2.d.ts").GPT2Model>} */
export async function load(url, { onProgress, signal, onDeviceLost, device = "auto", tuning } = {}) {
  if (!["auto", "webgpu", "cpu"].includes(device)) {
    const e = new GPT2Error("invalid-option", `device must be "auto", "webgpu" or "cpu", not ${JSON.stringify(device)}.`);
    e.option = "device";
    throw e;
  }
  if (tuning !== undefined && !TUNINGS.includes(tuning)) {
    const e = new GPT2Error("invalid-option", `tuning must be one of ${TUNINGS.map((t) => JSON.stringify(t)).join(", ")} (or absent: chosen by the adapter), not ${JSON.stringify(tuning)}.`);
    e.option = "tuning";
    throw e;
  }
  if (tuning !== undefined && device === "cpu") {
    const e = new GPT2Error("invalid-option", `tuning shapes the WebGPU kernels: it cannot be given with device "cpu".`);
    e.option = "tuning";
    throw e;
  }
  // The engine is picked here, where the visitor's browser is (chooseDevice: no WebGPU, no adapter or a
  // software adapter -> the CPU engine, with no error); the worker runs what it is told.
  const { device: engine, why } = await chooseDevice(device);
  if (signal?.aborted) throw new GPT2Error("aborted", "loading was cancelled");
  let abs;
  try {
    abs = packageBase(url);
  } catch {
    throw new GPT2Error("package", `${JSON.stringify(String(url))} is not a URL of a model package folder.`);
  }
  const worker = new Worker(new URL("./worker.js", import.meta.url), { type: "module" });
  const id = nextId++;
  let onAbort = null;
  try {
    const r = await new Promise((resolve, reject) => {
      onAbort = () => reject(new GPT2Error("aborted", "loading was cancelled"));
      signal?.addEventListener("abort", onAbort);
      worker.onerror = (e) => {
        e.preventDefault?.();
        reject(new GPT2Error("wasm", `the model worker failed (${e.message || "a script error"}). Load the model again.`));
      };
      worker.onmessageerror = () => reject(new GPT2Error("wasm", "the model worker sent a message that could not be read. Load the model again."));
      worker.onmessage = (ev) => {
        const m = ev.data;
        if (m.type === "error" && (m.id === id || m.id === null)) reject(new GPT2Error(m.kind, m.message));
        else if (m.type === "device-lost") reject(new GPT2Error("device-lost", m.message));
        else if (m.id !== id) return;
        else if (m.type === "progress") {
          try {
            onProgress?.({ phase: m.phase, loaded: m.loaded, total: m.total, file: m.file });
          } catch (e) {
            reject(e);
          }
        } else if (m.type === "loaded") resolve(m);
      };
      worker.postMessage({ type: "load", id, url: abs, device: engine, why, tuning });
    });
    worker.onerror = null;
    return new Model(worker, r.info, r.notices, abs, onDeviceLost);
  } catch (e) {
    // Ending the worker cancels its downloads; the Cache API only ever holds verified files.
    worker.terminate();
    throw e;
  } finally {
    signal?.removeEventListener("abort", onAbort);
  }
}

/** The cache holding verified model files (the name lives in shared.js, which the worker imports too). */
export const CACHE_NAME = FILES_CACHE;

// The package's manifest: from the network, else the copy the worker kept at the last load (offline).
async function manifestOf(base) {
  const u = new URL(MANIFEST_FILE, base).href;
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
      if (!(await cache.match(cacheKey(new URL(f.file, base).href, f)))) return false;
    }
    return true;
  } catch {
    return false;
  }
}
