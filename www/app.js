// The demo page. Uses only the public API of gpt2.js. Text from the model is inserted with
// textContent, never as HTML. The inspect panel (what the model considered, where it looked, the logit
// lens) lives in inspect-panel.js.
import { load, isCached, deleteCached, chooseDevice, GPT2Error, GENERATE_OPTIONS, optionProblem } from "./gpt2.js";
import { InspectPanel } from "./inspect-panel.js";

const $ = (id) => document.getElementById(id);
const els = {
  error: $("error"), model: $("model"), load: $("load"), cancelLoad: $("cancel-load"), progress: $("progress"),
  progressText: $("progress-text"), adapter: $("adapter"), prompt: $("prompt"), generate: $("generate"), stop: $("stop"),
  stats: $("stats"), output: $("output"), reload: $("reload"), offline: $("offline"), storage: $("storage"),
  delete: $("delete"), banner: $("banner"), notices: $("notices"), newSeed: $("newSeed"), seedUsed: $("seed-used"),
  copy: $("copy"), clear: $("clear"), advanced: $("advanced"), presetHelp: $("preset-help"), legend: $("legend"),
  device: $("device"), engine: $("engine"),
};
let persistAnswer = null; // navigator.storage.persist()'s answer, asked after the first successful load
let model = null;
let loadedUrl = null;
// The loaded model can no longer run (device lost, GPU hung, worker crashed): Load loads it again,
// while Generate keeps saying why it cannot run.
let modelBroken = false;
let loadedDevice = null; // the device choice (auto, webgpu, cpu) the loaded model was loaded with
let models = [];
let stopController = null;
let loadController = null;
// The last generation: the prompt's ids (as the model saw them) and one piece per generated token.
let run = null;
const panel = new InspectPanel({ output: els.output, legend: els.legend, getModel: () => model, getRun: () => run });

function setState(s) {
  document.body.dataset.state = s;
  const busy = s === "loading" || s === "generating";
  els.load.disabled = busy;
  els.model.disabled = els.device.disabled = busy;
  els.generate.disabled = busy || !models.length;
  els.stop.disabled = s !== "generating";
  els.cancelLoad.hidden = s !== "loading";
  els.copy.disabled = els.clear.disabled = !run || s === "generating";
}

function showError(msg, { reload = false } = {}) {
  els.error.textContent = msg;
  els.reload.hidden = !reload;
}

function status(words) {
  els.progressText.textContent = words;
}

// The GPU device was lost (driver reset, GPU removed, browser reclaimed it): say so and offer to load
// the model again, without reloading the page.
function deviceLost(e) {
  modelBroken = true; // Load then loads it again too (it skips a model that is already loaded)
  showError(e.message, { reload: true });
  status("");
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
const selected = () => models.find((m) => m.path === els.model.value);

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
  // q8 by default (a real model before the random test model); ?model=NAME picks one.
  const want = new URLSearchParams(location.search).get("model");
  const pick = models.find((m) => m.name === want) || models.find((m) => m.quantization === "q8" && !m.random_weights) ||
    models.find((m) => m.quantization === "q8") || models[0];
  if (pick) els.model.value = pick.path;
  showBanner();
  await markCached();
}

// The random-weights banner follows the selected model (and the loaded one).
function showBanner() {
  els.banner.hidden = !selected()?.random_weights;
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
  const m = selected();
  if (!m) return;
  const bytes = await deleteCached(m.path);
  status(`deleted ${m.name} from this browser's storage (${mb(bytes)}); loading it again downloads it`);
  await markCached();
  await showStorage();
}

// ---- the engine: Auto, WebGPU or CPU (remembered; ?device= overrides for a link) --------------------
const DEVICE_KEY = "gpt2-device";
function initialDevice() {
  const want = new URLSearchParams(location.search).get("device");
  let saved = null;
  try { saved = localStorage.getItem(DEVICE_KEY); } catch { /* storage off */ }
  return ["auto", "webgpu", "cpu"].find((d) => d === want) || ["auto", "webgpu", "cpu"].find((d) => d === saved) || "auto";
}

// What the chosen engine will be, in words, before anything loads (no download: only the adapter asked).
async function describeEngine() {
  const choice = els.device.value;
  let c;
  try {
    c = await chooseDevice(choice);
  } catch (e) {
    els.engine.textContent = `WebGPU was chosen, but ${e.message}`;
    return;
  }
  if (els.device.value !== choice || (model && loadedDevice === choice)) return; // changed meanwhile, or a model speaks for itself
  const name = c.adapter?.info ? [c.adapter.info.vendor, c.adapter.info.architecture, c.adapter.info.description].filter(Boolean).join(" ") : "";
  els.engine.textContent = c.device === "cpu"
    ? (c.why ? `WebGPU is not used: ${c.why}. GPT-2 runs on the CPU engine here (WebAssembly SIMD, 1 thread): slower than a GPU, but it works.`
      : "GPT-2 will run on the CPU engine (WebAssembly SIMD, 1 thread).")
    : `GPT-2 will run on WebGPU${name ? ` (${name})` : ""}.`;
  els.engine.dataset.device = c.device;
}

