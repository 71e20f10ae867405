//! GPT-2 on the GPU: weights uploaded once, a KV cache sized for the whole context, activation buffers,
//! and the forward pass as an explicit list of dispatches built once at load time.
//!
//! Shapes (see config.rs): V vocab, P context, C channels, NH heads, hs = C / NH, F = MLP width,
//! T = tokens in this step, R = rows the head (ln_f + logits) handles at once.
//!
//! A step is one command encoder and one submit:
//!   embed                                                  (one dispatch per wte chunk)
//!   for each layer:  ln_1 -> qkv -> kv_append -> attention -> attn proj + residual
//!                    -> ln_2 -> fc + gelu -> mlp proj + residual
//!   ln_f (last row) -> logits (one dispatch per wte chunk) -> sample
//! and the only readback is the sampled token, its probability and its top alternatives.

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::gpu::params::*;
use crate::gpu::{whole, Gpu, Kernel};
use crate::quant::{PackedMatrix, WeightFormat};
pub use crate::weights::TensorData;
use crate::weights::{check_token, tensor_specs, Role, TensorSource, TensorSpec};
use std::sync::Arc;

pub use crate::sampling::{Sampled, SamplingParams};

/// A weight matrix on the GPU: W [N, K] out-major in `format` (see quant.rs).
struct GpuMatrix {
    w: wgpu::Buffer,
    scales: wgpu::Buffer,
    n: u32,
    k: u32,
    format: WeightFormat,
}

impl GpuMatrix {
    fn upload(gpu: &Gpu, label: &str, m: &PackedMatrix) -> Result<Self> {
        Ok(GpuMatrix {
            w: gpu.storage_init(label, bytemuck::cast_slice(&m.words))?,
            scales: gpu.storage_init(&format!("{label}.scales"), bytemuck::cast_slice(&m.scales))?,
            n: m.n as u32,
            k: m.k as u32,
            format: m.format,
        })
    }
}

struct Layer {
    ln_1_g: wgpu::Buffer,     // [C]
    ln_1_b: wgpu::Buffer,     // [C]
    attn: GpuMatrix,          // [3C, C]
    attn_b: wgpu::Buffer,     // [3C]
    attn_proj: GpuMatrix,     // [C, C]
    attn_proj_b: wgpu::Buffer, // [C]
    ln_2_g: wgpu::Buffer,     // [C]
    ln_2_b: wgpu::Buffer,     // [C]
    fc: GpuMatrix,            // [F, C]
    fc_b: wgpu::Buffer,       // [F]
    mlp_proj: GpuMatrix,      // [C, F]
    mlp_proj_b: wgpu::Buffer, // [C]
    k_cache: wgpu::Buffer,    // [P, C]
    v_cache: wgpu::Buffer,    // [P, C]
}

/// Which rows a head op works on, decided per step.
#[derive(Clone, Copy, Debug)]
struct Frame {
    t: u32,
    pos0: u32,
    head_row0: u32,
    head_rows: u32,
}

/// What a dispatch does, enough to compute its Params and workgroup counts for any frame.
enum What {
    Embed { lo: u32, hi: u32, w_stride: u32, wfmt: u32, s_stride: u32 },
    /// Layer norm of the T rows of a layer, or (head) of the frame's head rows into xf.
    LayerNorm { head: bool },
    /// Y (+)= act(X W^T + b). `head`: the logits of the frame's head rows (X = xf, Y = logits).
    Linear { n: u32, k: u32, flags: u32, w_stride: u32, wfmt: u32, s_stride: u32, y_col0: u32, y_stride: u32, head: bool },
    KvAppend,
    Attention,
    /// Written by `step` itself (sampling parameters are per call, not per frame).
    Sample,
}

struct Op {
    what: What,
    kernel: Kernel,
    bind: wgpu::BindGroup,
    slot: u32,
}

/// Rows of logits computed at once: enough for the CLI's all-positions dump to go in few submits,
/// small enough to stay a modest buffer (64 x 50257 x 4 = 12.9 MB) and within one binding.
const MAX_HEAD_ROWS: u64 = 64;

/// wte row chunks [lo, hi) such that each chunk's weights and scales fit one storage binding.
pub fn wte_chunks(cfg: &Gpt2Config, format: WeightFormat, max_binding: u64) -> Result<Vec<(usize, usize)>> {
    let row = format.row_bytes(cfg.n_embd) as u64;
    let srow = (format.s_stride(cfg.n_embd) as u64 * 2).max(1);
    let rows = (max_binding / row).min(max_binding / srow) as usize;
    if rows == 0 {
        return Err(Error::TooLarge(format!("one row of wte ({row} bytes) exceeds the {max_binding}-byte binding limit")));
    }
    let mut out = Vec::new();
    let mut lo = 0;
    while lo < cfg.vocab_size {
        let hi = (lo + rows).min(cfg.vocab_size);
        out.push((lo, hi));
        lo = hi;
    }
    Ok(out)
}

