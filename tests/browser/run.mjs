// Browser tests of www/ in headless Debian Chromium (SwiftShader WebGPU), through playwright-core.
// Needs ./build.sh to have run (www/pkg, www/models). Usage: node run.mjs [--only NAME[,NAME]] [--headed]
//
// The static server is in this file so the tests can count requests (every request of the page and of
// its worker reaches it) and serve a shard corrupted on demand. Every wait has its own timeout:
// SwiftShader is slow and a runaway shader would otherwise hang silently.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const www = path.join(root, "www");
const reference = JSON.parse(fs.readFileSync(path.join(root, "tests/fixtures/tiny-gpt2/reference.json"), "utf8"));
const tokenizerCases = JSON.parse(fs.readFileSync(path.join(root, "tests/fixtures/tokenizer-cases.json"), "utf8"));

// A safetensors file's f32 and i32 tensors by name (the format: u64 header length, JSON header, data).
function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  const out = {};
  for (const [name, t] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [a, b] = t.data_offsets;
    const bytes = buf.subarray(8 + n + a, 8 + n + b);
    const copy = new Uint8Array(bytes).buffer; // aligned
    out[name] = { shape: t.shape, data: t.dtype === "F32" ? new Float32Array(copy) : new Int32Array(copy) };
  }
  return out;
}
const CHROMIUM = process.env.CHROMIUM || "/usr/lib/chromium/chromium";
const argv = process.argv.slice(2);
const only = argv.includes("--only") ? argv[argv.indexOf("--only") + 1].split(",") : null;

// ---- static server with request counting and corruption ---------------------------------------
const TYPES = { ".wasm": "application/wasm", ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
  ".html": "text/html; charset=utf-8", ".css": "text/css", ".bin": "application/octet-stream" };
const requests = []; // url paths, in order
const corrupt = new Set(); // url paths served with one byte flipped
const dropOnce = new Set(); // url paths whose next response is cut off halfway (the connection drops)
const serverOpts = { inject: "", headers: {} }; // JS prepended to /worker.js; extra response headers
const overrides = new Map(); // url path -> body served instead of the file
const stall = new Set(); // url paths whose response sends half the file, then nothing (until the client gives up)
const stalledClosed = []; // url paths of stalled responses the client closed
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  requests.push(url.pathname);
  if (serverOpts.down) return req.socket.destroy(); // "offline": no answer at all
  if (overrides.has(url.pathname)) {
    const body = Buffer.from(overrides.get(url.pathname));
    return res.writeHead(200, { "Content-Type": "application/json", "Content-Length": body.length, "Cache-Control": "no-cache" }).end(body);
  }
  let file = path.join(www, decodeURIComponent(url.pathname));
  if (!file.startsWith(www)) return res.writeHead(403).end();
  if (fs.existsSync(file) && fs.statSync(file).isDirectory()) file = path.join(file, "index.html");
  if (!fs.existsSync(file)) return res.writeHead(404).end("not found");
  let body = fs.readFileSync(file);
  if (corrupt.has(url.pathname)) {
    body = Buffer.from(body);
    body[body.length >> 1] ^= 0xff;
  }
  if (url.pathname === "/worker.js" && serverOpts.inject) body = Buffer.concat([Buffer.from(serverOpts.inject + "\n"), body]);
  res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] || "application/octet-stream", "Content-Length": body.length,
    "Cache-Control": "no-cache", ...serverOpts.headers });
  if (stall.has(url.pathname)) {
    res.write(body.subarray(0, body.length >> 1));
    res.on("close", () => stalledClosed.push(url.pathname));
    return;
  }
  if (dropOnce.delete(url.pathname)) {
    res.write(body.subarray(0, body.length >> 1));
    setTimeout(() => res.destroy(), 50); // the connection drops halfway through the file
    return;
  }
  res.end(body);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}`;
const shardRequests = () => requests.filter((p) => /shard-\d+\.bin$/.test(p));

// ---- browser -------------------------------------------------------------------------------------
const COMMON_ARGS = ["--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync"];
const tmpDirs = [];
async function launch(webgpu = true, extra = []) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gpt2-chromium-"));
  tmpDirs.push(dir);
  const args = [...(webgpu ? ["--enable-unsafe-webgpu", ...COMMON_ARGS] : COMMON_ARGS), ...extra];
  const ctx = await chromium.launchPersistentContext(dir, { executablePath: CHROMIUM, headless: !argv.includes("--headed"),
    args, timeout: 60_000 });
  ctx.setDefaultTimeout(30_000);
  return ctx;
}

function log(...a) {
  console.log(...a);
}

let passed = 0, failed = 0;
const results = [];
async function test(name, timeoutMs, fn) {
  if (only && !only.includes(name)) return;
  const t0 = Date.now();
  let timer;
  try {
    await Promise.race([fn(), new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs)))]);
    passed++;
    log(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    log(`FAIL ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s): ${e.stack || e}`);
  } finally {
    clearTimeout(timer);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(`assertion failed: ${msg}`);
}

// Page helpers.
async function waitState(page, states, timeout) {
  const list = Array.isArray(states) ? states : [states];
  await page.waitForFunction((l) => l.includes(document.body.dataset.state), list, { timeout });
  return page.evaluate(() => document.body.dataset.state);
}

async function setControls(page, prompt, o) {
  // The six fields live under "Advanced" (a <details>): open it so they can be typed into.
  await page.evaluate(() => { const d = document.getElementById("advanced"); if (d) d.open = true; });
  await page.fill("#prompt", prompt);
  for (const [k, v] of Object.entries(o)) await page.fill(`#${k}`, String(v));
}

const GREEDY = { temperature: 0, topK: 0, topP: 1, repetitionPenalty: 1, seed: 0 };

async function generateOnPage(page, timeout) {
  await page.click("#generate");
  const st = await waitState(page, ["done", "error"], timeout);
  const error = await page.textContent("#error");
  assert(st === "done", `generation ended in state ${st}: ${error}`);
  return page.evaluate(() => ({
    ids: [...document.querySelectorAll("#output span.tok")].map((s) => Number(s.dataset.tokenId)),
    text: [...document.querySelectorAll("#output span.tok")].map((s) => s.textContent).join(""),
    stats: document.getElementById("stats").textContent,
  }));
}

const metrics = {};
const ctx = await launch(true);
const page = ctx.pages()[0] || (await ctx.newPage());
const consoleLines = [];
page.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
page.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));

try {
  // (a) greedy generation equals the reference continuation.
  await test("greedy-f32", 300_000, async () => {
    const c = reference.cases[0];
    let n = c.greedy_margins.findIndex((m) => m < 1e-2);
    if (n < 0) n = c.greedy_next_ids.length;
    if (process.env.GREEDY_TOKENS) n = Math.min(n, Number(process.env.GREEDY_TOKENS));
    const t0 = Date.now();
    await page.goto(`${base}/?model=tiny-gpt2-f32&device=webgpu`, { timeout: 30_000 });
    await waitState(page, "idle", 30_000);
    await setControls(page, c.text, { ...GREEDY, maxNewTokens: n });
    // Check the page's tokenizer sees the reference's prompt ids (through the stats' prompt count).
    const out = await generateOnPage(page, 240_000);
    metrics.firstLoadAndGenerateS = (Date.now() - t0) / 1000;
    metrics.stats = out.stats;
    log(`     ${out.stats}`);
    assert(out.stats.includes(`prompt ${c.ids.length} tokens`), `prompt should be ${c.ids.length} tokens: ${out.stats}`);
    assert(JSON.stringify(out.ids) === JSON.stringify(c.greedy_next_ids.slice(0, n)),
      `greedy ids ${JSON.stringify(out.ids)} != reference ${JSON.stringify(c.greedy_next_ids.slice(0, n))}`);
    const info = await page.textContent("#adapter");
    metrics.adapter = info;
    log(`     ${info}`);
  });

  // (b) a reload generates again with zero shard (and tokenizer) requests.
  await test("reload-from-cache", 180_000, async () => {
    requests.length = 0;
    await page.reload({ timeout: 30_000 });
    await waitState(page, "idle", 30_000);
    await setControls(page, "Hello", { ...GREEDY, maxNewTokens: 3 });
    const out = await generateOnPage(page, 120_000);
    assert(out.ids.length === 3, `3 tokens, got ${out.ids.length}`);
    const shards = shardRequests();
    assert(shards.length === 0, `reload fetched shards: ${shards.join(", ")}`);
    assert(!requests.some((p) => p.endsWith("tokenizer.json")), "reload fetched tokenizer.json");
    assert((await page.textContent("#model")).includes("cached"), "the picker marks the model as cached");
  });

  // (e) same seed, same text; Stop ends generation within one token, and a new one starts right after.
  await test("seed-and-stop", 240_000, async () => {
    await setControls(page, "Once upon a time", { temperature: 1, topK: 40, topP: 0.95, repetitionPenalty: 1.1, seed: 1234,
      maxNewTokens: 6 });
    const a = await generateOnPage(page, 120_000);
    const b = await generateOnPage(page, 120_000);
    assert(a.ids.length === 6 && JSON.stringify(a.ids) === JSON.stringify(b.ids), `same seed, different tokens: ${a.ids} vs ${b.ids}`);
    assert(a.text === b.text, "same seed, different text");
    await page.fill("#seed", "99");
    const c = await generateOnPage(page, 120_000);
    log(`     seed 1234: ${JSON.stringify(a.text)}; seed 99: ${JSON.stringify(c.text)}`);

    // The main thread stays responsive while generating: the longest gap between 10 ms timer ticks.
    await page.evaluate(() => {
      window.__gap = 0;
      let last = performance.now();
      window.__tick = setInterval(() => {
        const now = performance.now();
        window.__gap = Math.max(window.__gap, now - last);
        last = now;
      }, 10);
    });
    await page.fill("#maxNewTokens", "500");
    await page.click("#generate");
    await page.waitForFunction(() => document.querySelectorAll("#output span.tok").length >= 2, null, { timeout: 120_000 });
    const atClick = await page.evaluate(() => {
      const n = document.querySelectorAll("#output span.tok").length;
      document.getElementById("stop").click();
      return n;
    });
    await waitState(page, ["done", "error"], 60_000);
    const after = await page.evaluate(() => document.querySelectorAll("#output span.tok").length);
    const gap = await page.evaluate(() => (clearInterval(window.__tick), window.__gap));
    metrics.mainThreadMaxGapMs = Math.round(gap);
    log(`     stop clicked at ${atClick} tokens, ended with ${after}; longest main-thread gap while generating ${gap.toFixed(0)} ms`);
    assert(gap < 100, `the main thread was blocked for ${gap.toFixed(0)} ms while generating`);
    assert(after <= atClick + 1, `stop at ${atClick} tokens, ended with ${after}`);
    await page.fill("#maxNewTokens", "2");
    const d = await generateOnPage(page, 120_000);
    assert(d.ids.length === 2, `a new generation right after Stop: ${d.ids.length} tokens`);
  });

  // (d) a corrupt shard: a clear error, not cached; served correctly afterwards, the page recovers.
  await test("corrupt-shard", 240_000, async () => {
    corrupt.add("/models/tiny-gpt2-q8/shard-000.bin");
    await page.goto(`${base}/?model=tiny-gpt2-q8&device=webgpu`, { timeout: 30_000 });
    await waitState(page, "idle", 30_000);
    await page.click("#load");
    await waitState(page, ["ready", "error"], 120_000);
    const err = await page.textContent("#error");
    assert(/shard-000\.bin is corrupt/.test(err), `error on the page: ${JSON.stringify(err)}`);
    log(`     error shown: ${err}`);
    const cachedKeys = await page.evaluate(async () => (await (await caches.open("gpt2-webgpu-files-v1")).keys()).map((r) => r.url));
    assert(!cachedKeys.some((u) => u.includes("tiny-gpt2-q8/shard-000.bin")), "the corrupt shard was cached");
    corrupt.clear();
    requests.length = 0;
    await page.click("#load");
    const st = await waitState(page, ["ready", "error"], 120_000);
    assert(st === "ready", `recovery failed: ${await page.textContent("#error")}`);
    assert(shardRequests().includes("/models/tiny-gpt2-q8/shard-000.bin"), "shard fetched again");
    assert((await page.textContent("#error")) === "", "error cleared");
    // A sane q8 continuation: the reference's first greedy token has a wide margin (0.25), so q8 keeps it.
    const c = reference.cases[0];
    await setControls(page, c.text, { ...GREEDY, maxNewTokens: 4 });
    const out = await generateOnPage(page, 120_000);
    log(`     q8 greedy ${JSON.stringify(out.ids)} (f32 reference ${JSON.stringify(c.greedy_next_ids.slice(0, 4))})`);
    assert(out.ids[0] === c.greedy_next_ids[0], "q8's first greedy token matches the reference");
  });

  // The wasm tokenizer matches the fixture cases (through the wasm module, on the page).
  await test("wasm-tokenizer", 120_000, async () => {
    const cases = tokenizerCases.cases || tokenizerCases;
    const res = await page.evaluate(async (cases) => {
      const m = await import("./pkg/gpt2_webgpu.js");
      await m.default();
      const tok = new Uint8Array(await (await fetch("models/tiny-gpt2-f32/tokenizer.json")).arrayBuffer());
      return cases.map((c) => Array.from(m.encodeWith(tok, c.text)));
    }, cases);
    let bad = 0;
    cases.forEach((c, i) => {
      if (JSON.stringify(res[i]) !== JSON.stringify(c.ids)) {
        bad++;
        if (bad < 4) log(`     ${JSON.stringify(c.text)}: ${JSON.stringify(res[i])} != ${JSON.stringify(c.ids)}`);
      }
    });
    assert(bad === 0, `${bad} of ${cases.length} tokenizer cases differ`);
  });

  // Device lost (a real one: the worker's GPUDevice is destroyed): the page says so in words and its
  // "Reload model" button loads the model again without reloading the page.
  await test("device-lost", 180_000, async () => {
    await page.goto(`${base}/?model=tiny-gpt2-q8&device=webgpu`, { timeout: 30_000 });
    await waitState(page, "idle", 30_000);
    await page.click("#load");
    assert((await waitState(page, ["ready", "error"], 120_000)) === "ready", await page.textContent("#error"));
    await page.evaluate(() => { window.__samePage = true; window.gpt2Demo.model.loseDeviceForTesting(); });
    await waitState(page, "device-lost", 30_000);
    const err = await page.textContent("#error");
    log(`     shown: ${err}`);
    assert(/GPU device was lost/.test(err) && /Reload the model/.test(err), `message: ${err}`);
    assert(await page.isVisible("#reload"), "a Reload model button");
    // Generating now fails with the same words (not a hang).
    await setControls(page, "Hello", { ...GREEDY, maxNewTokens: 2 });
    await page.click("#generate");
    await waitState(page, "device-lost", 30_000);
    await page.click("#reload");
    assert((await waitState(page, ["ready", "error", "device-lost"], 120_000)) === "ready", await page.textContent("#error"));
    assert(await page.evaluate(() => window.__samePage === true), "the page was not reloaded");
    assert(!(await page.isVisible("#reload")), "the button is gone");
    const out = await generateOnPage(page, 120_000);
    assert(out.ids.length === 2, `generates after the reload: ${out.ids.length} tokens`);
  });

  // A GPU wait past its deadline (the browser side of tests/gpu_deadline.rs): with the worker's deadline
  // set to 1 ms, the read back of a 400-token prompt's step cannot arrive in time (no runaway shader
  // needed). The generation ends with the error in words, not a hang; Generate and Load work again, a
  // "Reload model" button is offered, and the model, loaded again (a new worker, the default deadline),
  // generates.
  await test("gpu-deadline", 180_000, async () => {
    await page.goto(`${base}/?model=tiny-gpt2-q8&device=webgpu`, { timeout: 30_000 });
    await waitState(page, "idle", 30_000);
    await page.click("#load");
    assert((await waitState(page, ["ready", "error"], 120_000)) === "ready", await page.textContent("#error"));
    await page.evaluate(() => { window.__samePage = true; window.gpt2Demo.model.setGpuWaitLimitForTesting(1); });
    await setControls(page, "word ".repeat(400), { ...GREEDY, maxNewTokens: 3 });
    const t0 = Date.now();
    await page.click("#generate");
    const st = await waitState(page, ["done", "error", "device-lost"], 60_000);
    const err = await page.textContent("#error");
    log(`     after ${Date.now() - t0} ms: ${err}`);
    assert(st === "error", `ended in state ${st}: ${err}`);
    assert(/did not finish its work within 1 ms/.test(err) && /load it again/.test(err), `message: ${err}`);
    assert(!(await page.isDisabled("#generate")) && !(await page.isDisabled("#load")), "Generate and Load usable again");
    assert(await page.isVisible("#reload"), "a Reload model button");
    await page.click("#reload");
    await page.waitForFunction(() => document.body.dataset.state !== "error", null, { timeout: 30_000 });
    assert((await waitState(page, ["ready", "error"], 120_000)) === "ready", await page.textContent("#error"));
    assert(!(await page.isVisible("#reload")), "the button is gone");
    assert(await page.evaluate(() => window.__samePage === true), "the page was not reloaded");
    await setControls(page, "word ".repeat(400), { ...GREEDY, maxNewTokens: 2 });
    const out = await generateOnPage(page, 120_000);
    assert(out.ids.length === 2, `generates after loading again: ${out.ids.length} tokens`);
  });

  // A download interrupted halfway (the connection drops in shard-001) says so; loading again resumes
  // without fetching the finished files (tokenizer, shard-000) again.
  await test("resume-download", 180_000, async () => {
    await page.goto(`${base}/?model=tiny-gpt2-f32&device=webgpu`, { timeout: 30_000 });
    await waitState(page, "idle", 30_000);
    await page.evaluate(async () => (await import("./gpt2.js")).deleteCached("models/tiny-gpt2-f32/"));
    dropOnce.add("/models/tiny-gpt2-f32/shard-001.bin");
    requests.length = 0;
    await page.click("#load");
    assert((await waitState(page, ["ready", "error"], 120_000)) === "error", "the interrupted load fails");
    const err = await page.textContent("#error");
    log(`     shown: ${err}`);
    assert(/shard-001\.bin/.test(err) && /(interrupted|failed)/.test(err), `message: ${err}`);
    assert(shardRequests().includes("/models/tiny-gpt2-f32/shard-000.bin"), "first load fetched shard-000");
    requests.length = 0;
    await page.click("#load");
    assert((await waitState(page, ["ready", "error"], 120_000)) === "ready", await page.textContent("#error"));
    log(`     second load fetched: ${requests.filter((p) => p.includes("/models/")).join(", ")}`);
    assert(!shardRequests().includes("/models/tiny-gpt2-f32/shard-000.bin"), "shard-000 fetched again");
    assert(!requests.some((p) => p.endsWith("tokenizer.json")), "tokenizer fetched again");
    assert(shardRequests().includes("/models/tiny-gpt2-f32/shard-001.bin"), "shard-001 fetched");
  });
} finally {
  if (failed) log(consoleLines.slice(-30).join("\n"));
  await ctx.close().catch(() => {});
}

