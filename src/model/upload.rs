//! Getting a model onto the GPU: tensors pushed one by one in `tensor_specs` order (each uploaded as it
//! arrives, so the host holds one at a time), then `finish` allocates the KV cache and activations and
//! builds the dispatch list.
//!
//! Shapes (see config.rs): V vocab, P context, C channels, F = MLP width.

use super::dispatch::Ops;
use std::collections::VecDeque;
use super::plan::{buffer_plan_within, head_rows, kv_cache_bytes, wte_chunks_within, Activations, WeightLimits};
use super::Model;
use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::gpu::texels::tile;
use crate::gpu::{whole, Gpu, KvFormat, Texels};
use crate::quant::{PackedMatrix, WeightFormat};
use crate::weights::{check_next, tensor_specs, Role, TensorData, TensorSpec};
use std::sync::Arc;

/// How a matrix's rows are packed, as the kernels read it (common/weights.wgsl).
#[derive(Clone, Copy, Debug)]
pub(super) struct Packing {
    pub w_stride: u32,
    pub wfmt: u32,
    pub s_stride: u32,
}

/// Where a weight matrix's words (or its scales) live: a storage buffer (gemv, matmul, embed) or a
/// texture (the CPU tuning: `Tuning::weights_in_textures`, gpu/texels.rs).
pub(super) enum Store {
    Buffer(wgpu::Buffer),
    Texels(Box<Texels>),
}

impl Store {
    /// How a bind group binds it.
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        match self {
            Store::Buffer(b) => whole(b),
            Store::Texels(t) => wgpu::BindingResource::TextureView(&t.view),
        }
    }

    /// Bytes of the data it holds (a buffer's size; a texture's data, without the padding of its last row).
    pub fn bytes(&self) -> u64 {
        match self {
            Store::Buffer(b) => b.size(),
            Store::Texels(t) => t.bytes,
        }
    }

    /// Bytes allocated on the GPU (a texture's whole rows).
    pub fn allocated(&self) -> u64 {
        match self {
            Store::Buffer(b) => b.size(),
            Store::Texels(t) => t.allocated,
        }
    }
}

/// A weight matrix on the GPU: W [N, K] out-major in `format` (see quant.rs).
pub(super) struct GpuMatrix {
    pub w: Store,      // [N, w_stride] u32 words (tiled, 4 per texel, in a texture)
    pub scales: Store, // [N, s_stride] f16 pairs (q8/q4; a 16-byte placeholder otherwise; tiled, 4 words per texel)
    pub n: u32,
    pub k: u32,
    format: WeightFormat,
}

impl GpuMatrix {
    /// `m` in textures, tiled (gpu/texels.rs `tile`), where the tuning keeps weights in textures, else in
    /// storage buffers as packed.
    fn upload(gpu: &Gpu, label: &str, m: &PackedMatrix) -> Result<Self> {
        let slabel = format!("{label}.scales");
        let (w, scales) = if gpu.tuning.weights_in_textures {
            let (w, scales) = tile(m);
            (Store::Texels(Box::new(gpu.texels_init(label, &w)?)), Store::Texels(Box::new(gpu.texels_init(&slabel, &scales)?)))
        } else {
            (Store::Buffer(gpu.storage_init(label, bytemuck::cast_slice(&m.words))?), Store::Buffer(gpu.storage_init(&slabel, bytemuck::cast_slice(&m.scales))?))
        };
        Ok(GpuMatrix {
            w,
            scales,
            n: m.n as u32,
            k: m.k as u32,
            format: m.format,
        })
    }

    pub fn packing(&self) -> Packing {
        let k = self.k as usize;
        Packing { w_stride: self.format.w_stride(k) as u32, wfmt: self.format.code(), s_stride: self.format.s_stride(k) as u32 }
    }

    /// Bytes of its words and scales (what a step reads).
    pub fn bytes(&self) -> u64 {
        self.w.bytes() + self.scales.bytes()
    }

    /// Bytes the GPU allocated for them.
    pub fn allocated(&self) -> u64 {
        self.w.allocated() + self.scales.allocated()
    }
}

/// One transformer block's weights and KV cache.
pub(super) struct Layer {
    pub ln_1_g: wgpu::Buffer,      // [C]
    pub ln_1_b: wgpu::Buffer,      // [C]
    pub attn: GpuMatrix,           // [3C, C]
    pub attn_b: wgpu::Buffer,      // [3C]
    pub attn_proj: GpuMatrix,      // [C, C]
    pub attn_proj_b: wgpu::Buffer, // [C]
    pub ln_2_g: wgpu::Buffer,      // [C]
    pub ln_2_b: wgpu::Buffer,      // [C]
    pub fc: GpuMatrix,             // [F, C]
    pub fc_b: wgpu::Buffer,        // [F]
    pub mlp_proj: GpuMatrix,       // [C, F]
    pub mlp_proj_b: wgpu::Buffer,  // [C]
    pub k_cache: wgpu::Buffer,     // [P, C] f32 or [P, NH, ceil(hs / 2)] f16 pairs (Weights::kv)
    pub v_cache: wgpu::Buffer,     // the same
}

