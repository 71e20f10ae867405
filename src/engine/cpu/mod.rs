//! The CPU engine: GPT-2's forward pass on the host, over the package formats exactly as stored (the
//! `PackedMatrix` a loader hands over is kept as is: no conversion, weights held once), f32
//! activations, SIMD kernels chosen at run time (kernels.rs), threads natively (pool.rs).
//!
//! Shapes: T tokens this step, P = n_positions, C = n_embd, NH heads, hs = C / NH, F = n_inner,
//! V = vocab_size, L = n_layer. Buffers are row-major; the comment beside each gives its shape.

mod batch;
pub mod kernels;
pub mod pool;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "x86_64")]
mod x86;

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::quant::{PackedMatrix, WeightFormat};
use crate::sampling::cpu::{penalty_set, sample_logits, seed32, SamplerScratch};
use crate::sampling::{Sampled, SamplingParams};
use crate::weights::{check_inspect, check_next, check_step, tensor_specs, Inspection, Role, TensorData, TensorSource, TensorSpec};
use kernels::{QuantX, Simd};
use pool::Pool;

struct Layer {
    ln_1_g: Vec<f32>,           // [C]
    ln_1_b: Vec<f32>,           // [C]
    attn: PackedMatrix,         // [3C, C]
    attn_b: Vec<f32>,           // [3C]
    attn_proj: PackedMatrix,    // [C, C]
    attn_proj_b: Vec<f32>,      // [C]
    ln_2_g: Vec<f32>,           // [C]
    ln_2_b: Vec<f32>,           // [C]
    fc: PackedMatrix,           // [F, C]
    fc_b: Vec<f32>,             // [F]
    mlp_proj: PackedMatrix,     // [C, F]
    mlp_proj_b: Vec<f32>,       // [C]
}

/// Activations, reused across steps (sized for the largest T seen so far).
#[derive(Default)]
struct Scratch {
    x: Vec<f32>,      // [T, C] residual stream
    xn: Vec<f32>,     // [T, C] layer-norm output
    qkv: Vec<f32>,    // [T, 3C]
    att: Vec<f32>,    // [T, C]
    tmp: Vec<f32>,    // [T, C]
    fch: Vec<f32>,    // [T, F]
    scores: Vec<f32>, // [NH, P]
    logits: Vec<f32>, // [k, V]
    qx: QuantX,
    row: Vec<f32>, // [C]
    hist: Vec<u32>,
    sampler: SamplerScratch,
}

pub struct CpuModel {
    config: Gpt2Config,
    format: WeightFormat,
    simd: Simd,
    pool: Pool,
    wte: PackedMatrix, // [V, C]
    wpe: Vec<f32>,     // [P, C]
    layers: Vec<Layer>,
    ln_f_g: Vec<f32>, // [C]
    ln_f_b: Vec<f32>, // [C]
    k_cache: Vec<Vec<f32>>, // L x [P, C]
    v_cache: Vec<Vec<f32>>, // L x [P, C]
    pos: usize,
    s: Scratch,
    batches: batch::Batches,
}

/// Builds a `CpuModel` tensor by tensor in `tensor_specs` order, like `model::ModelUploader` does for
/// the GPU, so `package::PackageStream` and `CpuModel::load` feed both the same way. Each tensor is
/// moved into its final place (no copy).
pub struct CpuUploader {
    config: Gpt2Config,
    format: WeightFormat,
    specs: Vec<TensorSpec>,
    got: Vec<TensorData>,
}

