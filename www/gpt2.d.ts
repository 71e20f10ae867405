// Types of the public API in gpt2.js (GPT-2 on WebGPU, in a Web Worker). Strict on purpose: every option
// object is closed, so a misspelled option (`temprature`) is a type error, not a silently ignored field.
// tests/types/ checks this file with `tsc --noEmit --strict` against an example that uses every option and
// one with a misspelled option that must fail.

/** What went wrong, in a word a program can switch on. `message` is always words to show people. */
export type GPT2ErrorKind =
  | "no-webgpu" // the browser offers no WebGPU (or no adapter)
  | "gpu" // the GPU refused something (device creation, a buffer, a pipeline)
  | "download" // a file could not be downloaded
  | "corrupt" // a file's size or SHA-256 differs from manifest.json
  | "package" // the package itself is malformed (manifest, config, tensors)
  | "aborted" // a load was cancelled through its signal
  | "wasm" // the WebAssembly module or the worker failed to start
  | "state" // the model was disposed, or is busy
  | "error" // anything else (a bad token id, ...)
  | "device-lost" // the GPU device was lost: dispose the model and load it again
  | "gpu-timeout" // a GPU wait ran past its deadline (a hung GPU): dispose the model and load it again
  | "too-large" // the model does not fit this GPU's limits
  | "invalid-option" // an option is not allowed: `option` names it (generation), the message says what it may be
  | "worker"; // the model's worker crashed: load the model again

/** Every error the API throws or rejects with. */
export declare class GPT2Error extends Error {
  constructor(kind: GPT2ErrorKind, message: string);
  readonly name: "GPT2Error";
  readonly kind: GPT2ErrorKind;
  /** With kind "invalid-option": the option (or the element's attribute) that is wrong. */
  readonly option?: string;
}

/** How one generation option is checked: its bounds and the words that describe what it may be. */
export interface OptionRange {
  /** Words for what the option may be ("a number above 0 and at most 1 (1 = off)"). */
  range: string;
  whole?: boolean;
  boolean?: boolean;
  min?: number;
  /** Exclusive lower bound. */
  above?: number;
  max?: number;
}

/** Every generation option with what it may be: gpt2.js checks options against this table before
 * sending anything; pages use it to check their fields. */
export declare const GENERATE_OPTIONS: Readonly<Record<Exclude<keyof GenerateOptions, "signal">, OptionRange>>;

/** What is wrong with `value` for the generation option `name` ("must be ..., got ..."), or null when it
 * is allowed (undefined is: it means the default). */
export declare function optionProblem(name: string, value: unknown): string | null;

/** Words for a page to show when `hasWebGPU()` is false. */
export declare const NO_WEBGPU_MESSAGE: string;
/** Words for a page to show when WebGPU exists but offers no adapter. */
export declare const NO_ADAPTER_MESSAGE: string;
/** The Cache API cache that holds verified package files. */
export declare const CACHE_NAME: string;
/** The values of the load option `tuning`: the kernel tunings (src/gpu/tuning.rs). */
export declare const TUNINGS: readonly ["gpu", "cpu", "swiftshader"];

/** Whether this browser exposes `navigator.gpu`. */
export declare function hasWebGPU(): boolean;

/** Whether a WebGPU adapter is a software one (SwiftShader, llvmpipe, WARP): "auto" does not use it. */
export declare function isSoftwareAdapter(adapter: { info?: object; isFallbackAdapter?: boolean }): boolean;

/** The engine `device` runs on in this browser: WebGPU for "auto" only on a hardware adapter. `why` says in
 * words why "auto" chose the CPU engine (else null). Rejects (kind "no-webgpu") for "webgpu" without the API. */
export declare function chooseDevice(device?: "auto" | "webgpu" | "cpu"): Promise<{ device: "webgpu" | "cpu"; why: string | null; adapter: unknown }>;

/** A step of a load: downloading a file, verifying its SHA-256, reading it from the cache, or uploading
 * tensors to the GPU. `loaded` and `total` are bytes of the whole package. */