/// Every weight of the model on the GPU.
pub(super) struct Weights {
    /// wte [V, C] in row chunks (lo, hi, rows [lo, hi)) that each fit one binding.
    pub wte: Vec<(u32, u32, GpuMatrix)>,
    pub wpe: wgpu::Buffer, // [P, C]
    pub layers: Vec<Layer>,
    pub ln_f_g: wgpu::Buffer, // [C]
    pub ln_f_b: wgpu::Buffer, // [C]
    /// The KV cache's format.
    pub kv: KvFormat,
}

/// What has been uploaded of one tensor.
enum Uploaded {
    Vector(wgpu::Buffer),
    Matrix(GpuMatrix),
    /// wte, in row chunks (lo, hi, rows [lo, hi) of wte [V, C]) that each fit one binding.
    Wte(Vec<(u32, u32, GpuMatrix)>),
}

/// Loads a model tensor by tensor, in `tensor_specs` order, as they arrive (from a `TensorSource` in
/// `Model::load`, or from a package's shards as they stream in). Each tensor goes to the GPU when
/// pushed, so the host holds one at a time; `finish` allocates the KV cache and activations and builds
/// the dispatch list.
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
        buffer_plan_within(&cfg, format, max_binding, WeightLimits::of(&gpu))?;
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

    /// Upload the next tensor. `spec` must be `next_spec()`; `weights::check_next` checks the data
    /// against it.
    pub fn push(&mut self, spec: &TensorSpec, data: TensorData) -> Result<()> {
        check_next(self.next_spec(), spec, &data)?;
        let want = &self.specs[self.uploaded.len()];
        let gpu = &self.gpu;
        let up = match (want.role, data) {
            (Role::Vector, TensorData::Vector(v)) => Uploaded::Vector(gpu.storage_init(&want.name, bytemuck::cast_slice(&v))?),
            (Role::Matrix, TensorData::Matrix(m)) => Uploaded::Matrix(GpuMatrix::upload(gpu, &want.name, &m)?),
            (Role::Embedding, TensorData::Matrix(m)) => {
                let mut wte = Vec::new();
                // Chunk by the format wte really has (a q4 model stores it as q8).
                for (lo, hi) in wte_chunks_within(&self.config, m.format, WeightLimits::of(gpu))? {
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
            _ => unreachable!("check_next matched the data to the spec's role"),
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
        let weights = assemble(&gpu, &cfg, uploaded, gpu.tuning.kv_format(format))?;
        let r = head_rows(&cfg, max_binding);
        let acts = Activations::alloc(&gpu, &cfg, r)?;
        let k = gpu.tuning.tokens_per_submit as usize;
        let out_bytes = k as u64 * crate::gpu::params::SAMPLE_OUT_WORDS as u64 * 4;
        let out_read = [gpu.readback_buffer("sample_out_read.0", out_bytes)?, gpu.readback_buffer("sample_out_read.1", out_bytes)?];
        let (ops, arena) = Ops::build(&gpu, &cfg, &weights, &acts, k);
        ops.prepare(&gpu, &cfg).await?;

        if let Some(e) = scope.pop().await {
            return Err(Error::TooLarge(format!("the GPU ran out of memory while loading the weights ({e})")));
        }
        gpu.check()?;
        Ok(Model {
            counts_host: vec![0; cfg.vocab_size],
            gpu,
            config: cfg,
            format,
            weights,
            acts,
            out_read,
            head_rows: r as u32,
            ops,
            arena,
            pos: 0,
            k,
            k_cap: k,
            in_flight: VecDeque::with_capacity(2),
            next_read: 0,
            fed_valid: false,
            window_loaded: false,
            win_next: 0,
            io: Default::default(),
        })
    }
}

/// The uploads, in `tensor_specs` order, put back together as the model's weights, plus each layer's
/// KV cache.
fn assemble(gpu: &Gpu, cfg: &Gpt2Config, uploaded: Vec<Uploaded>, kv: KvFormat) -> Result<Weights> {
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
            k_cache: gpu.storage(&format!("h.{l}.k_cache"), kv_cache_bytes(cfg, kv), wgpu::BufferUsages::empty())?,
            v_cache: gpu.storage(&format!("h.{l}.v_cache"), kv_cache_bytes(cfg, kv), wgpu::BufferUsages::empty())?,
        });
    }
    let ln_f_g = vector(next());
    let ln_f_b = vector(next());
    Ok(Weights { wte, wpe, layers, ln_f_g, ln_f_b, kv })
}
