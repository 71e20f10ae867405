//! One interface over the two engines that run the model: the GPU one (`crate::model::Model`, WGSL
//! kernels on wgpu) and the CPU one (`cpu::CpuModel`, SIMD on the host). Generation, the CLI and the
//! browser bindings use `Engine` (what a generation step needs) and `AnyEngine` (the engine picked at
//! run time with `Device`).

pub mod cpu;

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::Model;
use crate::quant::WeightFormat;
use crate::sampling::{Batch, Sampled, SamplingParams};
use std::collections::VecDeque;
use crate::weights::{stored_format, tensor_specs, Inspection, Role};
use cpu::CpuModel;

/// What a generation loop needs from an engine.
#[allow(async_fn_in_trait)] // used generically, never as `dyn`
pub trait Engine {
    fn config(&self) -> &Gpt2Config;
    /// Tokens in the KV cache.
    fn position(&self) -> usize;
    /// Forget the context.
    fn reset(&mut self);
    /// Append `tokens`, pick the next token (same algorithm and RNG on both engines). `context`: the
    /// context so far, ending with `tokens` (repetition penalty); `step` feeds the RNG. No batch may be
    /// in flight.
    async fn step(&mut self, tokens: &[u32], sampling: &SamplingParams, context: &[u32], step: u32) -> Result<Sampled>;
    /// K: the most tokens a batch may sample.
    fn tokens_per_submit(&self) -> usize;
    /// Start a batch (see `Batch`) without waiting for it; at most two may be in flight. `position`
    /// counts the tokens it feeds from now on.
    fn submit(&mut self, b: &Batch<'_>) -> Result<()>;
    /// Wait for the oldest batch in flight and append its tokens to `out`.
    async fn collect(&mut self, out: &mut VecDeque<Sampled>) -> Result<()>;
    /// Drop the batches in flight and put the KV position back to `pos` (no later than now); the next
    /// batch feeds tokens.
    fn rollback(&mut self, pos: usize);
}

impl Engine for Model {
    fn config(&self) -> &Gpt2Config {
        Model::config(self)
    }
    fn position(&self) -> usize {
        Model::position(self)
    }
    fn reset(&mut self) {
        Model::reset(self)
    }
    async fn step(&mut self, tokens: &[u32], sampling: &SamplingParams, context: &[u32], step: u32) -> Result<Sampled> {
        Model::step(self, tokens, sampling, context, step).await
    }
    fn tokens_per_submit(&self) -> usize {
        Model::tokens_per_submit(self)
    }
    fn submit(&mut self, b: &Batch<'_>) -> Result<()> {
        Model::submit(self, b)
    }
    async fn collect(&mut self, out: &mut VecDeque<Sampled>) -> Result<()> {
        Model::collect(self, out).await
    }
    fn rollback(&mut self, pos: usize) {
        Model::rollback(self, pos)
    }
}

impl Engine for CpuModel {
    fn config(&self) -> &Gpt2Config {
        CpuModel::config(self)
    }
    fn position(&self) -> usize {
        CpuModel::queued_position(self)
    }
    fn reset(&mut self) {
        CpuModel::reset(self)
    }
    async fn step(&mut self, tokens: &[u32], sampling: &SamplingParams, context: &[u32], step: u32) -> Result<Sampled> {
        CpuModel::step(self, tokens, sampling, context, step)
    }
    fn tokens_per_submit(&self) -> usize {
        CpuModel::tokens_per_submit(self)
    }
    fn submit(&mut self, b: &Batch<'_>) -> Result<()> {
        CpuModel::submit(self, b)
    }
    async fn collect(&mut self, out: &mut VecDeque<Sampled>) -> Result<()> {
        CpuModel::collect(self, out)
    }
    fn rollback(&mut self, pos: usize) {
        CpuModel::rollback(self, pos)
    }
}

/// Which engine to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// A real GPU if there is one, else the CPU engine. Software adapters (lavapipe, SwiftShader: wgpu's
    /// `DeviceType::Cpu`) count as no GPU: the CPU engine is much faster than they are.
    Auto,
    Gpu,
    Cpu,
}

