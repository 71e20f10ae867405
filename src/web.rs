//! The browser binding (wasm32 only): one `WasmModel` owns the GPU, the model, the tokenizer and the
//! generation in progress. `www/worker.js` drives it from a Web Worker; `www/gpt2.js` is the public API.
//!
//! Every error reaches JavaScript as an `Error` whose message is our typed [`Error`]'s Display: words the
//! page can show as they are.
//!
//! Async methods return plain `Promise`s over `'static` futures that hold an `Rc` of the state, never a
//! borrow of `self`: so `stop()` (or `info()`) can be called while a step is running, and the RefCell is
//! never borrowed across an `.await` (the model is taken out for the step and put back after).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Promise, Uint8Array};
use serde::Deserialize;
use serde_json::json;
use wasm_bindgen::prelude::*;

use crate::engine::cpu::CpuUploader;
use crate::engine::{AnyEngine, Device, Engine};
use crate::error::Error;
use crate::text::generate::{GenerateOptions, Generation};
use crate::gpu::{Gpu, Kernel, TuningKind};
use crate::model::{Model, ModelUploader};
use crate::sampling::SamplingParams;
use crate::package::{verify_file, Manifest, PackageStream, MANIFEST_FILE};
use crate::text::tokenizer::Tokenizer;

#[wasm_bindgen(start)]
pub fn init() {
    console_error_panic_hook::set_once();
}

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

/// serde_json -> a plain JS object (JSON.parse: no extra dependency, and it is only a few small objects).
fn to_js(v: &serde_json::Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).unwrap_or(JsValue::NULL)
}

/// Generation options as the page passes them (camelCase, all optional).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct JsGenerateOptions {
    max_new_tokens: Option<f64>,
    temperature: Option<f32>,
    top_k: Option<f64>,
    top_p: Option<f32>,
    repetition_penalty: Option<f32>,
    seed: Option<f64>,
    alternatives: Option<f64>,
    stop_at_eos: Option<bool>,
}

impl JsGenerateOptions {
    fn parse(v: &JsValue) -> Result<GenerateOptions, Error> {
        let o: JsGenerateOptions = if v.is_undefined() || v.is_null() {
            JsGenerateOptions::default()
        } else {
            let s = js_sys::JSON::stringify(v)
                .map_err(|_| Error::InvalidArgument("generation options must be a plain object".into()))?;
            serde_json::from_str(&String::from(s))
                .map_err(|e| Error::InvalidArgument(format!("generation options: {e}")))?
        };
        let whole = |name: &str, x: f64| -> Result<u64, Error> {
            if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= 9_007_199_254_740_991.0 {
                Ok(x as u64)
            } else {
                Err(Error::InvalidArgument(format!("{name} must be a whole number >= 0, got {x}")))
            }
        };
        let d = GenerateOptions::default();
        let sampling = SamplingParams {
            temperature: o.temperature.unwrap_or(0.0),
            top_k: o.top_k.map(|x| whole("topK", x)).transpose()?.unwrap_or(0).min(u32::MAX as u64) as u32,
            top_p: o.top_p.unwrap_or(1.0),
            repetition_penalty: o.repetition_penalty.unwrap_or(1.0),
            seed: o.seed.map(|x| whole("seed", x)).transpose()?.unwrap_or(0),
            alternatives: o.alternatives.map(|x| whole("alternatives", x)).transpose()?.unwrap_or(5).min(64) as u32,
        };
        sampling.validate()?;
        Ok(GenerateOptions {
            max_new_tokens: o.max_new_tokens.map(|x| whole("maxNewTokens", x)).transpose()?.map_or(d.max_new_tokens, |x| x as usize),
            sampling,
            stop_at_eos: o.stop_at_eos.unwrap_or(d.stop_at_eos),
        })
    }
}

struct State {
    /// None while a step has it (between `take` and put back) or after `dispose`.
    model: Option<AnyEngine>,
    generation: Option<Generation>,
    /// Set by `stop()`, also while a step is running (when `generation` is out); cleared by `start()`.
    stopped: bool,
}

struct Loader {
    tok: Tokenizer,
    stream: PackageStream,
    uploader: Uploader,
}

/// Where the tensors go as they arrive: the GPU, or the CPU engine (moved into place, no copy).
enum Uploader {
    Gpu(ModelUploader),
    Cpu(CpuUploader),
}

