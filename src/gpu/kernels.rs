//! The kernel table: every compute kernel declared once. A row gives the kernel's name (= its file
//! `shaders/<name>.wgsl` = its WGSL entry point), the shared parts of `shaders/common/` it is assembled
//! from, its bindings (in binding order, with the shapes they hold), its workgroup size, and the
//! function that turns its Params (the shapes of one dispatch) into a grid of workgroups.
//!
//! A kernel's WGSL is its common parts followed by its own file, joined at compile time by
//! `concat!(include_str!(..))`: nothing is assembled at run time, and tests/shaders.rs validates each
//! kernel exactly as assembled here, checks the bindings and workgroup size below against the WGSL,
//! and that every .wgsl file is used.
//!
//! A row may also name sets of pipeline-overridable constants (WGSL `override`), one pipeline each, and
//! the function that picks the set a dispatch needs from its Params: a shape known per dispatch then
//! costs nothing inside the kernel's loops (rows.wgsl's X_ALIGNED).
//!
//! To add a kernel: write `shaders/<name>.wgsl` (and its Params in params.rs), add a row below.

use super::params::*;

/// How a kernel binds one resource.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bind {
    /// The Params block (a uniform with a dynamic offset: the arena's set).
    Uniform,
    Read,
    ReadWrite,
    /// A `texture_2d<u32>` read with textureLoad: an rgba32uint texture of u32 words, 4 per texel, laid out
    /// by `Gpu::texels_init` (TEXTURE_WIDTH texels per texture row). Weights and their scales under the
    /// CPU tuning, tiled (common/texels.wgsl).
    Texels,
    /// The first X_WINDOW_BYTES of a storage buffer (bound as `Read` too), read as a uniform: on lavapipe a
    /// uniform load is a gather over the lanes, a storage load a loop with a branch per lane (common/rows.wgsl).
    Window,
    /// KV_WINDOW_BYTES of a storage buffer read as a uniform at a dynamic offset (bound as `ReadWrite` by
    /// the kernel that fills it): one of a head's KV_WINDOWS_PER_HEAD windows of keys or values for
    /// attention_window, the head picked per dispatch (`Gpu::dispatch_attention_windows`).
    HeadWindow,
}

/// Texels per texture row of a weight texture (common/texels.wgsl's TEX_SHIFT = log2 of it).
pub const TEXTURE_WIDTH: u32 = 4096;
/// Bytes of the uniform window onto X (common/rows.wgsl's X_WINDOW vec4s): WebGPU guarantees uniform
/// bindings of 64 KB.
pub const X_WINDOW_BYTES: u64 = 65536;

/// Bytes of one head's key (or value) window of attention_window (its WGSL KV_WINDOW vec4s): the 64 KB
/// uniform binding WebGPU guarantees; a multiple of every device's uniform offset alignment (<= 256).
pub const KV_WINDOW_BYTES: u64 = 65536;

/// Windows per head of keys (and of values) of attention_window (kv_windows.wgsl's WINDOWS; attention_window
/// binds k_window0, k_window1, v_window0, v_window1): 128 KB of f32 keys per head, S <= 512 at hs = 64.
/// With the Params, 5 dynamic uniform bindings of WebGPU's guaranteed 8.
pub const KV_WINDOWS_PER_HEAD: u64 = 2;

/// One binding of group 0: how it is bound, its WGSL name, and what it holds (shapes as in config.rs).
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    pub bind: Bind,
    pub name: &'static str,
    pub holds: &'static str,
}

const fn params() -> Binding {
    Binding { bind: Bind::Uniform, name: "p", holds: "Params (gpu::params)" }
}
const fn read(name: &'static str, holds: &'static str) -> Binding {
    Binding { bind: Bind::Read, name, holds }
}
const fn write(name: &'static str, holds: &'static str) -> Binding {
    Binding { bind: Bind::ReadWrite, name, holds }
}
const fn texels(name: &'static str, holds: &'static str) -> Binding {
    Binding { bind: Bind::Texels, name, holds }
}

