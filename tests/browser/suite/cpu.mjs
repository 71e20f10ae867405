// Part of the browser suite (run.mjs runs the parts in order): browsers without WebGPU: the page and the JS API on the CPU engine, and its out-of-memory path.
import fs from "node:fs";
import path from "node:path";
import { assert, base, generateOnPage, GREEDY, launch, log, overrides, readSafetensors, REF_N, reference, requests, root, setControls, softmax, test, waitState, www } from "../harness.mjs";

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
      assert(r.io.submits === 0 && r.io.readbacks === 0 && r.io.readbackBytes === 0 && r.io.pipelines === 0, `counters: ${JSON.stringify(r.io)}`);
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