// The engine a loaded model runs on, in words.
function showEngine(i) {
  els.engine.dataset.device = i.device;
  els.engine.textContent = i.device === "cpu"
    ? `Running on the CPU (WebAssembly SIMD, ${i.cpu?.threads ?? 1} thread${i.cpu?.threads > 1 ? "s" : ""})` +
      (i.fallbackReason ? `: WebGPU is not used because ${i.fallbackReason}.` : ".")
    : `Running on WebGPU: ${i.adapter?.name || "(unnamed adapter)"}.`;
  els.adapter.textContent = i.device === "cpu"
    ? `engine: ${i.deviceName}; WebAssembly memory ${mb(i.wasmMemoryBytes)}`
    : `adapter: ${i.adapter.name || "(unnamed)"} (${i.adapter.backend}, ${i.adapter.deviceType}${i.adapter.driver ? ", " + i.adapter.driver : ""})`;
}

async function loadSelected({ again = false } = {}) {
  const url = els.model.value;
  const device = els.device.value;
  if (model && !(again && modelBroken) && loadedUrl === url && loadedDevice === device) return;
  const m = selected();
  if (!navigator.onLine && m && !m.cached) {
    showError(`${m.name} is not available offline: it was never downloaded in this browser. Connect to the network to load it.`);
    setState("error");
    return;
  }
  if (model) {
    model.dispose();
    model = null;
    loadedUrl = loadedDevice = null;
  }
  showError("");
  setState("loading");
  els.progress.hidden = false;
  els.progress.value = 0;
  const names = { downloading: "Downloading", verifying: "Checking", cache: "Reading from this browser's storage",
    uploading: device === "cpu" ? "Loading" : "Moving it to the GPU" };
  const t0 = performance.now();
  loadController = new AbortController();
  try {
    model = await load(url, {
      device,
      signal: loadController.signal,
      onDeviceLost: deviceLost,
      onProgress: ({ phase, loaded, total }) => {
        els.progress.max = total || 1;
        els.progress.value = loaded;
        status(`${names[phase] || phase} the model: ${mb(loaded)} of ${mb(total)}`);
      },
    });
    loadedUrl = url;
    loadedDevice = device;
    modelBroken = false;
    window.gpt2Demo = { model, panel }; // for the browser tests (device loss, the inspect panel)
    const i = model.info;
    status(`Ready: ${i.model} (${i.quantization}, ${i.config.nLayer} layers, ${(i.config.params / 1e6).toFixed(1)}M ` +
      `parameters) loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s and running on ` +
      `${i.device === "cpu" ? "your CPU" : "your GPU"}.` + (model.notices.length ? ` Note: ${model.notices.join("; ")}` : ""));
    showEngine(i);
    setState("ready");
    if (persistAnswer === null && navigator.storage?.persist) {
      try { persistAnswer = await navigator.storage.persist(); } catch { persistAnswer = false; }
    }
    markCached().then(showStorage);
  } catch (e) {
    model = null;
    if (e.kind === "aborted") {
      showError("");
      status("Loading cancelled. Files already downloaded stay in this browser's storage.");
      setState("idle");
    } else {
      showError(e instanceof GPT2Error ? e.message : `loading failed: ${e.message}`, { reload: e.kind === "device-lost" });
      status("");
      setState("error");
    }
  } finally {
    els.progress.hidden = true;
    loadController = null;
  }
}

// ---- controls: presets, fields checked in place, the seed ----------------------------------------
const PRESETS = {
  greedy: { values: { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1 },
    help: "Greedy: always the likeliest next token. The same prompt always gives the same text; it tends to repeat itself." },
  balanced: { values: { temperature: 0.8, topK: 40, topP: 0.95, repetitionPenalty: 1.1 },
    help: "Balanced: samples among the likely tokens, discouraging repeats. Varied but mostly on topic." },
  creative: { values: { temperature: 1.2, topK: 0, topP: 0.98, repetitionPenalty: 1.05 },
    help: "Creative: samples more freely, including unlikely tokens. Surprising, sometimes incoherent." },
};
const FIELDS = { maxNewTokens: "max new tokens", temperature: "temperature", topK: "top-k", topP: "top-p",
  repetitionPenalty: "repetition penalty", seed: "seed" };