/// Every GPU buffer a model of this config needs, with its size in bytes: what `Model::load` will
/// allocate. Lets tests and the converter check limits for gpt2-xl without a GPU or the time to load it.
pub fn buffer_plan(cfg: &Gpt2Config, format: WeightFormat, max_binding: u64) -> Result<Vec<(String, u64)>> {
    let (v, p, c, f) = (cfg.vocab_size as u64, cfg.n_positions as u64, cfg.n_embd as u64, cfg.n_inner as u64);
    let mut out = Vec::new();
    let wf = crate::weights::stored_format(crate::weights::Role::Embedding, format);
    for (i, (lo, hi)) in wte_chunks(cfg, wf, max_binding)?.into_iter().enumerate() {
        let rows = (hi - lo) as u64;
        out.push((format!("wte[{i}]"), rows * wf.row_bytes(cfg.n_embd) as u64));
        out.push((format!("wte[{i}].scales"), (rows * wf.s_stride(cfg.n_embd) as u64).div_ceil(2) * 4));
    }
    out.push(("wpe".into(), p * c * 4));
    let mat = |n: u64, k: usize| (n * format.row_bytes(k) as u64, (n * format.s_stride(k) as u64).div_ceil(2) * 4);
    for l in 0..cfg.n_layer {
        for (name, n, k) in [("attn.c_attn", 3 * c, cfg.n_embd), ("attn.c_proj", c, cfg.n_embd), ("mlp.c_fc", f, cfg.n_embd), ("mlp.c_proj", c, cfg.n_inner)] {
            let (w, s) = mat(n, k);
            out.push((format!("h.{l}.{name}.weight"), w));
            out.push((format!("h.{l}.{name}.scales"), s));
        }
        for (name, n) in [("ln_1", 2 * c), ("c_attn.bias", 3 * c), ("c_proj.bias", c), ("ln_2", 2 * c), ("c_fc.bias", f), ("mlp.c_proj.bias", c)] {
            out.push((format!("h.{l}.{name}"), n * 4));
        }
        out.push((format!("h.{l}.k_cache"), p * c * 4));
        out.push((format!("h.{l}.v_cache"), p * c * 4));
    }
    let r = head_rows(cfg, max_binding);
    out.extend([
        ("x".to_string(), p * c * 4),
        ("xn".to_string(), p * c * 4),
        ("qkv".to_string(), p * 3 * c * 4),
        ("att".to_string(), p * c * 4),
        ("fch".to_string(), p * f * 4),
        ("xf".to_string(), r * c * 4),
        ("logits".to_string(), r * v * 4),
    ]);
    for (name, size) in &out {
        if *size > max_binding {
            return Err(Error::TooLarge(format!("buffer `{name}` needs {size} bytes, more than one binding may hold ({max_binding})")));
        }
    }
    Ok(out)
}

fn head_rows(cfg: &Gpt2Config, max_binding: u64) -> u64 {
    (max_binding / (cfg.vocab_size as u64 * 4)).clamp(1, MAX_HEAD_ROWS).min(cfg.n_positions as u64)
}

// Weight and cache buffers are owned here for the model's lifetime; the bind groups in the plan use them.
#[allow(dead_code)]
pub struct Model {
    gpu: Arc<Gpu>,
    config: Gpt2Config,
    format: WeightFormat,
    // weights
    wte: Vec<(u32, u32, GpuMatrix)>, // (lo, hi, rows [lo, hi) of wte [V, C])
    wpe: wgpu::Buffer,               // [P, C]
    layers: Vec<Layer>,
    ln_f_g: wgpu::Buffer, // [C]
    ln_f_b: wgpu::Buffer, // [C]
    // activations
    x: wgpu::Buffer,      // [P, C] residual stream
    xn: wgpu::Buffer,     // [P, C] layer-norm output
    qkv: wgpu::Buffer,    // [P, 3C]
    att: wgpu::Buffer,    // [P, C] attention output (heads concatenated)
    fch: wgpu::Buffer,    // [P, F] MLP hidden after GELU
    xf: wgpu::Buffer,     // [R, C] ln_f output of the head rows
    logits: wgpu::Buffer, // [R, V]
    ids: wgpu::Buffer,    // [P] u32 this step's tokens
    hist: wgpu::Buffer,   // [P] u32 distinct context tokens, for the repetition penalty
    hist_host: Vec<u32>,  // host staging for `hist`, reused every step
    out: wgpu::Buffer,    // [SAMPLE_OUT_WORDS] u32
    out_read: wgpu::Buffer,
    head_rows: u32,
    // the plan
    body: Vec<Op>,
    head: Vec<Op>,
    sample: Op,
    arena: wgpu::Buffer,
    arena_host: Vec<u8>,
    slot_size: u32,
    /// Tokens in the KV cache.
    pos: usize,
}