/// A model being loaded shard by shard: from `WasmModel.beginLoad`. After any error it is spent (start
/// again with `beginLoad`): nothing half-loaded can be used.
#[wasm_bindgen]
pub struct WasmLoader {
    inner: Option<Loader>,
}

#[wasm_bindgen]
impl WasmLoader {
    /// The next shard (manifest order): checked (size, SHA-256), then every tensor it completes is
    /// uploaded. The bytes are not kept beyond the part of a tensor that continues in the next shard.
    /// `sha256`: the hex SHA-256 the caller computed over exactly these bytes (the worker's WebCrypto
    /// check), compared with the manifest's instead of hashing them again in wasm; absent: hashed here.
    #[wasm_bindgen(js_name = pushShard)]
    pub fn push_shard(&mut self, bytes: Uint8Array, sha256: Option<String>) -> Result<(), JsValue> {
        let Some(mut l) = self.inner.take() else { return Err(js_err(SPENT)) };
        let i = l.stream.shards_pushed();
        // Copied from the JS array straight into the stream's buffer (one copy of the shard in wasm memory).
        l.stream.push_shard_from(i, bytes.length() as usize, sha256.as_deref(), |dst| bytes.copy_to(dst)).map_err(js_err)?;
        while let Some((spec, data)) = l.stream.next_tensor().map_err(js_err)? {
            match &mut l.uploader {
                Uploader::Gpu(u) => u.push(&spec, data),
                Uploader::Cpu(u) => u.push(&spec, data),
            }
            .map_err(js_err)?;
        }
        self.inner = Some(l);
        Ok(())
    }

    /// Once every shard is in: the KV cache, activations and dispatch list. Resolves to a `WasmModel`.
    pub fn finish(&mut self) -> Promise {
        let inner = self.inner.take();
        wasm_bindgen_futures::future_to_promise(async move {
            let Loader { tok, mut stream, uploader } = inner.ok_or_else(|| js_err(SPENT))?;
            stream.finish().map_err(js_err)?;
            // Before the KV cache is allocated: it can take the buffer's place in wasm memory.
            stream.release_buffer();
            let model = match uploader {
                Uploader::Gpu(u) => AnyEngine::Gpu(u.finish().await.map_err(js_err)?),
                // One thread in the browser (no COOP/COEP needed).
                Uploader::Cpu(u) => AnyEngine::Cpu(u.finish(1).map_err(js_err)?),
            };
            let info = model_info(&stream.manifest().manifest, &model);
            Ok(WasmModel {
                tok: Rc::new(tok),
                state: Rc::new(RefCell::new(State { model: Some(model), generation: None, stopped: false })),
                info,
            }
            .into())
        })
    }
}

/// wasm32 addresses 4 GiB at most (Chromium and Firefox allow a memory that large; Safari may give less,
/// which the allocation failure the worker catches then reports).
const WASM_MEMORY_LIMIT: u64 = 4 << 30;

/// Refuse, in words, a model that cannot fit the CPU engine's wasm memory (see `cpu::memory_needed`).
fn check_wasm_memory(valid: &crate::package::ValidManifest) -> Result<(), Error> {
    let m = &valid.manifest;
    let shard = m.shards.iter().map(|s| s.bytes).max().unwrap_or(0);
    let need = crate::engine::cpu::memory_needed(&valid.config, m.total_bytes, shard);
    let in_use = core::arch::wasm32::memory_size(0) as u64 * 65536;
    if in_use + need <= WASM_MEMORY_LIMIT {
        return Ok(());
    }
    let gb = |b: u64| b as f64 / (1u64 << 30) as f64;
    let instead = match valid.quantization {
        crate::quant::WeightFormat::F32 | crate::quant::WeightFormat::F16 => "a more compact quantization (q8 or q4) or a smaller size",
        _ => "a smaller size",
    };
    Err(Error::OutOfMemory(format!(
        "{} ({}) needs about {:.1} GB on the CPU engine, but a browser gives WebAssembly at most {:.0} GB (this page already uses {} MB of it). Pick {instead}, or use a browser with WebGPU",
        m.model,
        valid.quantization.name(),
        gb(need),
        gb(WASM_MEMORY_LIMIT),
        in_use >> 20,
    )))
}

const SPENT: &str = "this model load failed or already finished: load the model again";

