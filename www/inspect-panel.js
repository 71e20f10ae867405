// The page's inspect panel: pick a generated token (click, tap, or arrow keys in the output) and see
//   - what the model considered at that step (the alternatives and their probabilities),
//   - the logit lens: what the model would have predicted after each layer (model.inspect's `lens`),
//   - where it looked: the attention of the position that predicted the token over the context, for a
//     chosen layer and head or the average of the heads, drawn over the text itself.
// Uses only the public API (model.inspect). Text from the model is inserted with textContent.

const $ = (id) => document.getElementById(id);
// Small probabilities (a random model's, or a lens row's) keep two significant digits.
const pct = (p) => `${(100 * p).toFixed(100 * p < 1 ? 2 : 1)}%`;
const show = (text) => JSON.stringify(text);

// A row of a bar list: label, a meter of `value` (0..1, relative to `scale`), the value in words.
function barRow(label, value, scale, extra = {}) {
  const li = document.createElement("li");
  if (extra.layer !== undefined) {
    const l = document.createElement("span");
    l.className = "layer";
    l.textContent = `layer ${extra.layer}`;
    li.append(l);
  }
  const name = document.createElement("span");
  name.className = "label";
  name.textContent = label;
  const meter = document.createElement("span");
  meter.className = "meter";
  meter.setAttribute("aria-hidden", "true");
  const fill = document.createElement("span");
  fill.style.width = `${Math.max(0, Math.min(1, value / (scale || 1))) * 100}%`;
  meter.append(fill);
  const val = document.createElement("span");
  val.className = "val";
  val.textContent = pct(value);
  li.append(name, meter, val);
  li.dataset.value = String(value);
  if (extra.tokenId !== undefined) li.dataset.tokenId = String(extra.tokenId);
  if (extra.chosen) li.classList.add("chosen");
  if (extra.title) li.title = extra.title;
  return li;
}

// softmax(row)[ids] and the top k of it, without allocating another [V].
function lensRow(row, k, also) {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i] > max) max = row[i];
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i] - max);
  const top = [];
  for (let i = 0; i < row.length; i++) {
    if (top.length < k || row[i] > row[top[top.length - 1]]) {
      top.push(i);
      top.sort((a, b) => row[b] - row[a]);
      if (top.length > k) top.pop();
    }
  }
  const prob = (i) => Math.exp(row[i] - max) / sum;
  return { top: top.map((i) => ({ tokenId: i, prob: prob(i) })), also: prob(also) };
}

