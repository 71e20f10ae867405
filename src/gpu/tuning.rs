//! How the kernels are shaped for one adapter, as data: one `Tuning` value, chosen once per adapter
//! (GPUs and CPU adapters such as lavapipe or SwiftShader want opposite shapes), printed by `gpt2 info`
//! and the bench, and forced with `GPT2_TUNING=gpu|cpu|swiftshader` on any adapter so every shape runs
//! end to end in the tests here (where the only adapters are CPU ones).

use super::Kernel;
use crate::error::{Error, Result};

#[cfg(not(target_arch = "wasm32"))]
mod env;

/// The families of adapters the kernels are shaped for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TuningKind {
    /// Discrete and integrated GPUs: many lanes per row, coalesced reads, tiled GEMM for prompts.
    Gpu,
    /// CPU adapters (lavapipe, SwiftShader): every workgroup barrier is a context switch and every
    /// storage load a loop over the SIMD lanes, so a thread owns 16 whole rows (of 4 tokens for prompts)
    /// and loads each chunk of X once for them, without workgroup memory, in vec4 loads (one loop over
    /// the lanes per four values: common/rows.wgsl).
    Cpu,
    /// SwiftShader (Chromium's software WebGPU): the CPU tuning's kernels, with prompts through
    /// gemv_rows too (see `Tuning::SWIFTSHADER`).
    SwiftShader,
}

/// Words in an adapter's name, driver or (in a browser) GPUAdapterInfo that mark a software adapter,
/// the same list as www/gpt2.js's `isSoftwareAdapter`: a browser that does not set
/// `isFallbackAdapter` (wgpu's WebGPU backend maps only that flag to `DeviceType::Cpu`, every other
/// adapter to `Other`) would otherwise get the GPU tuning there, measured ~60x slower on SwiftShader.
pub const SOFTWARE_ADAPTER_WORDS: &[&str] = &["swiftshader", "llvmpipe", "lavapipe", "softpipe", "warp", "basic render"];

impl TuningKind {
    pub fn name(self) -> &'static str {
        match self {
            TuningKind::Gpu => "gpu",
            TuningKind::Cpu => "cpu",
            TuningKind::SwiftShader => "swiftshader",
        }
    }

    /// `GPT2_TUNING`'s value.
    pub fn parse(s: &str) -> Result<TuningKind> {
        Self::parse_setting("GPT2_TUNING", s)
    }

    /// A tuning's name (any case) given as `setting` (named in the error: GPT2_TUNING natively, the load
    /// option `tuning` in a browser).
    pub fn parse_setting(setting: &str, s: &str) -> Result<TuningKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gpu" => Ok(TuningKind::Gpu),
            "cpu" => Ok(TuningKind::Cpu),
            "swiftshader" => Ok(TuningKind::SwiftShader),
            other => Err(Error::InvalidArgument(format!("{setting} must be `gpu`, `cpu` or `swiftshader`, not `{other}`"))),
        }
    }

    /// The family an adapter belongs to by its device type and its words (`words`: its name and driver,
    /// and in a browser the GPUAdapterInfo's vendor, architecture and description; any case):
    /// SwiftShader by name, then CPU adapters (device type Cpu, or a software name), else a GPU.
    pub fn of_adapter(device_type: wgpu::DeviceType, words: &str) -> TuningKind {
        let words = words.to_ascii_lowercase();
        if words.contains("swiftshader") {
            TuningKind::SwiftShader
        } else if device_type == wgpu::DeviceType::Cpu || SOFTWARE_ADAPTER_WORDS.iter().any(|w| words.contains(w)) {
            TuningKind::Cpu
        } else {
            TuningKind::Gpu
        }
    }
}

/// How the KV cache stores keys and values (shaders/attention.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvFormat {
    /// f32, [P, C]: f32 packages, whose logits are held to 1e-3 of Hugging Face's.
    F32,
    /// f16 pairs (`pack2x16float`), [P, NH, ceil(hs / 2)] words: half the cache's bytes for q8, q4 and
    /// f16 packages, whose weights already cost more accuracy than the f16 rounding of K and V adds.
    F16,
}

