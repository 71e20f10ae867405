// Speed in headless Chromium (SwiftShader WebGPU unless the machine has a GPU): loads a package through
// the public API (www/gpt2.js) and reports load time, time to first token and decode tokens/s.
// Usage (after ./build.sh): node bench.mjs MODEL_URL_PATH [TOKENS]   e.g. node bench.mjs models/tiny-gpt2-q8/ 8
// The package may live outside www/: BENCH_DIR=/path/to/pkg node bench.mjs bench/ 4 serves it at /bench/.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const www = path.resolve(here, "../../www");
const [modelPath = "models/tiny-gpt2-q8/", tokensArg = "8"] = process.argv.slice(2);
const tokens = Number(tokensArg);
const TYPES = { ".wasm": "application/wasm", ".js": "text/javascript", ".json": "application/json", ".html": "text/html" };
const server = http.createServer((req, res) => {
  const p = decodeURIComponent(new URL(req.url, "http://x").pathname);
  const file = process.env.BENCH_DIR && p.startsWith("/bench/") ? path.join(process.env.BENCH_DIR, p.slice(7)) : path.join(www, p);
  if (!fs.existsSync(file) || fs.statSync(file).isDirectory()) return res.writeHead(404).end();
  const body = fs.readFileSync(file);
  res.writeHead(200, { "Content-Type": TYPES[path.extname(file)] || "application/octet-stream", "Content-Length": body.length });
  res.end(body);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "gpt2-bench-"));
const ctx = await chromium.launchPersistentContext(dir, { executablePath: process.env.CHROMIUM || "/usr/lib/chromium/chromium",
  headless: true, args: ["--enable-unsafe-webgpu", "--no-sandbox", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
try {
  const page = await ctx.newPage();
  await page.goto(`http://127.0.0.1:${server.address().port}/index.html`);
  const r = await page.evaluate(async ({ modelPath, tokens }) => {
    const { load } = await import("./gpt2.js");
    const t0 = performance.now();
    const model = await load(modelPath);
    const loadMs = performance.now() - t0;
    const t1 = performance.now();
    let first = null, n = 0;
    for await (const piece of model.generate("The quick brown fox jumps over the lazy dog.", { maxNewTokens: tokens, temperature: 0, stopAtEos: false })) {
      if (first === null) first = performance.now() - t1;
      n++;
    }
    const total = performance.now() - t1;
    const info = model.info;
    model.dispose();
    return { loadMs, firstMs: first, decodeTokPerS: (n - 1) / ((total - first) / 1000), n, adapter: info.adapter?.name };
  }, { modelPath, tokens });
  console.log(`${modelPath}: load ${(r.loadMs / 1000).toFixed(2)} s, first token ${(r.firstMs / 1000).toFixed(2)} s, ` +
    `decode ${r.decodeTokPerS.toFixed(2)} tok/s over ${r.n - 1} tokens, adapter ${r.adapter}`);
} finally {
  await ctx.close();
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