// ---- nothing hangs: the JS API, the page and the element settle on every path -------------------
// Worker hooks for these tests, prepended to worker.js: a prompt starting with FAIL makes the engine
// throw (as the engine's own checks do), SLOW makes every step take 1.5 s, CRASH kills the worker (an
// uncaught error, and it never answers again).
const HOOKS = `import { WasmModel as __W } from "./pkg/gpt2_webgpu.js";
let __slow = 0;
const __start = __W.prototype.start, __next = __W.prototype.next;
__W.prototype.start = function (prompt, opts) {
  if (prompt.startsWith("FAIL")) throw new Error("simulated engine error: the options were refused");
  if (prompt.startsWith("CRASH")) setTimeout(() => { self.postMessage = () => {}; throw new Error("simulated worker crash"); }, 0);
  __slow = prompt.startsWith("SLOW") ? 1500 : 0;
  return __start.call(this, prompt, opts);
};
__W.prototype.next = function () {
  const p = __next.call(this);
  return __slow ? p.then((v) => new Promise((r) => setTimeout(() => r(v), __slow))) : p;
};`;
const REF = reference.cases[0];
const REF_N = Math.min(8, ((i) => (i < 0 ? REF.greedy_margins.length : Math.max(1, i)))(REF.greedy_margins.findIndex((m) => m < 1e-2))); // greedy tokens safe to compare
const hctx = await launch(true);
const hpage = hctx.pages()[0] || (await hctx.newPage());
hpage.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
hpage.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
async function apiPage() {
  serverOpts.inject = HOOKS;
  await hpage.goto(`${base}/?model=tiny-gpt2-f32&nosw&device=webgpu`, { timeout: 30_000 });
  await waitState(hpage, "idle", 30_000);
  await hpage.evaluate(async () => {
    window.gpt2 = await import("./gpt2.js");
    window.collect = async (it) => { const ids = []; for await (const p of it) ids.push(p.tokenId); return ids; };
  });
}
// The page with gpt2.js imported and a model loaded as window.m (each test can run alone with --only).
async function ensureApi() {
  const ready = await hpage.evaluate(() => !!(window.gpt2 && window.m)).catch(() => false);
  if (ready) return;
  await apiPage();
  await hpage.evaluate(async () => (window.m = await gpt2.load("models/tiny-gpt2-f32/", { device: "webgpu" })));
}
try {
  // Defect 1: every invalid option rejects at once with words naming the option and its range; the
  // model stays usable and still gives the reference's greedy tokens.
  await test("api-bad-options", 180_000, async () => {
    await ensureApi();
    const r = await hpage.evaluate(async ([text, n]) => {
      const m = window.m;
      const bad = [["temperature", -1], ["topP", 0], ["topP", 2], ["topP", null], ["topK", -5], ["topK", 2.5],
        ["repetitionPenalty", 0], ["seed", 1.5], ["seed", -1], ["maxNewTokens", 2.5], ["maxNewTokens", 0], ["temperature", "0.5"],
        ["topP", NaN], ["alternatives", 9], ["stopAtEos", 1], ["topp", 0.9]];
      const out = [];
      for (const [k, v] of bad) {
        try {
          await collect(m.generate(text, { maxNewTokens: 2, [k]: v }));
          out.push({ k, v: String(v), resolved: true });
        } catch (e) {
          out.push({ k, v: String(v), kind: e.kind, option: e.option, message: e.message });
        }
      }
      const again = await collect(m.generate(text, { maxNewTokens: n }));
      return { out, again };
    }, [REF.text, REF_N]);
    for (const o of r.out) {
      assert(!o.resolved, `${o.k} = ${o.v} was accepted`);
      assert(o.kind === "invalid-option" && o.option === o.k && o.message.startsWith(o.k), `${o.k} = ${o.v}: ${JSON.stringify(o)}`);
      assert(/must be|not an option/.test(o.message), `${o.k}: the message says what is allowed: ${o.message}`);
    }
    log(`     e.g. ${r.out[2].message} | ${r.out[r.out.length - 1].message}`);
    assert(JSON.stringify(r.again) === JSON.stringify(REF.greedy_next_ids.slice(0, REF_N)), `after the bad options: ${r.again}`);
  });

  // The engine's submits and readbacks through the API (model.counters(): what tests/browser/bench.mjs
  // reports as submits_per_token etc., counted as gpt2 bench --json counts them), asked for between
  // generations and during one; the KV cache's format, tokens per submit and where the load's time went.
  await test("api-counters", 180_000, async () => {
    await ensureApi();
    const r = await hpage.evaluate(async () => {
      const m = window.m;
      const gen = async (n) => {
        const a = await m.counters();
        let during = null;
        let k = 0;
        for await (const p of m.generate("Hello there", { maxNewTokens: n, stopAtEos: false })) {
          if (++k === 2) during = await m.counters(); // answered between two steps
        }
        const b = await m.counters();
        return { n: k, a, b, during, submits: b.submits - a.submits, readbacks: b.readbacks - a.readbacks, bytes: b.readbackBytes - a.readbackBytes };
      };
      return { one: await gen(1), all: await gen(9), info: m.info };
    });
    const { one, all, info } = r;
    log(`     1 token: ${JSON.stringify({ s: one.submits, r: one.readbacks, b: one.bytes })}, 9 tokens: ${JSON.stringify({ s: all.submits, r: all.readbacks, b: all.bytes })}; ` +
      `kv ${info.kvFormat}, ${info.tokensPerSubmit} per submit; load ${JSON.stringify(info.loadPhases)}`);
    assert(one.n === 1 && all.n === 9, `tokens: ${one.n}, ${all.n}`);
    for (const c of [one.a, one.b, all.b]) {
      assert(["submits", "readbacks", "readbackBytes"].every((k) => Number.isSafeInteger(c[k]) && c[k] >= 0), `counters: ${JSON.stringify(c)}`);
    }
    assert(one.submits >= 1 && one.readbacks >= 1 && one.bytes > 0, `a 1-token generation submits and reads back: ${JSON.stringify(one)}`);
    assert(all.during && all.during.submits > all.a.submits && all.during.submits <= all.b.submits, `during: ${JSON.stringify(all)}`);
    const per = (k) => (all[k] - one[k]) / 8;
    // At most one submit and one readback per decode token (fewer with several tokens per submit), never none.
    assert(per("submits") > 0 && per("submits") <= 1 && per("readbacks") > 0 && per("readbacks") <= 1, `per token: ${per("submits")}, ${per("readbacks")}`);
    assert(per("submits") >= 1 / info.tokensPerSubmit - 1e-9, `no more than ${info.tokensPerSubmit} tokens per submit: ${per("submits")}`);
    // Each readback holds whole rows of the sampler's output (the token, its probability, the alternatives).
    assert(per("bytes") > 0 && per("bytes") <= 4096, `bytes per token: ${per("bytes")}`);
    assert(info.kvFormat === "f32" && info.quantization === "f32", `an f32 package keeps the f32 cache: ${info.kvFormat}`);
    assert(info.tokensPerSubmit === info.tuning.tokens_per_submit, `tokensPerSubmit ${info.tokensPerSubmit} vs the tuning's ${info.tuning.tokens_per_submit}`);
    const ph = info.loadPhases;
    for (const k of ["wasmMs", "filesMs", "beginMs", "deviceMs", "pipelinesMs", "shardsMs", "uploadMs", "finishMs", "totalMs"]) {
      assert(typeof ph[k] === "number" && ph[k] >= 0, `loadPhases.${k}: ${ph[k]}`);
    }
    assert(ph.totalMs >= ph.pipelinesMs + ph.uploadMs, `the phases fit in the total: ${JSON.stringify(ph)}`);
  });

  // Defect 1 as first found: the worker refuses a generation (the engine's own error): the iterator
  // rejects with its words, and the next generation works; on the page too.
  await test("engine-error-settles", 180_000, async () => {
    await ensureApi();
    const r = await hpage.evaluate(async ([text, n]) => {
      const m = window.m;
      let err = null;
      try { await collect(m.generate("FAIL here", { maxNewTokens: 3 })); } catch (e) { err = { kind: e.kind, message: e.message }; }
      return { err, again: await collect(m.generate(text, { maxNewTokens: n })) };
    }, [REF.text, REF_N]);
    assert(r.err && /simulated engine error/.test(r.err.message), `rejected with the engine's words: ${JSON.stringify(r.err)}`);
    assert(JSON.stringify(r.again) === JSON.stringify(REF.greedy_next_ids.slice(0, REF_N)), `the model still works: ${r.again}`);
    await setControls(hpage, "FAIL on the page", { ...GREEDY, maxNewTokens: 2 });
    await hpage.click("#generate");
    assert((await waitState(hpage, ["done", "error"], 120_000)) === "error", "the page shows the error");
    assert(/simulated engine error/.test(await hpage.textContent("#error")), await hpage.textContent("#error"));
    assert(!(await hpage.isDisabled("#generate")) && !(await hpage.isDisabled("#load")), "Generate and Load usable again");
    await setControls(hpage, "Hello", { ...GREEDY, maxNewTokens: 2 });
    const out = await generateOnPage(hpage, 120_000);
    assert(out.ids.length === 2, `generates after the error: ${out.ids.length} tokens`);
  });

  // A worker that crashes during a generation on the page: the page says so, offers "Reload model",
  // and Load loads the model again too (it no longer skips the broken model as "already loaded").
  await test("page-worker-crash", 180_000, async () => {
    await ensureApi();
    await setControls(hpage, "CRASH on the page", { ...GREEDY, maxNewTokens: 2 });
    await hpage.click("#generate");
    assert((await waitState(hpage, ["done", "error"], 60_000)) === "error", "the page shows the error");
    const shown = await hpage.textContent("#error");
    assert(/crashed/.test(shown), `in words: ${shown}`);
    assert(await hpage.isVisible("#reload"), "a Reload model button");
    assert(!(await hpage.isDisabled("#load")), "Load usable");
    await hpage.click("#load");
    assert((await waitState(hpage, ["ready", "error"], 120_000)) === "ready", await hpage.textContent("#error"));
    assert(!(await hpage.isVisible("#reload")), "the button is gone");
    await setControls(hpage, "Hello", { ...GREEDY, maxNewTokens: 2 });
    const out = await generateOnPage(hpage, 120_000);
    assert(out.ids.length === 2, `generates after Load: ${out.ids.length} tokens`);
  });

  // The page checks its fields before sending and shows what is wrong next to the field.
  await test("page-field-errors", 120_000, async () => {
    await ensureApi();
    for (const [id, value, want] of [["topP", "2", /top-p must be a number above 0 and at most 1/], ["topP", "", /top-p is empty/],
      ["temperature", "-1", /temperature must be a number >= 0/], ["topK", "2.5", /top-k must be a whole number/],
      ["repetitionPenalty", "0", /repetition penalty must be a number above 0/], ["seed", "-1", /seed must be a whole number/],
      ["maxNewTokens", "2.5", /max new tokens must be a whole number from 1/]]) {
      await setControls(hpage, "Hello", { ...GREEDY, maxNewTokens: 2, [id]: value });
      const before = requests.length;
      await hpage.click("#generate");
      const shown = await hpage.textContent(`#${id}-error`);
      assert(want.test(shown), `${id} = ${JSON.stringify(value)}: next to the field: ${JSON.stringify(shown)}`);
      assert((await hpage.getAttribute(`#${id}`, "aria-invalid")) === "true", `${id} marked invalid`);
      assert(await hpage.evaluate(() => document.body.dataset.state !== "generating"), "nothing started");
      assert(requests.length === before, "nothing was sent");
    }
    await setControls(hpage, "Hello", { ...GREEDY, maxNewTokens: 2 });
    const out = await generateOnPage(hpage, 120_000);
    assert(out.ids.length === 2 && (await hpage.textContent("#topP-error")) === "", "fixed fields: generates, errors cleared");
  });

  // Two generate() calls at once are queued, each gives exactly its text alone; an abort or stop()
  // ends a generation at once (not after the 1.5 s step), and the queued one then runs.
  await test("queue-and-abort", 240_000, async () => {
    await ensureApi();
    const r = await hpage.evaluate(async ([text, n]) => {
      const m = window.m;
      const a = () => m.generate(text, { maxNewTokens: n });
      const b = () => m.generate("Once upon a time", { temperature: 1, topK: 40, topP: 0.95, seed: 7, maxNewTokens: 6 });
      const aloneA = await collect(a()), aloneB = await collect(b());
      const [bothA, bothB] = await Promise.all([collect(a()), collect(b())]);
      // abort: the first piece of a slow generation, then abort; a queued generation follows
      const ctl = new AbortController();
      const slow = (async () => {
        const ids = [];
        for await (const p of m.generate("SLOW and steady", { maxNewTokens: 20, signal: ctl.signal })) {
          ids.push(p.tokenId);
          // while the loop waits for the next piece (the worker is inside its 1.5 s step)
          setTimeout(() => { window.abortAt = performance.now(); ctl.abort(); }, 100);
        }
        return { ids, ms: performance.now() - window.abortAt };
      })();
      const queued = collect(a());
      const aborted = await slow;
      const afterAbort = await queued;
      // stop(): the same through the method
      const it = m.generate("SLOW again", { maxNewTokens: 20 });
      const first = await it.next();
      const t0 = performance.now();
      setTimeout(() => m.stop(), 0);
      const second = await it.next();
      return { aloneA, aloneB, bothA, bothB, aborted, afterAbort, first: !first.done, stopDone: second.done, stopMs: performance.now() - t0 };
    }, [REF.text, REF_N]);
    log(`     alone ${JSON.stringify([r.aloneA, r.aloneB])}, together ${JSON.stringify([r.bothA, r.bothB])}`);
    log(`     abort ended the loop ${r.aborted.ms.toFixed(0)} ms after abort(), stop() after ${r.stopMs.toFixed(0)} ms (a step takes 1500 ms)`);
    assert(JSON.stringify(r.aloneA) === JSON.stringify(REF.greedy_next_ids.slice(0, REF_N)), "greedy alone = reference");
    assert(r.aloneB.length === 6, "sampled: 6 tokens");
    assert(JSON.stringify(r.bothA) === JSON.stringify(r.aloneA) && JSON.stringify(r.bothB) === JSON.stringify(r.aloneB), "concurrent = alone");
    assert(r.aborted.ids.length === 1 && r.aborted.ms < 500, `abort: ${JSON.stringify(r.aborted)}`);
    assert(JSON.stringify(r.afterAbort) === JSON.stringify(r.aloneA), "the queued generation after an abort = alone");
    assert(r.first && r.stopDone && r.stopMs < 500, `stop(): ${JSON.stringify(r)}`);
  });

  // dispose() during a generation (and with one queued): both end at once with an Error; load again works.
  // Then a device loss and a worker crash each end the running iterator with an Error.
  await test("dispose-lost-crash", 240_000, async () => {
    await ensureApi();
    const r = await hpage.evaluate(async ([text, n]) => {
      const settle = (it) => collect(it).then((ids) => ({ ids }), (e) => ({ kind: e.kind, message: e.message, at: performance.now() }));
      let m = window.m;
      const it = m.generate("SLOW and steady", { maxNewTokens: 20 });
      await it.next();
      const running = settle({ [Symbol.asyncIterator]: () => it });
      const queued = settle(m.generate(text, { maxNewTokens: 3 }));
      const t0 = performance.now();
      m.dispose();
      const disposed = [await running, await queued].map((x) => ({ ...x, ms: x.at - t0 }));
      const afterDispose = await settle(m.generate(text, { maxNewTokens: 2 }));
      m = await gpt2.load("models/tiny-gpt2-f32/", { device: "webgpu" });
      const reloaded = await collect(m.generate(text, { maxNewTokens: n }));
      // device lost mid-generation
      const it2 = m.generate("SLOW down", { maxNewTokens: 20 });
      await it2.next();
      m.loseDeviceForTesting();
      const lost = await settle({ [Symbol.asyncIterator]: () => it2 });
      const lostAfter = await settle(m.generate(text, { maxNewTokens: 2 }));
      m.dispose();
      // worker crash
      m = await gpt2.load("models/tiny-gpt2-f32/", { device: "webgpu" });
      const crash = await settle(m.generate("CRASH now", { maxNewTokens: 50 }));
      const crashAfter = await settle(m.generate(text, { maxNewTokens: 2 }));
      m.dispose();
      window.m = null;
      return { disposed, afterDispose, reloaded, lost, lostAfter, crash, crashAfter };
    }, [REF.text, REF_N]);
    log(`     dispose: ${JSON.stringify(r.disposed.map((d) => [d.kind, Math.round(d.ms)]))}; lost: ${r.lost.message}; crash: ${r.crash.message}`);
    for (const d of r.disposed) assert(d.kind === "state" && d.ms < 500, `dispose: ${JSON.stringify(d)}`);
    assert(r.afterDispose.kind === "state" && /disposed/.test(r.afterDispose.message), JSON.stringify(r.afterDispose));
    assert(JSON.stringify(r.reloaded) === JSON.stringify(REF.greedy_next_ids.slice(0, REF_N)), `reloaded: ${r.reloaded}`);
    assert(r.lost.kind === "device-lost" && /GPU device was lost/.test(r.lost.message), `lost: ${JSON.stringify(r.lost)}`);
    assert(r.lostAfter.kind === "device-lost", `after the loss: ${JSON.stringify(r.lostAfter)}`);
    assert(r.crash.kind === "worker" && /crashed/.test(r.crash.message), `crash: ${JSON.stringify(r.crash)}`);
    assert(r.crashAfter.kind === "worker", `after the crash: ${JSON.stringify(r.crashAfter)}`);
  });

  // The short soak (the long one, 3,000 tokens and 50 cycles, is tests/browser/soak.mjs): 5 load ->
  // generate -> dispose cycles on WebGPU. Every cycle's worker ends with the same WebAssembly and GPU
  // bytes (the GPU figure is the model's buffers, as info.gpuBytes says), and the page's JS heap after
  // GC grows by at most 2 MB (a Model, its listeners or a worker kept alive per cycle would show).
  await test("soak-cycles", 180_000, async () => {
    await ensureApi();
    const cdp = await hctx.newCDPSession(hpage);
    const heap = async () => { await cdp.send("HeapProfiler.collectGarbage"); return (await cdp.send("Runtime.getHeapUsage")).usedSize; };
    const cycle = () => hpage.evaluate(async () => {
      const m = await gpt2.load("models/tiny-gpt2-q8/", { device: "webgpu" });
      const ids = await collect(m.generate("Cycle", { maxNewTokens: 4, stopAtEos: false }));
      const mem = await m.memory();
      const info = m.info.gpuBytes;
      m.dispose();
      return { n: ids.length, info, ...mem };
    });
    await cycle(); // the first caches the package
    const before = await heap();
    const cycles = [];
    for (let i = 0; i < 5; i++) cycles.push(await cycle());
    const after = await heap();
    log(`     5 cycles: wasm ${(cycles[0].wasmBytes / 1e6).toFixed(1)} MB, GPU ${(cycles[0].gpuBytes / 1e6).toFixed(1)} MB each; page JS heap ${(before / 1e6).toFixed(2)} -> ${(after / 1e6).toFixed(2)} MB`);
    assert(cycles.every((c) => c.n === 4), "4 tokens each");
    assert(cycles[0].gpuBytes > 0 && cycles.every((c) => c.gpuBytes === c.info && c.gpuBytes === cycles[0].gpuBytes), `GPU bytes: ${JSON.stringify(cycles)}`);
    assert(cycles.every((c) => c.wasmBytes === cycles[0].wasmBytes), `wasm bytes: ${JSON.stringify(cycles)}`);
    assert(after - before <= 2e6, `page JS heap grew by ${after - before} bytes`);
    await cdp.detach();
  });

  // Aborting a load rejects at once, cancels the download in flight, and leaves only verified files in
  // the cache; the next load resumes.
  await test("abort-load", 180_000, async () => {
    await ensureApi();
    await hpage.evaluate(() => gpt2.deleteCached("models/tiny-gpt2-f32/"));
    stall.add("/models/tiny-gpt2-f32/shard-001.bin");
    stalledClosed.length = 0;
    requests.length = 0;
    const r = await hpage.evaluate(async () => {
      const ctl = new AbortController();
      const p = gpt2.load("models/tiny-gpt2-f32/", { device: "webgpu", signal: ctl.signal, onProgress: (x) => x.file === "shard-001.bin" && setTimeout(() => ctl.abort(), 300) });
      let t0 = 0;
      ctl.signal.addEventListener("abort", () => (t0 = performance.now()));
      try { await p; return { resolved: true }; } catch (e) { return { kind: e.kind, ms: performance.now() - t0 }; }
    });
    log(`     abort: ${JSON.stringify(r)}`);
    assert(r.kind === "aborted" && r.ms < 200, `the load rejected at once: ${JSON.stringify(r)}`);
    const t0 = Date.now();
    while (!stalledClosed.length && Date.now() - t0 < 10_000) await new Promise((res) => setTimeout(res, 100));
    assert(stalledClosed.includes("/models/tiny-gpt2-f32/shard-001.bin"), "the shard download was cancelled");
    stall.clear();
    const cache = await hpage.evaluate(async () => {
      const c = await caches.open(gpt2.CACHE_NAME);
      const out = [];
      for (const req of await c.keys()) {
        if (!req.url.includes("tiny-gpt2-f32")) continue;
        const body = await (await c.match(req)).arrayBuffer();
        const hash = [...new Uint8Array(await crypto.subtle.digest("SHA-256", body))].map((b) => b.toString(16).padStart(2, "0")).join("");
        out.push({ url: req.url, ok: req.url.endsWith(`gpt2-sha256=${hash}`) });
      }
      return out;
    });
    log(`     cached after the abort: ${cache.map((c) => c.url.replace(/.*\//, "").slice(0, 30)).join(", ")}`);
    assert(cache.every((c) => c.ok), `only verified files are cached: ${JSON.stringify(cache)}`);
    assert(!cache.some((c) => c.url.includes("shard-001")), "the cancelled shard is not cached");
    requests.length = 0;
    const n = await hpage.evaluate(async () => { const m = await gpt2.load("models/tiny-gpt2-f32/", { device: "webgpu" }); m.dispose(); return 1; });
    assert(n === 1 && shardRequests().join() === "/models/tiny-gpt2-f32/shard-001.bin", `resumed: ${shardRequests()}`);
  });

  // Defect 2: a malformed or hostile manifest is refused in words before anything in it is used or
  // cached; the good copy kept for offline use stays.
  await test("bad-manifests", 180_000, async () => {
    await ensureApi();
    const path0 = "/models/tiny-gpt2-q8/manifest.json";
    const good = JSON.parse(fs.readFileSync(path.join(www, path0)));
    await hpage.evaluate(async () => { const m = await gpt2.load("models/tiny-gpt2-q8/", { device: "webgpu" }); m.dispose(); });
    const keptBefore = await hpage.evaluate(async (u) => (await (await caches.open(gpt2.CACHE_NAME)).match(u))?.text(), `${base}${path0}`);
    assert(keptBefore && JSON.parse(keptBefore).shards.length === good.shards.length, "the good manifest is kept");
    const edit = (f) => { const m = structuredClone(good); f(m); return JSON.stringify(m); };
    const cases = {
      "not JSON": "{ this is not json",
      "empty object": "{}",
      "no tokenizer": edit((m) => delete m.tokenizer),
      "tokenizer a number": edit((m) => (m.tokenizer = 7)),
      "tokenizer outside the folder": edit((m) => (m.tokenizer.file = "../index.json")),
      "tokenizer on another site": edit((m) => (m.tokenizer.file = "https://evil.example/tokenizer.json")),
      "escaped dot-dot": edit((m) => (m.tokenizer.file = "%2e%2e")),
      "tokenizer of 1 TiB": edit((m) => (m.tokenizer.bytes = 2 ** 40)),
      "shard size not a number": edit((m) => (m.shards[0].bytes = "big")),
      "shards missing": edit((m) => delete m.shards),
      "n_layer absurd": edit((m) => (m.config.n_layer = 1e12)),
    };
    const results = {};
    for (const [name, body] of Object.entries(cases)) {
      overrides.set(path0, body);
      requests.length = 0;
      results[name] = await hpage.evaluate(async () => {
        try { (await gpt2.load("models/tiny-gpt2-q8/", { device: "webgpu" })).dispose(); return { resolved: true }; } catch (e) { return { kind: e.kind, message: e.message }; }
      });
      const r = results[name];
      assert(!r.resolved, `${name}: accepted`);
      assert(r.kind === "package" && /manifest\.json/.test(r.message) && !/TypeError|undefined|Cannot read|is not a function/.test(r.message),
        `${name}: ${JSON.stringify(r)}`);
      assert(!requests.some((p) => !p.endsWith("manifest.json") && !p.endsWith(".js") && !p.endsWith(".wasm")), `${name}: fetched ${requests}`);
    }
    overrides.clear();
    for (const [name, r] of Object.entries(results)) log(`     ${name}: ${r.message.slice(0, 150)}`);
    const keptAfter = await hpage.evaluate(async (u) => (await (await caches.open(gpt2.CACHE_NAME)).match(u))?.text(), `${base}${path0}`);
    assert(keptAfter === keptBefore, "the kept manifest is unchanged");
  });
} finally {
  serverOpts.inject = "";
  overrides.clear();
  stall.clear();
  if (failed) log(consoleLines.slice(-30).join("\n"));
  await hctx.close().catch(() => {});
}

