// Part of the browser suite (run.mjs runs the parts in order): the demo page: greedy equals the reference, reload from cache, seed and Stop, a corrupt shard, the wasm tokenizer, device loss, a GPU deadline, a resumed download.
import { assert, base, consoleLines, corrupt, dropOnce, failed, generateOnPage, GREEDY, launch, log, metrics, reference, requests, setControls, shardRequests, test, tokenizerCases, waitState } from "../harness.mjs";

const ctx = await launch(true);
const page = ctx.pages()[0] || (await ctx.newPage());
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
    await page.goto(`${base}/?model=tiny-gpt2-f32&device=webgpu`, { timeout: 30_000 });
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
    await page.goto(`${base}/?model=tiny-gpt2-q8&device=webgpu`, { timeout: 30_000 });
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
    await page.goto(`${base}/?model=tiny-gpt2-q8&device=webgpu`, { timeout: 30_000 });
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

  // A GPU wait past its deadline (the browser side of tests/gpu_deadline.rs): with the worker's deadline
  // set to 1 ms, the read back of a 400-token prompt's step cannot arrive in time (no runaway shader
  // needed). The generation ends with the error in words, not a hang; Generate and Load work again, a
  // "Reload model" button is offered, and the model, loaded again (a new worker, the default deadline),
  // generates.
  await test("gpu-deadline", 180_000, async () => {
    await page.goto(`${base}/?model=tiny-gpt2-q8&device=webgpu`, { timeout: 30_000 });
    await waitState(page, "idle", 30_000);
    await page.click("#load");
    assert((await waitState(page, ["ready", "error"], 120_000)) === "ready", await page.textContent("#error"));
    await page.evaluate(() => { window.__samePage = true; window.gpt2Demo.model.setGpuWaitLimitForTesting(1); });
    await setControls(page, "word ".repeat(400), { ...GREEDY, maxNewTokens: 3 });
    const t0 = Date.now();
    await page.click("#generate");
    const st = await waitState(page, ["done", "error", "device-lost"], 60_000);
    const err = await page.textContent("#error");
    log(`     after ${Date.now() - t0} ms: ${err}`);
    assert(st === "error", `ended in state ${st}: ${err}`);
    assert(/did not finish its work within 1 ms/.test(err) && /load it again/.test(err), `message: ${err}`);
    assert(!(await page.isDisabled("#generate")) && !(await page.isDisabled("#load")), "Generate and Load usable again");
    assert(await page.isVisible("#reload"), "a Reload model button");
    await page.click("#reload");
    await page.waitForFunction(() => document.body.dataset.state !== "error", null, { timeout: 30_000 });
    assert((await waitState(page, ["ready", "error"], 120_000)) === "ready", await page.textContent("#error"));
    assert(!(await page.isVisible("#reload")), "the button is gone");
    assert(await page.evaluate(() => window.__samePage === true), "the page was not reloaded");
    await setControls(page, "word ".repeat(400), { ...GREEDY, maxNewTokens: 2 });
    const out = await generateOnPage(page, 120_000);
    assert(out.ids.length === 2, `generates after loading again: ${out.ids.length} tokens`);
  });

  // A download interrupted halfway (the connection drops in shard-001) says so; loading again resumes
  // without fetching the finished files (tokenizer, shard-000) again.
  await test("resume-download", 180_000, async () => {
    await page.goto(`${base}/?model=tiny-gpt2-f32&device=webgpu`, { timeout: 30_000 });
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
