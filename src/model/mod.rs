//! GPT-2 on the GPU: weights uploaded once (upload.rs), a KV cache sized for the whole context,
//! activation buffers (plan.rs), and the forward pass as an explicit list of dispatches built once at
//! load time (dispatch.rs).
//!
//! Shapes (see config.rs): V vocab, P context, C channels, NH heads, hs = C / NH, F = MLP width,
//! T = tokens in this step, R = rows the head (ln_f + logits) handles at once.
//!
//! Generation runs in batches (batch.rs): up to K decode steps (embed, every layer, ln_f, logits,
//! sample) in one command encoder and one submit, each step embedding the token the step before it
//! sampled on the GPU; the only readback is, per step, the sampled token, its probability and its top
//! alternatives. Two batches may be in flight.

mod batch;
mod dispatch;
mod inspect;
mod params;
mod plan;
mod upload;

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
#[cfg(not(target_arch = "wasm32"))]
use crate::gpu::params::{SampleParams, SAMPLE_NO_FEED};
use crate::gpu::Gpu;
use crate::quant::WeightFormat;
use crate::weights::{check_step, tensor_specs, Role, TensorSource};
use batch::InFlight;
use dispatch::{params_of, Frame, Op, Ops, ParamsArena};
use plan::Activations;
use std::collections::VecDeque;
use std::sync::Arc;
use upload::Weights;

pub use batch::IoCounts;
pub use crate::sampling::Batch;
pub use crate::sampling::{Sampled, SamplingParams};
pub use crate::weights::TensorData;
pub use crate::weights::Inspection;
pub use plan::{buffer_plan, buffer_plan_within, wte_chunks, wte_chunks_within, WeightLimits};
pub use upload::ModelUploader;

/// Runs of the step `Model::profile_step` times (each dispatch counts its fastest).
#[cfg(not(target_arch = "wasm32"))]
const PROFILE_REPS: usize = 5;

/// A GPT-2 model on one GPU, with its context (the KV cache) and the dispatches of a step.
pub struct Model {
    gpu: Arc<Gpu>,
    config: Gpt2Config,
    format: WeightFormat,
    /// The bind groups of `ops` read these buffers on the GPU, and the model owns them for as long as
    /// it can run; their sizes are read on the host, and an inspection binds them again (model/inspect.rs).
    weights: Weights,
    acts: Activations,
    counts_host: Vec<u32>,       // [V] host staging for `acts.counts` when the host feeds tokens
    out_read: [wgpu::Buffer; 2], // [K, SAMPLE_OUT_WORDS] u32 each, MAP_READ copies of `acts.out` (two batches in flight)
    next_read: usize,            // the out_read buffer of the next batch
    head_rows: u32,              // R
    ops: Ops,
    arena: ParamsArena,          // K sets of Params
    /// Tokens in the KV cache after every submitted batch.
    pos: usize,
    k: usize,     // tokens per submit now
    k_cap: usize, // the arena's sets (the tuning's tokens_per_submit at load)
    in_flight: VecDeque<InFlight>,
    /// `acts.fed` holds the last token sampled, not yet fed: a batch may continue from it.
    fed_valid: bool,
    /// `acts.counts`/`ring` hold the penalty window of the tokens fed so far.
    window_loaded: bool,
    /// Stream index of the next token to enter the penalty window (see common/sample_second.wgsl).
    win_next: u32,
    io: IoCounts,
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

    /// How the KV cache stores keys and values (f16 pairs for q8, q4 and f16 packages).
    pub fn kv_format(&self) -> crate::gpu::KvFormat {
        self.weights.kv
    }

    /// Tokens currently in the KV cache.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Forget the context (the next step starts at position 0) and any batch in flight.
    pub fn reset(&mut self) {
        self.rollback(0);
    }

    /// Bytes of weights a decode step reads: every layer's four matrices and all of wte (the logits),
    /// with their scales. The bench divides by this to see how close a step streams to the adapter's rate.
    pub fn weight_bytes_per_token(&self) -> u64 {
        let m = |g: &upload::GpuMatrix| g.bytes();
        let layers: u64 = self.weights.layers.iter().map(|l| m(&l.attn) + m(&l.attn_proj) + m(&l.fc) + m(&l.mlp_proj)).sum();
        layers + self.weights.wte.iter().map(|(_, _, g)| m(g)).sum::<u64>()
    }