/// Bytes of a Params struct rounded to 16 (uniform binding size).
const PARAMS_BYTES: u64 = 48;

/// Dispatches per transformer block: ln_1, qkv, kv_append, attention, proj+residual, ln_2, fc+gelu,
/// proj+residual (the body loop in `finish` pushes exactly these).
const OPS_PER_LAYER: usize = 8;

/// What has been uploaded of one tensor.
enum Uploaded {
    Vector(wgpu::Buffer),
    Matrix(GpuMatrix),
    /// wte, in row chunks (lo, hi, rows [lo, hi) of wte [V, C]) that each fit one binding.
    Wte(Vec<(u32, u32, GpuMatrix)>),
}

/// Loads a model tensor by tensor, in `tensor_specs` order, as they arrive (from a `TensorSource` in
/// `Model::load`, or from shards streaming in: `package::PackageStream`). Each tensor goes to the GPU
/// when pushed, so the host holds one at a time; `finish` allocates the KV cache and activations and
/// builds the dispatch list.
pub struct ModelUploader {
    gpu: Arc<Gpu>,
    config: Gpt2Config,
    format: WeightFormat,
    max_binding: u64,
    specs: Vec<TensorSpec>,
    uploaded: Vec<Uploaded>,
    /// Catches the GPU running out of memory anywhere between `new` and `finish`.
    scope: wgpu::ErrorScopeGuard,
}