export interface LoadProgress {
  phase: "downloading" | "verifying" | "cache" | "uploading";
  loaded: number;
  total: number;
  /** The package file being worked on ("" once every shard is uploaded). */
  file: string;
}

export interface LoadOptions {
  /** Called for each step of the download, verification and upload. */
  onProgress?: (progress: LoadProgress) => void;
  /** Aborting it cancels the load: `load()` rejects with kind "aborted". */
  signal?: AbortSignal;
  /** Called when the GPU device is lost later (also while idle), with an error of kind "device-lost". */
  onDeviceLost?: (error: GPT2Error) => void;
  /** Where the model runs: "auto" (default: WebGPU when the browser offers a hardware GPU adapter, else
   * the CPU engine, with no error; a software adapter such as SwiftShader counts as none), "webgpu" (an
   * error of kind "no-webgpu" without one) or "cpu" (wasm SIMD in the worker, one thread). */
  device?: "auto" | "webgpu" | "cpu";
  /** Force the shapes of the WebGPU kernels whatever the adapter (for tests and measurements, as
   * GPT2_TUNING does natively): "gpu" (GPUs), "cpu" (CPU adapters) or "swiftshader". Absent: chosen by
   * the adapter (`info.tuning` reports it). Another value rejects with kind "invalid-option" (`option`
   * "tuning"), as does any value with device "cpu"; where "auto" runs the CPU engine it is not used. */
  tuning?: "gpu" | "cpu" | "swiftshader";
}

export interface GenerateOptions {
  /** Tokens to generate at most (whole number from 1 to 1000000). Default 50. */
  maxNewTokens?: number;
  /** 0 = greedy (always the most likely token); > 0 samples, higher is more random. Default 0. */
  temperature?: number;
  /** Sample only from the k most likely tokens; 0 = off. Whole number >= 0. Default 0. */
  topK?: number;
  /** Sample only from the smallest set of tokens whose probabilities add up to p, in (0, 1]. Default 1. */
  topP?: number;
  /** > 1 discourages tokens already in the context (1 = off). Default 1. */
  repetitionPenalty?: number;
  /** The random seed for sampling (whole number >= 0): the same seed, prompt and options give the same text.
   * Default 0. */
  seed?: number;
  /** How many alternatives each piece lists (0 to 8). Default 5. */
  alternatives?: number;
  /** Stop at <|endoftext|> (default true). */
  stopAtEos?: boolean;
  /** Aborting it ends the generation at once (the piece being computed is dropped). */
  signal?: AbortSignal;
}

/** One of the most likely tokens at a step. */
export interface Alternative {
  tokenId: number;
  text: string;
  /** Probability under the sampling distribution (after temperature, top-k, top-p, penalty). */
  prob: number;
}

/** One generated token. */
export interface Piece {
  /** The new text (may be "" while a multi-byte character is incomplete). */
  text: string;
  tokenId: number;
  /** Probability of the chosen token. */
  prob: number;
  /** The most likely tokens at this step, most likely first. */
  alternatives: Alternative[];
  /** True on the last piece of the generation. */
  last: boolean;
  /** Milliseconds since the generation started. */
  ms: number;
}

/** What the latest `generate()` started with. */
export interface GenerationStart {
  /** Tokens of the prompt as given to the model (after truncation to the context). */
  promptTokens: number;
  /** Notices in words: the prompt was truncated, the prompt was empty. */
  notices: string[];
  /** The prompt's token ids as the model sees them (after truncation; [50256] for an empty prompt). */
  ids: number[];
}

export interface ModelConfig {
  vocabSize: number;
  nPositions: number;
  nEmbd: number;
  nLayer: number;
  nHead: number;
  nInner: number;
  params: number;
  /** The most tokens one `inspect` call takes (its attention, L x NH x T x T floats, is capped at 256 MiB). */
  maxInspectTokens: number;
}

export interface AdapterInfo {
  name: string;
  vendor: number;
  device: number;
  deviceType: string;
  backend: string;
  driver: string;
  driverInfo: string;
  /** The browser's GPUAdapterInfo, where it gives one. */
  browser?: { vendor: string; architecture: string; device: string; description: string };
}

