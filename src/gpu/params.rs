//! Uniform parameter blocks, one per kernel, each mirroring the `struct Params` at the top of its
//! shader field for field (all 4-byte scalars, padded to 16 bytes). Keep them in sync: the kernel tests
//! exercise every field.

use bytemuck::{Pod, Zeroable};

/// shaders/common/embed_body.wgsl (embed and embed_tex)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct EmbedParams {
    pub t: u32,
    pub c: u32,
    pub pos0: u32,
    pub vocab_lo: u32,
    pub vocab_hi: u32,
    pub w_stride: u32,
    pub wfmt: u32,
    pub s_stride: u32,
}

/// shaders/layer_norm.wgsl
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct LayerNormParams {
    pub rows: u32,
    pub c: u32,
    pub in_row0: u32,
    pub out_row0: u32,
    pub eps: f32,
    pub _pad: [u32; 3],
}

/// Epilogue flags of matmul/gemv.
pub const MM_BIAS: u32 = 1;
pub const MM_GELU: u32 = 2;
pub const MM_ACCUMULATE: u32 = 4;
/// gemv.wgsl only: X's row is layer-normed first (ln_g, ln_b, `ln_eps`), so a decode step needs no
/// separate layer_norm dispatch before qkv and fc (see Tuning::fold_ln).
pub const MM_LN: u32 = 8;
/// gemv.wgsl only: X is not read from a row but merged from split decode attention's partials
/// (shaders/common/merge.wgsl; `merge_nb` blocks of heads of `merge_hs` dimensions, K = NH * hs), so
/// the merge of flash-decoding costs no dispatch of its own (see Tuning::attn_block).
pub const MM_MERGE: u32 = 16;

/// shaders/matmul.wgsl and shaders/gemv.wgsl (same struct)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub flags: u32,
    pub x_row0: u32,
    pub x_stride: u32,
    pub y_stride: u32,
    pub y_col0: u32,
    pub w_stride: u32,
    pub wfmt: u32,
    pub s_stride: u32,
    /// gemv: threads per output row (power of two <= 32); see Tuning::gemv_lanes.
    pub lanes: u32,
    /// gemv: output rows per row-group of threads (1..=4); see Tuning::gemv_rows_per_thread.
    pub rows: u32,
    /// With MM_LN: the layer norm's epsilon.
    pub ln_eps: f32,
    /// With MM_MERGE: NB, the key blocks whose partials X merges, and hs, the head size.
    pub merge_nb: u32,
    pub merge_hs: u32,
}

/// shaders/attention.wgsl
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct AttentionParams {
    pub t: u32,
    pub c: u32,
    pub nh: u32,
    pub hs: u32,
    pub pos0: u32,
    pub scale: f32,
    /// The KV cache's format: `KvFormat::code` (0 f32, 1 f16 pairs).
    pub kv: u32,
    /// B: keys per workgroup of a split decode step (T = 1): workgroup (h, b) writes the partial
    /// softmax of keys [b B, (b + 1) B) to `part`; 0: one workgroup per (head, query) writes `out`.
    pub block: u32,
}

/// shaders/attention_window.wgsl: an attention dispatch's Params and the one head it computes (the
/// model writes one per head into slots of its arena, picked by dynamic offset).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct AttentionHeadParams {
    pub att: AttentionParams,
    pub head: u32,
    pub _pad: [u32; 3],
}

/// Floats per (block, head) partial of split decode attention: o[hs], then m and l.
pub const fn attention_part_stride(hs: u32) -> u32 {
    hs + 2
}

/// shaders/common/sample_params.wgsl (sample_scan, sample_best, sample_draw and sample_pick)
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct SampleParams {
    pub v: u32,
    pub top_k: u32,
    pub greedy: u32,
    pub temperature: f32,
    pub top_p: f32,
    pub rep_penalty: f32,
    pub seed: u32,
    pub step: u32,
    pub n_alt: u32,
    pub row_off: u32,
    /// Row of `out` [K, SAMPLE_OUT_WORDS] this step writes (its place in the batch).
    pub out_row: u32,
    /// Where the token this step was fed enters the repetition-penalty window (its index in the stream
    /// of window tokens, see sample_pick.wgsl), or `SAMPLE_NO_FEED` when the host already counted it.
    pub fed: u32,
    /// P: the window's length (the ring of window tokens holds P ids).
    pub window: u32,
    /// Workgroups of sample_scan (the tuning's `sample_groups`, at most what the lanes need): they
    /// share the lanes, so the result does not depend on it.
    pub groups: u32,
    pub _pad: [u32; 2],
}

/// `SampleParams::fed` when the step's token is already in the counts (a prompt or re-encoded window).
pub const SAMPLE_NO_FEED: u32 = u32::MAX;

/// sample_scan's threads per workgroup; each scans whole lanes of `sampling::cpu::LANE` strided ids.
pub const SAMPLE_SCAN_THREADS: u32 = 64;

/// Workgroups sample_scan runs for a vocabulary of `v`: `cap` (the tuning's `sample_groups`), or fewer
/// when the lanes need fewer. Any number gives the same result.
pub fn sample_scan_groups(v: u32, cap: u32) -> u32 {
    let lanes = v.div_ceil(crate::sampling::cpu::LANE as u32);
    lanes.div_ceil(SAMPLE_SCAN_THREADS).clamp(1, cap.max(1))
}

/// Words written by the sampler's second pass per step: [token, prob, n_alt, (id, prob) x MAX_ALT].
pub const SAMPLE_MAX_ALT: usize = crate::sampling::MAX_ALTERNATIVES;
pub const SAMPLE_OUT_WORDS: usize = 3 + 2 * SAMPLE_MAX_ALT;