impl ModelUploader {
    /// Check that a model of `cfg` in `format` fits this GPU's limits; nothing is uploaded yet.
    pub fn new(gpu: Arc<Gpu>, cfg: Gpt2Config, format: WeightFormat) -> Result<ModelUploader> {
        if cfg.head_dim() > 256 {
            return Err(Error::BadConfig(format!("head size {} is larger than the 256 the attention kernel supports", cfg.head_dim())));
        }
        let max_binding = gpu.max_binding();
        buffer_plan(&cfg, format, max_binding)?;
        let scope = gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let specs = tensor_specs(&cfg);
        Ok(ModelUploader { uploaded: Vec::with_capacity(specs.len()), gpu, config: cfg, format, max_binding, specs, scope })
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// The tensor to push next, None once all are in.
    pub fn next_spec(&self) -> Option<&TensorSpec> {
        self.specs.get(self.uploaded.len())
    }

    /// Upload the next tensor. `spec` must be `next_spec()`; a vector's length and a matrix's shape are
    /// checked against it.
    pub fn push(&mut self, spec: &TensorSpec, data: TensorData) -> Result<()> {
        let want = self.next_spec().ok_or_else(|| Error::InvalidArgument(format!("`{}` pushed after the last tensor", spec.name)))?;
        if want.name != spec.name {
            return Err(Error::InvalidArgument(format!("`{}` pushed where `{}` comes next (tensors go in tensor_specs order)", spec.name, want.name)));
        }
        let gpu = &self.gpu;
        let up = match (want.role, data) {
            (Role::Vector, TensorData::Vector(v)) => {
                if v.len() != want.numel() {
                    return Err(Error::WrongShape { name: want.name.clone(), expected: want.shape.clone(), actual: vec![v.len()] });
                }
                Uploaded::Vector(gpu.storage_init(&want.name, bytemuck::cast_slice(&v))?)
            }
            (Role::Matrix | Role::Embedding, TensorData::Matrix(m)) => {
                let expected = crate::weights::stored_shape(want);
                if [m.n, m.k] != expected[..] {
                    return Err(Error::WrongShape { name: want.name.clone(), expected, actual: vec![m.n, m.k] });
                }
                if want.role == Role::Matrix {
                    Uploaded::Matrix(GpuMatrix::upload(gpu, &want.name, &m)?)
                } else {
                    let mut wte = Vec::new();
                    // Chunk by the format wte really has (a q4 package stores it as q8).
                    for (lo, hi) in wte_chunks(&self.config, m.format, self.max_binding)? {
                        let label = format!("wte[{lo}..{hi})");
                        let g = if lo == 0 && hi == self.config.vocab_size {
                            GpuMatrix::upload(gpu, &label, &m)? // one chunk: no copy
                        } else {
                            GpuMatrix::upload(gpu, &label, &m.rows(lo, hi))?
                        };
                        wte.push((lo as u32, hi as u32, g));
                    }
                    Uploaded::Wte(wte)
                }
            }
            (Role::Vector, TensorData::Matrix(_)) => {
                return Err(Error::InvalidArgument(format!("`{}` is a vector, but a matrix was pushed", want.name)))
            }
            (_, TensorData::Vector(_)) => {
                return Err(Error::InvalidArgument(format!("`{}` is a matrix, but a vector was pushed", want.name)))
            }
        };
        self.uploaded.push(up);
        Ok(())
    }

    /// Allocate the KV cache and activations for the full context and build every bind group and the
    /// dispatch list. Every tensor must have been pushed.
    pub async fn finish(self) -> Result<Model> {
        let ModelUploader { gpu, config: cfg, format, max_binding, specs, uploaded, scope } = self;
        if let Some(missing) = specs.get(uploaded.len()) {
            return Err(Error::MissingTensor { name: missing.name.clone() });
        }
        let (v, p, c, f) = (cfg.vocab_size as u64, cfg.n_positions as u64, cfg.n_embd as u64, cfg.n_inner as u64);
        let mut uploaded = uploaded.into_iter();
        let mut next = || uploaded.next().expect("one upload per tensor_specs entry");
        // `push` checked each tensor's role, so these cannot fail.
        let vector = |u: Uploaded| match u {
            Uploaded::Vector(b) => b,
            _ => unreachable!("a vector in tensor_specs order"),
        };
        let matrix = |u: Uploaded| match u {
            Uploaded::Matrix(m) => m,
            _ => unreachable!("a matrix in tensor_specs order"),
        };
        let Uploaded::Wte(wte) = next() else { unreachable!("wte comes first") };
        let wpe = vector(next());
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for l in 0..cfg.n_layer {
            layers.push(Layer {
                ln_1_g: vector(next()),
                ln_1_b: vector(next()),
                attn: matrix(next()),
                attn_b: vector(next()),
                attn_proj: matrix(next()),
                attn_proj_b: vector(next()),
                ln_2_g: vector(next()),
                ln_2_b: vector(next()),
                fc: matrix(next()),
                fc_b: vector(next()),
                mlp_proj: matrix(next()),
                mlp_proj_b: vector(next()),
                k_cache: gpu.storage(&format!("h.{l}.k_cache"), p * c * 4, wgpu::BufferUsages::empty())?,
                v_cache: gpu.storage(&format!("h.{l}.v_cache"), p * c * 4, wgpu::BufferUsages::empty())?,
            });
        }
        let ln_f_g = vector(next());
        let ln_f_b = vector(next());

        let r = head_rows(&cfg, max_binding);
        let act = |name: &str, size: u64| gpu.storage(name, size, wgpu::BufferUsages::empty());
        let x = act("x", p * c * 4)?;
        let xn = act("xn", p * c * 4)?;
        let qkv = act("qkv", p * 3 * c * 4)?;
        let att = act("att", p * c * 4)?;
        let fch = act("fch", p * f * 4)?;
        let xf = act("xf", r * c * 4)?;
        let logits = act("logits", r * v * 4)?;
        let ids = act("ids", p * 4)?;
        let hist = act("hist", p * 4)?;
        let out = act("sample_out", SAMPLE_OUT_WORDS as u64 * 4)?;
        let out_read = gpu.readback_buffer("sample_out_read", SAMPLE_OUT_WORDS as u64 * 4);

        // The Params arena: one uniform slot per dispatch, each bind group pointing at its own slot.
        let slot_size = PARAMS_BYTES.next_multiple_of(gpu.info.limits.min_uniform_buffer_offset_alignment.max(16) as u64) as u32;
        let n_slots = wte.len() + cfg.n_layer * OPS_PER_LAYER + 1 + wte.len() + 1; // embed, layers, ln_f, logits, sample
        let arena = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params"),
            size: n_slots as u64 * slot_size as u64,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut slots = 0u32;
        let mut op = |what: What, kernel: Kernel, label: &str, bufs: &[&wgpu::Buffer]| -> Op {
            let slot = slots;
            slots += 1;
            let mut res = vec![wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &arena,
                offset: slot as u64 * slot_size as u64,
                size: wgpu::BufferSize::new(PARAMS_BYTES),
            })];
            res.extend(bufs.iter().map(|b| whole(b)));
            Op { what, kernel, bind: gpu.bind_group(kernel, label, &res), slot }
        };
        let linear = |m: &GpuMatrix, flags: u32, y_col0: u32, y_stride: u32, head: bool| What::Linear {
            n: m.n,
            k: m.k,
            flags,
            w_stride: m.format.w_stride(m.k as usize) as u32,
            wfmt: m.format.code(),
            s_stride: m.format.s_stride(m.k as usize) as u32,
            y_col0,
            y_stride,
            head,
        };