// The element checks its attributes before sending and says which one is wrong; the other element on
// the page (same shared model) still generates.
await test("element-bad-attribute", 150_000, async () => {
  const c = await launch(true);
  try {
    const p = c.pages()[0] || (await c.newPage());
    await p.goto(`${base}/embed.html`, { timeout: 30_000 });
    await p.evaluate(() => document.querySelector("#a").setAttribute("top-p", "2"));
    await p.click("#a >> button.generate");
    await p.waitForFunction(() => document.querySelector("#a").dataset.error, null, { timeout: 10_000 });
    const err = await p.getAttribute("#a", "data-error");
    log(`     #a: ${err}`);
    assert(/top-p attribute is "2"/.test(err) && /at most 1/.test(err), err);
    await p.click("#b >> button.generate");
    await p.waitForFunction(() => document.querySelector("#b").dataset.done || document.querySelector("#b").dataset.error, null, { timeout: 120_000 });
    assert((await p.getAttribute("#b", "data-done")) === "8", `#b: ${await p.getAttribute("#b", "data-error")}`);
    await p.evaluate(() => document.querySelector("#a").removeAttribute("top-p"));
    await p.click("#a >> button.generate");
    await p.waitForFunction(() => document.querySelector("#a").dataset.done, null, { timeout: 120_000 });
  } finally {
    await c.close().catch(() => {});
  }
});