impl KvFormat {
    pub fn name(self) -> &'static str {
        match self {
            KvFormat::F32 => "f32",
            KvFormat::F16 => "f16",
        }
    }

    /// The code attention.wgsl reads (`Params.kv`).
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The cache a package of weight format `weights` gets: f32 for f32 weights, f16 otherwise.
    pub fn for_weights(weights: crate::quant::WeightFormat) -> KvFormat {
        if weights == crate::quant::WeightFormat::F32 {
            KvFormat::F32
        } else {
            KvFormat::F16
        }
    }

    /// Bytes of one layer's K (or V) cache of `p` positions, `nh` heads of `hs` dimensions.
    pub fn cache_bytes(self, p: u64, nh: u64, hs: u64) -> u64 {
        match self {
            KvFormat::F32 => p * nh * hs * 4,
            KvFormat::F16 => p * nh * hs.div_ceil(2) * 4,
        }
    }
}

/// Every per-adapter choice the model makes when it records a step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tuning {
    pub kind: TuningKind,
    /// The kernel for steps of few tokens: `Kernel::Gemv` (lanes x rows below) or `Kernel::GemvRows` (one
    /// thread owns 16 rows and loads X once for them: CPU adapters, where every load is a loop over the
    /// SIMD lanes; see shaders/gemv_rows.wgsl).
    pub gemv_kernel: Kernel,
    /// The kernel for steps of more than `gemv_max_rows` tokens: `Kernel::Matmul` (64x64 tiles, GPUs),
    /// `Kernel::MatmulRows` (96 rows x 4 tokens per thread, no barriers: lavapipe), `Kernel::MatmulSubgroup`
    /// (16 rows x 16 tokens, X shared through subgroups: lavapipe where the device has them, see `choose`)
    /// or `Kernel::MatmulRun` (16 rows x 6 tokens, the rows a loop: SwiftShader).
    pub matmul_kernel: Kernel,
    /// gemv.wgsl only: threads that share one output row (a power of two <= 32). On a GPU 32 lanes read
    /// a row side by side (coalesced). (gemv_rows ignores it: one thread owns its rows.)
    pub gemv_lanes: u32,
    /// gemv.wgsl only: output rows each row-group of `gemv_lanes` threads computes (1..=4), sharing
    /// every load of X between them.
    pub gemv_rows_per_thread: u32,
    /// Steps of up to this many tokens use `gemv_kernel` (one pass over W per token); longer ones
    /// `matmul_kernel`. 1 on GPUs and lavapipe (there matmul_rows reads W once per 4 tokens); 2 on
    /// SwiftShader (`Tuning::SWIFTSHADER`); `EVERY_STEP`: never the matmul kernel.
    pub gemv_max_rows: u32,
    /// Steps that run `gemv_kernel` fold ln_1 into qkv and ln_2 into fc (gemv.wgsl's MM_LN: every
    /// workgroup normalizes its staged row), 5 dispatches per layer instead of 7. Needs gemv.wgsl. Off
    /// on CPU adapters: there every load is a loop over the SIMD lanes, and a fold costs each thread of
    /// gemv_rows extra loads (the row's statistics, ln_g, ln_b) per 16 rows it owns, more than the
    /// layer_norm dispatch it saves (measured: README, "Dispatches").
    pub fold_ln: bool,
    /// The KV cache's format when forced (`GPT2_KV_CACHE=f32|f16`, for measuring what the f16 cache
    /// costs); None: by the weights (`KvFormat::for_weights`).
    pub kv_cache: Option<KvFormat>,
    /// K: decode steps recorded into one submit, whose sampled tokens come back in one readback (the
    /// sampler hands each token to the next step's embedding on the GPU). Generation keeps two such
    /// batches in flight, so the GPU never waits for the host between them.
    pub tokens_per_submit: u32,
    /// B: keys per workgroup of decode attention split over key blocks (flash-decoding), 0 for one
    /// workgroup per head. A decode step is a single query, so unsplit attention is only NH workgroups
    /// (12 for gpt2) walking the whole context, and a big GPU idles at long contexts; split, it is NH x
    /// ceil(n_keys / B), each writing a partial softmax (max m, sum l, unnormalized o[hs]) that the
    /// attention projection's gemv merges as it stages its X (MM_MERGE): no dispatch of its own. Needs
    /// gemv.wgsl; at least `MIN_ATTN_BLOCK`. Only where NH x ceil(P / B) <= `MERGE_MAX` (the merge
    /// weights live in the gemv workgroup's memory); larger models decode unsplit.
    pub attn_block: u32,
    /// The kernel of unsplit attention: `Kernel::Attention` (a workgroup of 64 threads per (head, query),
    /// keys in tiles through workgroup memory: GPUs) or `Kernel::AttentionRows` (one thread per (head,
    /// query), its query and accumulators in registers, vec4 loads, no barriers: CPU adapters, where every
    /// load is a loop over the SIMD lanes and every barrier a switch of every invocation). Split decode
    /// steps and shapes attention_rows does not take (`kernels::attention_rows_fits`) run attention.
    pub attention_kernel: Kernel,
    /// Where `attention_kernel` is attention_rows: steps of several tokens (prompts) run
    /// attention_rows_prompt instead, 4 queries of one head per thread, so each key and value a thread
    /// loads serves 4 queries (shaders/attention_rows_prompt.wgsl). On lavapipe it halves a 128-token
    /// prompt's attention; off on SwiftShader, whose prompts in the browser are short (`Tuning::SWIFTSHADER`).
    pub attention_rows_prompts: bool,
    /// Where a prompt would run attention_rows_prompt and each head's keys fit two 64 KB windows in f32
    /// (`kernels::attention_window_fits`: S <= 512 at hs = 64): kv_windows, then attention_window once per
    /// head, its keys read through uniform windows (gpu/windows.rs).
    pub attention_windows: bool,
    /// The kernel of the windows' walk (`attention_windows`): `Kernel::AttentionWindow`, or
    /// `Kernel::AttentionWindowSubgroup` where the device has subgroups (`choose`), whose lanes load each key
    /// and value together.
    pub attention_window_kernel: Kernel,
    /// The kernel of the layer norms that are not folded: `Kernel::LayerNorm` (a workgroup of 256 threads
    /// per row, reduced through workgroup memory: GPUs) or `Kernel::LayerNormRows` (one thread per row, vec4
    /// loads, no barriers: CPU adapters). Rows not on whole vec4s (C % 4 != 0; no GPT-2 size) run
    /// layer_norm (`Tuning::layer_norm_kernel_for`).
    pub layer_norm_kernel: Kernel,
    /// G: the most workgroups the sampler's first pass (sample_scan, 64 threads, one per lane of 128
    /// ids) spreads over; fewer run when the vocabulary has fewer lanes. The sampled tokens do not
    /// depend on it.
    pub sample_groups: u32,
    /// Every weight matrix (wte too) and its q8/q4 scales live in textures, read with textureLoad
    /// (gpu/texels.rs; the kernels gemv_rows, matmul_rows and embed_tex), instead of storage buffers
    /// (gemv, matmul, embed). On lavapipe a storage load is a scalar loop over the SIMD lanes and a
    /// texel fetch is not: gpt2's decode matrices stream at 1.0-1.1 GB of q8 per CPU-second from a
    /// texture against 0.43-0.45 from storage (README, "CPU adapters"). Follows the kernels: the rows
    /// kernels read only textures, gemv and matmul only storage.
    pub weights_in_textures: bool,
    /// gemv_rows unpacks q8 weights with unpack4x8unorm instead of shifts (its WGSL `Q8_UNORM`, a
    /// pipeline constant: `constants`). On SwiftShader every shift of a vector costs a loop over its
    /// lanes while unpack4x8unorm is its own code: gpt2's decode matrices (q8) cost 193-227 CPU ms there
    /// against 320-371 with shifts (shaders/gemv_rows.wgsl). On lavapipe the shifts are faster. q4 weights
    /// go through unpack4x8unorm too (nibbles masked into bytes): a q4 decode token 768 -> 166-171 CPU ms.
    pub q8_unorm: bool,
}