function applyPreset(name) {
  const p = PRESETS[name];
  if (!p) return;
  for (const [k, v] of Object.entries(p.values)) {
    $(k).value = String(v);
    checkField(k);
  }
  els.presetHelp.textContent = p.help;
}

// The preset whose values the fields hold, or "custom".
function syncPreset() {
  const name = Object.keys(PRESETS).find((n) => Object.entries(PRESETS[n].values).every(([k, v]) => Number($(k).value) === v
    && $(k).value.trim() !== "")) || "custom";
  document.querySelector(`input[name=preset][value=${name}]`).checked = true;
  els.presetHelp.textContent = name === "custom" ? "Custom: your own settings (see Advanced)." : PRESETS[name].help;
}

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

// The options from the fields, or null (Advanced opened and the first bad field focused) when one is wrong.
function readOptions() {
  const opts = {};
  let firstBad = null;
  for (const id of Object.keys(FIELDS)) {
    if (id === "seed" && els.newSeed.checked) continue; // drawn below
    const v = checkField(id);
    if (v === undefined) firstBad ??= $(id);
    else opts[id] = v;
  }
  if (firstBad) {
    els.advanced.open = true;
    firstBad.focus();
    return null;
  }
  if (els.newSeed.checked) {
    opts.seed = Math.floor(Math.random() * 2 ** 32);
    $("seed").value = String(opts.seed);
    checkField("seed");
  }
  return opts;
}

// ---- generation -----------------------------------------------------------------------------------
function tokenSpan(piece, index) {
  const s = document.createElement("span");
  s.className = "tok";
  s.textContent = piece.text;
  s.dataset.tokenId = piece.tokenId;
  s.dataset.index = String(index);
  s.dataset.prob = piece.prob.toFixed(4);
  s.style.setProperty("--p", piece.prob.toFixed(3));
  s.tabIndex = index === 0 ? 0 : -1; // one tab stop; arrows move between tokens
  s.setAttribute("role", "button");
  s.setAttribute("aria-pressed", "false");
  s.setAttribute("aria-label", `${JSON.stringify(piece.text)}, ${(100 * piece.prob).toFixed(1)} percent`);
  s.title = `${JSON.stringify(piece.text)}  ${(100 * piece.prob).toFixed(1)}%  (token ${piece.tokenId}): click for more`;
  return s;
}

// The output follows new text, unless the reader scrolled up.
function follow(wasAtEnd) {
  if (wasAtEnd) els.output.scrollTop = els.output.scrollHeight;
}

async function generate() {
  if (document.body.dataset.state === "generating" || document.body.dataset.state === "loading") return;
  const fields = readOptions();
  if (!fields) return;
  const focused = document.activeElement;
  await loadSelected();
  if (!model) return;
  showError("");
  els.notices.textContent = "";
  panel.close();
  run = { prompt: els.prompt.value, promptIds: null, pieces: [], seed: fields.seed, sampled: fields.temperature !== 0 };
  setState("generating");
  els.output.replaceChildren();
  const p = document.createElement("span");
  p.className = "prompt";
  p.textContent = els.prompt.value;
  els.output.append(p);
  els.seedUsed.textContent = run.sampled ? `seed used: ${fields.seed}` : `seed ${fields.seed} (greedy: the seed does not matter)`;
  stopController = new AbortController();
  const opts = { ...fields, signal: stopController.signal };
  let n = 0, first = 0, last = 0;
  const t0 = performance.now();
  // A long prompt takes a while before the first token: say what is happening.
  const reading = setInterval(() => {
    if (n === 0) {
      const pt = model?.lastStart?.promptTokens;
      status(`Reading the prompt${pt ? ` (${pt} tokens)` : ""}... ${((performance.now() - t0) / 1000).toFixed(0)} s`);
    }
  }, 250);
  try {
    for await (const piece of model.generate(els.prompt.value, opts)) {
      if (n === 0) {
        run.promptIds = model.lastStart?.ids ?? null;
        const notes = model.lastStart?.notices ?? [];
        els.notices.textContent = notes.map((s) => s[0].toUpperCase() + s.slice(1) + ".").join(" ");
        status("Writing...");
      }
      n++;
      if (n === 1) first = piece.ms;
      last = piece.ms;
      run.pieces.push(piece);
      const atEnd = els.output.scrollTop + els.output.clientHeight >= els.output.scrollHeight - 8;
      els.output.append(tokenSpan(piece, n - 1));
      follow(atEnd);
      const decode = n > 1 ? ((n - 1) / ((last - first) / 1000)).toFixed(1) : "-";
      const pt = model.lastStart?.promptTokens ?? 0;
      els.stats.textContent = `${n} tokens; prompt ${pt} tokens, first token after ${first.toFixed(0)} ms` +
        ` (${(pt / (first / 1000)).toFixed(1)} prompt tokens/s); decode ${decode} tokens/s`;
    }
    const stopped = stopController.signal.aborted;
    status(`${stopped ? "Stopped" : "Done"}: ${n} tokens.${n ? " Click a token to look inside the model." : ""}`);
    setState("done");
  } catch (e) {
    if (e.kind === "device-lost") deviceLost(e);
    else {
      // A hung GPU or a crashed worker leaves the model unusable: offer to load it again, as after a
      // device loss, and let Load do it too (it skips a model that is already loaded).
      const broken = ["gpu-timeout", "worker", "wasm"].includes(e.kind);
      if (broken) modelBroken = true;
      showError(e instanceof GPT2Error ? e.message : `generation failed: ${e.message}`, { reload: broken });
      status("");
      setState("error");
    }
  } finally {
    clearInterval(reading);
  }
  document.body.dataset.tokens = String(n);
  // Focus stays where it was (Ctrl+Enter from the prompt keeps typing there); if the button that
  // had it was disabled meanwhile, it goes back to it.
  if (document.activeElement === document.body && focused instanceof HTMLElement) focused.focus();
}

