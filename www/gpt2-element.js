// <gpt2-generate>: GPT-2 in any page with one script tag and one element.
//
//   <script type="module" src="https://your.site/gpt2/gpt2-element.js"></script>
//   <gpt2-generate model="https://your.site/gpt2/models/gpt2-q8/" max-new-tokens="40">Once upon a time</gpt2-generate>
//
// Attributes: model (package URL, relative to the page), prompt (or the element's text), max-new-tokens,
// temperature, top-k, top-p, repetition-penalty, seed, autostart (generate once connected), device ("auto",
// the default: WebGPU on a hardware GPU, else the CPU engine; "webgpu"; "cpu").
// Methods: generate(), stop(). Properties: text (the last output), model (a promise of the shared model).
// Events (on the element, bubbling, composed): progress {phase, loaded, total}, token {piece},
// done {text, tokens}, error {message, kind}.
// Styling: parts prompt, generate, stop, progress, status, output, token, error; custom properties
// --gpt2-accent, --gpt2-font, --gpt2-border, --gpt2-radius, --gpt2-bg, --gpt2-color.
// Several elements with the same model URL share one loaded model and one worker; their generations
// take turns.
import { load, GPT2Error, GENERATE_OPTIONS, optionProblem } from "./gpt2.js";

// Attribute -> generation option, and the default when the attribute is absent.
const ATTRIBUTES = { "max-new-tokens": ["maxNewTokens", 50], temperature: ["temperature", 0], "top-k": ["topK", 0],
  "top-p": ["topP", 1], "repetition-penalty": ["repetitionPenalty", 1], seed: ["seed", 0] };

const shared = new Map(); // absolute model URL -> { promise, listeners:Set, turn: Promise }

function sharedModel(url, onProgress, device = "auto") {
  const key = `${device} ${url}`; // the same package on two engines is two models
  let s = shared.get(key);
  if (!s) {
    s = { listeners: new Set(), turn: Promise.resolve(), promise: null };
    s.promise = load(url, { device, onProgress: (p) => s.listeners.forEach((l) => l(p)) });
    s.promise.catch(() => shared.delete(key)); // a failed load may be tried again
    shared.set(key, s);
  }
  if (onProgress) s.listeners.add(onProgress);
  return s;
}

const template = document.createElement("template");
template.innerHTML = `
<style>
  :host { display: block; font-family: var(--gpt2-font, system-ui, sans-serif); color: var(--gpt2-color, inherit);
          border: 1px solid var(--gpt2-border, #8886); border-radius: var(--gpt2-radius, .4rem);
          background: var(--gpt2-bg, transparent); padding: .6rem; box-sizing: border-box; }
  :host([hidden]) { display: none; }
  textarea { width: 100%; box-sizing: border-box; min-height: 3rem; font: inherit; }
  .row { display: flex; flex-wrap: wrap; gap: .4rem; align-items: center; margin: .4rem 0; }
  button { font: inherit; padding: .3rem .9rem; border-radius: var(--gpt2-radius, .4rem);
           border: 1px solid var(--gpt2-accent, #1a73e8); background: var(--gpt2-accent, #1a73e8); color: #fff; }
  button:disabled { opacity: .5; }
  button.stop { background: transparent; color: var(--gpt2-accent, #1a73e8); }
  progress { width: 100%; accent-color: var(--gpt2-accent, #1a73e8); }
  .status { font-size: .8rem; opacity: .75; }
  .output { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.5; min-height: 1.5em; }
  .output .tok { border-radius: .15rem; }
  .error { color: #b3261e; font-size: .9rem; }
  .error:empty, .status:empty { display: none; }
  slot { display: none; }
</style>
<slot></slot>
<textarea part="prompt" aria-label="prompt"></textarea>
<div class="row">
  <button part="generate" class="generate">Generate</button>
  <button part="stop" class="stop" disabled>Stop</button>
</div>
<progress part="progress" value="0" max="1" hidden></progress>
<div part="status" class="status"></div>
<div part="error" class="error" role="alert"></div>
<div part="output" class="output" aria-live="polite"></div>`;