impl CpuUploader {
    pub fn new(cfg: Gpt2Config, format: WeightFormat) -> Result<CpuUploader> {
        let specs = tensor_specs(&cfg);
        Ok(CpuUploader { got: Vec::with_capacity(specs.len()), specs, config: cfg, format })
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    /// The tensor to push next, None once all are in.
    pub fn next_spec(&self) -> Option<&TensorSpec> {
        self.specs.get(self.got.len())
    }

    /// Take the next tensor. `spec` must be `next_spec()`; `weights::check_next` checks the data against it.
    pub fn push(&mut self, spec: &TensorSpec, data: TensorData) -> Result<()> {
        check_next(self.next_spec(), spec, &data)?;
        self.got.push(data);
        Ok(())
    }

    /// Every tensor must have been pushed. Allocates the KV cache; `threads` = 0 picks the default.
    pub fn finish(self, threads: usize) -> Result<CpuModel> {
        if let Some(s) = self.next_spec() {
            return Err(Error::InvalidArgument(format!("the model is incomplete: `{}` was never pushed", s.name)));
        }
        let cfg = self.config;
        let mut it = self.got.into_iter();
        let mut next = move || it.next().expect("every tensor was pushed");
        fn vector(d: TensorData) -> Vec<f32> {
            match d {
                TensorData::Vector(v) => v,
                TensorData::Matrix(_) => unreachable!("push checked every role"),
            }
        }
        fn matrix(d: TensorData) -> PackedMatrix {
            match d {
                TensorData::Matrix(m) => m,
                TensorData::Vector(_) => unreachable!("push checked every role"),
            }
        }
        let wte = matrix(next());
        let wpe = vector(next());
        let layers = (0..cfg.n_layer)
            .map(|_| Layer {
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
            })
            .collect();
        let ln_f_g = vector(next());
        let ln_f_b = vector(next());
        let (l, p, c) = (cfg.n_layer, cfg.n_positions, cfg.n_embd);
        let threads = if threads == 0 { pool::default_threads() } else { threads };
        let cache = || -> Result<Vec<Vec<f32>>> {
            let mut out = Vec::new();
            for _ in 0..l {
                let mut v = Vec::new();
                v.try_reserve_exact(p * c).map_err(|_| {
                    Error::OutOfMemory(format!("no memory is left for the KV cache ({} MB). Pick a smaller model or a more compact quantization (q8 or q4)", (2 * l * p * c * 4) >> 20))
                })?;
                v.resize(p * c, 0f32);
                out.push(v);
            }
            Ok(out)
        };
        Ok(CpuModel {
            simd: Simd::detect(),
            pool: Pool::new(threads),
            format: self.format,
            wte,
            wpe,
            layers,
            ln_f_g,
            ln_f_b,
            k_cache: cache()?,
            v_cache: cache()?,
            pos: 0,
            // The penalty's window holds up to P ids: its room is made here, not while the context grows.
            s: Scratch { hist: Vec::with_capacity(cfg.n_positions), ..Scratch::default() },
            batches: batch::Batches::new(cfg.n_positions),
            config: cfg,
        })
    }
}

/// Bytes the CPU engine holds for a model of `cfg` whose package has `package_bytes` of tensors
/// (weights as stored, vectors as f32: the package's own layout), loaded with shards of at most
/// `shard_bytes`: the weights, the KV cache (2 x L x [P, C] f32), the activations of a full-context
/// prefill (x, xn, att, tmp [T, C], qkv [T, 3C], fch [T, F], the head's 64 rows of logits [64, V],
/// quantized x [T, F]) and, while loading, two shards (the one arriving and the stream's buffer).
pub fn memory_needed(cfg: &Gpt2Config, package_bytes: u64, shard_bytes: u64) -> u64 {
    let (l, p, c, f, v) = (cfg.n_layer as u64, cfg.n_positions as u64, cfg.n_embd as u64, cfg.n_inner as u64, cfg.vocab_size as u64);
    let kv = 2 * l * p * c * 4;
    let activations = p * (7 * c + f) * 4 + 64 * v * 4 + p * f * 2;
    package_bytes + kv + activations + 2 * shard_bytes
}

impl CpuModel {
    /// Read every tensor of `src` (matrices packed in `format`, as the package stores them) and build
    /// the model; `threads` = 0 picks the default (GPT2_THREADS, else every core).
    pub fn load(src: &mut dyn TensorSource, format: WeightFormat, threads: usize) -> Result<CpuModel> {
        let mut up = CpuUploader::new(src.config().clone(), format)?;
        for spec in tensor_specs(up.config()) {
            let data = match spec.role {
                Role::Vector => TensorData::Vector(src.read_f32(&spec)?),
                Role::Matrix | Role::Embedding => TensorData::Matrix(src.read_packed(&spec, format)?),
            };
            up.push(&spec, data)?;
        }
        up.finish(threads)
    }

