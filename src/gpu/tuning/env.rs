//! The `GPT2_*` environment variables that force a tuning or override single fields of it, for
//! benchmarking and for running every shape end to end on any adapter (native only: a browser has no
//! environment; its load option `tuning` goes through `Tuning::choose`'s `forced`). A bad value is an
//! error in words, never silently ignored.

use super::{KvFormat, Tuning, TuningKind};
use crate::error::{Error, Result};
use crate::gpu::Kernel;

/// `GPT2_TUNING`'s kind where it is set.
pub(super) fn kind() -> Result<Option<TuningKind>> {
    match std::env::var("GPT2_TUNING") {
        Ok(v) => Ok(Some(TuningKind::parse(&v)?)),
        Err(_) => Ok(None),
    }
}

/// A whole number where `name` is set.
fn num(name: &str) -> Result<Option<u32>> {
    match std::env::var(name) {
        Err(_) => Ok(None),
        Ok(v) => v.trim().parse::<u32>().map(Some).map_err(|_| Error::InvalidArgument(format!("{name} must be a whole number, not `{v}`"))),
    }
}

/// A 0 or 1 switch.
fn flag(name: &str) -> Result<Option<bool>> {
    match num(name)? {
        None => Ok(None),
        Some(f @ 2..) => Err(Error::InvalidArgument(format!("{name} must be 0 or 1, not {f}"))),
        Some(f) => Ok(Some(f == 1)),
    }
}

/// One of `choices`, by its kernel name.
fn kernel(name: &str, choices: &[Kernel]) -> Result<Option<Kernel>> {
    let Ok(v) = std::env::var(name) else { return Ok(None) };
    if let Some(&k) = choices.iter().find(|k| k.name() == v.trim()) {
        return Ok(Some(k));
    }
    let names: Vec<String> = choices.iter().map(|k| format!("`{}`", k.name())).collect();
    let (last, rest) = names.split_last().expect("a choice of kernels");
    Err(Error::InvalidArgument(format!("{name} must be {} or {last}, not `{}`", rest.join(", "), v.trim())))
}

/// `t` with the single-field overrides applied, for benchmarking; the caller validates the result.
/// `GPT2_GEMV_KERNEL` (gemv or gemv_rows), `GPT2_MATMUL_KERNEL` (matmul, matmul_rows, matmul_subgroup or
/// matmul_run),
/// `GPT2_GEMV_LANES`, `GPT2_GEMV_ROWS`, `GPT2_GEMV_MAX_ROWS`, `GPT2_FOLD_LN` (0 or 1), `GPT2_KV_CACHE` (f32 or
/// f16), `GPT2_TOKENS_PER_SUBMIT`, `GPT2_ATTN_BLOCK` (0: unsplit), `GPT2_ATTENTION_KERNEL` (attention or
/// attention_rows), `GPT2_ATTENTION_ROWS_PROMPTS` (0 or 1), `GPT2_ATTENTION_WINDOWS` (0 or 1),
/// `GPT2_ATTENTION_WINDOW_KERNEL` (attention_window or attention_window_subgroup),
/// `GPT2_LAYER_NORM_KERNEL` (layer_norm or layer_norm_rows), `GPT2_SAMPLE_GROUPS`, `GPT2_WEIGHTS_IN_TEXTURES`
/// (0 or 1; unset: textures exactly where the kernels are the rows kernels) and `GPT2_Q8_UNORM` (0 or 1).
pub(super) fn overrides(mut t: Tuning) -> Result<Tuning> {
    if let Some(k) = kernel("GPT2_GEMV_KERNEL", &[Kernel::Gemv, Kernel::GemvRows])? {
        t.gemv_kernel = k;
    }
    if let Some(k) = kernel("GPT2_MATMUL_KERNEL", &[Kernel::Matmul, Kernel::MatmulRows, Kernel::MatmulSubgroup, Kernel::MatmulRun])? {
        t.matmul_kernel = k;
    }
    if let Some(l) = num("GPT2_GEMV_LANES")? {
        t.gemv_lanes = l;
    }
    if let Some(r) = num("GPT2_GEMV_ROWS")? {
        t.gemv_rows_per_thread = r;
    }
    if let Some(m) = num("GPT2_GEMV_MAX_ROWS")? {
        t.gemv_max_rows = m;
    }
    // Only gemv.wgsl folds: a gemv kernel forced alone takes the separate layer norms with it.
    t.fold_ln = flag("GPT2_FOLD_LN")?.unwrap_or(t.fold_ln && t.gemv_kernel == Kernel::Gemv);
    if let Ok(v) = std::env::var("GPT2_KV_CACHE") {
        t.kv_cache = Some(match v.trim() {
            "f32" => KvFormat::F32,
            "f16" => KvFormat::F16,
            other => return Err(Error::InvalidArgument(format!("GPT2_KV_CACHE must be `f32` or `f16`, not `{other}`"))),
        });
    }
    if let Some(k) = kernel("GPT2_ATTENTION_KERNEL", &[Kernel::Attention, Kernel::AttentionRows])? {
        t.attention_kernel = k;
    }
    if let Some(k) = kernel("GPT2_LAYER_NORM_KERNEL", &[Kernel::LayerNorm, Kernel::LayerNormRows])? {
        t.layer_norm_kernel = k;
    }
    t.attention_rows_prompts = flag("GPT2_ATTENTION_ROWS_PROMPTS")?.unwrap_or(t.attention_rows_prompts);
    t.attention_windows = flag("GPT2_ATTENTION_WINDOWS")?.unwrap_or(t.attention_windows);
    if let Some(k) = kernel("GPT2_ATTENTION_WINDOW_KERNEL", &[Kernel::AttentionWindow, Kernel::AttentionWindowSubgroup])? {
        t.attention_window_kernel = k;
    }
    if let Some(k) = num("GPT2_TOKENS_PER_SUBMIT")? {
        t.tokens_per_submit = k;
    }
    if let Some(g) = num("GPT2_SAMPLE_GROUPS")? {
        t.sample_groups = g;
    }
    // Kernels forced alone take their weights' home with them.
    t.weights_in_textures = flag("GPT2_WEIGHTS_IN_TEXTURES")?.unwrap_or(t.gemv_kernel == Kernel::GemvRows);
    // Only gemv_rows has it: a gemv kernel forced alone drops it.
    t.q8_unorm = flag("GPT2_Q8_UNORM")?.unwrap_or(t.q8_unorm && t.gemv_kernel == Kernel::GemvRows);
    match num("GPT2_ATTN_BLOCK")? {
        Some(b) => t.attn_block = b,
        // Only gemv.wgsl merges, and only attention.wgsl splits: a gemv kernel or attention_rows
        // forced alone takes the split with it.
        None if t.gemv_kernel != Kernel::Gemv || t.attention_kernel != Kernel::Attention => t.attn_block = 0,
        None => {}
    }
    Ok(t)
}