// Without WebGPU (Chromium started without --enable-unsafe-webgpu: navigator.gpu exists but offers no
// adapter; or navigator.gpu removed, as in a browser that never had it) the element just works on the CPU
// engine: #a with device="cpu" (flag case) or the default "auto" (API case) generates its 8 tokens, with
// no error. #b asking for device="webgpu" gets the page's words for visitors (not the CLI's).
for (const [name, removeApi, want] of [["element-no-webgpu-flag", false, /no GPU adapter/], ["element-no-webgpu-api", true, /does not offer WebGPU/]]) {
  await test(name, 120_000, async () => {
    const c = await launch(false);
    if (removeApi) await c.addInitScript(() => { delete Navigator.prototype.gpu; });
    try {
      const p = c.pages()[0] || (await c.newPage());
      const errors = [];
      p.on("pageerror", (e) => errors.push(e.message));
      await p.goto(`${base}/embed.html`, { timeout: 30_000 });
      await p.evaluate((cpu) => {
        if (cpu) document.querySelector("#a").setAttribute("device", "cpu");
        document.querySelector("#b").setAttribute("device", "webgpu");
      }, !removeApi);
      await p.click("#a >> button.generate");
      await p.waitForFunction(() => document.querySelector("#a").dataset.done || document.querySelector("#a").dataset.error, null, { timeout: 60_000 });
      assert((await p.getAttribute("#a", "data-done")) === "8", `#a (${removeApi ? "auto" : "cpu"}): ${await p.getAttribute("#a", "data-error")}`);
      const info = await p.evaluate(async () => (await document.querySelector("#a").model).info);
      assert(info.device === "cpu" && info.cpu.simd === "simd128", `#a runs on the CPU engine: ${info.deviceName}`);
      await p.click("#b >> button.generate");
      await p.waitForFunction(() => document.querySelector("#b").dataset.error || document.querySelector("#b").dataset.done, null, { timeout: 60_000 });
      const err = await p.getAttribute("#b", "data-error");
      const shown = await p.evaluate(() => document.querySelector("#b").shadowRoot.querySelector(".error").textContent);
      log(`     #a on ${info.deviceName}: 8 tokens; #b device="webgpu": ${JSON.stringify((err || "").slice(0, 70))}...`);
      assert(err && want.test(err) && /Chrome/.test(err) && /Safari/.test(err) && shown === err, `#b: ${err}`);
      assert(!/lavapipe|vulkan|Mesa|driver\)|compiled/i.test(err), `CLI words: ${err}`);
      assert(errors.length === 0, errors.join("; "));
    } finally {
      await c.close().catch(() => {});
    }
  });
}

// embed.html: two <gpt2-generate> elements generate and share one model: one manifest request, each
// shard at most once (none when cached).
await test("embed-two-elements", 150_000, async () => {
  const ctx4 = await launch(true);
  try {
    const p = ctx4.pages()[0] || (await ctx4.newPage());
    const errors = [];
    p.on("pageerror", (e) => errors.push(e.message));
    requests.length = 0;
    await p.goto(`${base}/embed.html`, { timeout: 30_000 });
    await p.click("#a >> button.generate");
    await p.click("#b >> button.generate");
    await p.waitForFunction(() => [...document.querySelectorAll("gpt2-generate")].every((e) => e.dataset.done || e.dataset.error),
      null, { timeout: 120_000 });
    const r = await p.evaluate(() => [...document.querySelectorAll("gpt2-generate")].map((e) => ({ done: e.dataset.done, error: e.dataset.error, text: e.text,
      shown: e.shadowRoot.querySelector(".output").textContent })));
    log(`     ${JSON.stringify(r)}`);
    assert(r.every((x) => x.done === "8" && !x.error && x.shown === x.text && x.text.length > 0), "both elements generated 8 tokens");
    const manifests = requests.filter((x) => x.endsWith("tiny-gpt2-q8/manifest.json")).length;
    const shards = shardRequests();
    log(`     model requests: ${manifests} manifest, shards ${shards.join(", ")}`);
    assert(manifests === 1, `manifest fetched ${manifests} times`);
    assert(new Set(shards).size === shards.length, "a shard fetched twice");
    assert(errors.length === 0, errors.join("; "));
  } finally {
    await ctx4.close().catch(() => {});
  }
});

