// Uses every option and every part of the API as a user of the npm package would. Must type-check with
// `tsc --noEmit --strict` (run.mjs).
import {
  load, isCached, deleteCached, hasWebGPU, GPT2Error, NO_WEBGPU_MESSAGE, NO_ADAPTER_MESSAGE, CACHE_NAME, TUNINGS,
  type GPT2Model, type GenerateOptions, type Piece, type Inspection, type LoadProgress, type GPT2ErrorKind,
  type IoCounters, type LoadPhases,
} from "gpt2-webgpu";
import { GPT2Generate } from "gpt2-webgpu/gpt2-element.js";
import "gpt2-webgpu/element";

export async function everything(): Promise<string> {
  if (!hasWebGPU()) return NO_WEBGPU_MESSAGE + NO_ADAPTER_MESSAGE + CACHE_NAME;
  const controller = new AbortController();
  const model: GPT2Model = await load("models/gpt2-q8/", {
    onProgress: ({ phase, loaded, total, file }: LoadProgress) => console.log(phase, loaded, total, file),
    signal: controller.signal,
    onDeviceLost: (e: GPT2Error) => console.log(e.kind, e.message),
  });
  const opts: GenerateOptions = {
    maxNewTokens: 40, temperature: 0.8, topK: 40, topP: 0.95, repetitionPenalty: 1.1, seed: 7,
    alternatives: 5, stopAtEos: true, signal: controller.signal,
  };
  let text = "";
  for await (const piece of model.generate("Once upon a time", opts)) {
    const p: Piece = piece;
    text += p.text;
    const best = p.alternatives[0];
    if (best) console.log(best.tokenId, best.text, best.prob, p.tokenId, p.prob, p.last, p.ms);
  }
  console.log(model.lastStart?.promptTokens, model.lastStart?.notices.join(";"), model.notices, model.url, model.lost);
  const { model: name, quantization, packageBytes, config, adapter, limits } = model.info;
  console.log(name, quantization, packageBytes, config.nLayer * config.nHead, model.info.device, adapter?.name, adapter?.browser?.vendor,
    limits?.maxBufferSize);
  const io: IoCounters = await model.counters();
  const phases: LoadPhases = model.info.loadPhases;
  console.log(io.submits, io.readbacks, io.readbackBytes, model.info.kvFormat, model.info.tokensPerSubmit, phases.totalMs, phases.pipelinesMs ?? 0);
  const ins: Inspection = await model.inspect("Hello world", { position: 1 });
  const byIds: Inspection = await model.inspect([15496, 995]);
  const T = ins.ids.length;
  const a: number | undefined = ins.attention[((0 * ins.heads + 0) * T + (T - 1)) * T];
  const l: number | undefined = ins.lens[(ins.layers - 1) * config.vocabSize];
  console.log(a, l, ins.position, byIds.ids, ins.tokens.join(""), ins.lensTop[0]?.[0]?.text, model.lastStart?.ids.length);
  model.stop();
  model.onDeviceLost = null;
  model.loseDeviceForTesting();
  model.dispose();
  console.log(await isCached("models/gpt2-q8/"), await deleteCached(new URL("https://example.com/m/")));
  try {
    await load("nowhere/", { device: "webgpu", tuning: TUNINGS[0] });
  } catch (e) {
    if (e instanceof GPT2Error) {
      const k: GPT2ErrorKind = e.kind;
      if (k === "no-webgpu" || k === "device-lost" || k === "too-large" || k === "aborted") return e.message;
    }
  }
  const el = document.createElement("gpt2-generate");
  const same: GPT2Generate = el;
  same.addEventListener("token", (ev) => console.log(ev.detail.piece.text));
  same.addEventListener("done", (ev) => console.log(ev.detail.text, ev.detail.tokens, ev.detail.stopped));
  same.addEventListener("error", (ev) => console.log(ev.detail.kind, ev.detail.message));
  same.addEventListener("progress", (ev) => console.log(ev.detail.loaded));
  const shared: GPT2Model = await same.model;
  console.log(shared.info.config.vocabSize, same.modelUrl);
  same.stop();
  return text + (await same.generate());
}