/// `Tuning::gemv_max_rows` for "every step runs the gemv kernel" (the matmul kernel is never dispatched).
pub const EVERY_STEP: u32 = u32::MAX;

/// The smallest B (`Tuning::attn_block`): the partials buffer is sized for ceil(P / MIN_ATTN_BLOCK)
/// blocks at load.
pub const MIN_ATTN_BLOCK: u32 = 32;
/// The most (block, head) pairs one merge handles: gemv.wgsl's `merge_w` workgroup array (4 KB).
pub const MERGE_MAX: u32 = 1024;

/// The most workgroups the sampler's first pass may be given.
pub const MAX_SAMPLE_GROUPS: u32 = 4096;

/// The most decode steps one submit may hold (the sampler's output buffer has this many rows).
pub const MAX_TOKENS_PER_SUBMIT: u32 = 32;

impl Tuning {
    pub const GPU: Tuning = Tuning {
        kind: TuningKind::Gpu,
        gemv_kernel: Kernel::Gemv,
        matmul_kernel: Kernel::Matmul,
        gemv_lanes: 32,
        gemv_rows_per_thread: 1,
        gemv_max_rows: 1,
        fold_ln: true,
        kv_cache: None,
        tokens_per_submit: 8,
        // 16 blocks at a 1,000-token context: NH x 16 workgroups (192 for gpt2, 400 for gpt2-xl).
        attn_block: 64,
        attention_kernel: Kernel::Attention,
        attention_rows_prompts: false,
        attention_windows: false,
        attention_window_kernel: Kernel::AttentionWindow,
        layer_norm_kernel: Kernel::LayerNorm,
        // Every lane its own thread: gpt2's 393 lanes fill 7 workgroups.
        sample_groups: 256,
        // A GPU's storage loads are cheap and coalesced; gemv and matmul read storage buffers.
        weights_in_textures: false,
        q8_unorm: false,
    };
    pub const CPU: Tuning = Tuning {
        kind: TuningKind::Cpu,
        gemv_kernel: Kernel::GemvRows,
        matmul_kernel: Kernel::MatmulRows,
        gemv_lanes: 1,
        gemv_rows_per_thread: 4,
        gemv_max_rows: 1,
        fold_ln: false,
        kv_cache: None,
        // A round trip costs about a millisecond next to a decode step of hundreds here: batches of 8
        // measured no faster on lavapipe (gpt2 q8, within the noise), while every token of a batch
        // past a stop is a whole wasted step. Two batches still stay in flight.
        tokens_per_submit: 1,
        // gemv_rows has no merge; and two lavapipe cores are already busy with NH workgroups.
        attn_block: 0,
        attention_kernel: Kernel::AttentionRows,
        attention_rows_prompts: true,
        attention_windows: true,
        attention_window_kernel: Kernel::AttentionWindow,
        layer_norm_kernel: Kernel::LayerNormRows,
        sample_groups: 8,
        // gemv_rows and matmul_rows read W and the scales as texels (see the field).
        weights_in_textures: true,
        q8_unorm: false,
    };

