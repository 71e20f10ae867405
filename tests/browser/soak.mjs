// Soak test in headless Chromium (SwiftShader WebGPU), opt-in (minutes; not in run.mjs's suite):
//   1. one generation of 3,000 tokens on tiny-gpt2 (context 1024: the window slides about 8 times): after
//      the first slide the worker's WebAssembly memory must not grow (a leak per token or per slide would
//      show there; the first slide reaches the high-water mark);
//   2. 50 load -> generate -> dispose cycles: every cycle's worker ends with the same WebAssembly and GPU
//      memory, and the browser's own memory (page JS heap after GC; resident memory of every Chromium
//      process, the GPU process included, which holds SwiftShader's buffers) does not grow beyond noise.
// Needs ./build.sh (www/pkg, www/models). Usage:
//   node soak.mjs [--tokens 3000] [--cycles 50] [--model tiny-gpt2-q8] [--json FILE]
// Exits non-zero on any failed check. Allowances (stated, and printed with the figures):
//   WebAssembly memory from the first slide to the end of the long generation: +1 MiB (it only grows,
//   in 64 KiB pages);
//   per cycle: identical wasm and GPU bytes in every worker;
//   page JS heap after GC, last cycle vs first: +2 MB;
//   Chromium resident memory, last cycle vs first: + one model's GPU bytes + 64 MB (a leak of one model's
//   buffers every few cycles exceeds it; RSS wobbles by tens of MB as the allocators work).
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const www = path.resolve(here, "../../www");
const argv = process.argv.slice(2);
const arg = (name, dflt) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : dflt);
const TOKENS = Number(arg("--tokens", 3000));
const CYCLES = Number(arg("--cycles", 50));
const MODEL = arg("--model", "tiny-gpt2-q8");
const JSON_OUT = arg("--json", null);
const CHROMIUM = process.env.CHROMIUM || "/usr/lib/chromium/chromium";
const MB = (b) => (b / 1e6).toFixed(1);

const TYPES = { ".wasm": "application/wasm", ".js": "text/javascript", ".json": "application/json", ".html": "text/html; charset=utf-8",
  ".bin": "application/octet-stream" };
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/soak.html") return res.writeHead(200, { "Content-Type": TYPES[".html"] }).end("<!doctype html><title>soak</title>");
  const file = path.join(www, decodeURIComponent(url.pathname));
  if (!file.startsWith(www) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) return res.writeHead(404).end("not found");
  const body = fs.readFileSync(file);
  res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] || "application/octet-stream", "Content-Length": body.length }).end(body);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}`;

// Resident memory of the browser: the process started with our profile directory and all its descendants.
function chromiumRss(profile) {
  const procs = [];
  for (const d of fs.readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, "utf8");
      const rss = Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${d}/status`, "utf8"))?.[1] || 0) * 1024;
      procs.push({ pid: Number(d), ppid, cmd, rss });
    } catch { /* gone */ }
  }
  const ours = new Set(procs.filter((p) => p.cmd.includes(profile)).map((p) => p.pid));
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of procs) if (!ours.has(p.pid) && ours.has(p.ppid)) { ours.add(p.pid); grew = true; }
  }
  return procs.filter((p) => ours.has(p.pid)).reduce((s, p) => s + p.rss, 0);
}

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "gpt2-soak-"));
const ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, timeout: 60_000,
  args: ["--enable-unsafe-webgpu", "--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"] });
const page = ctx.pages()[0] || (await ctx.newPage());
page.on("pageerror", (e) => console.log(`[pageerror] ${e.message}`));
const cdp = await ctx.newCDPSession(page);
async function jsHeap() {
  await cdp.send("HeapProfiler.collectGarbage");
  return (await cdp.send("Runtime.getHeapUsage")).usedSize;
}

