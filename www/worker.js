// The inference worker (a module Web Worker, started by gpt2.js; not a public API).
// Downloads a model package (docs/format.md), checks every file's SHA-256 before using or caching it,
// keeps verified files in the Cache API (so a second visit downloads nothing, and an interrupted
// download resumes at the first missing shard), streams the model onto the GPU or into the CPU engine
// (wasm SIMD, this worker's one thread) through the wasm module shard by shard (one shard in memory at a
// time) and runs the generation loop, one message per token.
//
// Messages in:  {type: "load", id, url, device: "auto" | "webgpu" | "cpu", why, tuning} | {type: "generate", id, prompt, opts} | {type: "stop", id} |
//               {type: "inspect", id, input, position} |
//               {type: "abort", id} | {type: "dispose"} | {type: "lose-device"} (destroys the GPU device: for tests) |
//               {type: "memory", id} | {type: "counters", id} | {type: "gpu-wait-limit", ms} (the deadline of GPU waits: for tests)
// Messages out: {type: "progress", id, phase, loaded, total, file} | {type: "loaded", id, info, notices}
//               {type: "started", id, promptTokens, promptIds, notices} | {type: "piece", id, piece} |
//               {type: "inspected", id, result}
//               {type: "done", id} | {type: "error", id, message, kind} | {type: "device-lost", message} |
//               {type: "memory", id, wasmBytes, gpuBytes} | {type: "counters", id, submits, readbacks, readbackBytes, pipelines}

import init, { WasmModel, checkManifest, setGpuWaitLimit } from "./pkg/gpt2_webgpu.js";
import { NO_ADAPTER_MESSAGE, chooseDevice } from "./gpt2.js";
import { CACHE_NAME, MANIFEST_FILE, cacheKey } from "./shared.js";

// The module's exports: `memory` is the wasm memory, whose size info.wasmMemoryBytes reports.
let wasm = null;
const wasmReady = init().then((w) => (wasm = w));
let model = null;
let queue = Promise.resolve(); // load and generate run one at a time
const aborted = new Set();

// The GPUDevice wgpu creates, caught on its way out of requestDevice (wgpu does not hand it to JS), so the
// worker can listen for `device.lost` itself and tell the page at once, not only at the next step.
let device = null;
let deviceLost = null; // words, once the current device is lost
let deviceTimes = null; // [asked, got] of the latest requestDevice, performance.now() ms (info.loadPhases)
const DEVICE_LOST_WORDS = "The GPU device was lost (the driver restarted, the GPU was reset or the browser reclaimed it)";
if (self.GPUAdapter?.prototype?.requestDevice) {
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const asked = performance.now();
    const d = await requestDevice.apply(this, args);
    deviceTimes = [asked, performance.now()];
    device = d;
    deviceLost = null;
    d.lost.then((info) => {
      if (d !== device) return; // replaced or disposed by us
      deviceLost = `${DEVICE_LOST_WORDS}: ${info.reason || "unknown"}${info.message ? ", " + info.message.replace(/[.\s]+$/, "") : ""}. Reload the model to continue.`;
      postMessage({ type: "device-lost", message: deviceLost });
    });
    return d;
  };
}

// Sane limits on what a manifest may ask this worker to download and hold: `gpt2 convert` writes shards
// of at most 64 MiB and GPT-2's tokenizer.json is 1.4 MB; the largest package (gpt2-xl, f32) is 6.2 GB.
const MAX_SHARD_BYTES = 1 << 30;
const MAX_TOKENIZER_BYTES = 64 << 20;
const MAX_PACKAGE_BYTES = 16 * 2 ** 30;
const MIB = (n) => `${(n / 1048576).toFixed(1)} MiB`;

class Failure extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(bytes) {
  return hex(await crypto.subtle.digest("SHA-256", bytes));
}

async function openCache() {
  try {
    return await caches.open(CACHE_NAME);
  } catch {
    return null; // no Cache API here (opaque origin, disabled storage): work from memory
  }
}

// The SHA-256 (hex) of every file getFile returned, computed here by WebCrypto over those very bytes:
// pushShard compares it with the manifest instead of hashing the shard again in wasm (~7x slower).
const checkedDigest = new WeakMap();