    pub fn config(&self) -> &Gpt2Config {
        &self.config
    }

    pub fn format(&self) -> WeightFormat {
        self.format
    }

    /// Tokens in the KV cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Forget the context (the next step starts at position 0) and any batch not yet run.
    pub fn reset(&mut self) {
        self.rollback(0);
    }

    /// The SIMD path in use.
    pub fn simd(&self) -> Simd {
        self.simd
    }

    /// Force a SIMD path (tests compare them); it must be one `Simd::available` lists.
    pub fn set_simd(&mut self, simd: Simd) -> Result<()> {
        if !Simd::available().contains(&simd) {
            return Err(Error::InvalidArgument(format!("the {} path is not available on this CPU", simd.name())));
        }
        self.simd = simd;
        Ok(())
    }

    pub fn threads(&self) -> usize {
        self.pool.threads()
    }

    /// "cpu (avx2, 2 threads)": what `info` and the bench print.
    pub fn device_name(&self) -> String {
        format!("cpu ({}, {} thread{})", self.simd.name(), self.threads(), if self.threads() == 1 { "" } else { "s" })
    }

    /// Run `tokens` through every block, leaving ln_f's input in `s.x` [T, C]. A step (`Pass::Step`,
    /// `Pass::Hidden`) starts at `pos`, appends K/V to the cache and moves `pos`; an inspection starts at
    /// 0 with K/V in its own scratch and leaves the cache and `pos` alone.
    fn body(&mut self, tokens: &[u32], mut pass: Pass<'_>) -> Result<()> {
        let cfg = &self.config;
        let pos0 = match pass {
            Pass::Inspect(_) => 0, // checked by `inspect`
            _ => {
                check_step(cfg, self.pos, tokens)?;
                self.pos
            }
        };
        let (t, c, f, nh, p) = (tokens.len(), cfg.n_embd, cfg.n_inner, cfg.n_head, cfg.n_positions);
        let eps = cfg.layer_norm_epsilon;
        let s = &mut self.s;
        let fit = |v: &mut Vec<f32>, n: usize| {
            v.clear();
            v.resize(n, 0.0);
        };
        fit(&mut s.x, t * c);
        fit(&mut s.xn, t * c);
        fit(&mut s.qkv, t * 3 * c);
        fit(&mut s.att, t * c);
        fit(&mut s.tmp, t * c);
        fit(&mut s.fch, t * f);
        fit(&mut s.scores, nh * p);
        fit(&mut s.row, c);
        // embed: x[t] = wte[id] + wpe[pos0 + t]
        for (i, &id) in tokens.iter().enumerate() {
            kernels::decode_row(&self.wte, id as usize, &mut s.row);
            let pe = &self.wpe[(pos0 + i) * c..][..c];
            for ((o, &a), &b) in s.x[i * c..][..c].iter_mut().zip(&s.row).zip(pe) {
                *o = a + b;
            }
        }
        let (pool, simd) = (&self.pool, self.simd);
        for (l, w) in self.layers.iter().enumerate() {
            if let Pass::Hidden(h) = &mut pass {
                h.push(s.x.clone());
            }
            // attention: x += proj(attention(qkv(ln_1(x))))
            kernels::layer_norm(&s.x, &w.ln_1_g, &w.ln_1_b, eps, &mut s.xn);
            kernels::linear(pool, simd, &w.attn, &s.xn, Some(&w.attn_b), &mut s.qkv, &mut s.qx);
            let (kc, vc, probs) = match &mut pass {
                Pass::Inspect(o) => {
                    let InspectScratch { k, v, attention, .. } = &mut **o;
                    (&mut k[..], &mut v[..], Some(&mut attention[l * nh * t * t..][..nh * t * t]))
                }
                _ => (&mut self.k_cache[l][..], &mut self.v_cache[l][..], None),
            };
            for i in 0..t {
                let row = &s.qkv[i * 3 * c..][..3 * c];
                kc[(pos0 + i) * c..][..c].copy_from_slice(&row[c..2 * c]);
                vc[(pos0 + i) * c..][..c].copy_from_slice(&row[2 * c..]);
            }
            kernels::attention(pool, simd, &s.qkv, kc, vc, c, nh, pos0, &mut s.scores, &mut s.att, probs);
            kernels::linear(pool, simd, &w.attn_proj, &s.att, Some(&w.attn_proj_b), &mut s.tmp, &mut s.qx);
            add(&mut s.x, &s.tmp);
            // MLP: x += proj(gelu(fc(ln_2(x))))
            kernels::layer_norm(&s.x, &w.ln_2_g, &w.ln_2_b, eps, &mut s.xn);
            kernels::linear_gelu(pool, simd, &w.fc, &s.xn, Some(&w.fc_b), &mut s.fch, &mut s.qx);
            kernels::linear(pool, simd, &w.mlp_proj, &s.fch, Some(&w.mlp_proj_b), &mut s.tmp, &mut s.qx);
            add(&mut s.x, &s.tmp);
            if let Pass::Inspect(o) = &mut pass {
                o.after[l * c..][..c].copy_from_slice(&s.x[o.position * c..][..c]);
            }
        }
        if !matches!(pass, Pass::Inspect(_)) {
            self.pos = pos0 + t;
        }
        Ok(())
    }