// Offline: one online visit (service worker installed, tiny-gpt2-f32 loaded), then the context offline
// and the server refusing every connection: a reload shows the page and generates with the cached model;
// tiny-gpt2-q8 (never downloaded) is shown unavailable offline and fails at once. Back online, deleting the
// cached model lowers the storage estimate and the next load downloads it again.
await test("offline-and-delete", 240_000, async () => {
  const ctx5 = await launch(true);
  try {
    const p = ctx5.pages()[0] || (await ctx5.newPage());
    await p.goto(`${base}/?model=tiny-gpt2-f32&device=webgpu`, { timeout: 30_000 });
    await waitState(p, "idle", 30_000);
    await p.click("#load");
    assert((await waitState(p, ["ready", "error"], 120_000)) === "ready", await p.textContent("#error"));
    await p.waitForFunction(() => document.body.dataset.offlineReady === "true", null, { timeout: 30_000 });
    await p.waitForFunction(() => /persistent/.test(document.getElementById("storage").textContent), null, { timeout: 10_000 });
    log(`     online: ${await p.textContent("#offline")} | ${await p.textContent("#storage")}`);

    await ctx5.setOffline(true);
    serverOpts.down = true;
    requests.length = 0;
    await p.reload({ timeout: 30_000 });
    await waitState(p, "idle", 30_000);
    await p.waitForFunction(() => document.body.dataset.modelsChecked === "true", null, { timeout: 15_000 });
    const off = await p.textContent("#offline");
    const picker = await p.textContent("#model");
    log(`     offline: ${off} | picker: ${picker}`);
    assert(/offline-ready/.test(off) && /models available offline: tiny-gpt2-f32/.test(off), off);
    assert(/tiny-gpt2-q8 \(.*unavailable offline/.test(picker), `q8 marked unavailable: ${picker}`);
    await setControls(p, "Hello", { ...GREEDY, maxNewTokens: 3 });
    const out = await generateOnPage(p, 120_000);
    assert(out.ids.length === 3, "generates offline");
    await p.selectOption("#model", "models/tiny-gpt2-q8/");
    await p.click("#load");
    const st = await waitState(p, ["error", "ready"], 15_000);
    const err = await p.textContent("#error");
    log(`     offline, q8: ${err}`);
    assert(st === "error" && /not available offline/.test(err), err);
    // setOffline does not cover the browser's update check of sw.js nor (in this Chromium) the dedicated
    // worker's fetches: those reach the server, which refuses them, as a dead network would. The shell
    // and every model file still came from this browser's storage.
    log(`     offline, the server refused: ${requests.join(", ") || "nothing"}`);
    const seen = requests.filter((x) => x !== "/sw.js" && !x.endsWith("/manifest.json"));
    assert(seen.length === 0, `offline, yet the page needed the server for ${seen.join(", ")}`);

    serverOpts.down = false;
    await ctx5.setOffline(false);
    await p.selectOption("#model", "models/tiny-gpt2-f32/");
    await p.click("#load");
    await waitState(p, ["ready", "error"], 60_000);
    const before = Number(await p.evaluate(async () => (await navigator.storage.estimate()).usage));
    await p.click("#delete");
    await p.waitForFunction(() => /deleted/.test(document.getElementById("progress-text").textContent), null, { timeout: 15_000 });
    const after = Number(await p.evaluate(async () => (await navigator.storage.estimate()).usage));
    log(`     estimate before delete ${before}, after ${after}; ${await p.textContent("#progress-text")}`);
    assert(after < before - 20e6, `usage ${before} -> ${after}`);
    requests.length = 0;
    await p.reload({ timeout: 30_000 });
    await waitState(p, "idle", 30_000);
    await p.click("#load");
    assert((await waitState(p, ["ready", "error"], 120_000)) === "ready", await p.textContent("#error"));
    assert(shardRequests().length === 2, `downloaded again: ${shardRequests().join(", ")}`);
  } finally {
    serverOpts.down = false;
    await ctx5.close().catch(() => {});
  }
});

// A strict Content-Security-Policy on every response: the page and embed.html still work.
await test("strict-csp", 150_000, async () => {
  const ctx6 = await launch(true);
  serverOpts.headers = { "Content-Security-Policy": "script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'" };
  try {
    const p = ctx6.pages()[0] || (await ctx6.newPage());
    const violations = [];
    p.on("console", (m) => /Content Security Policy|Refused/.test(m.text()) && violations.push(m.text()));
    p.on("pageerror", (e) => violations.push(e.message));
    await p.goto(`${base}/?model=tiny-gpt2-q8&device=webgpu`, { timeout: 30_000 });
    await waitState(p, "idle", 30_000);
    await setControls(p, "Hello", { ...GREEDY, maxNewTokens: 3 });
    const out = await generateOnPage(p, 120_000);
    assert(out.ids.length === 3, "generates under the CSP");
    await p.goto(`${base}/embed.html`, { timeout: 30_000 });
    await p.click("#a >> button.generate");
    await p.waitForFunction(() => document.querySelector("#a").dataset.done || document.querySelector("#a").dataset.error, null, { timeout: 60_000 });
    assert((await p.getAttribute("#a", "data-done")) === "8", `embed: ${await p.getAttribute("#a", "data-error")}`);
    assert(violations.length === 0, `CSP violations: ${violations.join("; ")}`);
  } finally {
    serverOpts.headers = {};
    await ctx6.close().catch(() => {});
  }
});

// The browser's storage is full (Cache.put throws QuotaExceededError in the worker, patched in by the
// server): the model loads into memory, the page says so, and generation works. Then a device whose
// reported storage-binding limit is 1 MiB: the engine's typed TooLarge error reaches the page in words.
await test("quota-and-too-large", 180_000, async () => {
  const ctx3 = await launch(true);
  try {
    const p = ctx3.pages()[0] || (await ctx3.newPage());
    serverOpts.inject = `Cache.prototype.put = async function () { throw new DOMException("simulated full storage", "QuotaExceededError"); };`;
    await p.goto(`${base}/?model=tiny-gpt2-q8&nosw&device=webgpu`, { timeout: 30_000 });
    await waitState(p, "idle", 30_000);
    await p.click("#load");
    assert((await waitState(p, ["ready", "error"], 120_000)) === "ready", await p.textContent("#error"));
    const note = await p.textContent("#progress-text");
    log(`     storage full: ${note}`);
    assert(/storage is full/.test(note) && /memory/.test(note), `the page says so: ${note}`);
    await setControls(p, "Hello", { ...GREEDY, maxNewTokens: 2 });
    const out = await generateOnPage(p, 120_000);
    assert(out.ids.length === 2, "generates from memory");

    serverOpts.inject = `for (const k of ["maxStorageBufferBindingSize", "maxBufferSize"]) Object.defineProperty(GPUSupportedLimits.prototype, k, { get: () => 1048576 });`;
    await p.goto(`${base}/?model=tiny-gpt2-q8&nosw&device=webgpu`, { timeout: 30_000 });
    await waitState(p, "idle", 30_000);
    await p.click("#load");
    assert((await waitState(p, ["ready", "error"], 120_000)) === "error", "a model too large fails");
    const err = await p.textContent("#error");
    log(`     too large: ${err}`);
    assert(/does not fit this GPU/.test(err) && /1048576/.test(err), `message: ${err}`);
  } finally {
    serverOpts.inject = "";
    await ctx3.close().catch(() => {});
  }
});

// (c) Chromium without WebGPU: the page just works on the CPU engine, and says so. Once as started without
// --enable-unsafe-webgpu (navigator.gpu exists, no adapter on this GPU-less machine), once as a browser
// without the API at all (navigator.gpu removed before the page runs, as in a browser that never had
// WebGPU; Chromium 156 keeps navigator.gpu even with --disable-features=WebGPU). Auto loads on the CPU and
// gives the reference's greedy tokens; choosing WebGPU gives the explanation in the visitor's words.
for (const [name, removeApi, want, reason] of [["no-webgpu-flag", false, /no GPU adapter/, /no GPU adapter/],
  ["no-webgpu-api", true, /does not offer WebGPU/, /does not offer WebGPU/]]) {
  await test(name, 150_000, async () => {
    const ctx2 = await launch(false);
    if (removeApi) await ctx2.addInitScript(() => { delete Navigator.prototype.gpu; });
    try {
      const p = ctx2.pages()[0] || (await ctx2.newPage());
      const errors = [];
      p.on("pageerror", (e) => errors.push(e.message));
      p.on("console", (m) => m.type() === "error" && errors.push(m.text()));
      await p.goto(`${base}/?model=tiny-gpt2-f32&nosw`, { timeout: 30_000 });
      assert((await waitState(p, ["idle", "error"], 30_000)) === "idle", await p.textContent("#error"));
      assert((await p.inputValue("#device")) === "auto", "Auto is the default");
      await p.waitForFunction(() => document.getElementById("engine").dataset.device, null, { timeout: 10_000 });
      const before = await p.textContent("#engine");
      assert(/CPU engine/.test(before) && reason.test(before), `the page says WebGPU is unavailable and the CPU engine runs: ${before}`);
      assert((await p.textContent("#error")) === "", "no error shown");
      const c = reference.cases[0];
      const n = Math.min(8, REF_N);
      await setControls(p, c.text, { ...GREEDY, maxNewTokens: n });
      const out = await generateOnPage(p, 120_000);
      assert(JSON.stringify(out.ids) === JSON.stringify(c.greedy_next_ids.slice(0, n)), `greedy on the CPU: ${out.ids} vs ${c.greedy_next_ids.slice(0, n)}`);
      const engine = await p.textContent("#engine");
      assert(await p.evaluate(() => window.gpt2Demo.model.info.device === "cpu"), "info.device is cpu");
      assert(/Running on the CPU \(WebAssembly SIMD, 1 thread\)/.test(engine) && reason.test(engine), `engine line: ${engine}`);
      log(`     ${engine} | ${out.stats}`);
      // WebGPU chosen explicitly: the explanation, in the visitor's words.
      await p.selectOption("#device", "webgpu");
      await p.click("#load");
      assert((await waitState(p, ["ready", "error"], 60_000)) === "error", "WebGPU chosen without WebGPU fails");
      const err = await p.textContent("#error");
      log(`     WebGPU chosen: ${JSON.stringify(err.slice(0, 70))}...`);
      assert(want.test(err), `message ${JSON.stringify(err)} should match ${want}`);
      assert(/Chrome/.test(err) && /Safari/.test(err) && /Firefox/.test(err), "the explanation names the browsers");
      assert(!/lavapipe|vulkan|Mesa|driver\)|compiled/i.test(err), `CLI words: ${err}`);
      // Back to the CPU: it generates again.
      await p.selectOption("#device", "cpu");
      await setControls(p, "Hello", { ...GREEDY, maxNewTokens: 2 });
      assert((await generateOnPage(p, 120_000)).ids.length === 2, "generates after choosing the CPU");
      assert(errors.length === 0, `console errors: ${errors.join("; ")}`);
    } finally {
      await ctx2.close().catch(() => {});
    }
  });
}

// The JS API on the CPU engine in Chromium without WebGPU: load() with no device option (auto) runs on
// the CPU; greedy ids = the Hugging Face reference's; the first token's probability and alternatives =
// softmax of the reference's float64 logits (f32: |p - ref| <= 1e-6 + 1e-2 ref, the 1e-3 logit bound);
// q8 gives the reference's tokens while its margins exceed q8's logit bound, and first-token log-probabilities
// within twice that bound. A model too big for wasm
// memory is refused before any shard is requested.
// gpt2-xl's manifest in f32 (6.2 GB: more than wasm32's 4 GB), laid out as `gpt2 convert` lays out a package
// (tensor_specs order, f32 [N, K] rows, each region aligned to 256 bytes) from the tiny package's tensor
// table with its dimensions scaled (C 128 -> 1600, 3C, F = 4C) and its block repeated 48 times; 64 MiB
// shards whose hashes are never checked (they are never requested).
function bigManifest(tiny) {
  const C = 1600, L = 48;
  const dim = (d) => ({ 128: C, 384: 3 * C, 512: 4 * C }[d] ?? d);
  const block = tiny.tensors.filter((t) => t.name.startsWith("h.0."));
  const names = [...tiny.tensors.filter((t) => !t.name.startsWith("h.") && !t.name.startsWith("ln_f")),
    ...Array.from({ length: L }, (_, l) => block.map((t) => ({ ...t, name: t.name.replace("h.0.", `h.${l}.`) }))).flat(),
    ...tiny.tensors.filter((t) => t.name.startsWith("ln_f"))];
  let pos = 0;
  const tensors = names.map((t) => {
    const shape = t.shape.map(dim);
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    const offset = Math.ceil(pos / 256) * 256;
    pos = offset + bytes;
    return { name: t.name, format: "f32", shape, data: { offset, bytes } };
  });
  const shards = [];
  for (let at = 0, i = 0; at < pos; at += 64 << 20, i++) {
    shards.push({ file: `shard-${String(i).padStart(3, "0")}.bin`, bytes: Math.min(64 << 20, pos - at), sha256: "0".repeat(64) });
  }
  return { ...tiny, model: "gpt2-xl", config: { ...tiny.config, n_embd: C, n_head: 25, n_layer: L }, total_bytes: pos, tensors, shards };
}
const softmax = (l) => { let m = -Infinity; for (const x of l) m = Math.max(m, x); let z = 0; for (const x of l) z += Math.exp(x - m); return Array.from(l, (x) => Math.exp(x - m) / z); };
await test("cpu-engine-api", 180_000, async () => {
  const refLogits = readSafetensors(path.join(root, "tests/fixtures/tiny-gpt2/reference.safetensors"));
  const c5 = await launch(false);
  try {
    const p = c5.pages()[0] || (await c5.newPage());
    await p.goto(`${base}/?nosw`, { timeout: 30_000 });
    await waitState(p, ["idle", "error"], 30_000);
    for (const [quant, margin] of [["f32", 1e-2], ["q8", 0.5]]) {
      const r = await p.evaluate(async ([url, cases]) => {
        const { load } = await import("./gpt2.js");
        const t0 = performance.now();
        const m = await load(url);
        const loadMs = performance.now() - t0;
        const out = [];
        for (const c of cases) {
          const pieces = [];
          for await (const piece of m.generate(c.text, { maxNewTokens: c.n })) pieces.push(piece);
          out.push(pieces);
        }
        const info = m.info;
        const io = await m.counters();
        m.dispose();
        return { info, out, loadMs, io };
      }, [`models/tiny-gpt2-${quant}/`, reference.cases.slice(0, 3).map((c) => {
        let n = c.greedy_margins.findIndex((x) => x < margin);
        if (n < 0) n = c.greedy_next_ids.length;
        return { text: c.text, n: Math.min(Math.max(n, 1), 12) };
      })]);
      assert(r.info.device === "cpu" && r.info.cpu.simd === "simd128" && r.info.cpu.threads === 1 && r.info.adapter === null,
        `info: ${JSON.stringify({ device: r.info.device, cpu: r.info.cpu })}`);
      assert(/no GPU adapter/.test(r.info.fallbackReason), `why: ${r.info.fallbackReason}`);
      // Nothing is submitted or read back on the CPU engine; its cache is f32.
      assert(r.io.submits === 0 && r.io.readbacks === 0 && r.io.readbackBytes === 0, `counters: ${JSON.stringify(r.io)}`);
      assert(r.info.kvFormat === "f32" && r.info.tokensPerSubmit === 1 && r.info.loadPhases.deviceMs === null && r.info.loadPhases.uploadMs >= 0,
        `info: ${JSON.stringify({ kv: r.info.kvFormat, k: r.info.tokensPerSubmit, phases: r.info.loadPhases })}`);
      for (const [i, pieces] of r.out.entries()) {
        const c = reference.cases[i];
        let n = c.greedy_margins.findIndex((x) => x < margin);
        n = Math.min(n < 0 ? c.greedy_next_ids.length : Math.max(n, 1), 12);
        const ids = pieces.map((x) => x.tokenId);
        // With a margin under q8's bound the first token may differ; the comparison stops there.
        if (c.greedy_margins[0] >= margin || quant === "f32") {
          assert(JSON.stringify(ids) === JSON.stringify(c.greedy_next_ids.slice(0, n)), `${quant} ${c.name}: ${ids} vs ${c.greedy_next_ids.slice(0, n)}`);
        }
        const prob = softmax(refLogits[`${c.name}.logits_last`].data);
        if (quant !== "f32") {
          // q8's logits are within 0.25 of the reference (tests/quality.rs), so every log-probability is
          // within 0.5 of the reference's: a wrong int8 kernel (wasm simd128) would be far outside.
          for (const a of [pieces[0], ...pieces[0].alternatives]) {
            const id = a.tokenId;
            assert(Math.abs(Math.log(a.prob) - Math.log(prob[id])) <= 0.5, `${quant} ${c.name} p(${id}) ${a.prob} vs ${prob[id]}`);
          }
          continue;
        }
        const want = [...prob.keys()].sort((a, b) => prob[b] - prob[a] || a - b).slice(0, pieces[0].alternatives.length);
        const alts = pieces[0].alternatives;
        assert(alts.length === 5, `5 alternatives: ${alts.length}`);
        for (const [j, a] of alts.entries()) {
          assert(a.tokenId === want[j], `${c.name} alternative ${j}: ${a.tokenId} vs ${want[j]}`);
          assert(Math.abs(a.prob - prob[a.tokenId]) <= 1e-6 + 1e-2 * prob[a.tokenId], `${c.name} p(${a.tokenId}) ${a.prob} vs ${prob[a.tokenId]}`);
        }
        assert(Math.abs(pieces[0].prob - prob[ids[0]]) <= 1e-6 + 1e-2 * prob[ids[0]], `${c.name} piece prob ${pieces[0].prob} vs ${prob[ids[0]]}`);
      }
      log(`     ${quant}: ${r.info.deviceName}, loaded in ${(r.loadMs / 1000).toFixed(2)} s, wasm memory ${(r.info.wasmMemoryBytes / 1048576).toFixed(1)} MiB; ` +
        `greedy = reference on ${r.out.map((x) => x.length).join("+")} tokens`);
    }
    // Too big for wasm memory: gpt2-xl's config in a manifest whose shards (never served) would hold it in
    // f16. Refused in words before any shard is requested.
    const real = JSON.parse(fs.readFileSync(path.join(www, "models/tiny-gpt2-f32/manifest.json"), "utf8"));
    overrides.set("/models/too-big/manifest.json", JSON.stringify(bigManifest(real)));
    overrides.set("/models/too-big/tokenizer.json", fs.readFileSync(path.join(www, "models/tiny-gpt2-f32/tokenizer.json")));
    requests.length = 0;
    const err = await p.evaluate(async () => {
      const { load } = await import("./gpt2.js");
      try { await load("models/too-big/", { device: "cpu" }); return null; } catch (e) { return { kind: e.kind, message: e.message }; }
    });
    overrides.delete("/models/too-big/manifest.json");
    overrides.delete("/models/too-big/tokenizer.json");
    log(`     too big: ${err && err.message}`);
    assert(err && err.kind === "too-large" && /does not fit in memory/.test(err.message) && /4 GB/.test(err.message) &&
      /q8 or q4/.test(err.message) && /WebGPU/.test(err.message), `refused in words: ${JSON.stringify(err)}`);
    assert(!requests.some((x) => x.startsWith("/models/too-big/shard")), `no shard requested: ${requests.join(", ")}`);
  } finally {
    await c5.close().catch(() => {});
  }
});