    /// SwiftShader (Chromium's software WebGPU; Subzero JIT, 4 SIMD lanes of SSE). Measured natively on
    /// Chromium's own SwiftShader (`VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json`), one kernel
    /// over a gpt2 decode step's q8 matrices, CPU ms (README, "CPU adapters: SwiftShader"): gemv_rows
    /// ~1,000, gemv.wgsl 1 lane x 4 rows 1,363, 4 x 4 3,787, 8 x 4 5,895, 32 x 1 (the GPU tuning) 64,616:
    /// every barrier and workgroup-memory reduction is a coroutine switch there, so the CPU tuning's
    /// decode kernels stay. Prompts differ from lavapipe: matmul_rows (then 16 rows x 4 tokens per thread)
    /// kept 64 accumulators and 4 chunks of X live, which Subzero spills on 16 SSE registers, so it
    /// cost 1,528 CPU ms per token of an 11-token prompt against 1,031 for gemv_rows run per token, and
    /// the tiled matmul ran over 10 minutes. Prompts of 3 tokens and more run matmul_run (16 rows x 6
    /// tokens per thread, the rows a loop, q8 through unpack4x8unorm: shaders/matmul_run.wgsl): ~100 CPU ms
    /// per token of an 11-token prompt against 200-300 for gemv_rows once per token.
    pub const SWIFTSHADER: Tuning = Tuning {
        kind: TuningKind::SwiftShader,
        matmul_kernel: Kernel::MatmulRun,
        // matmul_run computes 6 tokens whatever M: one such group cost 605-795 CPU ms (probe, gpt2's
        // matrices, load 3.3) against 295 per token through gemv_rows, so 2 tokens still go through
        // gemv_rows and 3 no longer.
        gemv_max_rows: 2,
        // An 11-token prompt's attention costs 2-4 CPU ms per layer there with either attention_rows or
        // attention_rows_prompt (natively, gpt2 shapes, load 3), a few ms of a multi-second step, while one
        // more pipeline would compile at the browser's load: prompts keep attention_rows.
        attention_rows_prompts: false,
        attention_windows: false,
        // Vector shifts cost a loop over the lanes there (see the field).
        q8_unorm: true,
        ..Tuning::CPU
    };

