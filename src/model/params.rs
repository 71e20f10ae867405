//! The Params block of each op for a frame (which rows, which positions): what `ParamsArena` holds per
//! op and step (model/dispatch.rs), written per step without allocating.

use super::dispatch::{Frame, OpKind, Rows, PARAMS_BYTES};
use crate::config::Gpt2Config;
use crate::gpu::params::*;
use crate::gpu::{KvFormat, Tuning};

/// The Params of `kind` for this frame, in a fixed block (no allocation per step).
pub(super) fn params_of(kind: &OpKind, fr: Frame, cfg: &Gpt2Config, tuning: &Tuning) -> [u8; PARAMS_BYTES as usize] {
    fn block<T: bytemuck::Pod>(p: &T) -> [u8; PARAMS_BYTES as usize] {
        let mut b = [0u8; PARAMS_BYTES as usize];
        let bytes = bytemuck::bytes_of(p);
        b[..bytes.len()].copy_from_slice(bytes);
        b
    }
    let c = cfg.n_embd as u32;
    let (nh, hs) = (cfg.n_head as u32, cfg.head_dim() as u32);
    // B on split decode steps, else 0 (the attention op and the projection's merge agree on it).
    let split = tuning.attention_block(fr.t, nh, cfg.n_positions as u32);
    let rows = |r: Rows| match r {
        Rows::Step => (fr.t, 0),
        Rows::Head => (fr.head_rows, fr.head_row0),
    };
    match *kind {
        OpKind::Embed { lo, hi, w } => block(&EmbedParams {
            t: fr.t,
            c,
            pos0: fr.pos0,
            vocab_lo: lo,
            vocab_hi: hi,
            w_stride: w.w_stride,
            wfmt: w.wfmt,
            s_stride: w.s_stride,
        }),
        OpKind::LayerNorm { rows: r, .. } => {
            let (rows, in_row0) = rows(r);
            block(&LayerNormParams { rows, c, in_row0, out_row0: 0, eps: cfg.layer_norm_epsilon, _pad: [0; 3] })
        }
        OpKind::Linear { n, k, flags, w, y_col0, y_stride, rows: r, ln, merge } => {
            let (m, row0) = rows(r);
            let fold = ln && tuning.folds_ln(m);
            block(&MatmulParams {
                m,
                n,
                k,
                flags: flags | if fold { MM_LN } else { 0 } | if merge && split > 0 { MM_MERGE } else { 0 },
                // A folded head reads its rows of the residual stream x itself (else xf from row 0).
                x_row0: if fold { row0 } else { 0 },
                x_stride: k,
                y_stride,
                y_col0,
                w_stride: w.w_stride,
                wfmt: w.wfmt,
                s_stride: w.s_stride,
                lanes: tuning.gemv_lanes,
                rows: tuning.gemv_rows_per_thread,
                ln_eps: cfg.layer_norm_epsilon,
                merge_nb: if merge && split > 0 { (fr.pos0 + 1).div_ceil(split) } else { 0 },
                merge_hs: hs,
            })
        }
        OpKind::Attention { .. } | OpKind::AttentionProbs => block(&AttentionParams {
            t: fr.t,
            c,
            nh,
            hs,
            pos0: fr.pos0,
            scale: 1.0 / (cfg.head_dim() as f32).sqrt(),
            // The inspection's probabilities read its own f32 scratch.
            kv: match *kind {
                OpKind::Attention { kv } => kv.code(),
                _ => KvFormat::F32.code(),
            },
            // The inspection's probabilities are never split.
            block: if matches!(kind, OpKind::Attention { .. }) { split } else { 0 },
        }),
        OpKind::Sample => [0u8; PARAMS_BYTES as usize],
    }
}