// One package file, verified: from the cache if there, otherwise downloaded (with progress), checked,
// then cached. A file that fails the check is never cached.
async function getFile(ctx, url, entry) {
  const key = cacheKey(url, entry);
  if (ctx.cache) {
    const hit = await ctx.cache.match(key);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      const actual = bytes.length === entry.bytes ? await sha256(bytes) : null;
      if (actual === entry.sha256) {
        checkedDigest.set(bytes, actual);
        ctx.loaded += bytes.length;
        ctx.progress("cache", entry.file);
        return bytes;
      }
      await ctx.cache.delete(key); // damaged in storage: fetch it again
    }
  }
  let resp;
  try {
    resp = await fetch(url, { signal: ctx.signal, cache: "no-store" });
  } catch (e) {
    if (ctx.signal.aborted) throw new Failure("aborted", "loading was cancelled");
    throw new Failure("download", `downloading ${entry.file} failed (${e.message}). Check the connection and load the model again.`);
  }
  if (!resp.ok) {
    throw new Failure("download", `downloading ${entry.file} failed: the server answered ${resp.status} ${resp.statusText}. Check the connection and load the model again.`);
  }
  const bytes = new Uint8Array(entry.bytes);
  let n = 0;
  const reader = resp.body.getReader();
  for (;;) {
    let chunk;
    try {
      chunk = await reader.read();
    } catch (e) {
      if (ctx.signal.aborted) throw new Failure("aborted", "loading was cancelled");
      throw new Failure("download", `downloading ${entry.file} was interrupted (${e.message}). Load the model again: finished files are not downloaded twice.`);
    }
    if (chunk.done) break;
    const v = chunk.value;
    if (n + v.length > bytes.length) {
      throw new Failure("corrupt", `${entry.file} is larger than the ${entry.bytes} bytes manifest.json lists: the server sent a wrong or corrupt file. It was not cached; load the model again.`);
    }
    bytes.set(v, n);
    n += v.length;
    ctx.loaded += v.length;
    ctx.progress("downloading", entry.file);
  }
  if (n !== entry.bytes) {
    throw new Failure("corrupt", `${entry.file} has ${n} bytes but manifest.json says ${entry.bytes}: the download is incomplete. It was not cached; load the model again.`);
  }
  ctx.progress("verifying", entry.file);
  const actual = await sha256(bytes);
  if (actual !== entry.sha256) {
    throw new Failure("corrupt", `${entry.file} is corrupt: its SHA-256 is ${actual} but manifest.json says ${entry.sha256}. It was not cached; load the model again to download it again.`);
  }
  checkedDigest.set(bytes, actual);
  if (ctx.cache) {
    try {
      await ctx.cache.put(key, new Response(bytes, { headers: { "Content-Type": "application/octet-stream" } }));
    } catch (e) {
      ctx.cache = null;
      ctx.notices.push(`the browser's storage is full (${e.name}): this model stays in memory only and will be downloaded again next time`);
    }
  }
  return bytes;
}