/// What `WasmModel.info()` reports: `device` is "webgpu" or "cpu"; `adapter` and `limits` are null on
/// the CPU engine, which reports `cpu: {simd, threads}` instead.
fn model_info(manifest: &Manifest, model: &AnyEngine) -> serde_json::Value {
    let cfg = model.config();
    let common = json!({
        "model": manifest.model,
        "quantization": model.format().name(),
        "packageBytes": manifest.total_bytes,
        "deviceName": model.device_name(),
        // The KV cache's format in use ("f16" pairs or "f32") and the decode steps one submit holds:
        // `gpt2 bench --json`'s kv_format and tokens_per_submit.
        "kvFormat": model.kv_format().name(),
        "tokensPerSubmit": model.tokens_per_submit(),
        "config": {
            "vocabSize": cfg.vocab_size, "nPositions": cfg.n_positions, "nEmbd": cfg.n_embd,
            "nLayer": cfg.n_layer, "nHead": cfg.n_head, "nInner": cfg.n_inner, "params": cfg.n_params(),
            "maxInspectTokens": model.max_inspect_tokens(),
        },
    });
    let mut out = match model {
        AnyEngine::Gpu(m) => gpu_info(m),
        AnyEngine::Cpu(m) => json!({
            "device": "cpu",
            "gpuBytes": 0,
            "adapter": null,
            "limits": null,
            "cpu": { "simd": m.simd().name(), "threads": m.threads() },
        }),
    };
    if let (Some(o), Some(c)) = (out.as_object_mut(), common.as_object()) {
        o.extend(c.clone());
    }
    out
}

fn gpu_info(model: &Model) -> serde_json::Value {
    let gpu = model.gpu();
    let a = &gpu.info.adapter;
    let l = &gpu.info.limits;
    let (per_layer, per_token) = model.dispatch_counts();
    json!({
        "device": "webgpu",
        "gpuBytes": model.gpu_bytes(),
        // How the kernels are shaped on this adapter (gpu/tuning.rs) and what a decode step records: the
        // same fields `gpt2 bench --json` prints, for tests/browser/bench.mjs.
        "tuning": serde_json::from_str::<serde_json::Value>(&gpu.tuning.to_json()).unwrap_or(serde_json::Value::Null),
        "dispatchesPerLayer": per_layer,
        "dispatchesPerToken": per_token,
        "adapter": {
            "name": a.name, "vendor": a.vendor, "device": a.device, "deviceType": format!("{:?}", a.device_type),
            "backend": format!("{:?}", a.backend), "driver": a.driver, "driverInfo": a.driver_info,
        },
        "limits": {
            "maxBufferSize": l.max_buffer_size,
            "maxStorageBufferBindingSize": l.max_storage_buffer_binding_size,
            "maxStorageBuffersPerShaderStage": l.max_storage_buffers_per_shader_stage,
            "maxComputeWorkgroupStorageSize": l.max_compute_workgroup_storage_size,
            "maxComputeInvocationsPerWorkgroup": l.max_compute_invocations_per_workgroup,
            "maxComputeWorkgroupsPerDimension": l.max_compute_workgroups_per_dimension,
        },
    })
}

/// A loaded model in the browser. Build with `WasmModel.beginLoad(...)`, then `WasmLoader`.
#[wasm_bindgen]
pub struct WasmModel {
    tok: Rc<Tokenizer>,
    state: Rc<RefCell<State>>,
    info: serde_json::Value,
}

