// Part of the browser suite (run.mjs runs the parts in order): nothing hangs: the JS API, the page and the element settle on every path (bad options, engine errors, a crashed worker, queueing and abort, dispose, soak, aborted loads, bad manifests).
import fs from "node:fs";
import path from "node:path";
import { assert, base, consoleLines, failed, generateOnPage, GREEDY, launch, log, overrides, REF, REF_N, requests, serverOpts, setControls, shardRequests, stall, stalledClosed, test, waitState, www } from "../harness.mjs";

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
      assert(["submits", "readbacks", "readbackBytes", "pipelines"].every((k) => Number.isSafeInteger(c[k]) && c[k] >= 0), `counters: ${JSON.stringify(c)}`);
    }
    assert(one.submits >= 1 && one.readbacks >= 1 && one.bytes > 0, `a 1-token generation submits and reads back: ${JSON.stringify(one)}`);
    assert(all.during && all.during.submits > all.a.submits && all.during.submits <= all.b.submits, `during: ${JSON.stringify(all)}`);
    // The load built every pipeline a step dispatches (in the browser it asks for them when the device is
    // made and builds them when the shards are in: Gpu::prepare), so no generation builds one.
    assert(Number.isSafeInteger(one.a.pipelines) && one.a.pipelines > 0, `pipelines after the load: ${JSON.stringify(one.a)}`);
    assert(all.b.pipelines === one.a.pipelines, `a generation built pipelines: ${one.a.pipelines} after the load, ${all.b.pipelines} after two generations`);
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