    /// ln_f of the given rows of the last `body`, then logits against wte: [rows, V] in `s.logits`.
    fn head(&mut self, rows: &[usize]) {
        let c = self.config.n_embd;
        let s = &mut self.s;
        s.xn.clear();
        s.xn.resize(rows.len() * c, 0.0);
        for (j, &r) in rows.iter().enumerate() {
            kernels::layer_norm(&s.x[r * c..][..c], &self.ln_f_g, &self.ln_f_b, self.config.layer_norm_epsilon, &mut s.xn[j * c..][..c]);
        }
        s.logits.clear();
        s.logits.resize(rows.len() * self.config.vocab_size, 0.0);
        kernels::linear(&self.pool, self.simd, &self.wte, &s.xn, None, &mut s.logits, &mut s.qx);
    }

    /// Append `tokens` to the context and sample the next token with the GPU sampler's exact algorithm
    /// (`sampling::cpu`). `context`: every token in the window (repetition penalty); `step` feeds the RNG.
    pub fn step(&mut self, tokens: &[u32], sampling: &SamplingParams, context: &[u32], step: u32) -> Result<Sampled> {
        sampling.validate()?;
        self.body(tokens, Pass::Step)?;
        self.head(&[tokens.len() - 1]);
        let s = &mut self.s;
        if sampling.repetition_penalty != 1.0 {
            penalty_set(context, self.config.n_positions, self.config.vocab_size, &mut s.hist);
        } else {
            s.hist.clear();
        }
        Ok(sample_logits(&s.logits, &s.hist, sampling, seed32(sampling.seed), step, &mut s.sampler))
    }

    /// Append `tokens` and return the logits at every one of their positions, [T, V].
    pub fn append_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        let all: Vec<usize> = (0..tokens.len()).collect();
        self.append_logits_at(tokens, &all)
    }

    /// Append `tokens` and return the logits at the given positions (indices into `tokens`), [k, V].
    pub fn append_logits_at(&mut self, tokens: &[u32], positions: &[usize]) -> Result<Vec<f32>> {
        if let Some(&p) = positions.iter().find(|&&p| p >= tokens.len()) {
            return Err(Error::InvalidArgument(format!("position {p} is outside the {} tokens given", tokens.len())));
        }
        self.body(tokens, Pass::Step)?;
        // The head in slices of rows, so a 1024-token request never holds more than 64 x V f32 at once
        // besides the result.
        let v = self.config.vocab_size;
        let mut out = Vec::with_capacity(positions.len() * v);
        for chunk in positions.chunks(64) {
            self.head(chunk);
            out.extend_from_slice(&self.s.logits);
        }
        Ok(out)
    }