impl Device {
    pub fn parse(s: &str) -> Result<Device> {
        match s {
            "auto" => Ok(Device::Auto),
            "gpu" | "webgpu" => Ok(Device::Gpu),
            "cpu" => Ok(Device::Cpu),
            _ => Err(Error::InvalidArgument(format!("device must be auto, gpu (webgpu) or cpu, not `{s}`"))),
        }
    }
}

/// True for an adapter that is a real GPU (not a software rasterizer running on the CPU).
pub fn is_hardware(gpu: &Gpu) -> bool {
    gpu.info.adapter.device_type != wgpu::DeviceType::Cpu
}

/// The GPU to use for `device`: Some(gpu) for Gpu (an error if there is none) and for Auto when a real
/// GPU is there; None means the CPU engine.
pub async fn pick_gpu(device: Device) -> Result<Option<Gpu>> {
    match device {
        Device::Cpu => Ok(None),
        Device::Gpu => Ok(Some(Gpu::new().await?)),
        Device::Auto => match Gpu::new().await {
            Ok(g) if is_hardware(&g) => Ok(Some(g)),
            _ => Ok(None),
        },
    }
}

/// Bytes of weights one decode step reads: every matrix of every block once, wte once for the logits
/// (its single embedding row is negligible), the block vectors; wpe contributes one row.
pub fn weight_bytes_per_token(cfg: &Gpt2Config, format: WeightFormat) -> u64 {
    tensor_specs(cfg)
        .iter()
        .map(|s| match s.role {
            Role::Vector if s.name == "wpe.weight" => (cfg.n_embd * 4) as u64,
            Role::Vector => (s.numel() * 4) as u64,
            Role::Matrix | Role::Embedding => {
                let f = stored_format(s.role, format);
                let shape = crate::weights::stored_shape(s);
                let (n, k) = (shape[0], shape[1]);
                (n * f.row_bytes(k) + (n * f.s_stride(k)).div_ceil(2) * 4) as u64
            }
        })
        .sum()
}

/// The engine chosen at run time.
// One per process (or per loaded model in the browser), never in a collection: the size difference
// between the variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum AnyEngine {
    Gpu(Model),
    Cpu(CpuModel),
}