    pub fn of_kind(kind: TuningKind) -> Tuning {
        match kind {
            TuningKind::Gpu => Tuning::GPU,
            TuningKind::Cpu => Tuning::CPU,
            TuningKind::SwiftShader => Tuning::SWIFTSHADER,
        }
    }

    /// The tuning for an adapter: `forced` if given, else `GPT2_TUNING` (native only; a bad value is an
    /// error, not silently ignored), else by the adapter's device type and words (`TuningKind::of_adapter`).
    /// Where the device has `subgroups` (wgpu's SUBGROUP, with a workgroup of ROWS_WORKGROUP invocations
    /// one subgroup: `Gpu` asks for them natively) matmul_rows's prompts go through matmul_subgroup, its
    /// contract at ~1.7x the speed on lavapipe (shaders/matmul_subgroup.wgsl), and the windows' walk
    /// through attention_window_subgroup (~1.7x). Natively the `GPT2_*` overrides (tuning/env.rs
    /// `overrides`) then set single fields for benchmarking; one that asks for a subgroup kernel without
    /// subgroups is an error.
    pub fn choose(device_type: wgpu::DeviceType, adapter_words: &str, forced: Option<TuningKind>, subgroups: bool) -> Result<Tuning> {
        #[allow(unused_mut)]
        let mut kind = forced;
        #[cfg(not(target_arch = "wasm32"))]
        if kind.is_none() {
            kind = env::kind()?;
        }
        #[allow(unused_mut)]
        let mut t = Tuning::of_kind(kind.unwrap_or_else(|| TuningKind::of_adapter(device_type, adapter_words)));
        if subgroups && t.matmul_kernel == Kernel::MatmulRows {
            t.matmul_kernel = Kernel::MatmulSubgroup;
        }
        if subgroups && t.attention_windows {
            t.attention_window_kernel = Kernel::AttentionWindowSubgroup;
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            t = env::overrides(t)?;
        }
        t.validate()?;
        t.fits_subgroups(subgroups)?;
        Ok(t)
    }

    /// Whether a device with (`subgroups`) or without subgroups of ROWS_WORKGROUP invocations runs this
    /// tuning's kernels: a subgroup kernel (forced by an override) on one without is an error in words.
    pub fn fits_subgroups(&self, subgroups: bool) -> Result<()> {
        for (k, instead) in [(self.matmul_kernel, "matmul_rows (GPT2_MATMUL_KERNEL=matmul_rows)"), (self.attention_window_kernel, "attention_window (GPT2_ATTENTION_WINDOW_KERNEL=attention_window)")] {
            if k.needs_subgroups() && !subgroups {
                return Err(Error::InvalidArgument(format!(
                    "{} needs subgroups of at least {} invocations, which this device does not have: use {instead}",
                    k.name(),
                    super::kernels::ROWS_WORKGROUP
                )));
            }
        }
        Ok(())
    }