    /// Run `tokens` from position 0 and return the residual stream entering every block, then the
    /// output of ln_f: L + 1 arrays of [T, C] (the fixture's `hidden.{j}`).
    pub fn hidden_states(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        self.reset();
        let mut hidden = Vec::with_capacity(self.config.n_layer + 1);
        self.body(tokens, Pass::Hidden(&mut hidden))?;
        let c = self.config.n_embd;
        let mut xf = vec![0f32; tokens.len() * c];
        kernels::layer_norm(&self.s.x, &self.ln_f_g, &self.ln_f_b, self.config.layer_norm_epsilon, &mut xf);
        hidden.push(xf);
        Ok(hidden)
    }
}

/// What a pass through the blocks does besides leaving ln_f's input in the scratch.
enum Pass<'a> {
    /// A step: K/V appended to the cache at `pos`, `pos` moved past the tokens.
    Step,
    /// A step that also records the residual stream entering every block.
    Hidden(&'a mut Vec<Vec<f32>>),
    /// An inspection: from position 0, K/V in its own scratch; the cache and `pos` untouched.
    Inspect(&'a mut InspectScratch),
}

/// An inspection's buffers, for one call (the generation's scratch and cache are not touched).
struct InspectScratch {
    /// Where the lens is taken (an index into the tokens).
    position: usize,
    k: Vec<f32>,         // [T, C] this block's keys
    v: Vec<f32>,         // [T, C] this block's values
    attention: Vec<f32>, // [L, NH, T, T]
    after: Vec<f32>,     // [L, C] the residual stream at `position` after each block
}

impl CpuModel {
    /// Every block's attention probabilities and the logit lens at `position` (default: the last token)
    /// for `tokens` [T] run from position 0, in a pass of its own: its keys and values go to scratch, so
    /// the KV cache and the generation's place (`position()`) are as they were. Same result as the GPU
    /// engine's `Model::inspect`; T is capped by `weights::max_inspect_tokens`.
    pub fn inspect(&mut self, tokens: &[u32], position: Option<usize>) -> Result<Inspection> {
        let cfg = &self.config;
        let position = check_inspect(cfg, tokens, position)?;
        let (t, c, nh, nl, v) = (tokens.len(), cfg.n_embd, cfg.n_head, cfg.n_layer, cfg.vocab_size);
        let zeros = |n: usize, what: &str| -> Result<Vec<f32>> {
            let mut out = Vec::new();
            out.try_reserve_exact(n).map_err(|_| Error::InspectTooLarge(format!("no memory for the inspection's {what} ({} MB): inspect a shorter text", (n * 4) >> 20)))?;
            out.resize(n, 0.0);
            Ok(out)
        };
        let mut o = InspectScratch {
            position,
            k: zeros(t * c, "keys")?,
            v: zeros(t * c, "values")?,
            attention: zeros(nl * nh * t * t, "attention")?,
            after: zeros(nl * c, "residual rows")?,
        };
        self.body(tokens, Pass::Inspect(&mut o))?;
        // The lens: ln_f of the L saved rows, then logits against wte [L, V].
        let mut xf = vec![0f32; nl * c];
        kernels::layer_norm(&o.after, &self.ln_f_g, &self.ln_f_b, self.config.layer_norm_epsilon, &mut xf);
        let mut lens = zeros(nl * v, "logit lens")?;
        kernels::linear(&self.pool, self.simd, &self.wte, &xf, None, &mut lens, &mut self.s.qx);
        Ok(Inspection { ids: tokens.to_vec(), layers: nl, heads: nh, position, attention: o.attention, lens })
    }
}

fn add(x: &mut [f32], y: &[f32]) {
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}
