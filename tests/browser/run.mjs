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
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  requests.push(url.pathname);
  if (serverOpts.down) return req.socket.destroy(); // "offline": no answer at all
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