        // ---- the forward pass, as the list of dispatches a step records ----
        let (c32, f32_) = (c as u32, f as u32);
        let mut body = Vec::new();
        for (lo, hi, m) in &wte {
            let what = What::Embed {
                lo: *lo,
                hi: *hi,
                w_stride: m.format.w_stride(m.k as usize) as u32,
                wfmt: m.format.code(),
                s_stride: m.format.s_stride(m.k as usize) as u32,
            };
            body.push(op(what, Kernel::Embed, "embed", &[&ids, &m.w, &m.scales, &wpe, &x]));
        }
        for (l, w) in layers.iter().enumerate() {
            let lb = |s: &str| format!("h.{l}.{s}");
            body.push(op(What::LayerNorm { head: false }, Kernel::LayerNorm, &lb("ln_1"), &[&x, &w.ln_1_g, &w.ln_1_b, &xn]));
            body.push(op(linear(&w.attn, MM_BIAS, 0, 3 * c32, false), Kernel::Matmul, &lb("qkv"), &[&xn, &w.attn.w, &w.attn.scales, &w.attn_b, &qkv]));
            body.push(op(What::KvAppend, Kernel::KvAppend, &lb("kv_append"), &[&qkv, &w.k_cache, &w.v_cache]));
            body.push(op(What::Attention, Kernel::Attention, &lb("attention"), &[&qkv, &w.k_cache, &w.v_cache, &att]));
            body.push(op(
                linear(&w.attn_proj, MM_BIAS | MM_ACCUMULATE, 0, c32, false),
                Kernel::Matmul,
                &lb("attn_proj+residual"),
                &[&att, &w.attn_proj.w, &w.attn_proj.scales, &w.attn_proj_b, &x],
            ));
            body.push(op(What::LayerNorm { head: false }, Kernel::LayerNorm, &lb("ln_2"), &[&x, &w.ln_2_g, &w.ln_2_b, &xn]));
            body.push(op(linear(&w.fc, MM_BIAS | MM_GELU, 0, f32_, false), Kernel::Matmul, &lb("fc+gelu"), &[&xn, &w.fc.w, &w.fc.scales, &w.fc_b, &fch]));
            body.push(op(
                linear(&w.mlp_proj, MM_BIAS | MM_ACCUMULATE, 0, c32, false),
                Kernel::Matmul,
                &lb("mlp_proj+residual"),
                &[&fch, &w.mlp_proj.w, &w.mlp_proj.scales, &w.mlp_proj_b, &x],
            ));
        }
        // ---- the head: ln_f, then logits against the tied wte, chunk by chunk ----
        let mut head = vec![op(What::LayerNorm { head: true }, Kernel::LayerNorm, "ln_f", &[&x, &ln_f_g, &ln_f_b, &xf])];
        for (lo, _hi, m) in &wte {
            // wte has no bias; bind wpe as the unused bias buffer (any storage buffer will do).
            head.push(op(linear(m, 0, *lo, v as u32, true), Kernel::Matmul, "logits", &[&xf, &m.w, &m.scales, &wpe, &logits]));
        }
        let sample = op(What::Sample, Kernel::Sample, "sample", &[&logits, &hist, &out]);
        debug_assert_eq!(slots as usize, n_slots);

        if let Some(e) = scope.pop().await {
            return Err(Error::TooLarge(format!("the GPU ran out of memory while loading the weights ({e})")));
        }
        gpu.check()?;
        Ok(Model {
            arena_host: vec![0u8; n_slots * slot_size as usize],
            gpu,
            config: cfg,
            format,
            wte,
            wpe,
            layers,
            ln_f_g,
            ln_f_b,
            x,
            xn,
            qkv,
            att,
            fch,
            xf,
            logits,
            ids,
            hist_host: Vec::with_capacity(p as usize),
            hist,
            out,
            out_read,
            head_rows: r as u32,
            body,
            head,
            sample,
            arena,
            slot_size,
            pos: 0,
        })
    }
}