    pub fn validate(&self) -> Result<()> {
        if !(self.gemv_lanes.is_power_of_two() && self.gemv_lanes <= 32) {
            return Err(Error::InvalidArgument(format!("gemv lanes must be a power of two up to 32, not {}", self.gemv_lanes)));
        }
        if !(1..=4).contains(&self.gemv_rows_per_thread) {
            return Err(Error::InvalidArgument(format!("gemv rows per thread must be 1 to 4, not {}", self.gemv_rows_per_thread)));
        }
        if !matches!(self.gemv_kernel, Kernel::Gemv | Kernel::GemvRows) {
            return Err(Error::InvalidArgument(format!("the gemv kernel must be gemv or gemv_rows, not {}", self.gemv_kernel.name())));
        }
        if !matches!(self.matmul_kernel, Kernel::Matmul | Kernel::MatmulRows | Kernel::MatmulSubgroup | Kernel::MatmulRun) {
            return Err(Error::InvalidArgument(format!("the matmul kernel must be matmul, matmul_rows, matmul_subgroup or matmul_run, not {}", self.matmul_kernel.name())));
        }
        if !matches!(self.attention_window_kernel, Kernel::AttentionWindow | Kernel::AttentionWindowSubgroup) {
            return Err(Error::InvalidArgument(format!("the attention window kernel must be attention_window or attention_window_subgroup, not {}", self.attention_window_kernel.name())));
        }
        if self.gemv_max_rows == 0 {
            return Err(Error::InvalidArgument("the gemv row limit must be at least 1".into()));
        }
        if self.fold_ln && self.gemv_kernel != Kernel::Gemv {
            return Err(Error::InvalidArgument(format!("folding the layer norm into the linear ops needs the gemv kernel, not {}", self.gemv_kernel.name())));
        }
        if self.attn_block != 0 && self.attn_block < MIN_ATTN_BLOCK {
            return Err(Error::InvalidArgument(format!("the attention block must be 0 (unsplit) or at least {MIN_ATTN_BLOCK} keys, not {}", self.attn_block)));
        }
        if self.attn_block != 0 && self.gemv_kernel != Kernel::Gemv {
            return Err(Error::InvalidArgument(format!("splitting decode attention needs the gemv kernel (its merge), not {}", self.gemv_kernel.name())));
        }
        if !matches!(self.attention_kernel, Kernel::Attention | Kernel::AttentionRows) {
            return Err(Error::InvalidArgument(format!("the attention kernel must be attention or attention_rows, not {}", self.attention_kernel.name())));
        }
        if !matches!(self.layer_norm_kernel, Kernel::LayerNorm | Kernel::LayerNormRows) {
            return Err(Error::InvalidArgument(format!("the layer norm kernel must be layer_norm or layer_norm_rows, not {}", self.layer_norm_kernel.name())));
        }
        if self.attn_block != 0 && self.attention_kernel != Kernel::Attention {
            return Err(Error::InvalidArgument(format!("splitting decode attention needs the attention kernel (its partials), not {}", self.attention_kernel.name())));
        }
        let rows_kernels = [self.gemv_kernel == Kernel::GemvRows, self.matmul_kernel != Kernel::Matmul];
        if rows_kernels != [self.weights_in_textures; 2] {
            return Err(Error::InvalidArgument(format!(
                "gemv_rows, matmul_rows, matmul_subgroup and matmul_run read the weights from textures, gemv and matmul from storage buffers: {} and {} cannot run with the weights in {}",
                self.gemv_kernel.name(),
                self.matmul_kernel.name(),
                if self.weights_in_textures { "textures" } else { "storage buffers" }
            )));
        }
        if self.q8_unorm && self.gemv_kernel != Kernel::GemvRows {
            return Err(Error::InvalidArgument(format!("unpacking q8 with unpack4x8unorm needs the gemv_rows kernel, not {}", self.gemv_kernel.name())));
        }
        if !(1..=MAX_TOKENS_PER_SUBMIT).contains(&self.tokens_per_submit) {
            return Err(Error::InvalidArgument(format!("tokens per submit must be 1 to {MAX_TOKENS_PER_SUBMIT}, not {}", self.tokens_per_submit)));
        }
        if !(1..=MAX_SAMPLE_GROUPS).contains(&self.sample_groups) {
            return Err(Error::InvalidArgument(format!("sampler workgroups must be 1 to {MAX_SAMPLE_GROUPS}, not {}", self.sample_groups)));
        }
        Ok(())
    }

    /// The KV cache format for weights of format `weights`.
    pub fn kv_format(&self, weights: crate::quant::WeightFormat) -> KvFormat {
        self.kv_cache.unwrap_or(KvFormat::for_weights(weights))
    }