const failures = [];
const check = (ok, what) => {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures.push(what);
};
const figures = { model: MODEL, tokens: TOKENS, cycles: CYCLES };
try {
  await page.goto(`${base}/soak.html`);
  await page.evaluate(async () => {
    window.gpt2 = await import("./gpt2.js");
    // Greedy, past <|endoftext|>: the same tokens every time.
    window.run = async (m, prompt, n) => {
      let count = 0, first = 0;
      const t0 = performance.now();
      for await (const p of m.generate(prompt, { maxNewTokens: n, stopAtEos: false })) if (count++ === 0) first = performance.now();
      return { count, s: (performance.now() - t0) / 1000, decodeTps: (count - 1) / ((performance.now() - first) / 1000) };
    };
  });
  const url = `models/${MODEL}/`;

  // ---- 1. one long generation ----------------------------------------------------------------------
  // The worker's memory every 100 tokens (answered between two steps). WebAssembly memory only grows:
  // after the window's first slide it has seen everything a step and a slide allocate, so from there on
  // it must stay put; a leak of 600 bytes per token would exceed the 1 MiB allowance by the end.
  const long = await page.evaluate(async ([url, n]) => {
    const m = await gpt2.load(url, { device: "webgpu" });
    const loaded = await m.memory();
    const nPositions = m.info.config.nPositions;
    const samples = [];
    let count = 0;
    const t0 = performance.now();
    for await (const p of m.generate("The soak test begins here.", { maxNewTokens: n, stopAtEos: false })) {
      if (++count % 100 === 0) samples.push({ at: count, ...(await m.memory()) });
    }
    const s = (performance.now() - t0) / 1000;
    const end = await m.memory();
    const promptTokens = m.lastStart.promptTokens;
    m.dispose();
    return { nPositions, promptTokens, loaded, samples, end, count, s };
  }, [url, TOKENS]);
  // The first slide: when prompt + generated tokens first exceed the context.
  const firstSlide = long.nPositions - long.promptTokens + 1;
  const settled = long.samples.find((x) => x.at > firstSlide) || long.end;
  figures.long = { ...long, firstSlide, settled };
  console.log(`long: ${long.count} tokens (context ${long.nPositions}, prompt ${long.promptTokens}) in ${long.s.toFixed(0)} s = ${(long.count / long.s).toFixed(2)} tokens/s; ` +
    `wasm ${MB(long.loaded.wasmBytes)} MB loaded, ${MB(settled.wasmBytes)} MB after the first slide (token ${settled.at ?? long.count}), ${MB(long.end.wasmBytes)} MB at the end; ` +
    `GPU ${MB(long.loaded.gpuBytes)} -> ${MB(long.end.gpuBytes)} MB`);
  check(long.count === TOKENS, `the generation gave ${TOKENS} tokens (${long.count})`);
  const slides = Math.max(0, Math.ceil((long.promptTokens + TOKENS - long.nPositions) / (long.nPositions / 4)));
  console.log(`     the window slid about ${slides} times (it keeps the last ${long.nPositions * 3 / 4} tokens when the context fills)`);
  if (long.promptTokens + TOKENS > long.nPositions) {
    check(long.end.wasmBytes - settled.wasmBytes <= 1 << 20, `wasm after the first slide +${long.end.wasmBytes - settled.wasmBytes} bytes (allowed 1 MiB)`);
  } else {
    console.log(`note ${TOKENS} tokens do not fill the ${long.nPositions}-token context: the window never slid`);
  }
  check(long.end.gpuBytes === long.loaded.gpuBytes, "GPU bytes unchanged by generating");

  // ---- 2. load -> generate -> dispose cycles ---------------------------------------------------------
  const cycle = () => page.evaluate(async (url) => {
    const t0 = performance.now();
    const m = await gpt2.load(url, { device: "webgpu" });
    const loadS = (performance.now() - t0) / 1000;
    const r = await run(m, "Cycle", 8);
    const mem = await m.memory();
    m.dispose();
    return { loadS, count: r.count, ...mem };
  }, url);
  await cycle(); // the first load downloads and caches: not a cycle like the others
  await new Promise((r) => setTimeout(r, 1000));
  const before = { jsHeap: await jsHeap(), rss: chromiumRss(profile) };
  const cycles = [];
  const t0 = Date.now();
  for (let i = 0; i < CYCLES; i++) cycles.push(await cycle());
  await new Promise((r) => setTimeout(r, 1000)); // terminated workers' memory goes back
  const after = { jsHeap: await jsHeap(), rss: chromiumRss(profile) };
  figures.cycles = { before, after, seconds: (Date.now() - t0) / 1000, first: cycles[0], last: cycles[cycles.length - 1] };
  const gpu = cycles[0].gpuBytes;
  console.log(`cycles: ${CYCLES} in ${figures.cycles.seconds.toFixed(0)} s (load ${cycles[0].loadS.toFixed(2)} s first, ${cycles[CYCLES - 1].loadS.toFixed(2)} s last); ` +
    `per worker wasm ${MB(cycles[0].wasmBytes)} MB, GPU ${MB(gpu)} MB; page JS heap ${MB(before.jsHeap)} -> ${MB(after.jsHeap)} MB; ` +
    `Chromium RSS ${MB(before.rss)} -> ${MB(after.rss)} MB`);
  check(cycles.every((c) => c.count === 8), "every cycle generated 8 tokens");
  check(cycles.every((c) => c.wasmBytes === cycles[0].wasmBytes && c.gpuBytes === gpu), "every cycle's worker: the same wasm and GPU bytes");
  check(after.jsHeap - before.jsHeap <= 2e6, `page JS heap +${MB(after.jsHeap - before.jsHeap)} MB (allowed 2 MB)`);
  check(before.rss > 0 && after.rss - before.rss <= gpu + 64e6, `Chromium RSS +${MB(after.rss - before.rss)} MB (allowed ${MB(gpu + 64e6)} MB: one model's GPU bytes + 64 MB)`);
} catch (e) {
  failures.push(String(e.stack || e));
  console.log(`FAIL ${e.stack || e}`);
} finally {
  await ctx.close().catch(() => {});
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
if (JSON_OUT) fs.writeFileSync(JSON_OUT, JSON.stringify(figures, null, 1));
console.log(failures.length ? `${failures.length} failed` : "soak passed");
process.exit(failures.length ? 1 : 0);