/// Workgroups to dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grid {
    /// n workgroups in a line; `Gpu::grid` folds them into y past the per-dimension limit, and the
    /// kernel unfolds them (`wg.x + wg.y * nwg.x`).
    Line(u32),
    /// An (x, y) grid the kernel indexes as such.
    Xy(u32, u32),
}

/// One row of the table (see the module comment).
pub struct KernelDef {
    pub name: &'static str,
    /// Files under shaders/, in the order they are joined; the kernel's own file comes last.
    pub parts: &'static [&'static str],
    /// The assembled WGSL.
    pub source: &'static str,
    pub bindings: &'static [Binding],
    pub workgroup: [u32; 3],
    /// The grid for one dispatch, from the bytes of its Params (the kernel's own struct) and the
    /// workgroup size above.
    pub grid: fn(params: &[u8], workgroup: [u32; 3]) -> Grid,
    /// The pipeline-constant sets this kernel compiles with, one pipeline each; the first is empty (the
    /// WGSL's defaults), and a kernel without `override`s has only that one.
    pub variants: &'static [&'static [(&'static str, f64)]],
    /// Which of `variants` a dispatch with these Params needs.
    pub pick: fn(params: &[u8]) -> usize,
}

/// The WGSL's own constants: the one variant of most kernels.
const DEFAULTS: &[&[(&str, f64)]] = &[&[]];

/// A row's `variants`/`pick`, or the defaults where it names none.
macro_rules! or_default {
    (, $default:expr) => {
        $default
    };
    ($given:expr, $default:expr) => {
        $given
    };
}

/// A kernel's Params from the start of a (possibly longer, possibly unaligned) parameter block.
fn read_params<T: bytemuck::Pod>(block: &[u8]) -> T {
    bytemuck::pod_read_unaligned(&block[..std::mem::size_of::<T>()])
}

macro_rules! kernel_table {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal {
        common: [$($part:literal),* $(,)?],
        bindings: $bindings:expr,
        workgroup: $wg:expr,
        grid: $grid:expr,
        $(variants: $variants:expr, pick: $pick:expr,)?
    } )*) => {
        /// Every kernel, in table order (see `Kernel::def`).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel { $( $(#[$doc])* $variant ),* }

        impl Kernel {
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant),*];
        }

        static TABLE: &[KernelDef] = &[$(KernelDef {
            name: $name,
            parts: &[$(concat!("common/", $part, ".wgsl"),)* concat!($name, ".wgsl")],
            source: concat!(
                $(include_str!(concat!("../../shaders/common/", $part, ".wgsl")),)*
                include_str!(concat!("../../shaders/", $name, ".wgsl"))
            ),
            bindings: $bindings,
            workgroup: $wg,
            grid: $grid,
            variants: or_default!($($variants)?, DEFAULTS),
            pick: or_default!($($pick)?, |_| 0),
        }),*];
    };
}

