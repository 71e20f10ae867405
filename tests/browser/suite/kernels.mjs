// Part of the browser suite (run.mjs runs the parts in order): every kernel through Chromium's WGSL compiler (Tint), and the GPU tuning run in the browser.
import fs from "node:fs";
import path from "node:path";
import { assert, attnFixture, base, consoleLines, launch, log, maxDiff, metrics, reference, refTensors, root, softmax, test, waitState } from "../harness.mjs";

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
        // Native-only kernels (subgroups: Kernel::needs_subgroups) are validated by tests/shaders.rs and run
        // natively; no device made here has the feature.
        if (k.native) continue;
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
      return { out, names: kernels.map((k) => k.name), native: kernels.filter((k) => k.native).map((k) => k.name), adapter: [adapter.info?.vendor, adapter.info?.architecture].join(" ") };
    }, 60_000);
    assert(!r.fatal, r.fatal);
    // The list is the crate's whole table: one kernel per shaders/*.wgsl (tests/shaders.rs: every file is
    // a kernel), each ending with its own file as it is on disk now (else www/pkg is older than shaders/).
    const files = fs.readdirSync(path.join(root, "shaders")).filter((f) => f.endsWith(".wgsl")).map((f) => f.slice(0, -5)).sort();
    const names = [...r.names].sort();
    assert(JSON.stringify([...r.native].sort()) === JSON.stringify(["attention_window_subgroup", "matmul_subgroup"]), `native-only kernels: ${r.native.join(", ")}`);
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