#[wasm_bindgen]
impl WasmModel {
    /// Start loading a package: check the manifest (completely: see `Manifest::parse`) and tokenizer.json
    /// (size, SHA-256), make the GPU device. Then push the shards, in manifest order, one at a time
    /// (`WasmLoader.pushShard`): each is checked and its tensors go to the GPU as they complete, so only
    /// about one shard and one tensor are ever held here. `WasmLoader.finish()` gives the model.
    /// `device`: "webgpu" (an error without an adapter), "cpu", or "auto" (any adapter WebGPU offers, else
    /// the CPU engine). worker.js resolves the API's "auto" itself before calling (it can read the
    /// browser's adapter info, and prefers the CPU engine to a software adapter), so it passes webgpu or cpu.
    /// On the CPU engine the model's size is checked first against what wasm32 can address (4 GiB): a
    /// model too big is refused in words before any shard is downloaded.
    /// `tuning`: "gpu", "cpu" or "swiftshader" forces the kernels' shapes on WebGPU whatever the adapter
    /// (gpu/tuning.rs, as GPT2_TUNING does natively; absent: by the adapter). It shapes GPU kernels only,
    /// so with the "cpu" device it is refused; with "auto" it applies where a GPU is used.
    #[wasm_bindgen(js_name = beginLoad)]
    pub async fn begin_load(
        manifest_json: Uint8Array,
        tokenizer_json: Uint8Array,
        device: Option<String>,
        tuning: Option<String>,
    ) -> Result<WasmLoader, JsValue> {
        let device = Device::parse(device.as_deref().unwrap_or("auto")).map_err(js_err)?;
        let tuning = tuning.as_deref().map(|t| TuningKind::parse_setting("tuning", t)).transpose().map_err(js_err)?;
        if tuning.is_some() && device == Device::Cpu {
            return Err(js_err(Error::InvalidArgument("tuning shapes the WebGPU kernels: the CPU engine has none to shape".into())));
        }
        let valid = Manifest::parse(&manifest_json.to_vec(), MANIFEST_FILE).map_err(js_err)?;
        let tokenizer_json = tokenizer_json.to_vec();
        verify_file(&valid.manifest.tokenizer, &tokenizer_json, &valid.manifest.tokenizer.file).map_err(js_err)?;
        let tok = Tokenizer::from_bytes(&tokenizer_json).map_err(js_err)?;
        // The device compiles the linear kernels for the package's formats now, with the others, before the
        // shards download (Gpu::for_weights).
        let formats = crate::weights::matrix_formats(valid.quantization);
        let gpu = match device {
            Device::Cpu => None,
            Device::Gpu => Some(Gpu::for_weights(tuning, &formats).await.map_err(js_err)?),
            // In a browser any adapter WebGPU offers is used: the browser chose it. Only a missing adapter or
            // device falls back here: the pipelines compile while the shards download, so one the browser
            // refuses is an error at `finish` (gpt2.js decides "auto" before this, by the adapter).
            Device::Auto => Gpu::for_weights(tuning, &formats).await.ok(),
        };
        if gpu.is_none() {
            check_wasm_memory(&valid).map_err(js_err)?;
        }
        // wasm32 is single-threaded here: the Arc (ModelUploader's type, shared with native) is never sent.
        #[allow(clippy::arc_with_non_send_sync)]
        let uploader = match gpu {
            Some(gpu) => Uploader::Gpu(ModelUploader::new(Arc::new(gpu), valid.config.clone(), valid.quantization).map_err(js_err)?),
            None => Uploader::Cpu(CpuUploader::new(valid.config.clone(), valid.quantization).map_err(js_err)?),
        };
        Ok(WasmLoader { inner: Some(Loader { tok, stream: PackageStream::new(valid), uploader }) })
    }

    /// Adapter (name, backend), model config, quantization and device limits, as a plain object.
    pub fn info(&self) -> JsValue {
        to_js(&self.info)
    }

    /// Begin a generation (replacing any in progress). Returns `{promptTokens, notices}`.
    pub fn start(&self, prompt: &str, opts: JsValue) -> Result<JsValue, JsValue> {
        let opts = JsGenerateOptions::parse(&opts).map_err(js_err)?;
        let mut st = self.state.borrow_mut();
        let cfg = match &st.model {
            Some(m) => m.config().clone(),
            None => return Err(js_err("the model is busy or was disposed: wait for the current step to finish or load it again")),
        };
        let g = Generation::new(&self.tok, &cfg, prompt, opts).map_err(js_err)?;
        let out = json!({ "promptTokens": g.prompt_tokens(), "promptIds": g.prompt_ids(), "notices": g.notices() });
        st.generation = Some(g);
        st.stopped = false;
        Ok(to_js(&out))
    }

