// The demo page. Uses only the public API of gpt2.js. Text from the model is inserted with
// textContent, never as HTML.
import { load, isCached, deleteCached, hasWebGPU, NO_WEBGPU_MESSAGE, NO_ADAPTER_MESSAGE, GPT2Error, GENERATE_OPTIONS,
  optionProblem } from "./gpt2.js";

const $ = (id) => document.getElementById(id);
const els = {
  error: $("error"), model: $("model"), load: $("load"), progress: $("progress"), progressText: $("progress-text"),
  adapter: $("adapter"), prompt: $("prompt"), generate: $("generate"), stop: $("stop"), stats: $("stats"),
  output: $("output"), reload: $("reload"), offline: $("offline"), storage: $("storage"), delete: $("delete"),
  tokenInfo: $("token-info"),
};
let persistAnswer = null; // navigator.storage.persist()'s answer, asked after the first successful load
let model = null;
let loadedUrl = null;
let models = [];
let stopController = null;

function setState(s) {
  document.body.dataset.state = s;
  const busy = s === "loading" || s === "generating";
  els.load.disabled = busy || s === "no-webgpu";
  els.model.disabled = busy;
  els.generate.disabled = busy || s === "no-webgpu" || !models.length;
  els.stop.disabled = s !== "generating";
}

function showError(msg, { reload = false } = {}) {
  els.error.textContent = msg;
  els.reload.hidden = !reload;
}

// The GPU device was lost (driver reset, GPU removed, browser reclaimed it): say so and offer to load
// the model again, without reloading the page.
function deviceLost(e) {
  showError(e.message, { reload: true });
  els.progressText.textContent = "";
  setState("device-lost");
}

async function reloadModel() {
  const url = loadedUrl || els.model.value;
  if (model) model.dispose();
  model = null;
  loadedUrl = null;
  els.model.value = url;
  await loadSelected();
}

const mb = (n) => `${(n / 1048576).toFixed(1)} MB`;

async function listModels() {
  const r = await fetch("models/index.json", { cache: "no-cache" });
  if (!r.ok) throw new Error(`models/index.json: the server answered ${r.status}. Run ./build.sh to make the model packages.`);
  models = (await r.json()).models || [];
  els.model.replaceChildren();
  for (const m of models) {
    const o = document.createElement("option");
    o.value = m.path;
    o.textContent = `${m.name} (${m.quantization}, ${mb(m.bytes)}${m.random_weights ? ", random weights: gibberish by design" : ""})`;
    els.model.append(o);
  }
  const want = new URLSearchParams(location.search).get("model");
  if (want) {
    const m = models.find((m) => m.name === want);
    if (m) els.model.value = m.path;
  }
  await markCached();
}

// Mark the models already in the cache (loading them downloads nothing, and works offline).
async function markCached() {
  const offline = !navigator.onLine;
  for (const [i, m] of models.entries()) {
    m.cached = await isCached(m.path);
    const o = els.model.options[i];
    o.textContent = o.textContent.replace(/ - (cached|unavailable offline).*$/, "") +
      (m.cached ? " - cached, available offline" : offline ? " - unavailable offline (never downloaded)" : "");
    o.dataset.cached = String(m.cached);
  }
  const off = models.filter((m) => m.cached).map((m) => m.name);
  els.offline.dataset.models = off.join(",");
  document.body.dataset.modelsChecked = "true";
  showOffline();
}

let swState = "not registered";
function showOffline() {
  const off = els.offline.dataset.models || "";
  els.offline.textContent = `${navigator.onLine ? "online" : "offline"}; app ${swState}; ` +
    `models available offline: ${off ? off.replaceAll(",", ", ") : "none yet (load one once)"}`;
}

