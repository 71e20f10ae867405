//! What a model of a given config allocates on the GPU: the wte chunks, every buffer with its size
//! (checked against the binding limit before anything is uploaded), and the activation buffers.
//!
//! Shapes (see config.rs): V vocab, P context, C channels, F = MLP width, R = head rows (rows of
//! logits computed at once).

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::gpu::params::{attention_part_stride, SAMPLE_OUT_WORDS};
use crate::gpu::kernels::X_WINDOW_BYTES;
use crate::gpu::texels::{texture_bytes, tiled_words, TILE_ROWS};
use crate::gpu::{Gpu, KvFormat, MAX_TOKENS_PER_SUBMIT, MERGE_MAX, MIN_ATTN_BLOCK};
use crate::quant::WeightFormat;
use crate::weights::{stored_format, Role};

/// Rows of logits computed at once: enough for the CLI's all-positions dump to go in few submits,
/// small enough to stay a modest buffer (64 x 50257 x 4 = 12.9 MB) and within one binding.
const MAX_HEAD_ROWS: u64 = 64;

/// wte row chunks [lo, hi) such that each chunk's weights and scales fit one storage binding.
pub fn wte_chunks(cfg: &Gpt2Config, format: WeightFormat, max_binding: u64) -> Result<Vec<(usize, usize)>> {
    wte_chunks_within(cfg, format, WeightLimits::buffers(max_binding))
}

/// The most bytes one matrix's words, or its scales, may take: a storage binding, or
/// (`Tuning::weights_in_textures`) one rgba32uint texture (gpu/texels.rs: `Gpu::texture_words`). Words
/// and scales live in the same kind of binding, so one limit serves both.
#[derive(Clone, Copy, Debug)]
pub struct WeightLimits {
    pub bytes: u64,
    /// Whether they are textures (tiled: gpu/texels.rs).
    pub textures: bool,
}

impl WeightLimits {
    pub fn buffers(max_binding: u64) -> WeightLimits {
        WeightLimits { bytes: max_binding, textures: false }
    }

    /// The limits of `gpu` under its tuning.
    pub fn of(gpu: &Gpu) -> WeightLimits {
        if gpu.tuning.weights_in_textures {
            WeightLimits { bytes: gpu.texture_words() * 4, textures: true }
        } else {
            WeightLimits::buffers(gpu.max_binding())
        }
    }

    fn what(&self) -> &'static str {
        if self.textures { "texture (max_texture_dimension_2d)" } else { "binding" }
    }
}