// The manifest, checked completely before anything in it is used: the wasm module's parser (the same
// checks as the native loader: format, version, config, plain file names, hashes, every tensor) and,
// here, sizes this worker can hold and URLs inside the package's folder. Returns the files to fetch.
function checkedManifest(bytes, base) {
  let m;
  try {
    m = checkManifest(bytes);
  } catch (e) {
    throw new Failure("package", e.message);
  }
  const bad = (why) => new Failure("package", `The model package's manifest.json ${why}. The package is damaged or not a gpt2-webgpu package: convert it again.`);
  const folder = base.href.slice(0, base.href.length - base.search.length - base.hash.length);
  const place = (what, f, max) => {
    if (!Number.isSafeInteger(f.bytes) || f.bytes <= 0 || f.bytes > max) {
      throw bad(`lists ${what} ${f.file} at ${f.bytes} bytes, outside the sane range (1 byte to ${MIB(max)})`);
    }
    // Plain names only (the parser refuses separators); "%", "?" and "#" could still leave the folder.
    const url = new URL(f.file, base);
    if (/[%?#]/.test(f.file) || url.origin !== base.origin || !url.href.startsWith(folder) || url.href.slice(folder.length).includes("/")) {
      throw bad(`names ${what} "${f.file}", which is not a file in the package's own folder`);
    }
    return { file: f.file, bytes: f.bytes, sha256: f.sha256, url: url.href };
  };
  const tokenizer = place("the tokenizer", m.tokenizer, MAX_TOKENIZER_BYTES);
  const shards = m.shards.map((s) => place("the shard", s, MAX_SHARD_BYTES));
  const total = shards.reduce((n, s) => n + s.bytes, 0);
  if (total > MAX_PACKAGE_BYTES) throw bad(`adds up to ${MIB(total)} of shards, more than the ${MIB(MAX_PACKAGE_BYTES)} a browser can load`);
  return { tokenizer, shards };
}

const wasmBytes = () => wasm?.memory?.buffer?.byteLength ?? 0;

// `device`: "webgpu" or "cpu" as gpt2.js chose it (with `why`, its reason for the CPU), or "auto".
// `tuning`: the kernels' shapes forced on WebGPU ("gpu", "cpu", "swiftshader"; undefined: by the adapter).
async function load(id, url, requested = "auto", reason = null, tuning = undefined) {
  // Where a load's time goes (info.loadPhases, ms): performance.now() at each phase's end.
  const at = { start: performance.now() };
  await wasmReady;
  at.wasm = performance.now();
  const { device, why } = requested === "auto" ? await chooseDevice(requested) : { device: requested, why: reason };
  const controller = new AbortController();
  const ctx = {
    signal: controller.signal,
    cache: await openCache(),
    loaded: 0,
    total: 0,
    notices: [],
    progress(phase, file) {
      if (aborted.has(id)) controller.abort();
      postMessage({ type: "progress", id, phase, loaded: ctx.loaded, total: ctx.total, file });
    },
  };
  const base = new URL(url, self.location.href);
  let manifestBytes;
  let fromNetwork = false;
  const manifestUrl = new URL(MANIFEST_FILE, base).href;
  try {
    const r = await fetch(manifestUrl, { cache: "no-cache", signal: ctx.signal });
    if (!r.ok) throw new Error(`the server answered ${r.status} ${r.statusText}`);
    manifestBytes = new Uint8Array(await r.arrayBuffer());
    fromNetwork = true;
  } catch (e) {
    if (aborted.has(id)) throw new Failure("aborted", "loading was cancelled");
    const hit = await ctx.cache?.match(manifestUrl).catch(() => null);
    if (hit && !(e instanceof Failure)) {
      manifestBytes = new Uint8Array(await hit.arrayBuffer()); // offline: the copy kept at the last load
      ctx.notices.push("offline: loaded from this browser's storage");
    } else {
      throw new Failure("download", `downloading ${manifestUrl} failed (${e.message}). Is this a model package URL, and is the network up?`);
    }
  }
  // Nothing of the manifest is used (nor cached) before it passed every check.
  const manifest = checkedManifest(manifestBytes, base);
  ctx.total = manifest.tokenizer.bytes + manifest.shards.reduce((s, f) => s + f.bytes, 0);
  ctx.progress("downloading", "manifest.json");
  const tokenizer = await getFile(ctx, manifest.tokenizer.url, manifest.tokenizer);
  if (aborted.has(id)) throw new Failure("aborted", "loading was cancelled");
  at.files = performance.now();
  // The shards stream onto the GPU as they arrive, so the model they replace goes first.
  if (model) {
    device = null; // its loss, caused by us, is not reported
    model.dispose();
    model.free();
    model = null;
  }
  // One shard at a time: fetched (or read from the cache) and verified, pushed (checked again, its
  // complete tensors uploaded), dropped. A failure anywhere frees everything uploaded so far.
  deviceTimes = null;
  // A tuning shapes GPU kernels only: where the CPU engine runs it has nothing to shape (gpt2.js refuses
  // it with device "cpu"; here "auto" chose the CPU).
  const loader = await WasmModel.beginLoad(manifestBytes, tokenizer, device, device === "cpu" ? undefined : tuning);
  at.begun = performance.now();
  let shardsMs = 0, pushMs = 0;
  try {
    for (const s of manifest.shards) {
      if (aborted.has(id)) throw new Failure("aborted", "loading was cancelled");
      const t = performance.now();
      const bytes = await getFile(ctx, s.url, s);
      ctx.progress("uploading", s.file);
      const t1 = performance.now();
      loader.pushShard(bytes, checkedDigest.get(bytes));
      shardsMs += t1 - t;
      pushMs += performance.now() - t1;
    }
    ctx.progress("uploading", "");
    at.pushed = performance.now();
    model = await loader.finish();
    at.finished = performance.now();
  } catch (e) {
    // The CPU engine's allocations that fail (memory.grow refused: wasm32's 4 GB, or less where the
    // browser or the machine gives less) end the module with a trap. Say what it means; this worker is
    // not used again (every load() starts a new one).
    if (device === "cpu" && e instanceof WebAssembly.RuntimeError) {
      throw new Failure("too-large", `The model does not fit in this browser's WebAssembly memory: the CPU engine could not get more ` +
        `memory while loading it (${MIB(wasmBytes())} in use; browsers give WebAssembly at most 4 GB, some less). Pick a smaller size ` +
        `or a more compact quantization (q8 or q4), or use a browser with WebGPU.`);
    }
    throw e;
  } finally {
    try { loader.free(); } catch { /* after a trap */ }
  }
  ctx.progress("uploading", "");
  // Kept for offline loads only now: it passed every check and every file it names is cached.
  if (fromNetwork) {
    try { await ctx.cache?.put(manifestUrl, new Response(manifestBytes.slice(), { headers: { "Content-Type": "application/json" } })); } catch { /* quota: see getFile */ }
  }
  const info = model.info();
  info.wasmMemoryBytes = wasmBytes();
  const ms = (x) => Math.round(x * 10) / 10;
  const dev = deviceTimes && deviceTimes[0] >= at.files ? deviceTimes : null; // this load's device (none on the CPU)
  info.loadPhases = {
    wasmMs: ms(at.wasm - at.start),
    filesMs: ms(at.files - at.wasm), // manifest and tokenizer.json: downloaded or from the cache, verified
    // beginLoad: the manifest and tokenizer parsed in wasm, then (WebGPU) the adapter, the device and every
    // pipeline asked for (Gpu::from_adapter: the browser compiles them while the shards download)
    beginMs: ms((dev ? dev[0] : at.begun) - at.files),
    deviceMs: dev ? ms(dev[1] - dev[0]) : null,
    pipelinesMs: dev ? ms(at.begun - dev[1]) : null,
    shardsMs: ms(shardsMs), // the shards downloaded or read from the cache, and verified
    uploadMs: ms(pushMs), // the shards pushed into the engine (checked again, the weights uploaded)
    // the KV cache, activations and dispatch list, and (WebGPU) waiting for the pipelines still compiling
    finishMs: ms(at.finished - at.pushed),
    totalMs: ms(performance.now() - at.start),
  };
  info.fallbackReason = why;
  // wgpu's WebGPU backend leaves the adapter's name empty; the browser's GPUAdapterInfo has words.
  if (info.device === "webgpu") try {
    const a = (await navigator.gpu.requestAdapter())?.info;
    if (a) {
      info.adapter.browser = { vendor: a.vendor, architecture: a.architecture, device: a.device, description: a.description };
      if (!info.adapter.name) info.adapter.name = [a.vendor, a.architecture, a.description].filter(Boolean).join(" ");
    }
  } catch { /* the name is cosmetic */ }
  return { info, notices: ctx.notices };
}

let generating = null; // the id of the generation running now
const stopped = new Set(); // ids asked to stop (a stop may arrive before its generation begins here)
let lastEnded = 0; // generation ids only grow: a stop for an id at or below this one comes too late

// The GPU model runs one call at a time: a generation's steps and inspections take turns, so an
// inspection asked for during a generation runs between two of its steps (and leaves its place alone).
let gpuTurn = Promise.resolve();
function withGpu(fn) {
  const r = gpuTurn.then(fn);
  gpuTurn = r.catch(() => {});
  return r;
}

// The inspection of a text or ids, with the text of each token and the 5 likeliest tokens of each lens
// row (for the page's panel); the arrays are transferred, not copied.
async function inspect(id, input, position) {
  if (!model) throw new Failure("state", "no model is loaded");
  if (deviceLost) throw new Failure("device-lost", deviceLost);
  const r = await withGpu(() => model.inspect(input, position));
  const V = r.lens.length / r.layers;
  r.tokens = r.ids.map((t) => model.decode([t]));
  // Where each token lies in the decoded text: a character split over several byte-level tokens (most
  // non-Latin text, emoji) decodes whole only with all of them, so they share the span of that text.
  r.text = "";
  r.spans = [];
  let group = [];
  for (let j = 0; j < r.ids.length; j++) {
    group.push(r.ids[j]);
    const d = group.length === 1 ? r.tokens[j] : model.decode(group);
    // (A run of CJK text can chain characters over many tokens; 64 bounds the cost of re-decoding.)
    if (d.endsWith("\ufffd") && j + 1 < r.ids.length && group.length < 64) continue;
    for (let k = 0; k < group.length; k++) r.spans.push([r.text.length, r.text.length + d.length]);
    r.text += d;
    group = [];
  }
  r.lensTop = [];
  for (let l = 0; l < r.layers; l++) {
    const row = r.lens.subarray(l * V, (l + 1) * V);
    let max = -Infinity;
    for (let i = 0; i < V; i++) if (row[i] > max) max = row[i];
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(row[i] - max);
    const top = [];
    for (let i = 0; i < V; i++) {
      if (top.length < 5 || row[i] > row[top[top.length - 1]]) {
        top.push(i);
        top.sort((a, b) => row[b] - row[a]);
        if (top.length > 5) top.pop();
      }
    }
    r.lensTop.push(top.map((t) => ({ tokenId: t, text: model.decode([t]), prob: Math.exp(row[t] - max) / sum })));
  }
  postMessage({ type: "inspected", id, result: r }, [r.attention.buffer, r.lens.buffer]);
}

async function generate(id, prompt, opts) {
  generating = id;
  try {
    if (!model) throw new Failure("state", "no model is loaded (or it was lost): load the model again");
    if (deviceLost) throw new Failure("device-lost", deviceLost);
    const start = await withGpu(() => model.start(prompt, opts || {})); // after any inspection in flight
    postMessage({ type: "started", id, ...start });
    const t0 = performance.now();
    for (;;) {
      if (stopped.has(id)) model.stop();
      const piece = await withGpu(() => model.next());
      if (piece === null) break;
      piece.ms = performance.now() - t0;
      postMessage({ type: "piece", id, piece });
      if (piece.last) break;
    }
    postMessage({ type: "done", id });
  } finally {
    generating = null;
    stopped.delete(id);
    lastEnded = Math.max(lastEnded, id);
  }
}

function fail(id, e) {
  let message = e.message || String(e);
  let kind = e.kind || (/GPU|adapter|device/i.test(message) ? "gpu" : "error");
  if (deviceLost || /device was lost/i.test(message)) {
    kind = "device-lost";
    message = deviceLost || `${DEVICE_LOST_WORDS} (${message}). Reload the model to continue.`;
  } else if (/did not finish its work within/.test(message)) {
    kind = "gpu-timeout"; // the GPU hung (or is far too slow): this model cannot go on
  } else if (/does not fit this GPU|does not fit in memory|^too much to inspect/.test(message)) {
    kind = "too-large";
  } else if (/^no GPU adapter found/.test(message)) {
    // The engine's words are for the CLI (drivers, lavapipe); a visitor needs the browser's side.
    kind = "no-webgpu";
    message = NO_ADAPTER_MESSAGE;
  } else if (e instanceof WebAssembly.RuntimeError) {
    // A trap (a panic) inside the wasm module: its state cannot be trusted any more.
    kind = "wasm";
    message = `The model's WebAssembly module failed (${message}). Load the model again to continue.`;
    model = null;
  }
  postMessage({ type: "error", id, kind, message });
}

self.onmessage = (ev) => {
  const m = ev.data;
  switch (m.type) {
    case "stop":
      if (m.id === undefined || m.id === generating) {
        model?.stop();
        if (generating !== null) stopped.add(generating);
      } else if (m.id > lastEnded) stopped.add(m.id);
      break;
    case "abort":
      aborted.add(m.id);
      break;
    case "load":
      queue = queue.then(() => load(m.id, m.url, m.device, m.why, m.tuning).then((r) => postMessage({ type: "loaded", id: m.id, ...r }), (e) => fail(m.id, e)));
      break;
    case "generate":
      queue = queue.then(() => generate(m.id, m.prompt, m.opts).catch((e) => fail(m.id, e)));
      break;
    case "inspect":
      // Not queued behind a generation: it takes its turn on the GPU between two steps.
      inspect(m.id, m.input, m.position).catch((e) => fail(m.id, e));
      break;
    case "memory":
      // Not queued: answered between two steps of a generation. WebAssembly memory never shrinks, so
      // its size is the peak so far; the GPU figure is the buffers the model holds.
      wasmReady.then(() => postMessage({ type: "memory", id: m.id, wasmBytes: wasmBytes(), gpuBytes: model ? model.info().gpuBytes : 0 }));
      break;
    case "counters":
      // Not queued behind a generation: the engine's counters since the load, read between two steps.
      wasmReady
        .then(() => {
          if (!model) throw new Failure("state", "no model is loaded");
          return withGpu(() => model.ioCounts());
        })
        .then((c) => postMessage({ type: "counters", id: m.id, ...c }), (e) => fail(m.id, e));
      break;
    case "gpu-wait-limit":
      wasmReady.then(() => setGpuWaitLimit(m.ms));
      break;
    case "lose-device":
      // A real loss: destroy() ends the device as a reset or a driver crash would (tests use this).
      device?.destroy();
      break;
    case "dispose":
      queue = queue.then(() => {
        device = null;
        if (model) {
          model.dispose();
          model.free();
          model = null;
        }
      });
      break;
  }
};

wasmReady.then(
  () => postMessage({ type: "ready" }),
  (e) => postMessage({ type: "error", id: null, kind: "wasm", message: `the WebAssembly module could not be loaded: ${e.message}` }),
);