    /// Bytes of every GPU buffer this model holds (weights, KV cache, activations, params, read back):
    /// what it costs the GPU for as long as it lives. Read from the buffers themselves, so it is what
    /// was allocated, not what a plan says. (An inspection's scratch lives only during `inspect`.)
    pub fn gpu_bytes(&self) -> u64 {
        let m = |g: &upload::GpuMatrix| g.allocated();
        let w = &self.weights;
        let layers: u64 = w
            .layers
            .iter()
            .map(|l| {
                m(&l.attn) + m(&l.attn_proj) + m(&l.fc) + m(&l.mlp_proj)
                    + [&l.ln_1_g, &l.ln_1_b, &l.attn_b, &l.attn_proj_b, &l.ln_2_g, &l.ln_2_b, &l.fc_b, &l.mlp_proj_b, &l.k_cache, &l.v_cache]
                        .iter()
                        .map(|b| b.size())
                        .sum::<u64>()
            })
            .sum();
        let wte: u64 = w.wte.iter().map(|(_, _, g)| m(g)).sum();
        let a = &self.acts;
        let acts: u64 = [&a.x, &a.xn, &a.qkv, &a.att, &a.fch, &a.xf, &a.logits, &a.ids, &a.fed, &a.counts, &a.ring, &a.out, &a.part, &a.lanes].into_iter().chain(a.windows.iter().flatten()).map(|b| b.size()).sum();
        let reads: u64 = self.out_read.iter().map(|b| b.size()).sum();
        layers + wte + w.wpe.size() + w.ln_f_g.size() + w.ln_f_b.size() + acts + reads + self.arena.bytes()
    }

    /// Dispatches a decode step (one token) records: (per layer, in all). Under a tuning that folds the
    /// layer norms into qkv and fc, ln_1 and ln_2 record nothing on such steps (model/dispatch.rs).
    pub fn dispatch_counts(&self) -> (usize, usize) {
        let t = &self.gpu.tuning;
        (self.ops.per_layer(1, t), self.ops.all().filter(|op| op.runs(1, t)).count())
    }

    /// Record `op` into `pass` with the Params its slot holds now.
    fn record(&self, pass: &mut wgpu::ComputePass<'_>, op: &Op) {
        dispatch::record(&self.gpu, &self.arena, pass, op);
    }

    /// Validate the tokens of a step, upload them, and write every op's Params for the step (the head
    /// for the last token).
    fn begin(&mut self, tokens: &[u32]) -> Result<Frame> {
        check_step(&self.config, self.pos, tokens)?;
        self.gpu.queue.write_buffer(&self.acts.ids, 0, bytemuck::cast_slice(tokens));
        let fr = Frame { t: tokens.len() as u32, pos0: self.pos as u32, head_row0: tokens.len() as u32 - 1, head_rows: 1 };
        for op in self.ops.body() {
            self.arena.write(op, &params_of(&op.kind, fr, &self.config, &self.gpu.tuning));
        }
        self.set_head(fr);
        Ok(fr)
    }

    fn set_head(&mut self, fr: Frame) {
        for op in &self.ops.head {
            self.arena.write(op, &params_of(&op.kind, fr, &self.config, &self.gpu.tuning));
        }
    }

    /// Append `tokens` to the context (a whole prompt at once, or one token) and sample the next token
    /// on the GPU: a batch of one, collected at once. `context` is the context so far, ending with
    /// `tokens` (the repetition penalty looks at its last P tokens); `step` feeds the RNG so a seed
    /// reproduces a whole generation.
    pub async fn step(&mut self, tokens: &[u32], sampling: &SamplingParams, context: &[u32], step: u32) -> Result<Sampled> {
        if !self.in_flight.is_empty() {
            return Err(Error::InvalidArgument("batches are in flight: collect them (or reset) before a single step".into()));
        }
        self.submit(&Batch { tokens: Some(tokens), window: context, n: 1, step0: step, sampling })?;
        let mut out = Vec::with_capacity(1);
        self.collect(&mut out).await?;
        out.pop().ok_or_else(|| Error::Gpu("a batch of one returned no token".into()))
    }