export interface DeviceLimits {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
  maxStorageBuffersPerShaderStage: number;
  maxComputeWorkgroupStorageSize: number;
  maxComputeInvocationsPerWorkgroup: number;
  maxComputeWorkgroupsPerDimension: number;
}

/** `model.counters()`: totals since the load. */
export interface IoCounters {
  /** Command buffers submitted (one per batch of up to `info.tokensPerSubmit` decode steps). */
  submits: number;
  /** Results mapped back to the host (one per batch). */
  readbacks: number;
  readbackBytes: number;
  /** Compute pipelines built on the device (0 on the CPU engine): all a step needs are built by the load,
   * so a generation leaves it unchanged. */
  pipelines: number;
}

/** `model.info.loadPhases`: where the load's time went, in ms, in the worker. */
export interface LoadPhases {
  /** Waiting for the WebAssembly module. */
  wasmMs: number;
  /** manifest.json and tokenizer.json, downloaded or from the cache, verified. */
  filesMs: number;
  /** The manifest and tokenizer parsed in WebAssembly, then (WebGPU) the adapter asked for. */
  beginMs: number;
  /** requestDevice; null on the CPU engine. */
  deviceMs: number | null;
  /** The compute pipelines the adapter's tuning uses, compiled; null on the CPU engine. */
  pipelinesMs: number | null;
  /** The shards, downloaded or read from the cache, and verified. */
  shardsMs: number;
  /** The shards pushed into the engine (checked, the weights uploaded or moved into place). */
  uploadMs: number;
  /** The KV cache, activations and the dispatch list. */
  finishMs: number;
  totalMs: number;
}

/** `model.info`: what was loaded and where it runs. */
export interface ModelInfo {
  /** The model's name from manifest.json (e.g. "gpt2"). */
  model: string;
  /** "f32" | "f16" | "q8" | "q4". */
  quantization: string;
  packageBytes: number;
  config: ModelConfig;
  /** The engine the model runs on. */
  device: "webgpu" | "cpu";
  /** Bytes of the GPU buffers the model holds (weights, KV cache, activations); 0 on the CPU engine. */
  gpuBytes: number;
  /** In words, e.g. "cpu (simd128, 1 thread)". */
  deviceName: string;
  /** The WebGPU adapter; null on the CPU engine. */
  adapter: AdapterInfo | null;
  /** The WebGPU device's limits; null on the CPU engine. */
  limits: DeviceLimits | null;
  /** The CPU engine's SIMD path and threads; absent on WebGPU. */
  cpu?: { simd: string; threads: number };
  /** WebGPU only: how the kernels are shaped for this adapter ("gpu" for hardware, "cpu" for software
   *  adapters, "swiftshader" for Chromium's; or as the load option `tuning` forced it), as `gpt2 bench
   *  --json` prints it. */
  tuning?: { kind: "gpu" | "cpu" | "swiftshader"; [field: string]: string | number | boolean };
  /** The KV cache's format in use: "f16" pairs (q8, q4, f16 weights on WebGPU) or "f32". */
  kvFormat: "f16" | "f32";
  /** Decode steps one submit (and one readback) holds; 1 on the CPU engine. */
  tokensPerSubmit: number;
  /** Where the load's time went, in ms. */
  loadPhases: LoadPhases;
  /** WebGPU only: dispatches a decode step records per transformer block, and in all. */
  dispatchesPerLayer?: number;
  dispatchesPerToken?: number;
  /** Why "auto" chose the CPU engine, in words (e.g. "this browser does not offer WebGPU"); else null. */
  fallbackReason: string | null;
  /** The worker's WebAssembly memory after loading, in bytes (on the CPU engine it holds the weights). */
  wasmMemoryBytes: number;
}

export interface InspectOptions {
  /** The position (0-based token index) the logit lens is taken at. Default: the last. */
  position?: number;
}

/** One of the likeliest tokens of a lens row. */
export interface LensToken {
  tokenId: number;
  text: string;
  /** softmax of the lens row. */
  prob: number;
}