    /// The pipeline constants this tuning compiles `k` with, on top of each variant's own
    /// (`Kernel::constants`): gemv_rows's Q8_UNORM where `q8_unorm`.
    pub fn constants(&self, k: Kernel) -> &'static [(&'static str, f64)] {
        if k == Kernel::GemvRows && self.q8_unorm {
            &[("Q8_UNORM", 1.0)]
        } else {
            &[]
        }
    }

    /// Whether a step of `t` tokens folds ln_1 and ln_2 into qkv and fc (see `fold_ln`).
    pub fn folds_ln(&self, t: u32) -> bool {
        self.fold_ln && t <= self.gemv_max_rows
    }

    /// Whether a model's steps (prompt or decode) can dispatch `k` under this tuning: its pipeline is
    /// compiled at load (gpu/mod.rs). The other tuning's linear kernels, the inspection's
    /// attention_probs and the bench's yardstick gemv_ref are not: they compile on first use.
    pub fn dispatches(&self, k: Kernel) -> bool {
        match k {
            Kernel::Gemv | Kernel::GemvRows | Kernel::Matmul | Kernel::MatmulRows | Kernel::MatmulSubgroup | Kernel::MatmulRun => k == self.gemv_kernel || (k == self.matmul_kernel && self.gemv_max_rows != EVERY_STEP),
            Kernel::AttentionProbs | Kernel::GemvRef => false,
            // attention_rows's tunings run attention only for shapes it does not take (no GPT-2 size):
            // a model whose heads need it has it compiled at load by `Ops::prepare`.
            Kernel::Attention | Kernel::AttentionRows => k == self.attention_kernel,
            Kernel::AttentionRowsPrompt => self.attention_kernel == Kernel::AttentionRows && self.attention_rows_prompts,
            Kernel::KvWindows => self.windows(),
            Kernel::AttentionWindow | Kernel::AttentionWindowSubgroup => self.windows() && k == self.attention_window_kernel,
            // Likewise layer_norm under layer_norm_rows's tunings, for rows it does not take.
            Kernel::LayerNorm | Kernel::LayerNormRows => k == self.layer_norm_kernel,
            Kernel::Embed => !self.weights_in_textures,
            Kernel::EmbedTex => self.weights_in_textures,
            _ => true,
        }
    }

    /// B for a step of `t` tokens of a model with `nh` heads and a `p`-token context: the tuning's
    /// `attn_block` on decode steps (t = 1) where the merge's weights fit (NH x ceil(P / B) <= MERGE_MAX),
    /// else 0 (one workgroup per head and query). The attention op and the projection's merge both ask.
    pub fn attention_block(&self, t: u32, nh: u32, p: u32) -> u32 {
        let b = self.attn_block;
        if t == 1 && b != 0 && nh.saturating_mul(p.div_ceil(b)) <= MERGE_MAX {
            b
        } else {
            0
        }
    }

    /// Whether prompts may run through the windows: `attention_windows` where prompts run attention_rows_prompt.
    fn windows(&self) -> bool {
        self.attention_windows && self.attention_kernel == Kernel::AttentionRows && self.attention_rows_prompts
    }

    /// The kernel an attention dispatch with Params `p` runs: the tuning's `attention_kernel` where it
    /// takes them (for steps of several tokens attention_window, standing for kv_windows + attention_window
    /// per head, where `windows()` and the heads fit, else attention_rows_prompt where `attention_rows_prompts`),
    /// else attention (split decode steps, shapes attention_rows does not hold: `kernels::attention_rows_fits`).
    pub fn attention_kernel_for(&self, p: &super::params::AttentionParams) -> Kernel {
        if self.attention_kernel == Kernel::AttentionRows && super::kernels::attention_rows_fits(p) {
            if p.t > 1 && self.windows() && super::kernels::attention_window_fits(p) {
                Kernel::AttentionWindow
            } else if p.t > 1 && self.attention_rows_prompts {
                Kernel::AttentionRowsPrompt
            } else {
                Kernel::AttentionRows
            }
        } else {
            Kernel::Attention
        }
    }

    /// The kernel of a layer norm over rows of `c` channels: the tuning's `layer_norm_kernel` where it takes
    /// them, else layer_norm (layer_norm_rows reads rows as vec4s: C % 4 == 0).
    pub fn layer_norm_kernel_for(&self, c: u32) -> Kernel {
        if self.layer_norm_kernel == Kernel::LayerNormRows && c.is_multiple_of(4) {
            Kernel::LayerNormRows
        } else {
            Kernel::LayerNorm
        }
    }

    /// The kernel of a linear op over `m` rows of X: the gemv kernel for steps of up to `gemv_max_rows`
    /// rows, the matmul kernel for longer ones. (gemv_rows reads X through its uniform window where its
    /// rows lie there, else from storage: common/rows.wgsl.)
    pub fn linear_kernel(&self, m: u32) -> Kernel {
        if m <= self.gemv_max_rows {
            self.gemv_kernel
        } else {
            self.matmul_kernel
        }
    }

    /// The kernel an op declared as `k` runs as (and builds its bind group for) under this tuning: with the
    /// weights in textures, embed is embed_tex and a linear op binds gemv_rows's layout (which matmul_rows
    /// shares); otherwise `k`.
    pub fn kernel_for(&self, k: Kernel) -> Kernel {
        match k {
            Kernel::Embed if self.weights_in_textures => Kernel::EmbedTex,
            Kernel::Matmul | Kernel::Gemv if self.weights_in_textures => Kernel::GemvRows,
            _ => k,
        }
    }

    /// One JSON object (the bench prints it as its `tuning` field).
    pub fn to_json(&self) -> String {
        format!(
            "{{\"kind\":\"{}\",\"gemv_kernel\":\"{}\",\"matmul_kernel\":\"{}\",\"gemv_lanes\":{},\"gemv_rows_per_thread\":{},\"gemv_max_rows\":{},\"fold_ln\":{},\"kv_cache\":\"{}\",\"tokens_per_submit\":{},\"attn_block\":{},\"attention_kernel\":\"{}\",\"attention_rows_prompts\":{},\"attention_windows\":{},\"attention_window_kernel\":\"{}\",\"layer_norm_kernel\":\"{}\",\"sample_groups\":{},\"weights_in_textures\":{},\"q8_unorm\":{}}}",
            self.kind.name(),
            self.gemv_kernel.name(),
            self.matmul_kernel.name(),
            self.gemv_lanes,
            self.gemv_rows_per_thread,
            self.gemv_max_rows,
            self.fold_ln,
            self.kv_cache.map_or("by weights", KvFormat::name),
            self.tokens_per_submit,
            self.attn_block,
            self.attention_kernel.name(),
            self.attention_rows_prompts,
            self.attention_windows,
            self.attention_window_kernel.name(),
            self.layer_norm_kernel.name(),
            self.sample_groups,
            self.weights_in_textures,
            self.q8_unorm
        )
    }
}