    /// Run one step. Resolves to `{text, tokenId, prob, alternatives: [{tokenId, text, prob}], last}`, or
    /// `null` when the generation is finished or stopped.
    pub fn next(&self) -> Promise {
        let state = self.state.clone();
        let tok = self.tok.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let (mut model, mut generation) = {
                let mut st = state.borrow_mut();
                if st.stopped {
                    // Drop the batch in flight and rewind the engine to the last piece handed out.
                    let st = &mut *st;
                    if let (Some(g), Some(m)) = (st.generation.as_mut(), st.model.as_mut()) {
                        g.stop();
                        g.finish(m);
                    }
                    return Ok(JsValue::NULL);
                }
                let Some(generation) = st.generation.take() else { return Ok(JsValue::NULL) };
                let Some(model) = st.model.take() else {
                    st.generation = Some(generation);
                    return Err(js_err("the model is busy (another step is running) or was disposed"));
                };
                (model, generation)
            };
            let r = generation.next(&mut model, &tok).await;
            {
                let mut st = state.borrow_mut();
                st.model = Some(model);
                if st.stopped {
                    generation.stop();
                }
                st.generation = Some(generation);
            }
            match r.map_err(js_err)? {
                None => Ok(JsValue::NULL),
                Some(p) => {
                    let alts: Vec<_> = p
                        .alternatives
                        .iter()
                        .map(|a| json!({ "tokenId": a.token, "text": a.text, "prob": a.prob }))
                        .collect();
                    Ok(to_js(&json!({
                        "text": p.text, "tokenId": p.token, "prob": p.prob, "alternatives": alts, "last": p.last,
                    })))
                }
            }
        })
    }

    /// Attention of every block and head and the logit lens at `position` (default: the last token) for
    /// `input`, a string or an array of token ids, run from position 0 in a pass of its own: the KV cache
    /// and a generation in progress keep their place. Resolves to `{ids, layers, heads, position,
    /// attention: Float32Array [L, NH, T, T], lens: Float32Array [L, V]}`.
    pub fn inspect(&self, input: JsValue, position: Option<f64>) -> Promise {
        let state = self.state.clone();
        let tok = self.tok.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let ids: Vec<u32> = if let Some(text) = input.as_string() {
                tok.encode(&text).map_err(js_err)?
            } else if js_sys::Array::is_array(&input) {
                js_sys::Array::from(&input)
                    .iter()
                    .map(|v| match v.as_f64() {
                        Some(x) if x.is_finite() && x >= 0.0 && x.fract() == 0.0 && x <= u32::MAX as f64 => Ok(x as u32),
                        _ => Err(js_err(format!("token ids must be whole numbers >= 0, got {v:?}"))),
                    })
                    .collect::<Result<_, _>>()?
            } else {
                return Err(js_err("inspect takes a text or an array of token ids"));
            };
            let position = match position {
                None => None,
                Some(p) if p.is_finite() && p >= 0.0 && p.fract() == 0.0 => Some(p as usize),
                Some(p) => return Err(js_err(format!("position must be a whole number >= 0, got {p}"))),
            };
            let Some(mut model) = state.borrow_mut().model.take() else {
                return Err(js_err("the model is busy (a step is running) or was disposed"));
            };
            let r = model.inspect(&ids, position).await;
            state.borrow_mut().model = Some(model);
            let r = r.map_err(js_err)?;
            let out = js_sys::Object::new();
            let set = |k: &str, v: &JsValue| js_sys::Reflect::set(&out, &JsValue::from_str(k), v).map(|_| ());
            set("ids", &r.ids.iter().map(|&i| JsValue::from(i)).collect::<js_sys::Array>())?;
            set("layers", &JsValue::from(r.layers as u32))?;
            set("heads", &JsValue::from(r.heads as u32))?;
            set("position", &JsValue::from(r.position as u32))?;
            set("attention", &js_sys::Float32Array::from(&r.attention[..]))?;
            set("lens", &js_sys::Float32Array::from(&r.lens[..]))?;
            Ok(out.into())
        })
    }

    /// What the engine has submitted to the GPU and read back since the load, `{submits, readbacks,
    /// readbackBytes}` (counted by the engine on every target; all 0 on the CPU engine): the bench divides
    /// the difference over a generation by its tokens, as `gpt2 bench --json` does; and `pipelines`, the
    /// compute pipelines the device has built (the load builds every one a step dispatches, so a
    /// generation leaves it unchanged). Fails while a step has the model (the worker asks between steps).
    #[wasm_bindgen(js_name = ioCounts)]
    pub fn io_counts(&self) -> Result<JsValue, JsValue> {
        let st = self.state.borrow();
        let Some(m) = st.model.as_ref() else {
            return Err(js_err("the model is busy (a step is running) or was disposed"));
        };
        let io = m.io_counts();
        let pipelines = match m {
            AnyEngine::Gpu(g) => g.gpu().compiled().len(),
            AnyEngine::Cpu(_) => 0,
        };
        Ok(to_js(&json!({ "submits": io.submits, "readbacks": io.readbacks, "readbackBytes": io.readback_bytes, "pipelines": pipelines })))
    }

    /// End the current generation: the next `next()` resolves to null (a step already running finishes).
    pub fn stop(&self) {
        let mut st = self.state.borrow_mut();
        st.stopped = true;
        if let Some(g) = st.generation.as_mut() {
            g.stop();
        }
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>, JsValue> {
        self.tok.encode(text).map_err(js_err)
    }

    pub fn decode(&self, ids: Vec<u32>) -> Result<String, JsValue> {
        self.tok.decode(&ids).map_err(js_err)
    }

    /// Free the GPU buffers now (the object is unusable afterwards).
    pub fn dispose(&self) {
        let mut st = self.state.borrow_mut();
        st.generation = None;
        st.model = None;
    }
}

