// tests/browser's harness: what every part of the browser suite (run.mjs, suite/*.mjs) shares: the static
// server (it counts requests, and serves files corrupted, cut off, stalled or replaced on demand), Chromium
// launched through playwright-core, test() with its own timeout per test, page helpers, and the fixtures.
// Every wait has its own timeout: SwiftShader is slow and a runaway shader would otherwise hang silently.
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
// Console lines of every page the parts watch (printed when a part had a failure).
const consoleLines = [];

// The reference's first case, and how many of its greedy tokens are safe to compare (margins >= 1e-2).
const REF = reference.cases[0];
const REF_N = Math.min(8, ((i) => (i < 0 ? REF.greedy_margins.length : Math.max(1, i)))(REF.greedy_margins.findIndex((m) => m < 1e-2))); // greedy tokens safe to compare

const softmax = (l) => { let m = -Infinity; for (const x of l) m = Math.max(m, x); let z = 0; for (const x of l) z += Math.exp(x - m); return Array.from(l, (x) => Math.exp(x - m) / z); };

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

// After every part: close the server, remove the browsers' profiles, print the totals, exit 1 on a failure.
async function finish() {
  server.close();
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
  if (Object.keys(metrics).length) log(`metrics: ${JSON.stringify(metrics)}`);
  log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}
export { GREEDY, REF, REF_N, assert, attnFixture, base, consoleLines, corrupt, dropOnce, failed, finish, generateOnPage, launch, log, maxDiff, metrics, overrides, readSafetensors, refTensors, reference, requests, root, serverOpts, setControls, shardRequests, softmax, stall, stalledClosed, test, tokenizerCases, waitState, www };
