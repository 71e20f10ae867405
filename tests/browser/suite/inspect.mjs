// Part of the browser suite (run.mjs runs the parts in order): inside the model: model.inspect against the float64 fixture, the inspect panel, presets, screenshots.
import fs from "node:fs";
import path from "node:path";
import os from "node:os";
import { assert, attnFixture, base, consoleLines, generateOnPage, GREEDY, launch, log, maxDiff, metrics, reference, refTensors, requests, setControls, test, waitState } from "../harness.mjs";

// ---- inside the model: model.inspect against the float64 fixture, and the page's inspect panel ------
const ictx = await launch(true);
const ipage = ictx.pages()[0] || (await ictx.newPage());
ipage.on("console", (m) => consoleLines.push(`[${m.type()}] ${m.text()}`));
ipage.on("pageerror", (e) => consoleLines.push(`[pageerror] ${e.message}`));
try {
  // The same checks on the CPU engine (inspect-api-cpu), then on WebGPU (inspect-api), whose page the
  // panel tests below go on with.
  for (const device of ["cpu", "webgpu"]) await test(device === "cpu" ? "inspect-api-cpu" : "inspect-api", 240_000, async () => {
    await ipage.goto(`${base}/?model=tiny-gpt2-f32&nosw&device=${device}`, { timeout: 30_000 });
    await waitState(ipage, "idle", 30_000);
    await ipage.click("#load");
    assert((await waitState(ipage, ["ready", "error"], 120_000)) === "ready", await ipage.textContent("#error"));
    const info = await ipage.evaluate(() => window.gpt2Demo.model.info);
    assert(info.device === device && info.config.maxInspectTokens === 1024, `engine ${info.device}, maxInspectTokens ${info.config.maxInspectTokens}`);
    const cases = reference.cases.filter((c) => attnFixture[`${c.name}.lens`]);
    assert(cases.length >= 4, "fixture cases");
    let worstA = 0, worstL = 0;
    for (const c of cases) {
      // Half the cases by text (the tokenizer's ids must be the fixture's), half by ids.
      const byText = c.name === "case0" || c.name === "case2";
      const r = await ipage.evaluate(async ([input]) => {
        const r = await window.gpt2Demo.model.inspect(input);
        return { ids: r.ids, layers: r.layers, heads: r.heads, position: r.position, attention: [...r.attention], lens: [...r.lens],
          isF32: r.attention instanceof Float32Array && r.lens instanceof Float32Array };
      }, [byText ? c.text : c.ids]);
      const T = c.ids.length;
      assert(JSON.stringify(r.ids) === JSON.stringify(c.ids), `${c.name}: ids ${r.ids} != ${c.ids}`);
      assert(r.isF32 && r.layers === 2 && r.heads === 2 && r.position === T - 1, `${c.name}: shape ${r.layers}x${r.heads}, position ${r.position}`);
      assert(r.attention.length === r.layers * r.heads * T * T, `${c.name}: attention is [L, NH, T, T]`);
      let caseA = 0;
      for (let l = 0; l < r.layers; l++) {
        const want = attnFixture[`${c.name}.attn.${l}`].data;
        const d = maxDiff(r.attention.slice(l * want.length, (l + 1) * want.length), want);
        caseA = Math.max(caseA, d);
        assert(d <= 1e-4, `${c.name}.attn.${l}: max |diff| ${d}`);
      }
      worstA = Math.max(worstA, caseA);
      const d = maxDiff(r.lens, attnFixture[`${c.name}.lens`].data);
      worstL = Math.max(worstL, d);
      assert(d <= 1e-3, `${c.name}.lens: max |diff| ${d}`);
      log(`     ${c.name} (T = ${T}, by ${byText ? "text" : "ids"}): attention max |diff| ${caseA.toExponential(2)}; lens ${d.toExponential(2)}`);
    }
    const key = device === "cpu" ? "Cpu" : "";
    metrics[`inspect${key}AttentionMaxDiff`] = worstA;
    metrics[`inspect${key}LensMaxDiff`] = worstL;
    log(`     ${device}, every case: attention max |diff| ${worstA.toExponential(2)} (bound 1e-4), lens ${worstL.toExponential(2)} (bound 1e-3)`);

    // The lens at another position: its last row is the model's logits there (reference.safetensors).
    const c2 = reference.cases.find((c) => c.name === "case2");
    const positions = [...refTensors["case2.logits_positions"].data];
    const V = 50257;
    for (const [i, p] of positions.entries()) {
      const last = await ipage.evaluate(async ([ids, p, V]) => {
        const r = await window.gpt2Demo.model.inspect(ids, { position: p });
        return { position: r.position, row: [...r.lens.subarray((r.layers - 1) * V)] };
      }, [c2.ids, p, V]);
      const d = maxDiff(last.row, refTensors["case2.logits_at"].data.subarray(i * V, (i + 1) * V));
      assert(last.position === p && d <= 1e-3, `case2 lens at position ${p}: max |diff| ${d}`);
    }

    // A generation keeps its place while inspections run between its steps: greedy tokens = the reference.
    const c0 = reference.cases[0];
    let n = c0.greedy_margins.findIndex((m) => m < 1e-2);
    if (n < 0) n = c0.greedy_next_ids.length;
    n = Math.min(n, 8);
    const g = await ipage.evaluate(async ([text, n, ids]) => {
      const m = window.gpt2Demo.model;
      const out = [], during = [];
      for await (const p of m.generate(text, { maxNewTokens: n })) {
        out.push(p.tokenId);
        if (out.length <= 3) during.push((await m.inspect(ids)).lens[0]);
      }
      return { out, during };
    }, [c0.text, n, c0.ids]);
    assert(JSON.stringify(g.out) === JSON.stringify(c0.greedy_next_ids.slice(0, n)), `greedy with inspections between steps: ${g.out}`);
    assert(g.during.every((x) => Math.abs(x - attnFixture["case0.lens"].data[0]) <= 1e-3), `inspections during a generation: ${g.during}`);

    // Bad input rejects with words; the model stays usable.
    const bad = await ipage.evaluate(async () => {
      const m = window.gpt2Demo.model;
      const out = [];
      for (const [input, opts] of [[[], {}], [[1, 50257], {}], [[1.5], {}], ["Hello", { position: 5 }], ["Hello", { position: -1 }],
        ["Hello", { positon: 0 }], [42, {}], [new Array(1025).fill(1), {}]]) {
        try {
          await m.inspect(input, opts);
          out.push({ input: String(input).slice(0, 20), resolved: true });
        } catch (e) {
          out.push({ input: String(input).slice(0, 20), kind: e.kind, message: e.message });
        }
      }
      return out;
    });
    for (const b of bad) assert(!b.resolved && b.message && b.kind, `inspect(${b.input}) should reject: ${JSON.stringify(b)}`);
    log(`     e.g. ${bad.map((b) => b.message).slice(0, 3).join(" | ")}`);
  });

  // The panel: its numbers are model.inspect's, the keyboard drives it, presets and validation work.
  await test("inspect-panel", 240_000, async () => {
    const c = reference.cases[0];
    await setControls(ipage, c.text, { ...GREEDY, maxNewTokens: 6 });
    const out = await generateOnPage(ipage, 120_000);
    assert(out.ids.length === 6, `6 tokens: ${out.ids}`);
    await ipage.click("#output .tok[data-index='3']");
    await ipage.waitForFunction(() => !document.getElementById("inspect").hidden &&
      document.getElementById("inspect-status").textContent === "" && document.querySelectorAll("#lens li").length > 0,
    null, { timeout: 60_000 });
    const panel = await ipage.evaluate(async () => {
      const { model, panel } = window.gpt2Demo;
      const ins = panel.inspection;
      const again = await model.inspect(ins.ids); // the same call, made here
      const V = model.info.config.vocabSize;
      const lens = [...document.querySelectorAll("#lens li")].map((li) => ({ id: Number(li.dataset.tokenId), p: Number(li.dataset.value) }));
      const want = [];
      for (let l = 0; l < again.layers; l++) {
        const row = again.lens.subarray(l * V, (l + 1) * V);
        let best = 0, max = -Infinity, sum = 0;
        for (let i = 0; i < V; i++) if (row[i] > max) { max = row[i]; best = i; }
        for (let i = 0; i < V; i++) sum += Math.exp(row[i] - max);
        want.push({ id: best, p: 1 / sum });
      }
      // Attention: layer 2, head 1, then the average; the panel's list and the shading of the text.
      const T = again.ids.length;
      const att = (l, h) => [...again.attention.subarray(((l * again.heads + h) * T + T - 1) * T, ((l * again.heads + h) * T + T) * T)];
      const sel = (id, v) => { const s = document.getElementById(id); s.value = v; s.dispatchEvent(new Event("change")); };
      sel("attn-layer", "1"); sel("attn-head", "0");
      const shown = panel.weights();
      const top = [...document.querySelectorAll("#attn-top li")].map((li) => Number(li.dataset.value));
      const shade = [...document.querySelectorAll("#output .ptok, #output .tok")].slice(0, T).map((s) => Number(s.style.getPropertyValue("--a")));
      sel("attn-head", "avg");
      const avg = panel.weights();
      return { lens, want, shown: [...shown], att: att(1, 0), avg: [...avg], avgWant: att(1, 0).map((x, j) => (x + att(1, 1)[j]) / 2),
        top, shade, ptoks: document.querySelectorAll("#output .ptok").length, ids: ins.ids, alts: document.querySelectorAll("#alts li").length,
        token: document.getElementById("inspect-token").textContent, pressed: document.querySelector("#output .tok[aria-pressed=true]")?.dataset.index };
    });
    assert(JSON.stringify(panel.ids) === JSON.stringify([...c.ids, ...out.ids.slice(0, 3)]), `context ${panel.ids}`);
    assert(panel.lens.length === 2 && panel.lens.every((x, l) => x.id === panel.want[l].id && Math.abs(x.p - panel.want[l].p) < 1e-6),
      `lens rows ${JSON.stringify(panel.lens)} vs model.inspect ${JSON.stringify(panel.want)}`);
    assert(maxDiff(panel.shown, panel.att) < 1e-7 && maxDiff(panel.avg, panel.avgWant) < 1e-7, "attention weights = model.inspect's");
    const sorted = [...panel.att].sort((a, b) => b - a).slice(0, panel.top.length);
    assert(maxDiff(panel.top, sorted) < 1e-7, `top attended ${panel.top} vs ${sorted}`);
    const mx = Math.max(...panel.att);
    assert(maxDiff(panel.shade, panel.att.map((x) => x / mx)) < 2e-3, `the text's shading follows the attention: ${panel.shade}`);
    assert(panel.ptoks === c.ids.length, `the prompt drawn as its ${c.ids.length} tokens: ${panel.ptoks}`);
    assert(panel.alts >= 1 && panel.pressed === "3" && /Token 4 of 6/.test(panel.token), `${panel.alts} alternatives; ${panel.token}`);
    log(`     ${panel.token} lens: ${JSON.stringify(panel.lens)}`);

    // Keyboard: arrows move the selection (and the panel), Close gives focus back to the token.
    await ipage.focus("#output .tok[data-index='3']");
    await ipage.keyboard.press("ArrowRight");
    await ipage.waitForFunction(() => document.activeElement?.dataset?.index === "4", null, { timeout: 10_000 });
    // The panel follows: token 5's context is the prompt and the 4 tokens before it.
    await ipage.waitForFunction((n) => window.gpt2Demo.panel.inspection?.ids.length === n, c.ids.length + 4, { timeout: 60_000 });
    await ipage.keyboard.press("Home");
    await ipage.waitForFunction(() => document.activeElement?.dataset?.index === "0" &&
      document.querySelector("#output .tok[aria-pressed=true]")?.dataset.index === "0", null, { timeout: 10_000 });
    await ipage.keyboard.press("End");
    await ipage.waitForFunction(() => document.activeElement?.dataset?.index === "5", null, { timeout: 10_000 });
    await ipage.click("#inspect-close");
    assert(await ipage.evaluate(() => document.getElementById("inspect").hidden && document.activeElement?.dataset?.index === "5"),
      "Close hides the panel and focus returns to the token");
    // Ctrl+Enter generates from the prompt and focus stays there; Esc stops; the panel was cleared.
    await ipage.click("#output .tok[data-index='1']");
    await ipage.fill("#maxNewTokens", "500");
    await ipage.focus("#prompt");
    await ipage.keyboard.press("Control+Enter");
    await waitState(ipage, "generating", 30_000);
    assert(await ipage.evaluate(() => document.getElementById("inspect").hidden), "a new generation clears the panel");
    await ipage.waitForFunction(() => document.querySelectorAll("#output .tok").length >= 2, null, { timeout: 60_000 });
    await ipage.keyboard.press("Escape");
    assert((await waitState(ipage, ["done", "error"], 60_000)) === "done", await ipage.textContent("#error"));
    const n = await ipage.evaluate(() => document.querySelectorAll("#output .tok").length);
    assert(n < 500, `Esc stopped the generation (${n} tokens)`);
    assert(await ipage.evaluate(() => document.activeElement?.id === "prompt"), "focus stayed in the prompt");
  });

  // Attention is drawn over the prompt's tokens as the tokenizer splits them, whatever the typed text:
  // leading and trailing spaces, characters split over several tokens, a prompt longer than the context.
  await test("inspect-panel-spans", 240_000, async () => {
    const long = "The cat sat on the mat. ".repeat(200); // ~1400 tokens: generation keeps the last ones
    for (const [name, prompt] of [["spaces", "  Hello   world  "], ["unicode", "東京 ✨ naïve café 🙂!"], ["long", long]]) {
      await setControls(ipage, prompt, { ...GREEDY, maxNewTokens: 3 });
      await generateOnPage(ipage, 120_000);
      await ipage.evaluate(() => window.gpt2Demo.panel.select(2));
      await ipage.waitForFunction(() => window.gpt2Demo.panel.inspection && document.getElementById("inspect-status").textContent !== "Looking inside the model...",
        null, { timeout: 120_000 });
      const r = await ipage.evaluate(() => {
        const panel = window.gpt2Demo.panel;
        const ins = panel.inspection;
        const w = [...panel.weights()];
        const p = document.querySelector("#output .prompt");
        const ptoks = [...p.querySelectorAll(".ptok")].map((s) => ({ text: s.textContent, pos: s.dataset.pos.split(" ").map(Number), a: Number(s.style.getPropertyValue("--a")) }));
        const gen = [...document.querySelectorAll("#output .tok")].map((s) => Number(s.style.getPropertyValue("--a") || 0));
        return { w, ptoks, gen, shown: p.textContent, head: p.querySelector(".phead")?.textContent ?? "", spells: p.dataset.spells,
          dropped: ins.dropped, promptLen: ins.promptLen, T: ins.ids.length, status: document.getElementById("inspect-status").textContent };
      });
      const inPrompt = r.promptLen - r.dropped;
      // The page shows the typed prompt (its tokens spell it), every inspected prompt token in one span.
      assert(r.spells === "true" && r.shown === prompt, `${name}: shown ${JSON.stringify(r.shown.slice(0, 80))}`);
      const covered = r.ptoks.flatMap((t) => t.pos);
      assert(JSON.stringify(covered) === JSON.stringify([...Array(inPrompt).keys()]), `${name}: spans cover ${covered.length} of ${inPrompt} prompt tokens`);
      assert(r.ptoks.every((t) => !t.text.includes("\ufffd")), `${name}: a span holds half a character`);
      // Shading: a span's attention is the sum over its tokens, relative to the most attended span.
      const mass = r.ptoks.map((t) => t.pos.reduce((a, j) => a + r.w[j], 0));
      const genMass = r.w.slice(inPrompt);
      const top = Math.max(...mass, ...genMass);
      assert(maxDiff(r.ptoks.map((t) => t.a), mass.map((m) => m / top)) < 2e-3, `${name}: the prompt's shading follows the attention`);
      assert(maxDiff(r.gen.slice(0, genMass.length), genMass.map((m) => m / top)) < 2e-3, `${name}: the generated tokens' shading`);
      if (name === "spaces") assert(r.ptoks[0].text.startsWith(" ") && r.head === "", `${name}: ${JSON.stringify(r.ptoks.map((t) => t.text))}`);
      if (name === "unicode") assert(r.ptoks.some((t) => t.pos.length > 1), `${name}: no character spans several tokens`);
      if (name === "long") {
        assert(r.head.length > 0 && long.startsWith(r.head) && r.T === 1024, `${name}: head ${r.head.length} chars, T = ${r.T}`);
        assert(/only the last 1024/.test(r.status), `${name}: ${r.status}`);
      }
      log(`     ${name}: ${r.ptoks.length} prompt spans for ${inPrompt} tokens (${r.dropped} before the window), head ${r.head.length} chars`);
    }
  });

  await test("presets-and-validation", 120_000, async () => {
    await ipage.click("input[name=preset][value=greedy]");
    const g = await ipage.evaluate(() => ["temperature", "topK", "topP", "repetitionPenalty"].map((id) => document.getElementById(id).value));
    assert(JSON.stringify(g) === JSON.stringify(["0", "0", "1", "1"]), `Greedy sets the fields: ${g}`);
    assert(/Greedy/.test(await ipage.textContent("#preset-help")), "one line of help for the preset");
    await ipage.click("input[name=preset][value=creative]");
    assert((await ipage.inputValue("#temperature")) === "1.2", "Creative");
    await ipage.evaluate(() => (document.getElementById("advanced").open = true));
    await ipage.fill("#temperature", "0.5");
    assert(await ipage.isChecked("input[name=preset][value=custom]"), "editing a field makes it Custom");
    await ipage.fill("#temperature", "0.8");
    await ipage.fill("#topK", "40");
    await ipage.fill("#topP", "0.95");
    await ipage.fill("#repetitionPenalty", "1.1");
    assert(await ipage.isChecked("input[name=preset][value=balanced]"), "the Balanced values select Balanced");
    // An invalid value: shown next to the field, nothing is sent, focus goes to it.
    await ipage.fill("#topP", "2");
    assert(/top-p must be/.test(await ipage.textContent("#topP-error")), await ipage.textContent("#topP-error"));
    await ipage.evaluate(() => (document.getElementById("advanced").open = false));
    const before = requests.length;
    await ipage.click("#generate");
    await ipage.waitForTimeout(300);
    assert(await ipage.evaluate(() => document.body.dataset.state !== "generating" && document.activeElement?.id === "topP" &&
      document.getElementById("advanced").open), "not sent; Advanced opened on the bad field");
    assert(requests.length === before, "nothing requested");
    await ipage.fill("#topP", "0.95");
    assert((await ipage.textContent("#topP-error")) === "", "the message goes once fixed");
    // New seed each time: on by default after a reload; the seed used is shown and can be replayed.
    await ipage.reload({ timeout: 30_000 });
    await waitState(ipage, "idle", 30_000);
    assert(await ipage.isChecked("#newSeed"), "new seed each time is on by default");
    assert(await ipage.isChecked("input[name=preset][value=balanced]"), "Balanced by default");
    assert(await ipage.evaluate(() => document.getElementById("model").value) === "models/tiny-gpt2-f32/", "?model= picks the model");
    assert(!(await ipage.isHidden("#banner")), "the random-weights banner is shown for the test model");
    assert(/build\.sh serve --model gpt2/.test(await ipage.textContent("#banner")), "it says how to get a real model");
    await ipage.fill("#prompt", "Once upon a time");
    await ipage.evaluate(() => (document.getElementById("advanced").open = true));
    await ipage.fill("#maxNewTokens", "4");
    const a = await generateOnPage(ipage, 120_000);
    const seed = await ipage.inputValue("#seed");
    assert(new RegExp(`seed used: ${seed}`).test(await ipage.textContent("#seed-used")), "the seed used is shown");
    await ipage.fill("#seed", seed); // typing a seed uses it (and turns new seeds off)
    assert(!(await ipage.isChecked("#newSeed")), "typing a seed turns new seeds off");
    const b = await generateOnPage(ipage, 120_000);
    assert(JSON.stringify(a.ids) === JSON.stringify(b.ids), `the shown seed reproduces the text: ${a.ids} vs ${b.ids}`);
    // Copy and clear.
    await ictx.grantPermissions(["clipboard-read", "clipboard-write"]);
    await ipage.click("#copy");
    const copied = await ipage.evaluate(() => navigator.clipboard.readText());
    assert(copied === "Once upon a time" + b.text, `copied ${JSON.stringify(copied)}`);
    await ipage.click("#clear");
    assert((await ipage.evaluate(() => document.querySelectorAll("#output .tok").length)) === 0, "cleared");
    // An empty prompt: the API's notice is shown.
    await ipage.fill("#prompt", "");
    await generateOnPage(ipage, 120_000);
    assert(/empty prompt/i.test(await ipage.textContent("#notices")), `notice: ${await ipage.textContent("#notices")}`);
  });

  // Screenshots for people to look at (not compared): desktop and phone, with the panel open.
  await test("screenshots", 180_000, async () => {
    const dir = process.env.SCREENSHOT_DIR || path.join(os.tmpdir(), "gpt2-screenshots");
    fs.mkdirSync(dir, { recursive: true });
    for (const [name, size] of [["desktop", { width: 1280, height: 1000 }], ["phone", { width: 390, height: 844 }]]) {
      await ipage.setViewportSize(size);
      await ipage.fill("#prompt", reference.cases[1].text);
      await ipage.click("input[name=preset][value=greedy]");
      await ipage.fill("#maxNewTokens", "12");
      await generateOnPage(ipage, 120_000);
      await ipage.click("#output .tok[data-index='4']");
      await ipage.waitForFunction(() => document.getElementById("inspect-status").textContent === "" &&
        document.querySelectorAll("#attn-top li").length > 0, null, { timeout: 60_000 });
      await ipage.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
      await ipage.evaluate(() => document.getElementById("inspect").scrollIntoView());
      await ipage.screenshot({ path: path.join(dir, `${name}-panel.png`) });
      log(`     ${path.join(dir, `${name}.png`)}`);
    }
  });
} finally {
  await ictx.close().catch(() => {});
}