kernel_table! {
    /// Token + position embedding for the tokens that fall in one wte chunk.
    Embed = "embed" {
        common: ["weights", "embed_body"],
        bindings: &[params(), read("ids", "[T] u32"), read("w", "wte rows [lo, hi) x C, packed"), read("scales", "their q8/q4 scales"),
                   read("wpe", "[P, C]"), write("x", "[T, C]")],
        workgroup: [256, 1, 1],
        grid: |b, wg| { let p: EmbedParams = read_params(b); Grid::Line((p.t * p.c).div_ceil(wg[0])) },
    }
    /// embed with wte in textures (the CPU tuning: Tuning::weights_in_textures), so the tied wte has one copy.
    EmbedTex = "embed_tex" {
        common: ["texels", "embed_body"],
        bindings: &[params(), read("ids", "[T] u32"), texels("w", "wte rows [lo, hi) x C, packed, tiled"), texels("scales", "their q8/q4 scales, tiled"),
                   read("wpe", "[P, C]"), write("x", "[T, C]")],
        workgroup: [256, 1, 1],
        grid: |b, wg| { let p: EmbedParams = read_params(b); Grid::Line((p.t * p.c).div_ceil(wg[0])) },
    }
    /// Layer norm of `rows` rows, one workgroup per row.
    LayerNorm = "layer_norm" {
        common: ["layer_norm_params", "reduce"],
        bindings: LAYER_NORM,
        workgroup: [256, 1, 1],
        grid: |b, _| { let p: LayerNormParams = read_params(b); Grid::Line(p.rows) },
    }
    /// layer_norm's contract for CPU adapters (Tuning::layer_norm_kernel): one thread per row, vec4 loads,
    /// no workgroup memory, no barriers. Only where C % 4 == 0 (the host runs layer_norm otherwise).
    LayerNormRows = "layer_norm_rows" {
        common: ["layer_norm_params"],
        bindings: LAYER_NORM,
        workgroup: [8, 1, 1],
        grid: |b, wg| { let p: LayerNormParams = read_params(b); Grid::Line(p.rows.div_ceil(wg[0])) },
    }
    /// Tiled Y (+)= act(X W^T + b) for M > 1 rows: a 64x64 tile of Y per workgroup, 4x4 per thread.
    Matmul = "matmul" {
        common: ["weights", "gelu", "linear", "linear_scalar"],
        bindings: LINEAR,
        workgroup: [16, 16, 1],
        grid: |b, wg| { let p: MatmulParams = read_params(b); Grid::Xy(p.n.div_ceil(4 * wg[0]), p.m.div_ceil(4 * wg[1])) },
    }
    /// The same for few rows: `lanes` threads per group of `rows` output rows, one row of X per workgroup row.
    /// Under MM_MERGE X is merged from split decode attention's partials (common/merge.wgsl).
    Gemv = "gemv" {
        common: ["weights", "gelu", "linear", "linear_scalar", "reduce", "merge"],
        bindings: LINEAR,
        workgroup: [256, 1, 1],
        grid: |b, wg| { let p: MatmulParams = read_params(b); Grid::Xy(p.n.div_ceil(wg[0] / p.lanes.max(1) * p.rows.max(1)), p.m) },
    }
    /// gemv for CPU adapters (the CPU tuning): one thread owns ROWS = 16 output rows and loads each chunk of X
    /// once for all of them; no workgroup memory, no barriers; W and its scales in textures, X through its
    /// uniform window where the dispatch's rows lie there, else from storage (a pipeline variant each).
    GemvRows = "gemv_rows" {
        common: ["gelu", "linear", "texels", "rows"],
        bindings: LINEAR_TEXELS,
        workgroup: [ROWS_WORKGROUP, 1, 1],
        grid: |b, wg| { let p: MatmulParams = read_params(b); Grid::Xy(p.n.div_ceil(wg[0] * GEMV_ROWS_PER_THREAD), p.m) },
        variants: ROWS_VARIANTS,
        pick: rows_variant,
    }
    /// Steps of several tokens for CPU adapters (the CPU tuning): one thread owns 96 output rows (16 in each of
    /// 6 tiles of 128) of 4 tokens; gemv_rows's bindings.
    MatmulRows = "matmul_rows" {
        common: ["gelu", "linear", "texels", "rows"],
        bindings: LINEAR_TEXELS,
        workgroup: [ROWS_WORKGROUP, 1, 1],
        grid: |b, wg| { let p: MatmulParams = read_params(b); Grid::Xy(p.n.div_ceil(wg[0] * GEMV_ROWS_PER_THREAD * MATMUL_ROWS_RUNS), p.m.div_ceil(MATMUL_ROWS_TOKENS)) },
        variants: ROWS_VARIANTS,
        pick: rows_variant,
    }
    /// matmul_rows's contract where the device has subgroups of at least 8 invocations (lavapipe, natively:
    /// Tuning::choose): one thread owns one run of 16 rows of 16 tokens, the workgroup's 8 lanes load each
    /// chunk of X together and share it by subgroupBroadcast; gemv_rows's bindings. Never compiled in the
    /// browser (`needs_subgroups`).
    MatmulSubgroup = "matmul_subgroup" {
        common: ["gelu", "linear", "texels", "rows"],
        bindings: LINEAR_TEXELS,
        workgroup: [ROWS_WORKGROUP, 1, 1],
        grid: |b, wg| { let p: MatmulParams = read_params(b); Grid::Xy(p.n.div_ceil(wg[0] * GEMV_ROWS_PER_THREAD), p.m.div_ceil(MATMUL_SUBGROUP_TOKENS)) },
        variants: ROWS_VARIANTS,
        pick: rows_variant,
    }
    /// Steps of several tokens on SwiftShader (its tuning): one thread owns one run of 16 rows (a tile's, as
    /// gemv_rows) of 6 tokens, the rows a loop; q8 through unpack4x8unorm; gemv_rows's bindings.
    MatmulRun = "matmul_run" {
        common: ["gelu", "linear", "texels", "rows"],
        bindings: LINEAR_TEXELS,
        workgroup: [ROWS_WORKGROUP, 1, 1],
        grid: |b, wg| { let p: MatmulParams = read_params(b); Grid::Xy(p.n.div_ceil(wg[0] * GEMV_ROWS_PER_THREAD), p.m.div_ceil(MATMUL_RUN_TOKENS)) },
        variants: ROWS_VARIANTS,
        pick: rows_variant,
    }
    /// `gpt2 bench`'s yardstick, never on a model's path: a plain q8 GEMV (4 output rows per thread, X staged
    /// in workgroup memory, one scale per 32 weights), not shaped by any tuning.
    GemvRef = "gemv_ref" {
        common: ["weights", "gelu", "linear", "linear_scalar"],
        bindings: LINEAR,
        workgroup: [64, 1, 1],
        grid: |b, wg| { let p: MatmulParams = read_params(b); Grid::Xy(p.n.div_ceil(wg[0] * GEMV_REF_ROWS_PER_THREAD), p.m) },
    }
    /// Causal attention over the cache and this step's keys, one workgroup per (head, query); it also
    /// appends the step's keys and values to the cache. A split decode step (Params.block = B > 0, T = 1)
    /// runs one workgroup per (head, block of B keys), each writing a partial softmax to `part`.
    Attention = "attention" {
        common: ["reduce", "attention_params", "attention_head"],
        bindings: ATTENTION,
        workgroup: [64, 1, 1],
        grid: |b, _| {
            let p: AttentionParams = read_params(b);
            if p.block > 0 { Grid::Xy(p.nh, (p.pos0 + 1).div_ceil(p.block)) } else { Grid::Xy(p.nh, p.t) }
        },
    }
    /// attention's unsplit contract for CPU adapters (Tuning::attention_kernel): one thread per (head, query)
    /// holding its query and 64 accumulators in registers, keys and values in vec4 loads, no workgroup
    /// memory, no barriers. Only where `attention_rows_fits` (the host runs attention otherwise).
    AttentionRows = "attention_rows" {
        common: ["attention_params", "kv_append", "attention_rows_body"],
        bindings: ATTENTION,
        workgroup: [8, 1, 1],
        grid: |b, wg| { let p: AttentionParams = read_params(b); Grid::Line((p.nh * p.t).div_ceil(wg[0])) },
    }
    /// attention_rows for steps of several tokens (Tuning::attention_kernel_for): the same code with
    /// ATTENTION_ROWS_QUERIES queries of one head per thread, so each key and value it loads serves them all.
    AttentionRowsPrompt = "attention_rows_prompt" {
        common: ["attention_params", "kv_append", "attention_rows_body"],
        bindings: ATTENTION,
        workgroup: [8, 1, 1],
        grid: |b, wg| { let p: AttentionParams = read_params(b); Grid::Line((p.nh * p.t.div_ceil(ATTENTION_ROWS_QUERIES)).div_ceil(wg[0])) },
    }
    /// The CPU tuning's prompts where each head's keys fit its window (Tuning::attention_windows,
    /// `attention_window_fits`), first of two: keys and values of positions 0 .. pos0 + T copied head-major
    /// into the windows' buffers (f32, whole keys per window), this step's also appended to the cache. One
    /// thread per (position, head).
    KvWindows = "kv_windows" {
        common: ["attention_params", "kv_append"],
        bindings: &[params(), read("qkv", "[T, 3C]"), write("k_cache", "as attention's"), write("v_cache", "the same"),
                   write("k_windows", "[NH, KV_WINDOWS_PER_HEAD, KV_WINDOW_BYTES / 4] f32: head h's keys [S, hs], KEYS = KV_WINDOW_BYTES / 4 / hs whole keys per window"), write("v_windows", "the same for values")],
        workgroup: [64, 1, 1],
        grid: |b, wg| { let p: AttentionParams = read_params(b); Grid::Line(((p.pos0 + p.t) * p.nh).div_ceil(wg[0])) },
    }
    /// The second: attention of one head's T queries (AttentionHeadParams), 8 queries per workgroup walking
    /// the same keys, read through the head's uniform windows (keys 0..KEYS, then KEYS..S): one dispatch
    /// per head.
    AttentionWindow = "attention_window" {
        common: ["attention_window_bindings"],
        bindings: ATTENTION_WINDOW,
        workgroup: [8, 1, 1],
        grid: |b, wg| { let p: AttentionParams = read_params(b); Grid::Line(p.t.div_ceil(wg[0])) },
    }
    /// attention_window where the device has subgroups of at least 8 invocations (natively:
    /// Tuning::choose): the 8 lanes load each key and value together and share it by subgroupBroadcast.
    AttentionWindowSubgroup = "attention_window_subgroup" {
        common: ["attention_window_bindings"],
        bindings: ATTENTION_WINDOW,
        workgroup: [8, 1, 1],
        grid: |b, wg| { let p: AttentionParams = read_params(b); Grid::Line(p.t.div_ceil(wg[0])) },
    }
    /// The attention probabilities themselves, for inspection only (model/inspect.rs): one workgroup per
    /// (head, query), writing its row of [NH, T, S] (zero above the diagonal). Never on a step's path.
    AttentionProbs = "attention_probs" {
        common: ["reduce", "attention_params", "attention_head"],
        bindings: &[params(), read("qkv", "[T, 3C]"), read("k_cache", "[P, C] f32"), write("probs", "[NH, T, S], S = pos0 + T")],
        workgroup: [64, 1, 1],
        grid: |b, _| { let p: AttentionParams = read_params(b); Grid::Xy(p.nh, p.t) },
    }
    /// The sampler's first pass: per lane of 32 strided ids, the repetition penalty (in place), the lane's
    /// max, mass and 4 best candidates; one thread per lane, no barriers.
    SampleScan = "sample_scan" {
        common: ["sample_params"],
        bindings: &[params(), write("logits", "[*, V], penalised in place"), read("counts", "[V] u32 window occurrences"),
                   read("ring", "[P] u32 window tokens"), read("fed", "[4] u32, [0] = the token this step was fed"),
                   write("lanes", "[(4 + 2 * 4) * NL] u32 lane stats and candidates, one array per field")],
        workgroup: [64, 1, 1],
        grid: |b, _| { let p: SampleParams = read_params(b); Grid::Xy(p.groups.max(1), 1) },
    }
    /// The sampler's second pass when greedy, one workgroup: the arg-max from the lanes', the
    /// alternatives, the out row, the penalty window moved on.
    SampleBest = "sample_best" {
        common: ["sample_params", "sample_second"],
        bindings: SAMPLE_SECOND,
        workgroup: [64, 1, 1],
        grid: |_, _| Grid::Xy(1, 1),
    }
    /// The sampler's second pass without top-k and top-p, one workgroup: a two-level draw (the lane by
    /// its mass, then the id inside it), never the row.
    SampleDraw = "sample_draw" {
        common: ["sample_params", "sample_second"],
        bindings: SAMPLE_SECOND,
        workgroup: [64, 1, 1],
        grid: |_, _| Grid::Xy(1, 1),
    }
    /// The sampler's second pass with top-k or top-p, one workgroup: the cut-off and the draw from the
    /// candidates (the whole row only where they cannot decide), the out row, the window moved on.
    SamplePick = "sample_pick" {
        common: ["sample_params", "sample_second"],
        bindings: SAMPLE_SECOND,
        workgroup: [64, 1, 1],
        grid: |_, _| Grid::Xy(1, 1),
    }
}