function stop() {
  stopController?.abort();
}

async function copyOutput() {
  const text = (run?.prompt ?? "") + (run?.pieces.map((p) => p.text).join("") ?? "");
  try {
    await navigator.clipboard.writeText(text);
    status("Copied the text.");
  } catch (e) {
    status(`Could not copy (${e.message}): select the text and copy it by hand.`);
  }
}

function clearOutput() {
  panel.close();
  run = null;
  els.output.replaceChildren();
  els.stats.textContent = "";
  els.notices.textContent = "";
  els.seedUsed.textContent = "";
  document.body.dataset.tokens = "0";
  status(model ? "Ready." : "");
  setState(model ? "ready" : "idle");
}

// ---- start ------------------------------------------------------------------------------------------
async function main() {
  registerServiceWorker();
  addEventListener("online", () => markCached());
  addEventListener("offline", () => markCached());
  for (const id of Object.keys(FIELDS)) {
    $(id).addEventListener("input", () => {
      checkField(id);
      if (id === "seed") els.newSeed.checked = false; // a seed typed in is the seed to use
      else syncPreset();
    });
  }
  for (const r of document.querySelectorAll("input[name=preset]")) r.addEventListener("change", () => applyPreset(r.value));
  for (const b of document.querySelectorAll("button.example")) {
    b.addEventListener("click", () => {
      els.prompt.value = b.textContent;
      els.prompt.focus();
    });
  }
  syncPreset();
  // Ctrl/Cmd+Enter generates from anywhere, Esc stops (or cancels a load); focus does not move.
  addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      if (!els.generate.disabled) generate();
    } else if (e.key === "Escape") {
      if (document.body.dataset.state === "generating") stop();
      else if (loadController) loadController.abort();
      else return;
      e.preventDefault();
    }
  });
  els.generate.onclick = () => generate();
  els.stop.onclick = () => stop();
  els.cancelLoad.onclick = () => loadController?.abort();
  els.copy.onclick = () => copyOutput();
  els.clear.onclick = () => clearOutput();
  els.reload.onclick = () => reloadModel();
  els.delete.onclick = () => deleteSelected();
  // Choosing a model downloads nothing: Load (or Generate) does.
  els.model.onchange = () => {
    showBanner();
    if (model && loadedUrl !== els.model.value) status(`${selected()?.name} is chosen: press Load to switch to it.`);
  };

  // The engine: without WebGPU (or with only a software adapter) Auto runs on the CPU engine, with no
  // error; the line under the choice says which engine runs and why.
  els.device.value = initialDevice();
  els.device.onchange = () => {
    try { localStorage.setItem(DEVICE_KEY, els.device.value); } catch { /* storage off */ }
    if (model && loadedDevice !== els.device.value) status("Press Load (or Generate) to run the model on the engine you chose.");
    describeEngine();
  };
  describeEngine();
  setState("idle");
  try {
    await listModels();
  } catch (e) {
    showError(e.message);
  }
  setState("idle");
  els.load.onclick = () => loadSelected({ again: true });
  status("Choose a model and press Load (or just Generate).");
  showStorage();
}

main();
