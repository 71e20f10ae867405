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
    await page.goto(`${base}/?model=tiny-gpt2-f32`, { timeout: 30_000 });
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
    await page.goto(`${base}/?model=tiny-gpt2-q8`, { timeout: 30_000 });
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
    await page.goto(`${base}/?model=tiny-gpt2-q8`, { timeout: 30_000 });
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

  // A download interrupted halfway (the connection drops in shard-001) says so; loading again resumes
  // without fetching the finished files (tokenizer, shard-000) again.
  await test("resume-download", 180_000, async () => {
    await page.goto(`${base}/?model=tiny-gpt2-f32`, { timeout: 30_000 });
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
  await hpage.goto(`${base}/?model=tiny-gpt2-f32&nosw`, { timeout: 30_000 });
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
  await hpage.evaluate(async () => (window.m = await gpt2.load("models/tiny-gpt2-f32/")));
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
      m = await gpt2.load("models/tiny-gpt2-f32/");
      const reloaded = await collect(m.generate(text, { maxNewTokens: n }));
      // device lost mid-generation
      const it2 = m.generate("SLOW down", { maxNewTokens: 20 });
      await it2.next();
      m.loseDeviceForTesting();
      const lost = await settle({ [Symbol.asyncIterator]: () => it2 });
      const lostAfter = await settle(m.generate(text, { maxNewTokens: 2 }));
      m.dispose();
      // worker crash
      m = await gpt2.load("models/tiny-gpt2-f32/");
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
      const p = gpt2.load("models/tiny-gpt2-f32/", { signal: ctl.signal, onProgress: (x) => x.file === "shard-001.bin" && setTimeout(() => ctl.abort(), 300) });
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
    const n = await hpage.evaluate(async () => { const m = await gpt2.load("models/tiny-gpt2-f32/"); m.dispose(); return 1; });
    assert(n === 1 && shardRequests().join() === "/models/tiny-gpt2-f32/shard-001.bin", `resumed: ${shardRequests()}`);
  });

  // Defect 2: a malformed or hostile manifest is refused in words before anything in it is used or
  // cached; the good copy kept for offline use stays.
  await test("bad-manifests", 180_000, async () => {
    await ensureApi();
    const path0 = "/models/tiny-gpt2-q8/manifest.json";
    const good = JSON.parse(fs.readFileSync(path.join(www, path0)));
    await hpage.evaluate(async () => { const m = await gpt2.load("models/tiny-gpt2-q8/"); m.dispose(); });
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
        try { (await gpt2.load("models/tiny-gpt2-q8/")).dispose(); return { resolved: true }; } catch (e) { return { kind: e.kind, message: e.message }; }
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

// Defect 8: without WebGPU the element says so in the page's words for visitors (not the CLI's).
for (const [name, removeApi, want] of [["element-no-webgpu-flag", false, /no GPU adapter/], ["element-no-webgpu-api", true, /does not offer WebGPU/]]) {
  await test(name, 90_000, async () => {
    const c = await launch(false);
    if (removeApi) await c.addInitScript(() => { delete Navigator.prototype.gpu; });
    try {
      const p = c.pages()[0] || (await c.newPage());
      await p.goto(`${base}/embed.html`, { timeout: 30_000 });
      await p.click("#a >> button.generate");
      await p.waitForFunction(() => document.querySelector("#a").dataset.error, null, { timeout: 60_000 });
      const err = await p.getAttribute("#a", "data-error");
      const shown = await p.evaluate(() => document.querySelector("#a").shadowRoot.querySelector(".error").textContent);
      log(`     ${JSON.stringify(err.slice(0, 80))}...`);
      assert(want.test(err) && /Chrome/.test(err) && /Safari/.test(err) && shown === err, err);
      assert(!/lavapipe|vulkan|Mesa|driver\)|compiled/i.test(err), `CLI words: ${err}`);
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
    await p.goto(`${base}/?model=tiny-gpt2-f32`, { timeout: 30_000 });
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
    await p.goto(`${base}/?model=tiny-gpt2-q8`, { timeout: 30_000 });
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
    await p.goto(`${base}/?model=tiny-gpt2-q8&nosw`, { timeout: 30_000 });
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
    await p.goto(`${base}/?model=tiny-gpt2-q8&nosw`, { timeout: 30_000 });
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

// (c) Chromium without WebGPU shows the explanation, not a blank page or a console error: once as
// started without --enable-unsafe-webgpu (navigator.gpu exists, no adapter on this GPU-less machine),
// once as a browser without the API at all (navigator.gpu removed before the page runs, as in a browser
// that never had WebGPU; Chromium 156 keeps navigator.gpu even with --disable-features=WebGPU).
for (const [name, removeApi, want] of [["no-webgpu-flag", false, /no GPU adapter/], ["no-webgpu-api", true, /does not offer WebGPU/]]) {
  await test(name, 90_000, async () => {
    const ctx2 = await launch(false);
    if (removeApi) await ctx2.addInitScript(() => { delete Navigator.prototype.gpu; });
    try {
      const p = ctx2.pages()[0] || (await ctx2.newPage());
      const errors = [];
      p.on("pageerror", (e) => errors.push(e.message));
      p.on("console", (m) => m.type() === "error" && errors.push(m.text()));
      await p.goto(`${base}/`, { timeout: 30_000 });
      const st = await waitState(p, ["no-webgpu", "idle"], 30_000);
      const err = await p.textContent("#error");
      const hasApi = await p.evaluate(() => "gpu" in navigator);
      log(`     without --enable-unsafe-webgpu${removeApi ? ", navigator.gpu deleted" : ""}: navigator.gpu ${hasApi ? "present" : "absent"}, ${JSON.stringify(err.slice(0, 70))}...`);
      assert(st === "no-webgpu", `state ${st}`);
      assert(want.test(err), `message ${JSON.stringify(err)} should match ${want}`);
      assert(/Chrome/.test(err) && /Safari/.test(err) && /Firefox/.test(err), "the explanation names the browsers");
      assert(await p.isDisabled("#generate"), "Generate is disabled");
      assert(errors.length === 0, `console errors: ${errors.join("; ")}`);
    } finally {
      await ctx2.close().catch(() => {});
    }
  });
}

server.close();
for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
if (Object.keys(metrics).length) log(`metrics: ${JSON.stringify(metrics)}`);
log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
