// Speed in headless Chromium through the public API (www/gpt2.js): load time, prefill and decode tokens/s,
// on the engine asked for. Usage (after ./build.sh):
//   node bench.mjs MODEL_URL_PATH [TOKENS] [--device auto|webgpu|cpu] [--json] [--prompt-tokens N]
//                  [--warmup N] [--reps N]
//   e.g. node bench.mjs models/tiny-gpt2-q8/ 8
//        BENCH_DIR=/tmp/g2-q8 node bench.mjs bench/ 16 --device cpu --json   (a package outside www/, served at /bench/)
// --device cpu launches Chromium without --enable-unsafe-webgpu (a browser without WebGPU) and runs the CPU
// engine (wasm SIMD, one thread); webgpu and auto launch it with the flag (SwiftShader unless the machine
// has a GPU). --json prints one object with the fields of `gpt2 bench --json` (weights, engine, device or
// adapter, tuning, threads, kv_format, load_s, prompt_tokens, decode_tokens, prefill_tok_s, decode_tok_s,
// dispatches_per_layer/_token, tokens_per_submit, submits_per_token, readbacks_per_token and
// readback_bytes_per_token (the engine's counters, model.counters(): a generation of TOKENS minus one of
// 1, over TOKENS - 1, as gpt2 bench counts them), weight_bytes_per_token) plus wasm_memory_bytes,
// first_token_s (median of the timed runs), cold_first_token_s and cold_second_token_s (the first
// generation after the load) and load_phases (the worker's model.info.loadPhases, in ms).
// Protocol (that of the transformers.js peer bench, /work/shared/peers): the first --prompt-tokens (32)
// tokens of a fixed text, greedy, TOKENS (16) new tokens; --warmup (3) untimed generations first (V8 tiers
// the wasm up), then --reps (3) timed ones, medians reported. decode tok/s = (new tokens - 1) / (time of the
// last token - time of the first), timed in the worker; prefill tok/s = prompt tokens / time to the first.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const www = path.resolve(here, "../../www");
const args = process.argv.slice(2);
const flag = (name, dflt) => {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
};
const device = flag("--device", "auto");
const promptTokens = Number(flag("--prompt-tokens", "32"));
const warmup = Number(flag("--warmup", "3"));
const reps = Number(flag("--reps", "3"));
const json = args.includes("--json");
const positional = args.filter((a) => a !== "--json");
const [modelPath = "models/tiny-gpt2-q8/", tokensArg = "16"] = positional;
const tokens = Number(tokensArg);
if (!["auto", "webgpu", "cpu"].includes(device) || !(tokens >= 2) || !(promptTokens >= 1) || !(reps >= 1) || !(warmup >= 0)) {
  console.error("usage: node bench.mjs MODEL_URL_PATH [TOKENS >= 2] [--device auto|webgpu|cpu] [--json] [--prompt-tokens N] [--warmup N] [--reps N]");
  process.exit(2);
}
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
  headless: true, args: [...(device === "cpu" ? [] : ["--enable-unsafe-webgpu"]), "--no-sandbox", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"] });
let failed = false;
try {
  const page = await ctx.newPage();
  page.setDefaultTimeout(30 * 60_000);
  await page.goto(`http://127.0.0.1:${server.address().port}/index.html?nosw`);
  const r = await page.evaluate(async ({ modelPath, tokens, device, promptTokens, warmup, reps }) => {
    const { load } = await import("./gpt2.js");
    const wasm = await import("./pkg/gpt2_webgpu.js");
    await wasm.default();
    // The prompt: the shortest prefix of the peers' text (whole words) with at least promptTokens tokens.
    const text = "The quick brown fox jumps over the lazy dog. In a small village by the sea, an old fisherman told stories " +
      "about the storms he had survived, the friends he had lost, and the strange lights he once saw beneath the waves on a cold winter night.";
    const tj = new Uint8Array(await (await fetch(new URL("tokenizer.json", new URL(modelPath, location.href)))).arrayBuffer());
    const words = text.split(" ");
    let prompt = text;
    for (let i = 1; i <= words.length; i++) {
      const p = words.slice(0, i).join(" ");
      if (wasm.encodeWith(tj, p).length >= promptTokens) { prompt = p; break; }
    }
    const manifest = await (await fetch(new URL("manifest.json", new URL(modelPath, location.href)))).json();
    const t0 = performance.now();
    const model = await load(modelPath, { device });
    const loadS = (performance.now() - t0) / 1000;
    const run = async (n = tokens) => {
      const pieces = [];
      for await (const piece of model.generate(prompt, { maxNewTokens: n, temperature: 0, stopAtEos: false })) pieces.push(piece.ms);
      if (pieces.length !== n) throw new Error(`generated ${pieces.length} tokens, not ${n}`);
      return pieces;
    };
    // The engine's submits and readbacks over a generation of n tokens.
    const counted = async (n) => {
      const a = await model.counters();
      await run(n);
      const b = await model.counters();
      return { submits: b.submits - a.submits, readbacks: b.readbacks - a.readbacks, readbackBytes: b.readbackBytes - a.readbackBytes };
    };
    // The first generation after the load: anything the engine (or the browser) leaves to first use shows here.
    const cold = await run();
    for (let i = 1; i < warmup; i++) await run();
    const prefill = [], decode = [], first = [];
    let n = 0;
    for (let i = 0; i < reps; i++) {
      const ms = await run();
      n = ms.length;
      first.push(ms[0] / 1000);
      prefill.push(model.lastStart.promptTokens / (ms[0] / 1000));
      decode.push((ms.length - 1) / ((ms[ms.length - 1] - ms[0]) / 1000));
    }
    // What the decode tokens cost in round trips, as `gpt2 bench` counts it: a generation of 1 + D tokens
    // minus one of 1 token, over D.
    const ioOne = await counted(1), ioAll = await counted(tokens);
    const perDecode = (k) => (ioAll[k] - ioOne[k]) / (tokens - 1);
    const med = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];
    const info = model.info;
    model.dispose();
    // Bytes of weights one decode step reads (engine::weight_bytes_per_token): every tensor's regions once,
    // wpe only one row.
    const weightBytes = manifest.tensors.reduce((s, t) => s + (t.name === "wpe.weight" ? info.config.nEmbd * 4 : t.data.bytes + (t.scales?.bytes ?? 0)), 0);
    const cpu = info.device === "cpu";
    return {
      weights: info.quantization, engine: cpu ? "cpu" : "gpu", ...(cpu ? { device: info.deviceName } : { adapter: info.adapter?.name || info.deviceName }),
      tuning: cpu ? info.cpu.simd : info.tuning, threads: cpu ? info.cpu.threads : null, kv_format: info.kvFormat, load_s: loadS,
      prompt_tokens: model.lastStart.promptTokens, decode_tokens: n, prefill_tok_s: med(prefill), decode_tok_s: med(decode),
      // The CPU engine dispatches, submits and reads back nothing: 0 there.
      dispatches_per_layer: cpu ? 0 : info.dispatchesPerLayer, dispatches_per_token: cpu ? 0 : info.dispatchesPerToken,
      tokens_per_submit: info.tokensPerSubmit, submits_per_token: perDecode("submits"), readbacks_per_token: perDecode("readbacks"),
      readback_bytes_per_token: perDecode("readbackBytes"), weight_bytes_per_token: weightBytes, wasm_memory_bytes: info.wasmMemoryBytes,
      decode_runs: decode, prefill_runs: prefill, fallback_reason: info.fallbackReason,
      first_token_s: med(first), cold_first_token_s: cold[0] / 1000, cold_second_token_s: (cold[1] - cold[0]) / 1000, load_phases: info.loadPhases,
    };
  }, { modelPath, tokens, device, promptTokens, warmup, reps });
  if (json) console.log(JSON.stringify(r));
  else {
    console.log(`${modelPath} on ${r.device || r.adapter}: load ${r.load_s.toFixed(2)} s, prompt ${r.prompt_tokens} tokens, prefill ` +
      `${r.prefill_tok_s.toFixed(1)} tok/s, decode ${r.decode_tok_s.toFixed(2)} tok/s over ${r.decode_tokens - 1} tokens (median of ${reps}), ` +
      `wasm memory ${(r.wasm_memory_bytes / 1048576).toFixed(1)} MiB`);
  }
} catch (e) {
  console.error(`bench failed: ${e.message}`);
  failed = true;
} finally {
  await ctx.close();
  server.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