impl AnyEngine {
    /// "cpu" or "gpu".
    pub fn kind(&self) -> &'static str {
        match self {
            AnyEngine::Gpu(_) => "gpu",
            AnyEngine::Cpu(_) => "cpu",
        }
    }

    /// In words: "gpu: <adapter> (<backend>)" or "cpu (avx2, 2 threads)".
    pub fn device_name(&self) -> String {
        match self {
            AnyEngine::Gpu(m) => format!("gpu: {} ({:?})", m.gpu().info.adapter.name, m.gpu().info.adapter.backend),
            AnyEngine::Cpu(m) => m.device_name(),
        }
    }

    pub fn format(&self) -> WeightFormat {
        match self {
            AnyEngine::Gpu(m) => m.format(),
            AnyEngine::Cpu(m) => m.format(),
        }
    }

    pub async fn append_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>> {
        match self {
            AnyEngine::Gpu(m) => m.append_logits(tokens).await,
            AnyEngine::Cpu(m) => m.append_logits(tokens),
        }
    }

    pub async fn append_logits_at(&mut self, tokens: &[u32], positions: &[usize]) -> Result<Vec<f32>> {
        match self {
            AnyEngine::Gpu(m) => m.append_logits_at(tokens, positions).await,
            AnyEngine::Cpu(m) => m.append_logits_at(tokens, positions),
        }
    }

    pub async fn hidden_states(&mut self, tokens: &[u32]) -> Result<Vec<Vec<f32>>> {
        match self {
            AnyEngine::Gpu(m) => m.hidden_states(tokens).await,
            AnyEngine::Cpu(m) => m.hidden_states(tokens),
        }
    }

    /// Every block's attention probabilities and the logit lens at `position` (default: the last token)
    /// for `tokens` run from position 0, in a pass of its own on either engine: the KV cache and the
    /// generation's place are untouched. T is capped by `weights::max_inspect_tokens`.
    pub async fn inspect(&mut self, tokens: &[u32], position: Option<usize>) -> Result<Inspection> {
        match self {
            AnyEngine::Gpu(m) => m.inspect(tokens, position).await,
            AnyEngine::Cpu(m) => m.inspect(tokens, position),
        }
    }

    /// The longest sequence `inspect` takes on this engine (`weights::max_inspect_tokens`; on the GPU
    /// also one block's attention within its largest buffer).
    pub fn max_inspect_tokens(&self) -> usize {
        match self {
            AnyEngine::Gpu(m) => m.max_inspect_tokens(),
            AnyEngine::Cpu(m) => crate::weights::max_inspect_tokens(m.config()),
        }
    }

    /// (dispatches per layer, dispatches per decode token): what the GPU engine records per step; the
    /// CPU engine has none (0).
    pub fn step_counts(&self) -> (usize, usize) {
        match self {
            AnyEngine::Gpu(m) => m.dispatch_counts(),
            AnyEngine::Cpu(_) => (0, 0),
        }
    }

    /// How the KV cache stores keys and values: the GPU engine's format (f16 pairs for q8, q4 and f16
    /// packages unless forced); the CPU engine keeps f32.
    pub fn kv_format(&self) -> crate::gpu::KvFormat {
        match self {
            AnyEngine::Gpu(m) => m.kv_format(),
            AnyEngine::Cpu(_) => crate::gpu::KvFormat::F32,
        }
    }

    /// Submits, readbacks and bytes read back so far (the GPU engine's counters; the CPU engine has
    /// none: all 0).
    pub fn io_counts(&self) -> crate::model::IoCounts {
        match self {
            AnyEngine::Gpu(m) => m.io_counts(),
            AnyEngine::Cpu(_) => Default::default(),
        }
    }
}

impl Engine for AnyEngine {
    fn config(&self) -> &Gpt2Config {
        match self {
            AnyEngine::Gpu(m) => m.config(),
            AnyEngine::Cpu(m) => m.config(),
        }
    }
    fn position(&self) -> usize {
        match self {
            AnyEngine::Gpu(m) => m.position(),
            AnyEngine::Cpu(m) => m.queued_position(),
        }
    }
    fn reset(&mut self) {
        match self {
            AnyEngine::Gpu(m) => m.reset(),
            AnyEngine::Cpu(m) => m.reset(),
        }
    }
    async fn step(&mut self, tokens: &[u32], sampling: &SamplingParams, context: &[u32], step: u32) -> Result<Sampled> {
        match self {
            AnyEngine::Gpu(m) => m.step(tokens, sampling, context, step).await,
            AnyEngine::Cpu(m) => m.step(tokens, sampling, context, step),
        }
    }
    fn tokens_per_submit(&self) -> usize {
        match self {
            AnyEngine::Gpu(m) => m.tokens_per_submit(),
            AnyEngine::Cpu(m) => m.tokens_per_submit(),
        }
    }
    fn submit(&mut self, b: &Batch<'_>) -> Result<()> {
        match self {
            AnyEngine::Gpu(m) => m.submit(b),
            AnyEngine::Cpu(m) => m.submit(b),
        }
    }
    async fn collect(&mut self, out: &mut VecDeque<Sampled>) -> Result<()> {
        match self {
            AnyEngine::Gpu(m) => m.collect(out).await,
            AnyEngine::Cpu(m) => m.collect(out),
        }
    }
    fn rollback(&mut self, pos: usize) {
        match self {
            AnyEngine::Gpu(m) => m.rollback(pos),
            AnyEngine::Cpu(m) => m.rollback(pos),
        }
    }
}