async function registerServiceWorker() {
  if (!("serviceWorker" in navigator) || new URLSearchParams(location.search).has("nosw")) {
    swState = "not stored for offline use (no service worker)";
    return showOffline();
  }
  try {
    await navigator.serviceWorker.register("sw.js", { updateViaCache: "none" });
    swState = "installing for offline use";
    showOffline();
    const reg = await navigator.serviceWorker.ready;
    reg.addEventListener("updatefound", () => {
      reg.installing?.addEventListener("statechange", (e) => {
        if (e.target.state === "installed" && navigator.serviceWorker.controller) {
          swState = "offline-ready (an update is ready: close every tab of this page, then open it again)";
          showOffline();
        }
      });
    });
    swState = "offline-ready";
    document.body.dataset.offlineReady = "true";
  } catch (e) {
    swState = `not stored for offline use (${e.message})`;
  }
  showOffline();
}

async function showStorage() {
  if (!navigator.storage?.estimate) return;
  const { usage, quota } = await navigator.storage.estimate();
  els.storage.dataset.usage = String(usage);
  els.storage.textContent = `storage: ${mb(usage)} used of ${mb(quota)} available to this site` +
    (persistAnswer === null ? "" : persistAnswer ? "; persistent (the browser will not evict it)"
      : "; not persistent (the browser may evict cached models when space runs low)");
}

async function deleteSelected() {
  const m = models.find((m) => m.path === els.model.value);
  if (!m) return;
  const bytes = await deleteCached(m.path);
  els.progressText.textContent = `deleted ${m.name} from this browser's storage (${mb(bytes)}); loading it again downloads it`;
  await markCached();
  await showStorage();
}