/// gemv_rows, matmul_rows, matmul_subgroup and matmul_run (common/rows.wgsl): WFMT (the weight format: only
/// its case is compiled) x X_ALIGNED (rows of X start on a vec4) x X_IN_WINDOW (the dispatch's rows of X lie
/// in the uniform window); the WGSL's defaults (f32, aligned, in the window) first. Variant 4 f + r is
/// format code f with ROWS_X[r].
const ROWS_VARIANTS: &[&[(&str, f64)]] = &[
    &[], &[("X_IN_WINDOW", 0.0)], &[("X_ALIGNED", 0.0)], &[("X_ALIGNED", 0.0), ("X_IN_WINDOW", 0.0)],
    &[("WFMT", 1.0)], &[("WFMT", 1.0), ("X_IN_WINDOW", 0.0)], &[("WFMT", 1.0), ("X_ALIGNED", 0.0)], &[("WFMT", 1.0), ("X_ALIGNED", 0.0), ("X_IN_WINDOW", 0.0)],
    &[("WFMT", 2.0)], &[("WFMT", 2.0), ("X_IN_WINDOW", 0.0)], &[("WFMT", 2.0), ("X_ALIGNED", 0.0)], &[("WFMT", 2.0), ("X_ALIGNED", 0.0), ("X_IN_WINDOW", 0.0)],
    &[("WFMT", 3.0)], &[("WFMT", 3.0), ("X_IN_WINDOW", 0.0)], &[("WFMT", 3.0), ("X_ALIGNED", 0.0)], &[("WFMT", 3.0), ("X_ALIGNED", 0.0), ("X_IN_WINDOW", 0.0)],
];