/** Inside the model for one text: every block's attention and the logit lens. */
export interface Inspection {
  /** The token ids inspected (T of them). */
  ids: number[];
  /** n_layer. */
  layers: number;
  /** n_head. */
  heads: number;
  /** The position the lens was taken at. */
  position: number;
  /** Softmax attention probabilities, [layers, heads, T, T]: row = query position, column = key position
   * (zero above the diagonal). */
  attention: Float32Array;
  /** The logit lens at `position`: ln_f(residual stream after block l) @ wte^T, [layers, V]. Its last row
   * is the model's logits. */
  lens: Float32Array;
  /** The text of each token of `ids`. */
  tokens: string[];
  /** The decoded text of `ids`. */
  text: string;
  /** Where each token of `ids` lies in `text`, [start, end) in UTF-16 units; tokens that only decode
   * together (a character split over several tokens) share one span. */
  spans: [number, number][];
  /** The 5 likeliest tokens of each lens row, likeliest first: [layers][5]. */
  lensTop: LensToken[][];
}

/** A loaded model: from `load()`. */
export interface GPT2Model {
  readonly info: ModelInfo;
  /** Notices from the load in words (offline copy used, storage full, ...). */
  readonly notices: string[];
  /** The package URL, absolute. */
  readonly url: string;
  /** Words, once the GPU device is lost (then generate() fails: dispose and load again); else null. */
  readonly lost: string | null;
  /** Called with an error of kind "device-lost" when the GPU device is lost. */
  onDeviceLost: ((error: GPT2Error) => void) | null;
  /** Set when a generation starts. */
  readonly lastStart?: GenerationStart;
  /** Stream the continuation of `prompt`, one piece per token. Breaking out of the loop, calling stop() or
   * aborting `options.signal` ends it at once. Concurrent calls are queued: each gives the text it would
   * give alone. A bad option rejects with kind "invalid-option" before anything is sent. */
  generate(prompt: string, options?: GenerateOptions): AsyncGenerator<Piece, void, undefined>;
  /** Attention of every block and head and the logit lens, for a text or token ids (at most
   * `info.config.maxInspectTokens`: the attention is capped at 256 MiB). A separate pass, on either
   * engine: a generation in progress keeps its place. Bad input rejects with kind "invalid-option"
   * (options), "too-large" (more tokens than maxInspectTokens) or "error" (token ids, position past the end). */
  inspect(textOrIds: string | readonly number[], options?: InspectOptions): Promise<Inspection>;
  /** Stop the running generation: its loop ends at once. Queued generations still run. */
  stop(): void;
  /** Free the GPU memory and end the worker. Safe at any time: running and queued generations end with
   * an error of kind "state". The model is unusable afterwards. */
  dispose(): void;
  /** The worker's WebAssembly memory in bytes (it only grows: this is its peak) and the bytes of the GPU
   * buffers the model holds (0 on the CPU engine). */
  memory(): Promise<{ wasmBytes: number; gpuBytes: number }>;
  /** What the engine has submitted to the GPU and read back since the load (all 0 on the CPU engine): the
   * difference over a generation, divided by its tokens, gives `gpt2 bench --json`'s submits_per_token,
   * readbacks_per_token and readback_bytes_per_token. Answered between two steps of a generation. */
  counters(): Promise<IoCounters>;
  /** Destroys the GPU device, as a driver reset would: for testing a page's recovery. */
  loseDeviceForTesting(): void;
  /** The deadline of the worker's GPU waits in ms (0: the default, 300 s): for testing a GPU that hangs. */
  setGpuWaitLimitForTesting(ms: number): void;
}

/** Download (or take from the cache), verify and upload the model package at `url` (a folder with
 * manifest.json, relative to the page). */
export declare function load(url: string | URL, options?: LoadOptions): Promise<GPT2Model>;

/** Delete every cached file of the package at `url`. Resolves to the number of bytes deleted. */
export declare function deleteCached(url: string | URL): Promise<number>;

/** Whether every file of the package at `url` is in the cache (so loading it works offline). */
export declare function isCached(url: string | URL): Promise<boolean>;