// An allocation that fails while loading on the CPU engine (memory.grow refused: here V8's wasm memory is
// capped at 64 MiB, as a browser or machine that gives less than 4 GB would): tiny-gpt2-q8 (about 34 MiB)
// loads, tiny-gpt2-f32 (about 95 MiB while loading) is refused in words, and the next load works.
await test("cpu-out-of-memory", 120_000, async () => {
  const c6 = await launch(false, ["--js-flags=--wasm-max-mem-pages=1024"]);
  try {
    const p = c6.pages()[0] || (await c6.newPage());
    await p.goto(`${base}/?nosw`, { timeout: 30_000 });
    const r = await p.evaluate(async () => {
      const { load } = await import("./gpt2.js");
      const out = [];
      for (const m of ["tiny-gpt2-q8", "tiny-gpt2-f32", "tiny-gpt2-q8"]) {
        try {
          const x = await load(`models/${m}/`, { device: "cpu" });
          const ids = [];
          for await (const piece of x.generate("Hello", { maxNewTokens: 2 })) ids.push(piece.tokenId);
          out.push({ m, memory: x.info.wasmMemoryBytes, ids });
          x.dispose();
        } catch (e) {
          out.push({ m, kind: e.kind, message: e.message });
        }
      }
      return out;
    });
    log(`     ${r.map((x) => `${x.m}: ${x.message || `${(x.memory / 1048576).toFixed(1)} MiB, ${x.ids.length} tokens`}`).join(" | ")}`);
    assert(r[0].ids?.length === 2 && r[2].ids?.length === 2, `q8 loads and generates before and after: ${JSON.stringify(r)}`);
    assert(r[1].kind === "too-large" && /does not fit in this browser's WebAssembly memory/.test(r[1].message) &&
      /q8 or q4/.test(r[1].message) && /WebGPU/.test(r[1].message), `f32 refused in words: ${JSON.stringify(r[1])}`);
  } finally {
    await c6.close().catch(() => {});
  }
});