/// Format code wfmt (Params.wfmt, always a format's code: quant::WeightFormat::code); rows of X start on a
/// vec4 wherever x_stride is a multiple of 4 (x_row0 only moves by whole rows); they lie in the window
/// where rows x_row0 .. x_row0 + M end within its X_WINDOW_BYTES.
fn rows_variant(params: &[u8]) -> usize {
    let p: MatmulParams = read_params(params);
    let unaligned = !p.x_stride.is_multiple_of(4);
    let outside = (p.x_row0 as u64 + p.m as u64) * p.x_stride as u64 * 4 > X_WINDOW_BYTES;
    4 * p.wfmt.min(3) as usize + 2 * usize::from(unaligned) + usize::from(outside)
}

/// Output rows per thread of gemv_rows and matmul_rows (their WGSL `ROWS` = common/texels.wgsl's
/// `TILE_RUN`: the weight textures' tiles are shaped by these kernels' thread layout).
pub const GEMV_ROWS_PER_THREAD: u32 = 16;
/// Threads per workgroup of gemv_rows and matmul_rows (their WGSL `WG` = common/texels.wgsl's
/// `TILE_LANES`): one 8-lane SIMD vector of lavapipe.
pub const ROWS_WORKGROUP: u32 = 8;
/// Output rows per thread of gemv_ref (its WGSL `RT`).
pub const GEMV_REF_ROWS_PER_THREAD: u32 = 4;
/// Tokens per thread of matmul_rows (its WGSL `TM`).
pub const MATMUL_ROWS_TOKENS: u32 = 4;
/// Runs of GEMV_ROWS_PER_THREAD rows (one per 128-row tile) per thread of matmul_rows (its WGSL `RUNS`).
pub const MATMUL_ROWS_RUNS: u32 = 6;
/// Tokens per thread of matmul_subgroup (its WGSL `TM`; its rows are one run of GEMV_ROWS_PER_THREAD).
pub const MATMUL_SUBGROUP_TOKENS: u32 = 16;
/// Tokens per thread of matmul_run (its WGSL `TM`; its rows are one run of GEMV_ROWS_PER_THREAD).
pub const MATMUL_RUN_TOKENS: u32 = 6;