async function loadSelected() {
  const url = els.model.value;
  if (model && loadedUrl === url) return;
  const m = models.find((m) => m.path === url);
  if (!navigator.onLine && m && !m.cached) {
    showError(`${m.name} is not available offline: it was never downloaded in this browser. Connect to the network to load it.`);
    setState("error");
    return;
  }
  if (model) {
    model.dispose();
    model = null;
    loadedUrl = null;
  }
  showError("");
  setState("loading");
  els.progress.hidden = false;
  els.progress.value = 0;
  const names = { downloading: "downloading", verifying: "verifying", cache: "from cache", uploading: "uploading to the GPU" };
  const t0 = performance.now();
  try {
    model = await load(url, {
      onDeviceLost: deviceLost,
      onProgress: ({ phase, loaded, total }) => {
        els.progress.max = total || 1;
        els.progress.value = loaded;
        els.progressText.textContent = `${names[phase] || phase}: ${mb(loaded)} of ${mb(total)}`;
      },
    });
    loadedUrl = url;
    window.gpt2Demo = { model }; // for the browser tests (device loss)
    const i = model.info;
    els.progressText.textContent = `loaded ${i.model} (${i.quantization}, ${i.config.nLayer} layers, ` +
      `${(i.config.params / 1e6).toFixed(1)}M parameters) in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
      (model.notices.length ? `. Note: ${model.notices.join("; ")}` : "");
    els.adapter.textContent = `adapter: ${i.adapter.name || "(unnamed)"} (${i.adapter.backend}, ${i.adapter.deviceType}` +
      `${i.adapter.driver ? ", " + i.adapter.driver : ""})`;
    setState("ready");
    if (persistAnswer === null && navigator.storage?.persist) {
      try { persistAnswer = await navigator.storage.persist(); } catch { persistAnswer = false; }
    }
    markCached().then(showStorage);
  } catch (e) {
    model = null;
    showError(e instanceof GPT2Error ? e.message : `loading failed: ${e.message}`, { reload: e.kind === "device-lost" });
    els.progressText.textContent = "";
    setState("error");
  } finally {
    els.progress.hidden = true;
  }
}

// The sampling fields, checked before anything is sent: what is wrong is shown next to the field.
const FIELDS = { maxNewTokens: "max new tokens", temperature: "temperature", topK: "top-k", topP: "top-p",
  repetitionPenalty: "repetition penalty", seed: "seed" };

function checkField(id) {
  const input = $(id);
  const raw = input.value.trim();
  let problem = null, value;
  if (input.validity.badInput) problem = `is not a number: enter ${GENERATE_OPTIONS[id].range}`;
  else if (raw === "") problem = `is empty: enter ${GENERATE_OPTIONS[id].range}`;
  else problem = optionProblem(id, (value = Number(raw)));
  $(`${id}-error`).textContent = problem ? `${FIELDS[id]} ${problem}` : "";
  input.setAttribute("aria-invalid", String(!!problem));
  return problem ? undefined : value;
}

// The options from the fields, or null (and the first bad field focused) when one is wrong.
function readOptions() {
  const opts = {};
  let firstBad = null;
  for (const id of Object.keys(FIELDS)) {
    const v = checkField(id);
    if (v === undefined) firstBad ??= $(id);
    else opts[id] = v;
  }
  if (firstBad) {
    firstBad.focus();
    return null;
  }
  return opts;
}

function tokenSpan(piece) {
  const s = document.createElement("span");
  s.className = "tok";
  s.textContent = piece.text;
  s.dataset.tokenId = piece.tokenId;
  s.dataset.prob = piece.prob.toFixed(4);
  // Shade: more certain = stronger colour.
  s.style.backgroundColor = `rgba(66, 133, 244, ${(0.08 + 0.55 * piece.prob).toFixed(3)})`;
  const alts = piece.alternatives
    .map((a) => `${JSON.stringify(a.text)}  ${(100 * a.prob).toFixed(1)}%`)
    .join("\n");
  s.onclick = () => (els.tokenInfo.textContent = s.title); // phones: tap for the alternatives
  s.title = `${JSON.stringify(piece.text)}  ${(100 * piece.prob).toFixed(1)}%  (token ${piece.tokenId})` +
    (alts ? `\nalternatives:\n${alts}` : "");
  return s;
}

async function generate() {
  const fields = readOptions();
  if (!fields) return;
  await loadSelected();
  if (!model) return;
  showError("");
  setState("generating");
  els.output.replaceChildren();
  const p = document.createElement("span");
  p.className = "prompt";
  p.textContent = els.prompt.value;
  els.output.append(p);
  stopController = new AbortController();
  const opts = { ...fields, signal: stopController.signal };
  let n = 0, first = 0, last = 0;
  try {
    for await (const piece of model.generate(els.prompt.value, opts)) {
      n++;
      if (n === 1) first = piece.ms;
      last = piece.ms;
      els.output.append(tokenSpan(piece));
      const decode = n > 1 ? ((n - 1) / ((last - first) / 1000)).toFixed(1) : "-";
      const pt = model.lastStart?.promptTokens ?? 0;
      els.stats.textContent = `${n} tokens; prompt ${pt} tokens, first token after ${first.toFixed(0)} ms` +
        ` (${(pt / (first / 1000)).toFixed(1)} prompt tokens/s); decode ${decode} tokens/s`;
    }
    setState("done");
  } catch (e) {
    if (e.kind === "device-lost") deviceLost(e);
    else {
      showError(e instanceof GPT2Error ? e.message : `generation failed: ${e.message}`);
      setState("error");
    }
  }
  document.body.dataset.tokens = String(n);
}

async function main() {
  registerServiceWorker();
  addEventListener("online", () => markCached());
  addEventListener("offline", () => markCached());
  if (!hasWebGPU()) {
    showError(NO_WEBGPU_MESSAGE);
    setState("no-webgpu");
    try { await listModels(); } catch { /* the explanation above is what matters */ }
    setState("no-webgpu");
    return;
  }
  // WebGPU present but no adapter (GPU blocklisted, disabled, no driver): say so before any download.
  let adapter = null;
  try { adapter = await navigator.gpu.requestAdapter(); } catch { adapter = null; }
  if (!adapter) {
    showError(NO_ADAPTER_MESSAGE);
    setState("no-webgpu");
    try { await listModels(); } catch { /* the explanation above is what matters */ }
    setState("no-webgpu");
    return;
  }
  setState("idle");
  try {
    await listModels();
  } catch (e) {
    showError(e.message);
  }
  setState("idle");
  els.load.onclick = () => loadSelected();
  els.generate.onclick = () => generate();
  els.stop.onclick = () => stopController?.abort();
  els.reload.onclick = () => reloadModel();
  els.delete.onclick = () => deleteSelected();
  showStorage();
  els.model.onchange = () => loadSelected();
  for (const id of Object.keys(FIELDS)) $(id).addEventListener("input", () => checkField(id));
}

main();