export class GPT2Generate extends HTMLElement {
  static observedAttributes = ["prompt"];
  #root;
  #els;
  #abort = null;
  text = "";

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: "open" });
    this.#root.append(template.content.cloneNode(true));
    const q = (s) => this.#root.querySelector(s);
    this.#els = { prompt: q("textarea"), generate: q(".generate"), stop: q(".stop"), progress: q("progress"),
      status: q(".status"), error: q(".error"), output: q(".output"), slot: q("slot") };
    this.#els.generate.onclick = () => this.generate();
    this.#els.stop.onclick = () => this.stop();
    this.#els.slot.addEventListener("slotchange", () => this.#syncPrompt());
  }

  connectedCallback() {
    this.#syncPrompt();
    if (this.hasAttribute("autostart")) queueMicrotask(() => this.generate());
  }

  attributeChangedCallback() {
    this.#syncPrompt();
  }

  #syncPrompt() {
    const p = this.getAttribute("prompt") ?? this.textContent.trim();
    if (!this.#els.prompt.dataset.edited) this.#els.prompt.value = p;
    this.#els.prompt.oninput = () => (this.#els.prompt.dataset.edited = "1");
  }

  // The generation options from the attributes; throws a GPT2Error naming the attribute, its value and
  // what it may be when one is wrong (nothing is sent then).
  #options() {
    const opts = {};
    for (const [attr, [name, dflt]] of Object.entries(ATTRIBUTES)) {
      const raw = this.getAttribute(attr);
      if (raw === null) {
        opts[name] = dflt;
        continue;
      }
      const v = raw.trim() === "" ? NaN : Number(raw);
      const problem = optionProblem(name, v);
      if (problem) {
        const e = new GPT2Error("invalid-option", `the ${attr} attribute is ${JSON.stringify(raw)}: it must be ${GENERATE_OPTIONS[name].range}.`);
        e.option = attr;
        throw e;
      }
      opts[name] = v;
    }
    return opts;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }

  get modelUrl() {
    return new URL(this.getAttribute("model") || "models/gpt2-q8/", document.baseURI).href;
  }

  /** The `device` attribute: "auto" (default: WebGPU on a hardware GPU, else the CPU engine), "webgpu" or "cpu". */
  get device() {
    return this.getAttribute("device") || "auto";
  }

  /** A promise of the loaded model, shared by every element with the same model URL and device. */
  get model() {
    return sharedModel(this.modelUrl, null, this.device).promise;
  }

  /** Generate the continuation of the prompt; resolves with the text. */
  async generate() {
    if (this.#abort) return this.text;
    const els = this.#els;
    let fields;
    try {
      fields = this.#options();
    } catch (e) {
      els.error.textContent = e.message;
      this.#emit("error", { message: e.message, kind: e.kind, option: e.option });
      return this.text;
    }
    this.#abort = new AbortController();
    const signal = this.#abort.signal;
    els.generate.disabled = true;
    els.stop.disabled = false;
    els.error.textContent = "";
    els.output.replaceChildren();
    this.text = "";
    let tokens = 0;
    const names = { downloading: "downloading", verifying: "verifying", cache: "from cache", uploading: "loading" };
    const onProgress = (p) => {
      els.progress.hidden = false;
      els.progress.max = p.total || 1;
      els.progress.value = p.loaded;
      els.status.textContent = `${names[p.phase] || p.phase}: ${(p.loaded / 1048576).toFixed(1)} of ${(p.total / 1048576).toFixed(1)} MB`;
      this.#emit("progress", p);
    };
    const s = sharedModel(this.modelUrl, onProgress, this.device);
    // Generations on one shared model take turns.
    const prev = s.turn;
    let release;
    s.turn = new Promise((r) => (release = r));
    try {
      const model = await s.promise;
      els.progress.hidden = true;
      els.status.textContent = "waiting for the model";
      await prev;
      if (signal.aborted) throw new GPT2Error("aborted", "stopped");
      els.status.textContent = "generating";
      const opts = { ...fields, signal };
      for await (const piece of model.generate(els.prompt.value, opts)) {
        tokens++;
        this.text += piece.text;
        const span = document.createElement("span");
        span.className = "tok";
        span.part = "token";
        span.textContent = piece.text; // text, never HTML
        span.title = `${(100 * piece.prob).toFixed(1)}%`;
        els.output.append(span);
        this.#emit("token", { piece });
      }
      els.status.textContent = `${tokens} tokens${signal.aborted ? " (stopped)" : ""}`;
      this.#emit("done", { text: this.text, tokens, stopped: signal.aborted });
    } catch (e) {
      // The model cannot go on (GPU lost, worker crashed): the next generate() loads it again.
      const key = `${this.device} ${this.modelUrl}`;
      if (["device-lost", "gpu-timeout", "worker", "wasm"].includes(e.kind) && shared.get(key) === s) {
        shared.delete(key);
        s.promise.then((m) => m.dispose(), () => {});
      }
      if (e.kind !== "aborted") {
        els.error.textContent = e instanceof GPT2Error ? e.message : `failed: ${e.message}`;
        els.status.textContent = "";
        this.#emit("error", { message: els.error.textContent, kind: e.kind || "error" });
      } else {
        this.#emit("done", { text: this.text, tokens, stopped: true });
      }
    } finally {
      s.listeners.delete(onProgress);
      els.progress.hidden = true;
      release();
      this.#abort = null;
      els.generate.disabled = false;
      els.stop.disabled = true;
    }
    return this.text;
  }

  /** Stop this element's generation (within one token). */
  stop() {
    this.#abort?.abort();
  }
}

if (!customElements.get("gpt2-generate")) customElements.define("gpt2-generate", GPT2Generate);