/// attention and attention_rows bind the same buffers (one bind group serves both).
const ATTENTION: &[Binding] = &[
    params(),
    read("qkv", "[T, 3C]"),
    write("k_cache", "[P, C] f32 or [P, NH, ceil(hs / 2)] f16 pairs (Params.kv)"),
    write("v_cache", "the same"),
    write("out", "[T, C]"),
    write("part", "[NB, NH, hs + 2] partials of a split decode step: o[hs] unnormalized, m, l"),
];

/// attention_window and attention_window_subgroup bind the same buffers (one bind group serves either).
const ATTENTION_WINDOW: &[Binding] = &[
    params(),
    read("qkv", "[T, 3C]"),
    write("out", "[T, C]"),
    Binding { bind: Bind::HeadWindow, name: "k_window0", holds: "one head's keys [KEYS, hs] f32 (kv_windows's k_windows at 2 h KV_WINDOW_BYTES)" },
    Binding { bind: Bind::HeadWindow, name: "k_window1", holds: "its next KEYS keys (at (2 h + 1) KV_WINDOW_BYTES)" },
    Binding { bind: Bind::HeadWindow, name: "v_window0", holds: "the values of k_window0's keys" },
    Binding { bind: Bind::HeadWindow, name: "v_window1", holds: "the values of k_window1's keys" },
];