// ---- inside the model: model.inspect against the float64 fixture, and the page's inspect panel ------
// attention.safetensors holds Hugging Face's float64 attention probabilities (caseN.attn.{l}, [NH, T, T])
// and logit lens (caseN.lens, [L, V], at the last position) for tiny-gpt2.
const attnFixture = readSafetensors(path.join(root, "tests/fixtures/tiny-gpt2/attention.safetensors"));
const refTensors = readSafetensors(path.join(root, "tests/fixtures/tiny-gpt2/reference.safetensors"));
const maxDiff = (a, b) => {
  assert(a.length === b.length, `lengths ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d; // NaN counts as a failure
  }
  return m;
};
const ictx = await launch(true);
const ipage = ictx.pages()[0] || (await ictx.newPage());
ipage.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
ipage.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
try {
  // The same checks on the CPU engine (inspect-api-cpu), then on WebGPU (inspect-api), whose page the
  // panel tests below go on with.
  for (const device of ["cpu", "webgpu"]) await test(device === "cpu" ? "inspect-api-cpu" : "inspect-api", 240_000, async () => {
    await ipage.goto(`${base}/?model=tiny-gpt2-f32&nosw&device=${device}`, { timeout: 30_000 });
    await waitState(ipage, "idle", 30_000);
    await ipage.click("#load");
    assert((await waitState(ipage, ["ready", "error"], 120_000)) === "ready", await ipage.textContent("#error"));
    const info = await ipage.evaluate(() => window.gpt2Demo.model.info);
    assert(info.device === device && info.config.maxInspectTokens === 1024, `engine ${info.device}, maxInspectTokens ${info.config.maxInspectTokens}`);
    const cases = reference.cases.filter((c) => attnFixture[`${c.name}.lens`]);
    assert(cases.length >= 4, "fixture cases");
    let worstA = 0, worstL = 0;
    for (const c of cases) {
      // Half the cases by text (the tokenizer's ids must be the fixture's), half by ids.
      const byText = c.name === "case0" || c.name === "case2";
      const r = await ipage.evaluate(async ([input]) => {
        const r = await window.gpt2Demo.model.inspect(input);
        return { ids: r.ids, layers: r.layers, heads: r.heads, position: r.position, attention: [...r.attention], lens: [...r.lens],
          isF32: r.attention instanceof Float32Array && r.lens instanceof Float32Array };
      }, [byText ? c.text : c.ids]);
      const T = c.ids.length;
      assert(JSON.stringify(r.ids) === JSON.stringify(c.ids), `${c.name}: ids ${r.ids} != ${c.ids}`);
      assert(r.isF32 && r.layers === 2 && r.heads === 2 && r.position === T - 1, `${c.name}: shape ${r.layers}x${r.heads}, position ${r.position}`);
      assert(r.attention.length === r.layers * r.heads * T * T, `${c.name}: attention is [L, NH, T, T]`);
      let caseA = 0;
      for (let l = 0; l < r.layers; l++) {
        const want = attnFixture[`${c.name}.attn.${l}`].data;
        const d = maxDiff(r.attention.slice(l * want.length, (l + 1) * want.length), want);
        caseA = Math.max(caseA, d);
        assert(d <= 1e-4, `${c.name}.attn.${l}: max |diff| ${d}`);
      }
      worstA = Math.max(worstA, caseA);
      const d = maxDiff(r.lens, attnFixture[`${c.name}.lens`].data);
      worstL = Math.max(worstL, d);
      assert(d <= 1e-3, `${c.name}.lens: max |diff| ${d}`);
      log(`     ${c.name} (T = ${T}, by ${byText ? "text" : "ids"}): attention max |diff| ${caseA.toExponential(2)}; lens ${d.toExponential(2)}`);
    }
    const key = device === "cpu" ? "Cpu" : "";
    metrics[`inspect${key}AttentionMaxDiff`] = worstA;
    metrics[`inspect${key}LensMaxDiff`] = worstL;
    log(`     ${device}, every case: attention max |diff| ${worstA.toExponential(2)} (bound 1e-4), lens ${worstL.toExponential(2)} (bound 1e-3)`);

    // The lens at another position: its last row is the model's logits there (reference.safetensors).
    const c2 = reference.cases.find((c) => c.name === "case2");
    const positions = [...refTensors["case2.logits_positions"].data];
    const V = 50257;
    for (const [i, p] of positions.entries()) {
      const last = await ipage.evaluate(async ([ids, p, V]) => {
        const r = await window.gpt2Demo.model.inspect(ids, { position: p });
        return { position: r.position, row: [...r.lens.subarray((r.layers - 1) * V)] };
      }, [c2.ids, p, V]);
      const d = maxDiff(last.row, refTensors["case2.logits_at"].data.subarray(i * V, (i + 1) * V));
      assert(last.position === p && d <= 1e-3, `case2 lens at position ${p}: max |diff| ${d}`);
    }

    // A generation keeps its place while inspections run between its steps: greedy tokens = the reference.
    const c0 = reference.cases[0];
    let n = c0.greedy_margins.findIndex((m) => m < 1e-2);
    if (n < 0) n = c0.greedy_next_ids.length;
    n = Math.min(n, 8);
    const g = await ipage.evaluate(async ([text, n, ids]) => {
      const m = window.gpt2Demo.model;
      const out = [], during = [];
      for await (const p of m.generate(text, { maxNewTokens: n })) {
        out.push(p.tokenId);
        if (out.length <= 3) during.push((await m.inspect(ids)).lens[0]);
      }
      return { out, during };
    }, [c0.text, n, c0.ids]);
    assert(JSON.stringify(g.out) === JSON.stringify(c0.greedy_next_ids.slice(0, n)), `greedy with inspections between steps: ${g.out}`);
    assert(g.during.every((x) => Math.abs(x - attnFixture["case0.lens"].data[0]) <= 1e-3), `inspections during a generation: ${g.during}`);

    // Bad input rejects with words; the model stays usable.
    const bad = await ipage.evaluate(async () => {
      const m = window.gpt2Demo.model;
      const out = [];
      for (const [input, opts] of [[[], {}], [[1, 50257], {}], [[1.5], {}], ["Hello", { position: 5 }], ["Hello", { position: -1 }],
        ["Hello", { positon: 0 }], [42, {}], [new Array(1025).fill(1), {}]]) {
        try {
          await m.inspect(input, opts);
          out.push({ input: String(input).slice(0, 20), resolved: true });
        } catch (e) {
          out.push({ input: String(input).slice(0, 20), kind: e.kind, message: e.message });
        }
      }
      return out;
    });
    for (const b of bad) assert(!b.resolved && b.message && b.kind, `inspect(${b.input}) should reject: ${JSON.stringify(b)}`);
    log(`     e.g. ${bad.map((b) => b.message).slice(0, 3).join(" | ")}`);
  });

  // The panel: its numbers are model.inspect's, the keyboard drives it, presets and validation work.
  await test("inspect-panel", 240_000, async () => {
    const c = reference.cases[0];
    await setControls(ipage, c.text, { ...GREEDY, maxNewTokens: 6 });
    const out = await generateOnPage(ipage, 120_000);
    assert(out.ids.length === 6, `6 tokens: ${out.ids}`);
    await ipage.click("#output .tok[data-index='3']");
    await ipage.waitForFunction(() => !document.getElementById("inspect").hidden &&
      document.getElementById("inspect-status").textContent === "" && document.querySelectorAll("#lens li").length > 0,
    null, { timeout: 60_000 });
    const panel = await ipage.evaluate(async () => {
      const { model, panel } = window.gpt2Demo;
      const ins = panel.inspection;
      const again = await model.inspect(ins.ids); // the same call, made here
      const V = model.info.config.vocabSize;
      const lens = [...document.querySelectorAll("#lens li")].map((li) => ({ id: Number(li.dataset.tokenId), p: Number(li.dataset.value) }));
      const want = [];
      for (let l = 0; l < again.layers; l++) {
        const row = again.lens.subarray(l * V, (l + 1) * V);
        let best = 0, max = -Infinity, sum = 0;
        for (let i = 0; i < V; i++) if (row[i] > max) { max = row[i]; best = i; }
        for (let i = 0; i < V; i++) sum += Math.exp(row[i] - max);
        want.push({ id: best, p: 1 / sum });
      }
      // Attention: layer 2, head 1, then the average; the panel's list and the shading of the text.
      const T = again.ids.length;
      const att = (l, h) => [...again.attention.subarray(((l * again.heads + h) * T + T - 1) * T, ((l * again.heads + h) * T + T) * T)];
      const sel = (id, v) => { const s = document.getElementById(id); s.value = v; s.dispatchEvent(new Event("change")); };
      sel("attn-layer", "1"); sel("attn-head", "0");
      const shown = panel.weights();
      const top = [...document.querySelectorAll("#attn-top li")].map((li) => Number(li.dataset.value));
      const shade = [...document.querySelectorAll("#output .ptok, #output .tok")].slice(0, T).map((s) => Number(s.style.getPropertyValue("--a")));
      sel("attn-head", "avg");
      const avg = panel.weights();
      return { lens, want, shown: [...shown], att: att(1, 0), avg: [...avg], avgWant: att(1, 0).map((x, j) => (x + att(1, 1)[j]) / 2),
        top, shade, ptoks: document.querySelectorAll("#output .ptok").length, ids: ins.ids, alts: document.querySelectorAll("#alts li").length,
        token: document.getElementById("inspect-token").textContent, pressed: document.querySelector("#output .tok[aria-pressed=true]")?.dataset.index };
    });
    assert(JSON.stringify(panel.ids) === JSON.stringify([...c.ids, ...out.ids.slice(0, 3)]), `context ${panel.ids}`);
    assert(panel.lens.length === 2 && panel.lens.every((x, l) => x.id === panel.want[l].id && Math.abs(x.p - panel.want[l].p) < 1e-6),
      `lens rows ${JSON.stringify(panel.lens)} vs model.inspect ${JSON.stringify(panel.want)}`);
    assert(maxDiff(panel.shown, panel.att) < 1e-7 && maxDiff(panel.avg, panel.avgWant) < 1e-7, "attention weights = model.inspect's");
    const sorted = [...panel.att].sort((a, b) => b - a).slice(0, panel.top.length);
    assert(maxDiff(panel.top, sorted) < 1e-7, `top attended ${panel.top} vs ${sorted}`);
    const mx = Math.max(...panel.att);
    assert(maxDiff(panel.shade, panel.att.map((x) => x / mx)) < 2e-3, `the text's shading follows the attention: ${panel.shade}`);
    assert(panel.ptoks === c.ids.length, `the prompt drawn as its ${c.ids.length} tokens: ${panel.ptoks}`);
    assert(panel.alts >= 1 && panel.pressed === "3" && /Token 4 of 6/.test(panel.token), `${panel.alts} alternatives; ${panel.token}`);
    log(`     ${panel.token} lens: ${JSON.stringify(panel.lens)}`);

    // Keyboard: arrows move the selection (and the panel), Close gives focus back to the token.
    await ipage.focus("#output .tok[data-index='3']");
    await ipage.keyboard.press("ArrowRight");
    await ipage.waitForFunction(() => document.activeElement?.dataset?.index === "4", null, { timeout: 10_000 });
    // The panel follows: token 5's context is the prompt and the 4 tokens before it.
    await ipage.waitForFunction((n) => window.gpt2Demo.panel.inspection?.ids.length === n, c.ids.length + 4, { timeout: 60_000 });
    await ipage.keyboard.press("Home");
    await ipage.waitForFunction(() => document.activeElement?.dataset?.index === "0" &&
      document.querySelector("#output .tok[aria-pressed=true]")?.dataset.index === "0", null, { timeout: 10_000 });
    await ipage.keyboard.press("End");
    await ipage.waitForFunction(() => document.activeElement?.dataset?.index === "5", null, { timeout: 10_000 });
    await ipage.click("#inspect-close");
    assert(await ipage.evaluate(() => document.getElementById("inspect").hidden && document.activeElement?.dataset?.index === "5"),
      "Close hides the panel and focus returns to the token");
    // Ctrl+Enter generates from the prompt and focus stays there; Esc stops; the panel was cleared.
    await ipage.click("#output .tok[data-index='1']");
    await ipage.fill("#maxNewTokens", "500");
    await ipage.focus("#prompt");
    await ipage.keyboard.press("Control+Enter");
    await waitState(ipage, "generating", 30_000);
    assert(await ipage.evaluate(() => document.getElementById("inspect").hidden), "a new generation clears the panel");
    await ipage.waitForFunction(() => document.querySelectorAll("#output .tok").length >= 2, null, { timeout: 60_000 });
    await ipage.keyboard.press("Escape");
    assert((await waitState(ipage, ["done", "error"], 60_000)) === "done", await ipage.textContent("#error"));
    const n = await ipage.evaluate(() => document.querySelectorAll("#output .tok").length);
    assert(n < 500, `Esc stopped the generation (${n} tokens)`);
    assert(await ipage.evaluate(() => document.activeElement?.id === "prompt"), "focus stayed in the prompt");
  });

  // Attention is drawn over the prompt's tokens as the tokenizer splits them, whatever the typed text:
  // leading and trailing spaces, characters split over several tokens, a prompt longer than the context.
  await test("inspect-panel-spans", 240_000, async () => {
    const long = "The cat sat on the mat. ".repeat(200); // ~1400 tokens: generation keeps the last ones
    for (const [name, prompt] of [["spaces", "  Hello   world  "], ["unicode", "東京 ✨ naïve café 🙂!"], ["long", long]]) {
      await setControls(ipage, prompt, { ...GREEDY, maxNewTokens: 3 });
      await generateOnPage(ipage, 120_000);
      await ipage.evaluate(() => window.gpt2Demo.panel.select(2));
      await ipage.waitForFunction(() => window.gpt2Demo.panel.inspection && document.getElementById("inspect-status").textContent !== "Looking inside the model...",
        null, { timeout: 120_000 });
      const r = await ipage.evaluate(() => {
        const panel = window.gpt2Demo.panel;
        const ins = panel.inspection;
        const w = [...panel.weights()];
        const p = document.querySelector("#output .prompt");
        const ptoks = [...p.querySelectorAll(".ptok")].map((s) => ({ text: s.textContent, pos: s.dataset.pos.split(" ").map(Number), a: Number(s.style.getPropertyValue("--a")) }));
        const gen = [...document.querySelectorAll("#output .tok")].map((s) => Number(s.style.getPropertyValue("--a") || 0));
        return { w, ptoks, gen, shown: p.textContent, head: p.querySelector(".phead")?.textContent ?? "", spells: p.dataset.spells,
          dropped: ins.dropped, promptLen: ins.promptLen, T: ins.ids.length, status: document.getElementById("inspect-status").textContent };
      });
      const inPrompt = r.promptLen - r.dropped;
      // The page shows the typed prompt (its tokens spell it), every inspected prompt token in one span.
      assert(r.spells === "true" && r.shown === prompt, `${name}: shown ${JSON.stringify(r.shown.slice(0, 80))}`);
      const covered = r.ptoks.flatMap((t) => t.pos);
      assert(JSON.stringify(covered) === JSON.stringify([...Array(inPrompt).keys()]), `${name}: spans cover ${covered.length} of ${inPrompt} prompt tokens`);
      assert(r.ptoks.every((t) => !t.text.includes("\ufffd")), `${name}: a span holds half a character`);
      // Shading: a span's attention is the sum over its tokens, relative to the most attended span.
      const mass = r.ptoks.map((t) => t.pos.reduce((a, j) => a + r.w[j], 0));
      const genMass = r.w.slice(inPrompt);
      const top = Math.max(...mass, ...genMass);
      assert(maxDiff(r.ptoks.map((t) => t.a), mass.map((m) => m / top)) < 2e-3, `${name}: the prompt's shading follows the attention`);
      assert(maxDiff(r.gen.slice(0, genMass.length), genMass.map((m) => m / top)) < 2e-3, `${name}: the generated tokens' shading`);
      if (name === "spaces") assert(r.ptoks[0].text.startsWith(" ") && r.head === "", `${name}: ${JSON.stringify(r.ptoks.map((t) => t.text))}`);
      if (name === "unicode") assert(r.ptoks.some((t) => t.pos.length > 1), `${name}: no character spans several tokens`);
      if (name === "long") {
        assert(r.head.length > 0 && long.startsWith(r.head) && r.T === 1024, `${name}: head ${r.head.length} chars, T = ${r.T}`);
        assert(/only the last 1024/.test(r.status), `${name}: ${r.status}`);
      }
      log(`     ${name}: ${r.ptoks.length} prompt spans for ${inPrompt} tokens (${r.dropped} before the window), head ${r.head.length} chars`);
    }
  });

  await test("presets-and-validation", 120_000, async () => {
    await ipage.click("input[name=preset][value=greedy]");
    const g = await ipage.evaluate(() => ["temperature", "topK", "topP", "repetitionPenalty"].map((id) => document.getElementById(id).value));
    assert(JSON.stringify(g) === JSON.stringify(["0", "0", "1", "1"]), `Greedy sets the fields: ${g}`);
    assert(/Greedy/.test(await ipage.textContent("#preset-help")), "one line of help for the preset");
    await ipage.click("input[name=preset][value=creative]");
    assert((await ipage.inputValue("#temperature")) === "1.2", "Creative");
    await ipage.evaluate(() => (document.getElementById("advanced").open = true));
    await ipage.fill("#temperature", "0.5");
    assert(await ipage.isChecked("input[name=preset][value=custom]"), "editing a field makes it Custom");
    await ipage.fill("#temperature", "0.8");
    await ipage.fill("#topK", "40");
    await ipage.fill("#topP", "0.95");
    await ipage.fill("#repetitionPenalty", "1.1");
    assert(await ipage.isChecked("input[name=preset][value=balanced]"), "the Balanced values select Balanced");
    // An invalid value: shown next to the field, nothing is sent, focus goes to it.
    await ipage.fill("#topP", "2");
    assert(/top-p must be/.test(await ipage.textContent("#topP-error")), await ipage.textContent("#topP-error"));
    await ipage.evaluate(() => (document.getElementById("advanced").open = false));
    const before = requests.length;
    await ipage.click("#generate");
    await ipage.waitForTimeout(300);
    assert(await ipage.evaluate(() => document.body.dataset.state !== "generating" && document.activeElement?.id === "topP" &&
      document.getElementById("advanced").open), "not sent; Advanced opened on the bad field");
    assert(requests.length === before, "nothing requested");
    await ipage.fill("#topP", "0.95");
    assert((await ipage.textContent("#topP-error")) === "", "the message goes once fixed");
    // New seed each time: on by default after a reload; the seed used is shown and can be replayed.
    await ipage.reload({ timeout: 30_000 });
    await waitState(ipage, "idle", 30_000);
    assert(await ipage.isChecked("#newSeed"), "new seed each time is on by default");
    assert(await ipage.isChecked("input[name=preset][value=balanced]"), "Balanced by default");
    assert(await ipage.evaluate(() => document.getElementById("model").value) === "models/tiny-gpt2-f32/", "?model= picks the model");
    assert(!(await ipage.isHidden("#banner")), "the random-weights banner is shown for the test model");
    assert(/build\.sh serve --model gpt2/.test(await ipage.textContent("#banner")), "it says how to get a real model");
    await ipage.fill("#prompt", "Once upon a time");
    await ipage.evaluate(() => (document.getElementById("advanced").open = true));
    await ipage.fill("#maxNewTokens", "4");
    const a = await generateOnPage(ipage, 120_000);
    const seed = await ipage.inputValue("#seed");
    assert(new RegExp(`seed used: ${seed}`).test(await ipage.textContent("#seed-used")), "the seed used is shown");
    await ipage.fill("#seed", seed); // typing a seed uses it (and turns new seeds off)
    assert(!(await ipage.isChecked("#newSeed")), "typing a seed turns new seeds off");
    const b = await generateOnPage(ipage, 120_000);
    assert(JSON.stringify(a.ids) === JSON.stringify(b.ids), `the shown seed reproduces the text: ${a.ids} vs ${b.ids}`);
    // Copy and clear.
    await ictx.grantPermissions(["clipboard-read", "clipboard-write"]);
    await ipage.click("#copy");
    const copied = await ipage.evaluate(() => navigator.clipboard.readText());
    assert(copied === "Once upon a time" + b.text, `copied ${JSON.stringify(copied)}`);
    await ipage.click("#clear");
    assert((await ipage.evaluate(() => document.querySelectorAll("#output .tok").length)) === 0, "cleared");
    // An empty prompt: the API's notice is shown.
    await ipage.fill("#prompt", "");
    await generateOnPage(ipage, 120_000);
    assert(/empty prompt/i.test(await ipage.textContent("#notices")), `notice: ${await ipage.textContent("#notices")}`);
  });

  // Screenshots for people to look at (not compared): desktop and phone, with the panel open.
  await test("screenshots", 180_000, async () => {
    const dir = process.env.SCREENSHOT_DIR || path.join(os.tmpdir(), "gpt2-screenshots");
    fs.mkdirSync(dir, { recursive: true });
    for (const [name, size] of [["desktop", { width: 1280, height: 1000 }], ["phone", { width: 390, height: 844 }]]) {
      await ipage.setViewportSize(size);
      await ipage.fill("#prompt", reference.cases[1].text);
      await ipage.click("input[name=preset][value=greedy]");
      await ipage.fill("#maxNewTokens", "12");
      await generateOnPage(ipage, 120_000);
      await ipage.click("#output .tok[data-index='4']");
      await ipage.waitForFunction(() => document.getElementById("inspect-status").textContent === "" &&
        document.querySelectorAll("#attn-top li").length > 0, null, { timeout: 60_000 });
      await ipage.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
      await ipage.evaluate(() => document.getElementById("inspect").scrollIntoView());
      await ipage.screenshot({ path: path.join(dir, `${name}-panel.png`) });
      log(`     ${path.join(dir, `${name}.png`)}`);
    }
  });
} finally {
  await ictx.close().catch(() => {});
}