/// wte row chunks [lo, hi) such that each chunk's weights and scales fit `limits`.
pub fn wte_chunks_within(cfg: &Gpt2Config, format: WeightFormat, limits: WeightLimits) -> Result<Vec<(usize, usize)>> {
    let row = format.row_bytes(cfg.n_embd) as u64;
    let srow = (format.s_stride(cfg.n_embd) as u64 * 2).max(1);
    let rows = if limits.textures {
        // Whole tiles (gpu/texels.rs): every chunk of wte is tiled on its own, its last tile padded.
        let (w, s) = tiled_words(format, TILE_ROWS, cfg.n_embd);
        (limits.bytes / (4 * w.max(s) as u64) * TILE_ROWS as u64) as usize
    } else {
        (limits.bytes / row.max(srow)) as usize
    };
    if rows == 0 {
        let what = if limits.textures { format!("one tile of {TILE_ROWS} rows of wte") } else { format!("one row of wte ({row} bytes)") };
        return Err(Error::TooLarge(format!("{what} exceeds the {}-byte {} limit", limits.bytes, limits.what())));
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

/// R: rows of logits the head computes at once (as many as one binding holds, at most MAX_HEAD_ROWS).
pub(super) fn head_rows(cfg: &Gpt2Config, max_binding: u64) -> u64 {
    (max_binding / (cfg.vocab_size as u64 * 4)).clamp(1, MAX_HEAD_ROWS).min(cfg.n_positions as u64)
}

/// Every GPU buffer a model of this config needs, with its size in bytes: what `Model::load` will
/// allocate (the KV cache in the format of `format`'s packages: `KvFormat::for_weights`). Lets tests and the converter check limits for gpt2-xl without a GPU or the time to load it.
pub fn buffer_plan(cfg: &Gpt2Config, format: WeightFormat, max_binding: u64) -> Result<Vec<(String, u64)>> {
    buffer_plan_within(cfg, format, max_binding, WeightLimits::buffers(max_binding))
}

/// `buffer_plan` with the weight matrices (words and scales) checked against `weights` (textures under
/// the CPU tuning) and every other buffer against `max_binding`.
pub fn buffer_plan_within(cfg: &Gpt2Config, format: WeightFormat, max_binding: u64, weights: WeightLimits) -> Result<Vec<(String, u64)>> {
    let (p, c, f) = (cfg.n_positions as u64, cfg.n_embd as u64, cfg.n_inner as u64);
    let mut out = Vec::new();
    let wf = stored_format(Role::Embedding, format);
    // The weight entries, checked against `weights` at the end.
    let mut matrices = Vec::new();
    // What the words and scales of W [n, k] in `wf` cost where they live: in a texture, whole tiles
    // (gpu/texels.rs) in whole texture rows of 4 words per texel.
    let alloc = |wf: WeightFormat, n: u64, k: usize| {
        if weights.textures {
            let (w, s) = tiled_words(wf, n as usize, k);
            (texture_bytes(w as u64), texture_bytes(s as u64))
        } else {
            (n * wf.row_bytes(k) as u64, scale_bytes(n * wf.s_stride(k) as u64))
        }
    };
    for (i, (lo, hi)) in wte_chunks_within(cfg, wf, weights)?.into_iter().enumerate() {
        let (w, s) = alloc(wf, (hi - lo) as u64, cfg.n_embd);
        matrices.push((format!("wte[{i}]"), w));
        matrices.push((format!("wte[{i}].scales"), s));
    }
    out.push(("wpe".into(), p * c * 4));
    let mat = |n: u64, k: usize| alloc(format, n, k);
    for l in 0..cfg.n_layer {
        for (name, n, k) in [("attn.c_attn", 3 * c, cfg.n_embd), ("attn.c_proj", c, cfg.n_embd), ("mlp.c_fc", f, cfg.n_embd), ("mlp.c_proj", c, cfg.n_inner)] {
            let (w, s) = mat(n, k);
            matrices.push((format!("h.{l}.{name}.weight"), w));
            matrices.push((format!("h.{l}.{name}.scales"), s));
        }
        for (name, n) in [("ln_1", 2 * c), ("c_attn.bias", 3 * c), ("c_proj.bias", c), ("ln_2", 2 * c), ("c_fc.bias", f), ("mlp.c_proj.bias", c)] {
            out.push((format!("h.{l}.{name}"), n * 4));
        }
        let kv = kv_cache_bytes(cfg, KvFormat::for_weights(format));
        out.push((format!("h.{l}.k_cache"), kv));
        out.push((format!("h.{l}.v_cache"), kv));
    }
    out.extend(activation_sizes(cfg, head_rows(cfg, max_binding)).into_iter().map(|(name, size)| (name.to_string(), size)));
    // The weights first (the largest buffers, and the ones a smaller format or another adapter changes).
    for (name, size) in &matrices {
        if *size > weights.bytes {
            return Err(Error::TooLarge(format!("`{name}` needs {size} bytes, more than one {} may hold ({})", weights.what(), weights.bytes)));
        }
    }
    for (name, size) in &out {
        if *size > max_binding {
            return Err(Error::TooLarge(format!("buffer `{name}` needs {size} bytes, more than one binding may hold ({max_binding})")));
        }
    }
    matrices.append(&mut out);
    Ok(matrices)
}

/// Bytes of `entries` f16 scales as uploaded: f16 pairs, at least one 16-byte unit (a placeholder for
/// f32 and f16 matrices, which have none: Gpu::storage's minimum).
fn scale_bytes(entries: u64) -> u64 {
    (entries.div_ceil(2) * 4).max(16)
}

/// One layer's K or V cache: [P, C] f32, or [P, NH, ceil(hs / 2)] f16 pairs.
pub(super) fn kv_cache_bytes(cfg: &Gpt2Config, kv: KvFormat) -> u64 {
    kv.cache_bytes(cfg.n_positions as u64, cfg.n_head as u64, cfg.head_dim() as u64)
}

/// The activation buffers a step works in. Each is sized for the whole context, so no step allocates.
pub(super) struct Activations {
    pub x: wgpu::Buffer,      // [P, C] residual stream
    pub xn: wgpu::Buffer,     // [P, C] layer-norm output
    pub qkv: wgpu::Buffer,    // [P, 3C]
    pub att: wgpu::Buffer,    // [P, C] attention output (heads concatenated)
    pub fch: wgpu::Buffer,    // [P, F] MLP hidden after GELU
    pub xf: wgpu::Buffer,     // [R, C] ln_f output of the head rows
    pub logits: wgpu::Buffer, // [R, V]
    pub ids: wgpu::Buffer,    // [P] u32 the tokens the host feeds (a prompt, a re-encoded window)
    pub fed: wgpu::Buffer,    // [4] u32: [0] the token the sampler's second pass chose, which the next decode step embeds
    pub counts: wgpu::Buffer, // [V] u32 occurrences of each id in the repetition penalty's window
    pub ring: wgpu::Buffer,   // [P] u32 that window's tokens by stream index % P (see common/sample_second.wgsl)
    pub out: wgpu::Buffer,    // [K_MAX, SAMPLE_OUT_WORDS] u32 what the sampler's second pass writes, one row per decode step
    pub lanes: wgpu::Buffer,  // [(4 + 2 * 4) * NL] u32 the sampler's lanes: stats, candidates (common/sample_params.wgsl)
    pub part: wgpu::Buffer,   // [NB, NH, hs + 2] split decode attention's partials (o[hs], m, l per block and head)
    /// [K, V] windows of a prompt's attention ([NH, KV_WINDOWS_PER_HEAD x KV_WINDOW_BYTES] each:
    /// gpu/windows.rs) where the tuning runs it so (`Tuning::attention_windows`).
    pub windows: Option<[wgpu::Buffer; 2]>,
}

/// Name and bytes of each activation buffer, in `Activations` order (shared with `buffer_plan`).
fn activation_sizes(cfg: &Gpt2Config, r: u64) -> [(&'static str, u64); 14] {
    let (v, p, c, f) = (cfg.vocab_size as u64, cfg.n_positions as u64, cfg.n_embd as u64, cfg.n_inner as u64);
    // The most (block, head) partials any tuning's split makes: blocks of at least MIN_ATTN_BLOCK keys, and
    // only where they fit the merge (Tuning::attention_block), so no step needs more whatever B is.
    let parts = (cfg.n_head as u64 * p.div_ceil(MIN_ATTN_BLOCK as u64)).min(MERGE_MAX as u64);
    // The X of a linear op is also read through its first 64 KB as a uniform (common/rows.wgsl): at least that.
    let xw = |bytes: u64| bytes.max(X_WINDOW_BYTES);
    [
        ("x", xw(p * c * 4)),
        ("xn", xw(p * c * 4)),
        ("qkv", p * 3 * c * 4),
        ("att", xw(p * c * 4)),
        ("fch", xw(p * f * 4)),
        ("xf", xw(r * c * 4)),
        ("logits", r * v * 4),
        ("ids", p * 4),
        ("fed", 16),
        ("counts", v * 4),
        ("ring", p * 4),
        ("sample_out", MAX_TOKENS_PER_SUBMIT as u64 * SAMPLE_OUT_WORDS as u64 * 4),
        ("attention_part", parts * attention_part_stride(cfg.head_dim() as u32) as u64 * 4),
        ("sample_lanes", crate::sampling::cpu::lanes_words(cfg.vocab_size) as u64 * 4),
    ]
}

impl Activations {
    pub fn alloc(gpu: &Gpu, cfg: &Gpt2Config, r: u64) -> Result<Activations> {
        let [x, xn, qkv, att, fch, xf, logits, ids, fed, counts, ring, out, part, lanes] = activation_sizes(cfg, r).map(|(name, size)| {
            // The X of a linear op: also readable through its uniform window (common/rows.wgsl).
            let uniform = if ["x", "xn", "att", "fch", "xf"].contains(&name) { wgpu::BufferUsages::UNIFORM } else { wgpu::BufferUsages::empty() };
            gpu.storage(name, size, uniform)
        });
        Ok(Activations {
            x: x?,
            xn: xn?,
            qkv: qkv?,
            att: att?,
            fch: fch?,
            xf: xf?,
            logits: logits?,
            ids: ids?,
            fed: fed?,
            counts: counts?,
            ring: ring?,
            out: out?,
            part: part?,
            lanes: lanes?,
            windows: if gpu.tuning.attention_windows { Some(gpu.kv_windows_buffers(cfg.n_head as u32)?) } else { None },
        })
    }
}
