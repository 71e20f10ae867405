// Part of the browser suite (run.mjs runs the parts in order): embedding and the site: the <gpt2-generate> element, embed.html, offline use, a strict CSP, a full storage quota and a too-large model.
import { assert, base, generateOnPage, GREEDY, launch, log, requests, serverOpts, setControls, shardRequests, test, waitState } from "../harness.mjs";

// The element checks its attributes before sending and says which one is wrong; the other element on
// the page (same shared model) still generates.
await test("element-bad-attribute", 150_000, async () => {
  const c = await launch(true);
  try {
    const p = c.pages()[0] || (await c.newPage());
    await p.goto(`${base}/embed.html`, { timeout: 30_000 });
    await p.evaluate(() => document.querySelector("#a").setAttribute("top-p", "2"));
    await p.click("#a >> button.generate");
    await p.waitForFunction(() => document.querySelector("#a").dataset.error, null, { timeout: 10_000 });
    const err = await p.getAttribute("#a", "data-error");
    log(`     #a: ${err}`);
    assert(/top-p attribute is "2"/.test(err) && /at most 1/.test(err), err);
    await p.click("#b >> button.generate");
    await p.waitForFunction(() => document.querySelector("#b").dataset.done || document.querySelector("#b").dataset.error, null, { timeout: 120_000 });
    assert((await p.getAttribute("#b", "data-done")) === "8", `#b: ${await p.getAttribute("#b", "data-error")}`);
    await p.evaluate(() => document.querySelector("#a").removeAttribute("top-p"));
    await p.click("#a >> button.generate");
    await p.waitForFunction(() => document.querySelector("#a").dataset.done, null, { timeout: 120_000 });
  } finally {
    await c.close().catch(() => {});
  }
});

// Without WebGPU (Chromium started without --enable-unsafe-webgpu: navigator.gpu exists but offers no
// adapter; or navigator.gpu removed, as in a browser that never had it) the element just works on the CPU
// engine: #a with device="cpu" (flag case) or the default "auto" (API case) generates its 8 tokens, with
// no error. #b asking for device="webgpu" gets the page's words for visitors (not the CLI's).
for (const [name, removeApi, want] of [["element-no-webgpu-flag", false, /no GPU adapter/], ["element-no-webgpu-api", true, /does not offer WebGPU/]]) {
  await test(name, 120_000, async () => {
    const c = await launch(false);
    if (removeApi) await c.addInitScript(() => { delete Navigator.prototype.gpu; });
    try {
      const p = c.pages()[0] || (await c.newPage());
      const errors = [];
      p.on("pageerror", (e) => errors.push(e.message));
      await p.goto(`${base}/embed.html`, { timeout: 30_000 });
      await p.evaluate((cpu) => {
        if (cpu) document.querySelector("#a").setAttribute("device", "cpu");
        document.querySelector("#b").setAttribute("device", "webgpu");
      }, !removeApi);
      await p.click("#a >> button.generate");
      await p.waitForFunction(() => document.querySelector("#a").dataset.done || document.querySelector("#a").dataset.error, null, { timeout: 60_000 });
      assert((await p.getAttribute("#a", "data-done")) === "8", `#a (${removeApi ? "auto" : "cpu"}): ${await p.getAttribute("#a", "data-error")}`);
      const info = await p.evaluate(async () => (await document.querySelector("#a").model).info);
      assert(info.device === "cpu" && info.cpu.simd === "simd128", `#a runs on the CPU engine: ${info.deviceName}`);
      await p.click("#b >> button.generate");
      await p.waitForFunction(() => document.querySelector("#b").dataset.error || document.querySelector("#b").dataset.done, null, { timeout: 60_000 });
      const err = await p.getAttribute("#b", "data-error");
      const shown = await p.evaluate(() => document.querySelector("#b").shadowRoot.querySelector(".error").textContent);
      log(`     #a on ${info.deviceName}: 8 tokens; #b device="webgpu": ${JSON.stringify((err || "").slice(0, 70))}...`);
      assert(err && want.test(err) && /Chrome/.test(err) && /Safari/.test(err) && shown === err, `#b: ${err}`);
      assert(!/lavapipe|vulkan|Mesa|driver\)|compiled/i.test(err), `CLI words: ${err}`);
      assert(errors.length === 0, errors.join("; "));
    } finally {
      await c.close().catch(() => {});
    }
  });
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
    await p.goto(`${base}/?model=tiny-gpt2-f32&device=webgpu`, { timeout: 30_000 });
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
    await p.click("#load");
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
    await p.click("#load");
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
    await p.goto(`${base}/?model=tiny-gpt2-q8&device=webgpu`, { timeout: 30_000 });
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
    await p.goto(`${base}/?model=tiny-gpt2-q8&nosw&device=webgpu`, { timeout: 30_000 });
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
    await p.goto(`${base}/?model=tiny-gpt2-q8&nosw&device=webgpu`, { timeout: 30_000 });
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