/// layer_norm and layer_norm_rows bind the same buffers (one bind group serves either).
const LAYER_NORM: &[Binding] = &[params(), read("x", "[*, C]"), read("g", "[C]"), read("b", "[C]"), write("y", "[*, C]")];

/// Queries per thread of attention_rows_prompt (its WGSL `QUERIES`; attention_rows holds 1).
pub const ATTENTION_ROWS_QUERIES: u32 = 4;

/// The largest head size attention_rows holds in registers (its WGSL `HS4` vec4s).
pub const ATTENTION_ROWS_MAX_HS: u32 = 64;

/// Whether attention_rows computes a dispatch with these Params: unsplit (split decode steps write
/// partials, which only attention does), hs <= ATTENTION_ROWS_MAX_HS, and each head's rows on whole vec4s
/// (hs % 4 == 0 with the f32 cache, hs % 8 == 0 with f16 pairs: hs / 2 words per head). Every GPT-2 size
/// (hs = 64) fits; the host runs attention for any other shape.
pub fn attention_rows_fits(p: &AttentionParams) -> bool {
    let align = if p.kv == super::KvFormat::F16.code() { 8 } else { 4 };
    p.block == 0 && p.hs > 0 && p.hs <= ATTENTION_ROWS_MAX_HS && p.hs.is_multiple_of(align)
}

/// Whether attention_window computes a dispatch with these Params: attention_rows's shapes, and the S =
/// pos0 + T keys of a head (f32, whole keys per window) in its KV_WINDOWS_PER_HEAD windows of
/// KV_WINDOW_BYTES (gpt2's hs = 64: 256 keys a window, S <= 512), whatever the cache's format.
pub fn attention_window_fits(p: &AttentionParams) -> bool {
    attention_rows_fits(p) && p.pos0 as u64 + p.t as u64 <= KV_WINDOWS_PER_HEAD * (KV_WINDOW_BYTES / 4 / p.hs as u64)
}

/// The sampler's three second passes bind the same buffers (one bind group; the model dispatches the
/// one its settings need, `model::dispatch::sample_kernel`).
const SAMPLE_SECOND: &[Binding] = &[
    params(),
    write("logits", "[*, V] penalised"),
    write("counts", "[V] u32 window occurrences"),
    write("ring", "[P] u32 window tokens"),
    write("fed", "[4] u32, [0] = the token the next step embeds"),
    write("out", "[K, SAMPLE_OUT_WORDS] u32"),
    write("lanes", "[(4 + 2 * 4) * NL] u32 (sample_scan's)"),
];

/// matmul and gemv bind the same buffers (common/linear.wgsl), so one bind group serves both.
const LINEAR: &[Binding] = &[
    params(),
    read("x", "[*, x_stride]"),
    read("w", "[N, w_stride] packed"),
    read("scales", "q8/q4 group scales"),
    read("bias", "[N]"),
    write("y", "[M, y_stride]"),
    read("ln_g", "[K] layer-norm gain (MM_LN, gemv only)"),
    read("ln_b", "[K] layer-norm bias (MM_LN, gemv only)"),
];