/// Check a package's manifest.json completely (`Manifest::parse`: format, version, config, plain file
/// names, hashes, every tensor) and return the files it lists, `{tokenizer, shards: [{file, bytes,
/// sha256}], totalBytes}`: the worker uses nothing of a manifest before this passed.
/// The deadline of every later GPU wait in this worker, in ms (0: back to the default, 300 s): past it a
/// generation or load ends with `GpuTimeout` in words instead of hanging (gpu/mod.rs `wait_limit`).
#[wasm_bindgen(js_name = setGpuWaitLimit)]
pub fn set_gpu_wait_limit(ms: f64) {
    let limit = (ms.is_finite() && ms > 0.0).then(|| std::time::Duration::from_secs_f64(ms / 1000.0));
    crate::gpu::set_wait_limit(limit);
}

#[wasm_bindgen(js_name = checkManifest)]
pub fn check_manifest(manifest_json: Uint8Array) -> Result<JsValue, JsValue> {
    let valid = Manifest::parse(&manifest_json.to_vec(), MANIFEST_FILE).map_err(js_err)?;
    let m = &valid.manifest;
    let file = |e: &crate::package::FileEntry| json!({ "file": e.file, "bytes": e.bytes, "sha256": e.sha256 });
    Ok(to_js(&json!({
        "tokenizer": file(&m.tokenizer),
        "shards": m.shards.iter().map(file).collect::<Vec<_>>(),
        "totalBytes": m.total_bytes,
    })))
}

/// Tokenize with the model-independent tokenizer (for tests of the wasm tokenizer against the fixtures).
#[wasm_bindgen(js_name = encodeWith)]
pub fn encode_with(tokenizer_json: Uint8Array, text: &str) -> Result<Vec<u32>, JsValue> {
    Tokenizer::from_bytes(&tokenizer_json.to_vec()).map_err(js_err)?.encode(text).map_err(js_err)
}

/// Every kernel of the table (gpu/kernels.rs), as this build hands it to the browser: `[{name, entryPoint,
/// parts, source, layout, variants}]`. `source` is the WGSL assembled at compile time (its common parts and
/// its own file), `layout` the bind group layout entries the load asks for (warm.rs, as wgpu builds them),
/// `variants` the pipeline-overridable constants of each pipeline the kernel compiles to (`Kernel::variants`,
/// as warm.rs passes them; `{}`: the WGSL's defaults, the first of every kernel), `native` whether only native
/// devices compile it (`Kernel::needs_subgroups`: no browser device here asks for subgroups; the test
/// skips it). Every kernel is listed, also those no tuning of this adapter compiles: tests/browser's
/// kernels-compile test runs each through the browser's own WGSL compiler, which checks what naga does not
/// (Chromium's Tint: uniformity).
#[wasm_bindgen(js_name = kernelSources)]
pub fn kernel_sources() -> js_sys::Array {
    Kernel::ALL
        .iter()
        .map(|&k| {
            let o = to_js(&json!({
                "name": k.name(),
                "entryPoint": k.name(),
                "parts": k.def().parts,
                "source": k.source(),
                "workgroup": k.def().workgroup,
                "native": k.needs_subgroups(),
            }));
            let _ = js_sys::Reflect::set(&o, &"layout".into(), &crate::gpu::warm::layout_entries(k));
            // Every variant under every tuning's constants (Kernel::constants), each set once.
            let mut sets: Vec<Vec<(&str, f64)>> = Vec::new();
            for v in 0..k.variants().len() {
                for t in [crate::gpu::Tuning::GPU, crate::gpu::Tuning::CPU, crate::gpu::Tuning::SWIFTSHADER] {
                    let c = k.constants(v, &t);
                    if !sets.contains(&c) {
                        sets.push(c);
                    }
                }
            }
            let variants: js_sys::Array = sets.iter().map(|c| JsValue::from(crate::gpu::warm::constants(c).unwrap_or_default())).collect();
            let _ = js_sys::Reflect::set(&o, &"variants".into(), &variants);
            o
        })
        .collect()
}