impl std::fmt::Display for Tuning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}: {}{}{}; {}; weights in {}; {} decode tokens per submit; attention {}{}, decode {}; {}; sampler over up to {} workgroups)",
            self.kind.name(),
            if self.gemv_max_rows == EVERY_STEP { "every step".to_string() } else { format!("steps of up to {} tokens", self.gemv_max_rows) },
            match self.gemv_kernel {
                Kernel::GemvRows => format!("gemv_rows, {} rows per thread", super::kernels::GEMV_ROWS_PER_THREAD),
                _ => format!("gemv, {} lanes x {} rows per thread", self.gemv_lanes, self.gemv_rows_per_thread),
            },
            if self.fold_ln { ", layer norms folded in" } else { "" },
            if self.q8_unorm { ", q8 and q4 through unpack4x8unorm" } else { "" },
            match self.matmul_kernel {
                _ if self.gemv_max_rows == EVERY_STEP => "no matmul",
                Kernel::MatmulRows => "longer: matmul_rows, 96 rows x 4 tokens per thread",
                Kernel::MatmulSubgroup => "longer: matmul_subgroup, 16 rows x 16 tokens per thread, X shared by the subgroup",
                Kernel::MatmulRun => "longer: matmul_run, 16 rows x 6 tokens per thread",
                _ => "longer: tiled matmul",
            },
            if self.weights_in_textures { "textures" } else { "storage buffers" },
            self.tokens_per_submit,
            self.attention_kernel.name(),
            if self.windows() {
                format!(" (prompts: attention_rows_prompt, {} where a head's keys fit 2 x 64 KB)", self.attention_window_kernel.name())
            } else if self.attention_kernel == Kernel::AttentionRows && self.attention_rows_prompts {
                " (prompts: attention_rows_prompt)".to_string()
            } else {
                String::new()
            },
            if self.attn_block == 0 { "unsplit".to_string() } else { format!("split into blocks of {} keys", self.attn_block) },
            self.layer_norm_kernel.name(),
            self.sample_groups
        )
    }
}