    /// Where the time of one step goes: runs a step of `t` tokens (at the current position) op by op,
    /// waiting for the GPU after each, and returns (label, dispatches, seconds) per kind of op; the
    /// sampler runs the kernels `sampling` picks (the penalty window as the last generation left it).
    /// Native diagnostic for `gpt2 bench --profile`; the real step records everything into one submit.
    /// The step runs PROFILE_REPS times (each run recomputes the same values: the residual stream from
    /// embed, the same K/V at the same position, the logits before the sampler penalises them, and no
    /// window move) and each dispatch counts its fastest run: one submit and wait is a single sample of
    /// the scheduler on a loaded machine (a 0.3 ms sampler pass once read 8 ms).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn profile_step(&mut self, tokens: &[u32], sampling: &SamplingParams) -> Result<Vec<(String, usize, f64)>> {
        sampling.validate()?;
        self.begin(tokens)?;
        let sp = SampleParams { fed: SAMPLE_NO_FEED, ..self.sample_params(sampling) };
        for op in &self.ops.sample {
            self.arena.write(op, bytemuck::bytes_of(&sp));
        }
        self.arena.flush(&self.gpu);
        self.gpu.wait()?;
        let ops: Vec<&Op> = self.ops.all().filter(|op| op.runs(tokens.len() as u32, &self.gpu.tuning)).collect();
        let mut best = vec![f64::INFINITY; ops.len()];
        for _ in 0..PROFILE_REPS {
            for (op, best) in ops.iter().zip(best.iter_mut()) {
                let t0 = std::time::Instant::now();
                let mut enc = self.gpu.device.create_command_encoder(&Default::default());
                {
                    let mut pass = enc.begin_compute_pass(&Default::default());
                    self.record(&mut pass, op);
                }
                self.gpu.queue.submit([enc.finish()]);
                self.gpu.wait()?;
                *best = best.min(t0.elapsed().as_secs_f64());
            }
        }
        let mut out: Vec<(String, usize, f64)> = Vec::new();
        for (op, &dt) in ops.iter().zip(&best) {
            // Named by the kernel the op ran as (the sampler's second pass, attention or attention_rows).
            let ran = dispatch::runs_as(&self.gpu, op, self.arena.params(op, 0)).map_or(op.kernel, |(k, _)| k);
            let label = op.kind.label(ran, tokens.len() as u32, &self.gpu.tuning);
            match out.iter_mut().find(|(l, _, _)| *l == label) {
                Some(e) => {
                    e.1 += 1;
                    e.2 += dt;
                }
                None => out.push((label.to_string(), 1, dt)),
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
        self.arena.flush(&self.gpu);
        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("forward") });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("forward"), timestamp_writes: None });
            for op in self.ops.body() {
                self.record(&mut pass, op);
            }
        }
        self.gpu.queue.submit([enc.finish()]);
        self.pos += tokens.len();

        let v = self.config.vocab_size;
        let mut out = Vec::with_capacity(positions.len() * v);
        let read = self.gpu.readback_buffer("logits_read", self.head_rows as u64 * v as u64 * 4)?;
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
            self.arena.flush(&self.gpu);
            let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("head") });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("head"), timestamp_writes: None });
                for op in &self.ops.head {
                    self.record(&mut pass, op);
                }
            }
            let bytes = rows as u64 * v as u64 * 4;
            enc.copy_buffer_to_buffer(&self.acts.logits, 0, &read, 0, bytes);
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
        self.arena.flush(&self.gpu);
        let row_bytes = self.config.n_embd as u64 * 4;
        let bytes = fr.t as u64 * row_bytes;
        let n_out = self.config.n_layer + 1;
        let read = self.gpu.readback_buffer("hidden_read", bytes * n_out as u64)?;
        let mut enc = self.gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("hidden") });
        for j in 0..n_out {
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("hidden"), timestamp_writes: None });
                // Stream j enters block j: embed, then blocks 0..j (one at a time); the last is after ln_f.
                let ops: &[Op] = if j == 0 { &self.ops.embed } else { &self.ops.layers[j - 1] };
                for op in ops {
                    self.record(&mut pass, op);
                }
                if j == self.config.n_layer {
                    // ln_f, which a folding tuning would skip for one row
                    dispatch::record_unfolded(&self.gpu, &self.arena, &mut pass, &self.ops.head[0]);
                }
            }
            let src = if j == self.config.n_layer { &self.acts.xf } else { &self.acts.x };
            enc.copy_buffer_to_buffer(src, 0, &read, j as u64 * bytes, bytes);
        }
        self.gpu.queue.submit([enc.finish()]);
        self.pos += tokens.len();
        let all = self.gpu.read(&read, bytes * n_out as u64).await?;
        let all: &[f32] = bytemuck::cast_slice(&all);
        Ok(all.chunks(fr.t as usize * self.config.n_embd).map(|c| c.to_vec()).collect())
    }
}
