// Big packages in headless Chromium (SwiftShader WebGPU), for tools/all-sizes.sh (not in the suite):
// each package is streamed into a worker (`load(url, { device: "webgpu" })`), generates 2 greedy tokens,
// and reports its package bytes, load time, the worker's WebAssembly memory (it only grows: its peak)
// and the GPU bytes the model holds, and tokens/s. One JSON line per package to --out.
//   node sizes.mjs --package NAME=DIR [--package NAME=DIR ...] --out FILE
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const www = path.resolve(here, "../../www");
const argv = process.argv.slice(2);
const packages = [];
let out = null;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === "--package") {
    const [name, dir] = argv[++i].split("=");
    packages.push({ name, dir: path.resolve(dir) });
  } else if (argv[i] === "--out") out = argv[++i];
  else throw new Error(`sizes.mjs: unknown argument ${argv[i]}`);
}
if (!packages.length || !out) throw new Error("usage: node sizes.mjs --package NAME=DIR ... --out FILE");
const CHROMIUM = process.env.CHROMIUM || "/usr/lib/chromium/chromium";

// www/ for the scripts, /big/NAME/ for each package folder (streamed from disk: shards are up to 64 MiB).
const TYPES = { ".wasm": "application/wasm", ".js": "text/javascript", ".json": "application/json", ".html": "text/html; charset=utf-8" };
const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/sizes.html") return res.writeHead(200, { "Content-Type": TYPES[".html"] }).end("<!doctype html><title>sizes</title>");
  let file;
  const m = /^\/big\/([^/]+)\/([^/]+)$/.exec(url.pathname);
  if (m) {
    const p = packages.find((x) => x.name === m[1]);
    file = p && path.join(p.dir, m[2]);
    if (file && !file.startsWith(p.dir)) file = null;
  } else {
    file = path.join(www, decodeURIComponent(url.pathname));
    if (!file.startsWith(www)) file = null;
  }
  if (!file || !fs.existsSync(file) || fs.statSync(file).isDirectory()) return res.writeHead(404).end("not found");
  res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] || "application/octet-stream", "Content-Length": fs.statSync(file).size });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}`;

const profile = fs.mkdtempSync(path.join(os.tmpdir(), "gpt2-sizes-"));
const ctx = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, timeout: 60_000,
  args: ["--enable-unsafe-webgpu", "--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"] });
const page = ctx.pages()[0] || (await ctx.newPage());
page.setDefaultTimeout(3_600_000);
page.on("pageerror", (e) => console.log(`[pageerror] ${e.message}`));
let failed = 0;
fs.writeFileSync(out, "");
try {
  await page.goto(`${base}/sizes.html`);
  await page.evaluate(async () => (window.gpt2 = await import("./gpt2.js")));
  for (const p of packages) {
    const packageBytes = fs.readdirSync(p.dir).reduce((s, f) => s + fs.statSync(path.join(p.dir, f)).size, 0);
    console.log(`== ${p.name}: ${(packageBytes / 1e6).toFixed(1)} MB`);
    try {
      const r = await page.evaluate(async (url) => {
        const t0 = performance.now();
        // The shards go straight to the GPU as they arrive; the cache is skipped so the next size fits.
        const m = await gpt2.load(url, { device: "webgpu" });
        const loadS = (performance.now() - t0) / 1000;
        // SwiftShader is slow, not hung: gpt2-xl's prompt takes minutes (the default deadline is 300 s).
        m.setGpuWaitLimitForTesting(3_600_000);
        const loaded = await m.memory();
        const times = [];
        const t1 = performance.now();
        const ids = [];
        for await (const piece of m.generate("The quick brown fox jumps over the lazy dog", { maxNewTokens: 2, stopAtEos: false })) {
          ids.push(piece.tokenId);
          times.push((performance.now() - t1) / 1000);
        }
        const mem = await m.memory();
        const info = m.info;
        m.dispose();
        await gpt2.deleteCached(url);
        return { loadS, loaded, mem, ids, times, quantization: info.quantization, adapter: info.adapter?.name, gpuBytesInfo: info.gpuBytes };
      }, `big/${p.name}/`);
      const row = { where: "chromium", size: p.name.replace(/-(q8|q4|f16|f32)$/, ""), quantization: r.quantization, package_bytes: packageBytes,
        load_s: r.loadS, wasm_bytes: r.mem.wasmBytes, wasm_bytes_loaded: r.loaded.wasmBytes, gpu_bytes: r.mem.gpuBytes, generated: r.ids,
        first_token_s: r.times[0], decode_tokens_per_s: r.times.length > 1 ? (r.times.length - 1) / (r.times[r.times.length - 1] - r.times[0]) : null,
        adapter: r.adapter };
      console.log(JSON.stringify(row));
      fs.appendFileSync(out, JSON.stringify(row) + "\n");
      if (r.ids.length !== 2 || r.gpuBytesInfo !== r.mem.gpuBytes) failed++;
    } catch (e) {
      failed++;
      console.log(`FAIL ${p.name}: ${e.message}`);
    }
  }
} finally {
  await ctx.close().catch(() => {});
  server.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