impl Model {
    /// Upload every weight of `src` (tensor by tensor, so host memory holds one tensor at a time), allocate
    /// the KV cache and activations for the full context, and build every bind group and the dispatch list.
    pub async fn load(gpu: Arc<Gpu>, src: &mut dyn TensorSource, format: WeightFormat) -> Result<Model> {
        let mut up = ModelUploader::new(gpu, src.config().clone(), format)?;
        for spec in tensor_specs(up.config()) {
            let data = match spec.role {
                Role::Vector => TensorData::Vector(src.read_f32(&spec)?),
                Role::Matrix | Role::Embedding => TensorData::Matrix(src.read_packed(&spec, format)?),
            };
            up.push(&spec, data)?;
        }
        up.finish().await
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    pub fn format(&self) -> WeightFormat {
        self.format
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Tokens currently in the KV cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Forget the context (the next step starts at position 0).
    pub fn reset(&mut self) {
        self.pos = 0;
    }

    /// Dispatches recorded per step: (per layer, total for a decode step).
    pub fn dispatch_counts(&self) -> (usize, usize) {
        (OPS_PER_LAYER, self.body.len() + self.head.len() + 1)
    }

    fn params_of(&self, op: &Op, fr: Frame) -> [u8; PARAMS_BYTES as usize] {
        // Every Params struct is 16..=48 bytes; copy it into a fixed block (no allocation per step).
        fn block<T: bytemuck::Pod>(p: &T) -> [u8; PARAMS_BYTES as usize] {
            let mut b = [0u8; PARAMS_BYTES as usize];
            let bytes = bytemuck::bytes_of(p);
            b[..bytes.len()].copy_from_slice(bytes);
            b
        }
        let cfg = &self.config;
        let c = cfg.n_embd as u32;
        match op.what {
            What::Embed { lo, hi, w_stride, wfmt, s_stride } => block(&EmbedParams {
                t: fr.t,
                c,
                pos0: fr.pos0,
                vocab_lo: lo,
                vocab_hi: hi,
                w_stride,
                wfmt,
                s_stride,
            }),
            What::LayerNorm { head } => {
                let (rows, in_row0) = if head { (fr.head_rows, fr.head_row0) } else { (fr.t, 0) };
                block(&LayerNormParams { rows, c, in_row0, out_row0: 0, eps: cfg.layer_norm_epsilon, _pad: [0; 3] })
            }
            What::Linear { n, k, flags, w_stride, wfmt, s_stride, y_col0, y_stride, head } => block(&MatmulParams {
                m: if head { fr.head_rows } else { fr.t },
                n,
                k,
                flags,
                x_row0: 0,
                x_stride: k,
                y_stride,
                y_col0,
                w_stride,
                wfmt,
                s_stride,
                lanes: self.gpu.gemv_lanes,
            }),
            What::KvAppend => block(&KvAppendParams { t: fr.t, c, pos0: fr.pos0, _pad: 0 }),
            What::Attention => block(&AttentionParams {
                t: fr.t,
                c,
                nh: cfg.n_head as u32,
                hs: cfg.head_dim() as u32,
                pos0: fr.pos0,
                scale: 1.0 / (cfg.head_dim() as f32).sqrt(),
                _pad: [0; 2],
            }),
            What::Sample => [0u8; PARAMS_BYTES as usize],
        }
    }

    /// Record one dispatch: pick the pipeline (gemv for a single row) and the workgroup grid.
    fn record(&self, pass: &mut wgpu::ComputePass<'_>, op: &Op, fr: Frame) {
        let g = &self.gpu;
        let (kernel, (x, y)) = match op.what {
            What::Embed { .. } => (op.kernel, g.grid((fr.t * self.config.n_embd as u32).div_ceil(256))),
            What::LayerNorm { head } => (op.kernel, g.grid(if head { fr.head_rows } else { fr.t })),
            What::Linear { n, head, .. } => {
                let m = if head { fr.head_rows } else { fr.t };
                if m <= self.gpu.gemv_max_rows {
                    (Kernel::Gemv, (n.div_ceil(256 / self.gpu.gemv_lanes), m))
                } else {
                    (Kernel::Matmul, (n.div_ceil(64), m.div_ceil(64)))
                }
            }
            What::Sample => (op.kernel, (1, 1)),
            What::KvAppend => (op.kernel, g.grid((fr.t * self.config.n_embd as u32).div_ceil(256))),
            What::Attention => (op.kernel, (self.config.n_head as u32, fr.t)),
        };
        pass.set_pipeline(g.pipeline(kernel));
        pass.set_bind_group(0, &op.bind, &[]);
        pass.dispatch_workgroups(x, y, 1);
    }

    fn write_slot(&mut self, slot: u32, bytes: &[u8]) {
        let o = slot as usize * self.slot_size as usize;
        self.arena_host[o..o + bytes.len()].copy_from_slice(bytes);
    }

    /// Validate the tokens of a step and upload them.
    fn begin(&mut self, tokens: &[u32]) -> Result<Frame> {
        if tokens.is_empty() {
            return Err(Error::InvalidArgument("a step needs at least one token".into()));
        }
        for &t in tokens {
            check_token(t, &self.config)?;
        }
        let p = self.config.n_positions;
        if self.pos + tokens.len() > p {
            return Err(Error::InvalidArgument(format!(
                "{} tokens after {} cached would exceed the {p}-token context; reset or slide the window first",
                tokens.len(),
                self.pos
            )));
        }
        self.gpu.queue.write_buffer(&self.ids, 0, bytemuck::cast_slice(tokens));
        let fr = Frame { t: tokens.len() as u32, pos0: self.pos as u32, head_row0: tokens.len() as u32 - 1, head_rows: 1 };
        for i in 0..self.body.len() {
            let bytes = self.params_of(&self.body[i], fr);
            self.write_slot(self.body[i].slot, &bytes);
        }
        self.set_head(fr);
        Ok(fr)
    }

    fn set_head(&mut self, fr: Frame) {
        for i in 0..self.head.len() {
            let bytes = self.params_of(&self.head[i], fr);
            self.write_slot(self.head[i].slot, &bytes);
        }
    }

    fn flush_params(&self) {
        self.gpu.queue.write_buffer(&self.arena, 0, &self.arena_host);
    }

    /// Append `tokens` to the context (a whole prompt at once, or one token) and sample the next token
    /// on the GPU. `context` is every token now in the window (the repetition penalty looks at it);
    /// `step` feeds the RNG so a seed reproduces a whole generation.
    pub async fn step(&mut self, tokens: &[u32], sampling: &SamplingParams, context: &[u32], step: u32) -> Result<Sampled> {
        sampling.validate()?;
        let fr = self.begin(tokens)?;
        // The repetition penalty applies once per distinct token of the context window.
        let mut n_hist = 0;
        if sampling.repetition_penalty != 1.0 {
            let window = &context[context.len().saturating_sub(self.config.n_positions)..];
            // Reuse one host buffer across steps (capacity P after the first), so decoding allocates nothing.
            let hist = &mut self.hist_host;
            hist.clear();
            hist.extend_from_slice(window);
            hist.sort_unstable();
            hist.dedup();
            hist.retain(|&t| (t as usize) < self.config.vocab_size);
            self.gpu.queue.write_buffer(&self.hist, 0, bytemuck::cast_slice(hist));
            n_hist = hist.len() as u32;
        }
        let sp = SampleParams {
            v: self.config.vocab_size as u32,
            n_hist,
            top_k: sampling.top_k,
            greedy: (sampling.temperature == 0.0) as u32,
            temperature: sampling.temperature.max(1e-6),
            top_p: sampling.top_p,
            rep_penalty: sampling.repetition_penalty,
            seed: (sampling.seed ^ (sampling.seed >> 32)) as u32,
            step,
            n_alt: sampling.alternatives,
            row_off: 0,
            _pad: 0,
        };
        self.write_slot(self.sample.slot, bytemuck::bytes_of(&sp));
        self.flush_params();

        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("step") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("step"), timestamp_writes: None });
            for op in self.body.iter().chain(&self.head).chain(std::iter::once(&self.sample)) {
                self.record(&mut pass, op, fr);
            }
        }
        enc.copy_buffer_to_buffer(&self.out, 0, &self.out_read, 0, SAMPLE_OUT_WORDS as u64 * 4);
        self.gpu.queue.submit([enc.finish()]);
        self.pos += tokens.len();
        let bytes = self.gpu.read(&self.out_read, SAMPLE_OUT_WORDS as u64 * 4).await;
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                self.pos -= tokens.len();
                return Err(e);
            }
        };
        let w: &[u32] = bytemuck::cast_slice(&bytes);
        let n_alt = (w[2] as usize).min(SAMPLE_MAX_ALT);
        Ok(Sampled {
            token: w[0],
            prob: f32::from_bits(w[1]),
            alternatives: (0..n_alt).map(|i| (w[3 + 2 * i], f32::from_bits(w[4 + 2 * i]))).collect(),
        })
    }

    /// Where the time of one step goes: runs a step of `t` tokens (at the current position) op by op,
    /// waiting for the GPU after each, and returns (label, dispatches, seconds) per kind of op. Native
    /// diagnostic for `gpt2 bench --profile`; the real step records everything into one submit.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn profile_step(&mut self, tokens: &[u32]) -> Result<Vec<(String, usize, f64)>> {
        let fr = self.begin(tokens)?;
        let sp = SampleParams { v: self.config.vocab_size as u32, greedy: 1, temperature: 1.0, top_p: 1.0, rep_penalty: 1.0, ..Default::default() };
        self.write_slot(self.sample.slot, bytemuck::bytes_of(&sp));
        self.flush_params();
        let mut out: Vec<(String, usize, f64)> = Vec::new();
        let ops: Vec<&Op> = self.body.iter().chain(&self.head).chain(std::iter::once(&self.sample)).collect();
        self.gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(e.to_string()))?;
        for op in ops {
            let label = match &op.what {
                What::Linear { head: true, .. } => "logits".to_string(),
                What::Linear { flags, .. } if flags & MM_GELU != 0 => "fc+gelu".to_string(),
                What::Linear { flags, .. } if flags & MM_ACCUMULATE != 0 => "proj+residual".to_string(),
                What::Linear { .. } => "qkv".to_string(),
                What::LayerNorm { head: true } => "ln_f".to_string(),
                _ => op.kernel.name().to_string(),
            };
            let t0 = std::time::Instant::now();
            let mut enc = self.gpu.device.create_command_encoder(&Default::default());
            {
                let mut pass = enc.begin_compute_pass(&Default::default());
                self.record(&mut pass, op, fr);
            }
            self.gpu.queue.submit([enc.finish()]);
            self.gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(e.to_string()))?;
            let dt = t0.elapsed().as_secs_f64();
            match out.iter_mut().find(|(l, _, _)| *l == label) {
                Some(e) => {
                    e.1 += 1;
                    e.2 += dt;
                }
                None => out.push((label, 1, dt)),
            }
        }
        self.pos += tokens.len();
        self.gpu.check()?;
        Ok(out)
    }

    /// Append `tokens` to the context and return the logits at every one of their positions, [T, V].
    /// (The CLI's `logits` command and the tests; generation never reads logits back.)
    pub async fn append_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let all: Vec<usize> = (0..tokens.len()).collect();
        self.append_logits_at(tokens, &all).await
    }

    /// Append `tokens` and return the logits at the given positions (indices into `tokens`), [k, V].
    /// Runs the body once, then the head over runs of consecutive positions, R rows at a time.
    pub async fn append_logits_at(&mut self, tokens: &[u32], positions: &[usize]) -> Result<Vec<f32>> {
        if let Some(&p) = positions.iter().find(|&&p| p >= tokens.len()) {
            return Err(Error::InvalidArgument(format!("position {p} is outside the {} tokens given", tokens.len())));
        }
        let fr = self.begin(tokens)?;
        self.flush_params();
        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
            for op in &self.body {
                self.record(&mut pass, op, fr);
            }
        }
        self.gpu.queue.submit([enc.finish()]);
        self.pos += tokens.len();

        let v = self.config.vocab_size;
        let mut out = Vec::with_capacity(positions.len() * v);
        let read = self.gpu.readback_buffer("logits_read", self.head_rows as u64 * v as u64 * 4);
        let mut i = 0;
        while i < positions.len() {
            // The longest run of consecutive positions starting at i, up to R rows.
            let row0 = positions[i];
            let mut rows = 1;
            while i + rows < positions.len() && positions[i + rows] == row0 + rows && rows < self.head_rows as usize {
                rows += 1;
            }
            let hf = Frame { head_row0: row0 as u32, head_rows: rows as u32, ..fr };
            self.set_head(hf);
            self.flush_params();
            let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("head") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("head"), timestamp_writes: None });
                for op in &self.head {
                    self.record(&mut pass, op, hf);
                }
            }
            let bytes = rows as u64 * v as u64 * 4;
            enc.copy_buffer_to_buffer(&self.logits, 0, &read, 0, bytes);
            self.gpu.queue.submit([enc.finish()]);
            out.extend_from_slice(bytemuck::cast_slice(&self.gpu.read(&read, bytes).await?));
            i += rows;
        }
        Ok(out)
    }

    /// Run `tokens` from position 0 and return the residual stream entering every block, then the
    /// output of ln_f: L + 1 arrays of [T, C] (the fixture's `hidden.{j}`). Debug/test path: it splits
    /// the same dispatch list into passes to copy the stream out between layers.
    pub async fn hidden_states(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        self.reset();
        let fr = self.begin(tokens)?;
        let head_fr = Frame { head_row0: 0, head_rows: fr.t.min(self.head_rows), ..fr };
        if fr.t > self.head_rows {
            return Err(Error::InvalidArgument(format!("hidden_states handles at most {} tokens", self.head_rows)));
        }
        self.set_head(head_fr);
        self.flush_params();
        let row_bytes = self.config.n_embd as u64 * 4;
        let bytes = fr.t as u64 * row_bytes;
        let n_out = self.config.n_layer + 1;
        let read = self.gpu.readback_buffer("hidden_read", bytes * n_out as u64);
        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("hidden") });
        let n_embed = self.wte.len();
        let mut ops = self.body.iter();
        for j in 0..n_out {
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("hidden"), timestamp_writes: None });
                let n = if j == 0 { n_embed } else { OPS_PER_LAYER };
                for op in ops.by_ref().take(n) {
                    self.record(&mut pass, op, fr);
                }
                if j == self.config.n_layer {
                    self.record(&mut pass, &self.head[0], head_fr); // ln_f
                }
            }
            let src = if j == self.config.n_layer { &self.xf } else { &self.x };
            enc.copy_buffer_to_buffer(src, 0, &read, j as u64 * bytes, bytes);
        }
        self.gpu.queue.submit([enc.finish()]);
        self.pos += tokens.len();
        let all = self.gpu.read(&read, bytes * n_out as u64).await?;
        let all: &[f32] = bytemuck::cast_slice(&all);
        Ok(all.chunks(fr.t as usize * self.config.n_embd).map(|c| c.to_vec()).collect())
    }
}