export class InspectPanel {
  #o;
  #index = -1; // the selected generated token
  #request = 0; // ignores results of earlier selections
  #timer = 0;
  #inspection = null; // { ids, result } of the selected token's context
  constructor({ output, legend, getModel, getRun }) {
    this.#o = { output, legend, getModel, getRun };
    this.els = { panel: $("inspect"), token: $("inspect-token"), alts: $("alts"), lens: $("lens"), layer: $("attn-layer"),
      head: $("attn-head"), top: $("attn-top"), status: $("inspect-status"), close: $("inspect-close") };
    output.addEventListener("click", (e) => {
      const t = e.target.closest?.(".tok");
      if (t) this.select(Number(t.dataset.index), { focus: true });
    });
    output.addEventListener("keydown", (e) => this.#key(e));
    this.els.layer.addEventListener("change", () => this.#drawAttention());
    this.els.head.addEventListener("change", () => this.#drawAttention());
    this.els.close.addEventListener("click", () => this.close({ refocus: true }));
  }

  /** The inspection shown now (for tests): { ids, result }. */
  get inspection() {
    return this.#inspection;
  }

  #tokens() {
    return [...this.#o.output.querySelectorAll(".tok")];
  }

  #key(e) {
    const toks = this.#tokens();
    const at = toks.indexOf(e.target);
    if (at < 0) return;
    const go = { ArrowRight: at + 1, ArrowDown: at + 1, ArrowLeft: at - 1, ArrowUp: at - 1, Home: 0, End: toks.length - 1 }[e.key];
    if (go !== undefined) {
      e.preventDefault();
      this.select(Math.max(0, Math.min(toks.length - 1, go)), { focus: true, debounce: true });
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.select(at, { focus: true });
    }
  }

  /** Close the panel: the text goes back to probability shading. */
  close({ refocus = false } = {}) {
    const tok = this.#tokens()[this.#index];
    this.#index = -1;
    this.#request++;
    this.#inspection = null;
    this.els.panel.hidden = true;
    this.#o.output.classList.remove("attn");
    this.#o.legend.classList.remove("attn");
    $("legend-title").textContent = "model's certainty";
    for (const s of this.#o.output.querySelectorAll(".tok, .ptok")) {
      s.classList.remove("after");
      s.style.removeProperty("--a");
      if (s.classList.contains("tok")) s.setAttribute("aria-pressed", "false");
    }
    if (refocus) tok?.focus();
  }

  /** Show generated token `index` in the panel. */
  select(index, { focus = false, debounce = false } = {}) {
    const run = this.#o.getRun();
    const model = this.#o.getModel();
    const toks = this.#tokens();
    if (!run || !toks[index]) return;
    this.#index = index;
    toks.forEach((s, i) => {
      s.tabIndex = i === index ? 0 : -1;
      s.setAttribute("aria-pressed", String(i === index));
      s.classList.toggle("after", i > index);
    });
    if (focus) toks[index].focus();
    const piece = run.pieces[index];
    this.els.panel.hidden = false;
    this.els.token.textContent = `Token ${index + 1} of ${run.pieces.length}: ${show(piece.text)}, chosen with probability ` +
      `${pct(piece.prob)}${run.sampled ? " (sampled)" : " (the likeliest: greedy)"}.`;
    // What it considered: the alternatives of that step (the chosen token added when it was not among them).
    const alts = [...piece.alternatives];
    if (!alts.some((a) => a.tokenId === piece.tokenId)) alts.push({ tokenId: piece.tokenId, text: piece.text, prob: piece.prob });
    const scale = Math.max(...alts.map((a) => a.prob));
    this.els.alts.replaceChildren(...alts.map((a) => barRow(show(a.text), a.prob, scale, { tokenId: a.tokenId, chosen: a.tokenId === piece.tokenId })));
    const req = ++this.#request;
    this.els.status.textContent = "Looking inside the model...";
    clearTimeout(this.#timer);
    const go = () => this.#inspect(req, model, run, index).catch((e) => {
      if (req === this.#request) this.els.status.textContent = `Could not look inside: ${e.message}`;
    });
    if (debounce) this.#timer = setTimeout(go, 150);
    else go();
  }

  async #inspect(req, model, run, index) {
    if (!model) throw new Error("no model is loaded");
    if (!run.promptIds) throw new Error("the prompt's tokens are unknown");
    const n = model.info.config.maxInspectTokens; // the context, or less for big models (the attention is capped)
    let ids = run.promptIds.concat(run.pieces.slice(0, index).map((p) => p.tokenId));
    const truncated = ids.length > n;
    const dropped = truncated ? ids.length - n : 0; // tokens before the inspected window
    if (truncated) ids = ids.slice(-n);
    const result = await model.inspect(ids);
    if (req !== this.#request) return;
    // Window position j is prompt token dropped + j while that is < promptLen, else generated token
    // dropped + j - promptLen.
    this.#inspection = { ids, result, dropped, promptLen: run.promptIds.length };
    this.#splitPrompt(run, result);
    // The logit lens at the position that predicted this token.
    const V = model.info.config.vocabSize;
    const chosen = run.pieces[index].tokenId;
    const rows = [];
    const layers = [];
    for (let l = 0; l < result.layers; l++) layers.push(lensRow(result.lens.subarray(l * V, (l + 1) * V), 3, chosen));
    const scale = Math.max(...layers.map((x) => x.top[0].prob)); // bars relative to the surest layer
    for (let l = 0; l < result.layers; l++) {
      const { top, also } = layers[l];
      const names = result.lensTop?.[l] ?? [];
      const text = (id) => names.find((t) => t.tokenId === id)?.text ?? `#${id}`;
      rows.push(barRow(show(text(top[0].tokenId)), top[0].prob, scale, {
        layer: l + 1, tokenId: top[0].tokenId, chosen: top[0].tokenId === chosen,
        title: `${top.map((t) => `${show(text(t.tokenId))} ${pct(t.prob)}`).join(", ")}; the chosen ${show(run.pieces[index].text)}: ${pct(also)}`,
      }));
    }
    this.els.lens.replaceChildren(...rows);
    // Layer and head pickers (kept across selections).
    const fill = (sel, n, first) => {
      if (sel.options.length === n + (first ? 1 : 0)) return;
      const keep = sel.value;
      sel.replaceChildren();
      if (first) sel.append(new Option(first, "avg"));
      for (let i = 0; i < n; i++) sel.append(new Option(String(i + 1), String(i)));
      sel.value = [...sel.options].some((o) => o.value === keep) ? keep : sel.options[sel.options.length - 1].value;
    };
    fill(this.els.layer, result.layers, null);
    fill(this.els.head, result.heads, "average of all heads");
    if (this.els.head.dataset.init !== "1") {
      this.els.head.value = "avg";
      this.els.head.dataset.init = "1";
    }
    this.#drawAttention();
    this.els.status.textContent = truncated ? `The context is longer than the ${n} tokens one look inside takes for this model: only the last ${n} are shown.` : "";
  }

  // Draw the prompt as the tokens the model saw, one span per token (tokens that only decode together
  // share one), from the spans the tokenizer gives. The typed prompt may differ from what was inspected:
  // its start may be cut (a long prompt, or a window of the last tokens), or its decode may differ
  // from the typed text; what lies before the inspected tokens stays plain text, and a prompt whose
  // tokens do not spell its end is shown as they decode.
  #splitPrompt(run, result) {
    const p = this.#o.output.querySelector(".prompt");
    const { dropped, promptLen } = this.#inspection;
    if (!p || !result.spans) return;
    const inPrompt = Math.max(0, promptLen - dropped); // prompt tokens in the window: positions 0..inPrompt
    const end = inPrompt ? result.spans[inPrompt - 1][1] : 0;
    const decoded = result.text.slice(0, end);
    const spells = run.prompt.endsWith(decoded);
    const head = spells ? run.prompt.slice(0, run.prompt.length - decoded.length) : dropped > 0 ? "\u2026" : "";
    const parts = [];
    if (head) {
      const h = document.createElement("span");
      h.className = "phead";
      h.textContent = head;
      parts.push(h);
    }
    for (let j = 0; j < inPrompt; j++) {
      const [a, b] = result.spans[j];
      if (j > 0 && result.spans[j - 1][0] === a) {
        parts[parts.length - 1].dataset.pos += ` ${j}`; // shares the previous token's span
        continue;
      }
      const s = document.createElement("span");
      s.className = "ptok";
      s.dataset.pos = String(j);
      s.textContent = result.text.slice(a, b);
      parts.push(s);
    }
    p.replaceChildren(...parts);
    p.dataset.spells = String(spells);
  }

  /** The attention weights of the query (the position before the selected token) over the context, for
   * the chosen layer and head ("avg" = the mean over heads): [T]. */
  weights() {
    const ins = this.#inspection;
    if (!ins) return null;
    const { result } = ins;
    const T = result.ids.length;
    const l = Number(this.els.layer.value);
    const heads = this.els.head.value === "avg" ? [...Array(result.heads).keys()] : [Number(this.els.head.value)];
    const w = new Float64Array(T);
    for (const h of heads) {
      const row = ((l * result.heads + h) * T + (T - 1)) * T;
      for (let j = 0; j < T; j++) w[j] += result.attention[row + j] / heads.length;
    }
    return w;
  }

  #drawAttention() {
    const ins = this.#inspection;
    const w = this.weights();
    if (!w) return;
    const out = this.#o.output;
    const T = w.length;
    const max = Math.max(...w) || 1;
    // Context position j -> its span: a prompt token's (tokens sharing a span add up), or a generated
    // token's.
    const gen = this.#tokens();
    const ptok = new Map();
    for (const s of out.querySelectorAll(".ptok")) for (const j of s.dataset.pos.split(" ")) ptok.set(Number(j), s);
    const { dropped, promptLen } = ins;
    const spanAt = (j) => (dropped + j < promptLen ? ptok.get(j) : gen[dropped + j - promptLen]);
    const mass = new Map();
    for (let j = 0; j < T; j++) {
      const s = spanAt(j);
      if (s) mass.set(s, (mass.get(s) ?? 0) + w[j]);
    }
    const top = Math.max(...mass.values()) || max;
    for (const s of out.querySelectorAll(".tok, .ptok")) s.style.setProperty("--a", "0");
    for (const [s, m] of mass) s.style.setProperty("--a", (m / top).toFixed(3));
    out.classList.add("attn");
    this.#o.legend.classList.add("attn");
    $("legend-title").textContent = "where the selected token's prediction looked";
    // The most attended tokens, as a list (for screen readers and small screens).
    const order = [...w.keys()].sort((a, b) => w[b] - w[a]).slice(0, 5);
    const text = (j) => ins.result.tokens?.[j] ?? `#${ins.ids[j]}`;
    this.els.top.replaceChildren(...order.map((j) => barRow(show(text(j)), w[j], w[order[0]], { tokenId: ins.ids[j], title: `position ${j + 1}` })));
  }
}