/// gemv_rows, matmul_rows and matmul_run (the CPU tunings) bind LINEAR's buffers in the same order, but W
/// and the scales as textures, and X once more through its uniform window: one bind group serves all.
const LINEAR_TEXELS: &[Binding] = &[
    params(),
    read("x", "[*, x_stride]"),
    texels("w", "[N, w_stride] packed, tiled (common/texels.wgsl)"),
    texels("scales", "q8/q4 group scales, tiled"),
    read("bias", "[N]"),
    write("y", "[M, y_stride]"),
    read("ln_g", "unused (any buffer)"),
    read("ln_b", "unused (any buffer)"),
    Binding { bind: Bind::Window, name: "xu", holds: "x's first X_WINDOW_BYTES, as a uniform" },
];

impl Kernel {
    /// This kernel's row of the table.
    pub fn def(self) -> &'static KernelDef {
        &TABLE[self as usize]
    }

    /// File stem in shaders/ and WGSL entry point.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The assembled WGSL.
    pub fn source(self) -> &'static str {
        self.def().source
    }

    pub fn bindings(self) -> &'static [Binding] {
        self.def().bindings
    }

    /// The sampler's second pass for these settings: sample_best when greedy, sample_draw without top-k
    /// and top-p, else sample_pick. They bind the same buffers (one bind group serves all three); each
    /// holds only its own path, because a CPU adapter pays for the code of a path it does not take
    /// (lavapipe: a greedy step cost 9 ms in a kernel that also held the sampling code, 0.3 ms alone).
    pub fn sample_second(p: &SampleParams) -> Kernel {
        if p.greedy != 0 {
            Kernel::SampleBest
        } else if (p.top_k == 0 || p.top_k >= p.v) && p.top_p >= 1.0 {
            Kernel::SampleDraw
        } else {
            Kernel::SamplePick
        }
    }

    /// Whether this kernel calls subgroup builtins (WGSL's `subgroups`): only a device with wgpu's SUBGROUP
    /// feature compiles it (`Gpu` asks for the feature natively where the adapter has it), and the browser
    /// never does (web.rs `kernel_sources` marks it `native`; Chromium would want `enable subgroups;`,
    /// which naga's WGSL front end does not take yet).
    pub fn needs_subgroups(self) -> bool {
        matches!(self, Kernel::MatmulSubgroup | Kernel::AttentionWindowSubgroup)
    }

    /// The pipeline-constant sets this kernel compiles with (`KernelDef::variants`).
    pub fn variants(self) -> &'static [&'static [(&'static str, f64)]] {
        self.def().variants
    }

    /// Every pipeline constant of variant `v` under `tuning`: the variant's own, then the tuning's
    /// (`Tuning::constants`). What a pipeline is compiled with (gpu/mod.rs, warm.rs).
    pub fn constants(self, v: usize, tuning: &super::Tuning) -> Vec<(&'static str, f64)> {
        self.variants()[v].iter().chain(tuning.constants(self)).copied().collect()
    }

    /// Whether this kernel compiles a pipeline per weight format (its variants set WFMT: common/rows.wgsl).
    pub fn by_format(self) -> bool {
        self.variants().iter().any(|v| v.iter().any(|&(name, _)| name == "WFMT"))
    }

    /// The variants a device compiles of this kernel as it is made, before any model is there: the
    /// WGSL's defaults; for a kernel compiled per weight format, a decode step's (X aligned, in the
    /// window) for each of `weights`, none where no format is given (a model's load then compiles what
    /// it needs: `Gpu::prepare`, which also compiles any variant a model needs beyond these).
    pub fn load_variants(self, weights: &[crate::quant::WeightFormat]) -> Vec<usize> {
        if !self.by_format() {
            return vec![0];
        }
        weights.iter().map(|f| self.variant(bytemuck::bytes_of(&MatmulParams { m: 1, x_stride: 4, wfmt: f.code(), ..Default::default() }))).collect()
    }

    /// Which variant a dispatch whose Params are (at the start of) `params` needs.
    pub fn variant(self, params: &[u8]) -> usize {
        (self.def().pick)(params)
    }

    /// The workgroups of one dispatch whose Params are (at the start of) `params`.
    pub fn grid(self, params: &[u8]) -> Grid {
        let d = self.def();
        (d.grid)(params, d.workgroup)
    }
}