// ---- every kernel through the browser's WGSL compiler, and the GPU tuning run in the browser -----------
// naga (what wgpu validates with natively, so what every native test sees) does not implement WGSL's
// uniformity analysis; Chromium's Tint does, and refuses kernels naga accepts. And the tests above run
// under the tuning SwiftShader gets (the CPU kernels), so the GPU tuning's kernels would otherwise never
// meet Tint.
const tctx = await launch(true);
const tpage = tctx.pages()[0] || (await tctx.newPage());
tpage.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
tpage.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
try {
  // Every kernel of the table (src/gpu/kernels.rs), as the crate assembled it at compile time, listed by
  // the wasm build itself (kernelSources(): name, entry point, WGSL, the bind group layout the load asks
  // for, the override constants of each pipeline): its shader module must compile without errors and its
  // compute pipeline must build, each wait with its own deadline (a runaway compile on SwiftShader hangs
  // silently). A refusal names the kernel and gives the browser's words.
  await test("kernels-compile", 240_000, async () => {
    await tpage.goto(`${base}/?nosw`, { timeout: 30_000 });
    await waitState(tpage, ["idle", "error"], 30_000);
    const r = await tpage.evaluate(async (waitMs) => {
      const within = (p, what) => {
        let timer;
        return Promise.race([p, new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`${what}: no answer after ${waitMs} ms`)), waitMs)))])
          .finally(() => clearTimeout(timer));
      };
      const { default: init, kernelSources } = await import("./pkg/gpt2_webgpu.js");
      await within(init(), "the wasm module");
      const kernels = kernelSources();
      const adapter = await within(navigator.gpu.requestAdapter(), "requestAdapter");
      if (!adapter) return { fatal: "no WebGPU adapter" };
      // The adapter's own limits, as the crate asks for them (gpu::Gpu::from_adapter): a kernel is
      // compiled against what the load would have.
      const requiredLimits = {};
      for (const k in adapter.limits) if (typeof adapter.limits[k] === "number") requiredLimits[k] = adapter.limits[k];
      const device = await within(adapter.requestDevice({ requiredLimits }), "requestDevice");
      let lost = null;
      device.lost.then((i) => (lost = `${i.reason}: ${i.message}`));
      const out = [];
      for (const k of kernels) {
        for (const [v, constants] of k.variants.entries()) {
          const row = { name: k.name, variant: v, constants, parts: k.parts, errors: [], notes: [], ms: 0 };
          out.push(row);
          const t0 = performance.now();
          try {
            device.pushErrorScope("validation");
            const module = device.createShaderModule({ code: k.source, label: k.name });
            const info = await within(module.getCompilationInfo(), `${k.name}: getCompilationInfo`);
            // Errors, and Tint's notes (for a uniformity error: where the non-uniform value comes from).
            for (const m of info.messages) (m.type === "error" ? row.errors : row.notes).push({ line: m.lineNum, col: m.linePos, text: m.message });
            const bgl = device.createBindGroupLayout({ label: k.name, entries: k.layout });
            const layout = device.createPipelineLayout({ label: k.name, bindGroupLayouts: [bgl] });
            try {
              await within(device.createComputePipelineAsync({ label: k.name, layout, compute: { module, entryPoint: k.entryPoint, constants } }),
                `${k.name}: createComputePipelineAsync`);
            } catch (e) {
              row.errors.push({ text: `pipeline: ${e.message}` });
            }
            const scoped = await within(device.popErrorScope(), `${k.name}: popErrorScope`);
            // The scope repeats a module's own errors; alone it says what else failed (the layout).
            if (scoped && !row.errors.length) row.errors.push({ text: `validation: ${scoped.message}` });
          } catch (e) {
            row.errors.push({ text: String(e.message || e) });
          }
          row.ms = Math.round(performance.now() - t0);
          if (lost) { row.errors.push({ text: `the device was lost: ${lost}` }); break; }
        }
      }
      device.destroy();
      return { out, adapter: [adapter.info?.vendor, adapter.info?.architecture].join(" ") };
    }, 60_000);
    assert(!r.fatal, r.fatal);
    // The list is the crate's whole table: one kernel per shaders/*.wgsl (tests/shaders.rs: every file is
    // a kernel), each ending with its own file as it is on disk now (else www/pkg is older than shaders/).
    const files = fs.readdirSync(path.join(root, "shaders")).filter((f) => f.endsWith(".wgsl")).map((f) => f.slice(0, -5)).sort();
    const names = [...new Set(r.out.map((x) => x.name))].sort();
    assert(JSON.stringify(names) === JSON.stringify(files), `kernelSources() lists ${names.join(", ")}; shaders/ holds ${files.join(", ")}`);
    const srcs = Object.fromEntries(await tpage.evaluate(async () =>
      (await import("./pkg/gpt2_webgpu.js")).kernelSources().map((k) => [k.name, { source: k.source, parts: k.parts }])));
    // Where each part starts in a kernel's source (line numbers in the browser's words are the source's).
    const starts = {};
    for (const [name, { source, parts }] of Object.entries(srcs)) {
      starts[name] = parts.map((part) => {
        const at = source.indexOf(fs.readFileSync(path.join(root, "shaders", part), "utf8"));
        assert(at >= 0, `${name}: www/pkg holds another ${part} than shaders/ does: run ./build.sh`);
        return { part, line: source.slice(0, at).split("\n").length };
      });
      assert(source.endsWith(fs.readFileSync(path.join(root, "shaders", `${name}.wgsl`), "utf8")), `${name}: its own file comes last`);
    }
    const where = (name, m) => {
      if (!m.line) return m.text;
      const p = starts[name].filter((s) => s.line <= m.line).pop();
      const text = srcs[name].source.split("\n")[m.line - 1]?.trim();
      return `${p.part}:${m.line - p.line + 1}:${m.col}: ${m.text}\n        | ${text}`;
    };
    const refused = r.out.filter((x) => x.errors.length);
    const label = (x) => `${x.name}${Object.keys(x.constants).length ? " " + JSON.stringify(x.constants) : ""}`;
    for (const x of r.out) log(`     ${x.errors.length ? "REFUSED" : "ok"} ${label(x)} (${x.ms} ms${x.notes.length ? `, ${x.notes.length} notes` : ""})`);
    metrics.kernelsCompiled = r.out.length - refused.length;
    assert(refused.length === 0, `the browser (${r.adapter}) refuses ${refused.length} of ${r.out.length} kernels:\n` +
      refused.map((x) => `  ${label(x)} (${x.parts.join(" + ")}):\n` +
        [...x.errors, ...x.notes.map((n) => ({ ...n, text: `note: ${n.text}` }))].map((e) => `    ${where(x.name, e)}`).join("\n")).join("\n"));
  });

  // The GPU tuning forced on SwiftShader (load option `tuning`, as GPT2_TUNING natively), so its own kernels
  // run through Tint and SwiftShader, not only compile: the tiled matmul for the prompt, gemv with the layer
  // norms folded in and split decode attention merged into the projection, weights in storage buffers,
  // sample_scan over its 256 workgroups. (The sampler's second passes run under every tuning: the tests
  // above draw and cut off.) Against the fixtures: greedy tokens, the first token's probability and its
  // alternatives', and (inspect: a prompt pass with attention_probs) attention and logits. f32, then q8
  // (its unpacking in gemv and matmul, the f16 KV cache). Sized for SwiftShader, where every GPU-tuned step
  // costs ~10-40 s (gemv's 32 lanes per row over the 50257 rows of the logits: a workgroup barrier per row
  // group is a coroutine switch there): 2 tokens per greedy case, one inspection.
  await test("gpu-tuning", 600_000, async () => {
    await tpage.goto(`${base}/?nosw`, { timeout: 30_000 });
    await waitState(tpage, ["idle", "error"], 30_000);
    const bad = await tpage.evaluate(async () => {
      const { load } = await import("./gpt2.js");
      const out = [];
      for (const opts of [{ device: "webgpu", tuning: "fast" }, { device: "webgpu", tuning: "GPU" }, { device: "cpu", tuning: "gpu" }]) {
        try { await load("models/tiny-gpt2-f32/", opts); out.push({ opts, loaded: true }); } catch (e) { out.push({ opts, kind: e.kind, option: e.option, message: e.message }); }
      }
      return out;
    });
    for (const b of bad) {
      assert(!b.loaded && b.kind === "invalid-option" && b.option === "tuning" && /^tuning /.test(b.message), `refused in words: ${JSON.stringify(b)}`);
    }
    assert(/"gpu", "cpu", "swiftshader"/.test(bad[0].message) && /"fast"/.test(bad[0].message), bad[0].message);
    log(`     ${bad[0].message} | ${bad[2].message}`);

    const c = reference.cases[0];
    const p = softmax(refTensors[`${c.name}.logits_last`].data);
    for (const [quant, margin] of [["f32", 1e-2], ["q8", 0.5]]) {
      // Tokens whose reference margin exceeds the format's bound must be the reference's (f32: both of
      // case0's; q8: none of the fixture's first tokens clear its 0.5, so only the probabilities are held).
      let exact = c.greedy_margins.findIndex((x) => x < margin);
      exact = Math.min(exact < 0 ? c.greedy_next_ids.length : exact, 2);
      const n = 2;
      // One step per evaluate, each timed, logged and given its own deadline, so a slow or stuck kernel
      // shows where it is.
      let last = Date.now();
      const step = async (what, fn, arg, limitS = 240) => {
        let timer;
        const v = await Promise.race([tpage.evaluate(fn, arg),
          new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`${quant} ${what}: no answer after ${limitS} s`)), limitS * 1000)))])
          .finally(() => clearTimeout(timer));
        log(`       ${quant} ${what}: ${((Date.now() - last) / 1000).toFixed(1)} s`);
        last = Date.now();
        return v;
      };
      const info = await step("load", async (url) => {
        const { load } = await import("./gpt2.js");
        window.tm = await load(url, { device: "webgpu", tuning: "gpu" });
        return window.tm.info;
      }, `models/tiny-gpt2-${quant}/`, 120);
      const t = info.tuning;
      assert(info.device === "webgpu" && t && t.kind === "gpu" && t.gemv_kernel === "gemv" && t.matmul_kernel === "matmul" &&
        t.fold_ln === true && t.attn_block > 0 && t.weights_in_textures === false, `the GPU tuning: ${JSON.stringify(t)}`);
      assert(info.kvFormat === (quant === "f32" ? "f32" : "f16"), `${quant}: the ${info.kvFormat} cache`);
      const pieces = await step(`greedy, ${n} tokens`, async ([text, n]) => {
        const ps = [];
        for await (const x of window.tm.generate(text, { maxNewTokens: n, stopAtEos: false })) ps.push({ tokenId: x.tokenId, prob: x.prob, alternatives: x.alternatives });
        return ps;
      }, [c.text, n]);
      const ids = pieces.map((x) => x.tokenId);
      assert(ids.length === n, `${quant}: ${ids.length} tokens`);
      assert(JSON.stringify(ids.slice(0, exact)) === JSON.stringify(c.greedy_next_ids.slice(0, exact)), `${quant} ${c.name}: ${ids} vs ${c.greedy_next_ids.slice(0, n)}`);
      // The arg-max of logits within margin / 2 of the reference's: a token the reference puts within margin of its best.
      const pmax = Math.max(...p);
      assert(p[ids[0]] >= pmax * Math.exp(-margin), `${quant}: greedy picked ${ids[0]}, p ${p[ids[0]]} against the reference's best ${pmax}`);
      assert(pieces[0].alternatives.length === 5, `5 alternatives: ${pieces[0].alternatives.length}`);
      for (const a of [pieces[0], ...pieces[0].alternatives]) {
        const id = a.tokenId;
        // q8's logits are within 0.25 of the reference (tests/quality.rs): log-probabilities within 0.5.
        const ok = quant === "f32" ? Math.abs(a.prob - p[id]) <= 1e-6 + 1e-2 * p[id] : Math.abs(Math.log(a.prob) - Math.log(p[id])) <= 0.5;
        assert(ok, `${quant} ${c.name} p(${id}) ${a.prob} vs ${p[id]}`);
      }
      if (quant === "f32") {
        const x = await step(`inspect, ${c.ids.length} tokens`, async (ids) => {
          const x = await window.tm.inspect(ids);
          return { layers: x.layers, attention: [...x.attention], lens: [...x.lens] };
        }, c.ids);
        let worstA = 0;
        for (let l = 0; l < x.layers; l++) {
          const want = attnFixture[`${c.name}.attn.${l}`].data;
          worstA = Math.max(worstA, maxDiff(x.attention.slice(l * want.length, (l + 1) * want.length), want));
        }
        const dl = maxDiff(x.lens, attnFixture[`${c.name}.lens`].data);
        assert(worstA <= 1e-4 && dl <= 1e-3, `${c.name} under the GPU tuning: attention max |diff| ${worstA} (1e-4), lens ${dl} (1e-3)`);
        log(`     ${c.name} inspected: attention max |diff| ${worstA.toExponential(2)} (1e-4), logit lens ${dl.toExponential(2)} (1e-3)`);
      }
      await tpage.evaluate(() => window.tm.dispose());
      log(`     ${quant}: tuning ${t.kind}, kv ${info.kvFormat}, greedy ${JSON.stringify(ids)} (= reference on ${exact}), first-token probabilities within bounds`);
    }
  });
} finally {
  await tctx.close().catch(() => {});
}

server.close();
for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
if (Object.keys(metrics).length) log(`metrics: ${JSON.stringify(metrics)}`);
log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
