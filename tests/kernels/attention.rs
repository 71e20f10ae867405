//! attention, attention_rows, attention_rows_prompt and attention_window, split decode attention with
//! the merge in the projection's gemv, and the inspection's attention_probs.

use crate::common::{assert_close, attention_qkv, gpu, kv_words, Rng};
use crate::helpers::{bytes, floats};
use gpt2_webgpu::gpu::params::*;
use gpt2_webgpu::gpu::{Kernel, KvFormat, Tuning};
use gpt2_webgpu::quant::{PackedMatrix, WeightFormat};
use gpt2_webgpu::reference::cpu;

/// One attention dispatch of `kernel` (attention, attention_rows) against the f64 reference; `kernel` None:
/// the CPU tuning's choice for these Params (attention_rows where it fits, else attention's fallback).
fn run_attention(t: usize, pos0: usize, nh: usize, hs: usize, q_scale: f32, seed: u64, kv: KvFormat, kernel: Option<Kernel>) {
    let g = gpu();
    let mut rng = Rng(seed);
    let c = nh * hs;
    let s = pos0 + t;
    let p = s + 3; // the cache is longer than what is used
    let mut qkv = attention_qkv(&mut rng, t, c, q_scale);
    // Values past f16's range must saturate in an f16 cache, not become inf or NaN.
    if c > 1 {
        qkv[c + 1] = 1e6;
        qkv[2 * c + 1] = -1e6;
    }
    // The cache holds positions < pos0; this step's rows are NaN there, so reading them instead of qkv
    // would poison the output. The kernel must fill them from qkv for the next step.
    let mut k_cache = rng.vec(p * c, 1.0);
    let mut v_cache = rng.vec(p * c, 1.0);
    for v in k_cache[pos0 * c..s * c].iter_mut().chain(v_cache[pos0 * c..s * c].iter_mut()) {
        *v = f32::NAN;
    }
    let prm = AttentionParams {
        t: t as u32,
        c: c as u32,
        nh: nh as u32,
        hs: hs as u32,
        pos0: pos0 as u32,
        scale: 1.0 / (hs as f32).sqrt(),
        kv: kv.code(),
        block: 0,
    };
    let kernel = kernel.unwrap_or_else(|| Tuning::CPU.attention_kernel_for(&prm));
    let (kc, _) = kv_words(&k_cache, p, nh, hs, kv);
    let (vc, _) = kv_words(&v_cache, p, nh, hs, kv);
    let buffers = [bytes(&qkv), bytes(&kc), bytes(&vc), vec![0u8; t * c * 4], vec![0u8; 16]];
    // attention_window stands for kv_windows + one attention_window per head (gpu/windows.rs).
    let out = if kernel == Kernel::AttentionWindow {
        pollster::block_on(g.run_attention_windows(g.tuning.attention_window_kernel, &prm, &buffers))
    } else {
        pollster::block_on(g.run_once(kernel, bytemuck::bytes_of(&prm), &buffers))
    }
    .unwrap();
    // What the cache must hold afterwards: the past untouched, this step's K and V appended.
    let (mut kw, mut vw) = (k_cache.clone(), v_cache.clone());
    for r in 0..t {
        kw[(pos0 + r) * c..(pos0 + r + 1) * c].copy_from_slice(&qkv[r * 3 * c + c..r * 3 * c + 2 * c]);
        vw[(pos0 + r) * c..(pos0 + r + 1) * c].copy_from_slice(&qkv[r * 3 * c + 2 * c..r * 3 * c + 3 * c]);
    }
    let label = format!("{} kv={} T={t} pos0={pos0} NH={nh} hs={hs} qscale={q_scale}", kernel.name(), kv.name());
    let (kw_words, k_held) = kv_words(&kw, p, nh, hs, kv);
    let (vw_words, v_held) = kv_words(&vw, p, nh, hs, kv);
    let words = |b: &[u8]| bytemuck::pod_collect_to_vec::<u8, u32>(b);
    assert!(words(&out[1]) == kw_words, "{label}: k_cache = past + this step's keys");
    assert!(words(&out[2]) == vw_words, "{label}: v_cache = past + this step's values");
    let got = floats(&out[3]);
    // The past as the cache holds it; this step's keys and values in f32, straight from qkv.
    let (mut k_ref, mut v_ref) = (k_held[..s * c].to_vec(), v_held[..s * c].to_vec());
    k_ref[pos0 * c..].copy_from_slice(&cpu::to_f64(&kw[pos0 * c..s * c]));
    v_ref[pos0 * c..].copy_from_slice(&cpu::to_f64(&vw[pos0 * c..s * c]));
    let q: Vec<f64> = (0..t).flat_map(|r| qkv[r * 3 * c..r * 3 * c + c].iter().map(|&v| v as f64)).collect();
    let want = cpu::attention_with_past(&q, &k_ref, &v_ref, c, nh);
    assert_close(&label, &got, &want, 2e-5, 1e-4);
}

#[test]
fn attention_matches_reference_across_tiles_heads_and_positions() {
    for kv in [KvFormat::F32, KvFormat::F16] {
        let k = Some(Kernel::Attention);
        run_attention(1, 0, 1, 1, 1.0, 1, kv, k); // a single key
        run_attention(1, 7, 2, 7, 1.0, 2, kv, k); // decode, odd head size (f16: a padded word per head)
        run_attention(5, 0, 3, 64, 1.0, 3, kv, k); // prefill
        run_attention(1, 600, 2, 64, 1.0, 4, kv, k); // decode over three key tiles
        run_attention(300, 0, 2, 64, 1.0, 5, kv, k); // prefill crossing the 256-key tile
        run_attention(3, 256, 1, 200, 1.0, 6, kv, k); // exactly one tile of past, hs > 64 (4 dims per thread)
        run_attention(9, 260, 2, 64, 30.0, 7, kv, k); // very peaked scores: online softmax rescaling
        run_attention(2, 5, 3, 1, 1.0, 8, kv, k); // hs = 1: every head's word half empty
    }
}

// attention_rows (the CPU tunings' attention: one thread per (head, query)) on the same kinds of case,
// and the CPU tuning's choice, which falls back to attention where attention_rows does not take the shape.
#[test]
fn attention_rows_matches_reference_and_falls_back_where_it_does_not_fit() {
    // attention_rows_prompt (4 queries per thread) on the prompts below, and attention_rows (one) on all.
    for kv in [KvFormat::F32, KvFormat::F16] {
        let k = Some(Kernel::AttentionRowsPrompt);
        run_attention(2, 0, 3, 64, 1.0, 37, kv, k); // 2 queries: a thread whose last 2 lie past T
        run_attention(8, 5, 3, 64, 1.0, 38, kv, k); // two whole groups of 4 queries, with a past
        run_attention(1, 7, 2, 64, 1.0, 39, kv, k); // one query: 3 past T
        run_attention(5, 0, 3, 64, 1.0, 40, kv, k); // NH x groups = 6: a partial last workgroup
        run_attention(7, 3, 5, 64, 1.0, 41, kv, k); // odd T with a past, an odd number of heads
        run_attention(300, 0, 2, 64, 1.0, 42, kv, k); // a 300-token prefill
        // gpt2's heads: the 128-token prompt of the probe whose run stalled last session (not reproduced:
        // README, "CPU adapters: prompt attention"), and a 130-token prompt continuing a 17-token cache.
        run_attention(128, 0, 12, 64, 1.0, 48, kv, k);
        run_attention(130, 17, 12, 64, 1.0, 49, kv, k);
        run_attention(9, 260, 2, 64, 30.0, 43, kv, k); // very peaked scores
        run_attention(9, 40, 3, 64, 300.0, 44, kv, k); // outlier queries
        run_attention(4, 9, 3, 8, 1.0, 45, kv, k); // hs = 8
        run_attention(3, 11, 2, 40, 1.0, 46, kv, k); // hs = 40
    }
    for kv in [KvFormat::F32, KvFormat::F16] {
        let k = Some(Kernel::AttentionRows);
        run_attention(1, 0, 1, 64, 1.0, 21, kv, k); // a single key
        run_attention(1, 7, 2, 64, 1.0, 22, kv, k); // decode
        run_attention(5, 0, 3, 64, 1.0, 23, kv, k); // prefill, NH T = 15: a partial last workgroup
        run_attention(7, 3, 5, 64, 1.0, 24, kv, k); // odd T with a past, an odd number of heads
        run_attention(1, 600, 2, 64, 1.0, 25, kv, k); // a 600-key decode
        run_attention(300, 0, 2, 64, 1.0, 26, kv, k); // a 300-token prefill
        run_attention(9, 260, 2, 64, 30.0, 27, kv, k); // very peaked scores: the online softmax rescales
        run_attention(9, 40, 3, 64, 300.0, 28, kv, k); // outlier queries: scores in the thousands
        run_attention(4, 9, 3, 8, 1.0, 29, kv, k); // hs = 8: two vec4s per head (one of f16 words)
        run_attention(3, 11, 2, 40, 1.0, 30, kv, k); // hs = 40: 10 of the 16 registers
    }
    // hs = 4, 12, 36 take the f32 cache (whole vec4s) but not f16 pairs (hs / 2 words not whole vec4s).
    for hs in [4, 12, 36] {
        run_attention(3, 5, 2, hs, 1.0, 31, KvFormat::F32, Some(Kernel::AttentionRows));
        run_attention(3, 5, 2, hs, 1.0, 47, KvFormat::F32, Some(Kernel::AttentionRowsPrompt));
    }
    // What the CPU tuning picks: odd, unaligned and too large heads, and split steps, run attention.
    let fits = |hs: u32, kv: KvFormat, block: u32| {
        let p = AttentionParams { t: 1, c: 2 * hs, nh: 2, hs, pos0: 3, scale: 1.0, kv: kv.code(), block };
        Tuning::CPU.attention_kernel_for(&p) == Kernel::AttentionRows
    };
    assert!(fits(64, KvFormat::F32, 0) && fits(64, KvFormat::F16, 0) && fits(8, KvFormat::F16, 0) && fits(4, KvFormat::F32, 0));
    assert!(!fits(4, KvFormat::F16, 0) && !fits(12, KvFormat::F16, 0) && !fits(7, KvFormat::F32, 0) && !fits(1, KvFormat::F32, 0));
    assert!(!fits(68, KvFormat::F32, 0) && !fits(128, KvFormat::F16, 0) && !fits(200, KvFormat::F32, 0));
    assert!(!fits(64, KvFormat::F32, 64), "a split decode step writes partials: attention's");
    let prompt = AttentionParams { t: 2, c: 128, nh: 2, hs: 64, pos0: 0, scale: 1.0, kv: 0, block: 0 };
    let no_windows = Tuning { attention_windows: false, ..Tuning::CPU };
    assert_eq!(no_windows.attention_kernel_for(&prompt), Kernel::AttentionRowsPrompt, "a step of several tokens");
    assert_eq!(Tuning::CPU.attention_kernel_for(&prompt), Kernel::AttentionWindow, "one whose heads fit their windows");
    assert_eq!(Tuning::CPU.attention_kernel_for(&AttentionParams { hs: 68, ..prompt }), Kernel::Attention, "hs > 64");
    let gpu_picks = AttentionParams { t: 1, c: 128, nh: 2, hs: 64, pos0: 3, scale: 1.0, kv: 0, block: 0 };
    assert_eq!(Tuning::GPU.attention_kernel_for(&gpu_picks), Kernel::Attention);
    for kv in [KvFormat::F32, KvFormat::F16] {
        run_attention(1, 7, 2, 7, 1.0, 32, kv, None); // odd head size
        run_attention(2, 5, 3, 1, 1.0, 33, kv, None); // hs = 1
        run_attention(3, 256, 1, 200, 1.0, 34, kv, None); // hs > 64
        run_attention(5, 4, 2, 12, 1.0, 35, kv, None); // f32: attention_rows; f16: attention
        run_attention(6, 2, 2, 64, 1.0, 36, kv, None); // attention_rows
    }
}

/// A decode step (T = 1) at position pos0 with attention split into blocks of `block` keys (flash-decoding:
/// attention.wgsl writes one partial per block and head), then the attention projection through gemv
/// with the merge folded into its X staging (MM_MERGE), Y = y0 + att W^T + b, against cpu.rs. With
/// `outliers`, a few cached keys are scaled along q so their scores are +1e3, +999 and -1e3 in different
/// blocks: the merge must rescale by the largest block max without overflow or losing the second.
/// `w_fmt` None: W = I in f32 and no bias, so Y - y0 is the merged attention itself, held to attention's
/// own tolerance.
fn run_split_attention(pos0: usize, nh: usize, hs: usize, block: usize, kv: KvFormat, outliers: bool, w_fmt: Option<WeightFormat>, (lanes, rows): (u32, u32), seed: u64) {
    let g = gpu();
    let mut rng = Rng(seed);
    let c = nh * hs;
    let n_keys = pos0 + 1;
    let nb = n_keys.div_ceil(block);
    let p = n_keys + 3;
    let scale = 1.0 / (hs as f32).sqrt();
    let qkv = rng.vec(3 * c, 1.0);
    let mut k_cache = rng.vec(p * c, 1.0);
    let mut v_cache = rng.vec(p * c, 1.0);
    if outliers && pos0 > 2 {
        // Key s of head h along q_h with score `target`: k = q * target / (scale |q_h|^2).
        for (s, target) in [(pos0 / 3, 1000.0f32), (2 * pos0 / 3, 999.0), (pos0 - 1, -1000.0)] {
            for h in 0..nh {
                let q = &qkv[h * hs..(h + 1) * hs];
                let q2: f32 = q.iter().map(|v| v * v).sum();
                for d in 0..hs {
                    k_cache[s * c + h * hs + d] = q[d] * target / (scale * q2);
                }
            }
        }
    }
    for v in k_cache[pos0 * c..n_keys * c].iter_mut().chain(v_cache[pos0 * c..n_keys * c].iter_mut()) {
        *v = f32::NAN; // the step's own row comes from qkv
    }
    let prm = AttentionParams { t: 1, c: c as u32, nh: nh as u32, hs: hs as u32, pos0: pos0 as u32, scale, kv: kv.code(), block: block as u32 };
    assert_eq!(Kernel::Attention.grid(bytemuck::bytes_of(&prm)), gpt2_webgpu::gpu::Grid::Xy(nh as u32, nb as u32));
    let (kc, _) = kv_words(&k_cache, p, nh, hs, kv);
    let (vc, _) = kv_words(&v_cache, p, nh, hs, kv);
    let stride = attention_part_stride(hs as u32) as usize;
    let part0 = vec![f32::NAN; (nb + 1) * nh * stride]; // one block too many: must stay untouched
    let out = pollster::block_on(g.run_once(Kernel::Attention, bytemuck::bytes_of(&prm), &[bytes(&qkv), bytes(&kc), bytes(&vc), bytes(&vec![5.0f32; c]), bytes(&part0)])).unwrap();
    let label = format!("split attention kv={} pos0={pos0} NH={nh} hs={hs} B={block} outliers={outliers} W={w_fmt:?} lanes={lanes} rows={rows}", kv.name());
    let (mut kw, mut vw) = (k_cache.clone(), v_cache.clone());
    kw[pos0 * c..n_keys * c].copy_from_slice(&qkv[c..2 * c]);
    vw[pos0 * c..n_keys * c].copy_from_slice(&qkv[2 * c..]);
    let (kw_words, k_held) = kv_words(&kw, p, nh, hs, kv);
    let (vw_words, v_held) = kv_words(&vw, p, nh, hs, kv);
    let words = |b: &[u8]| bytemuck::pod_collect_to_vec::<u8, u32>(b);
    assert!(words(&out[1]) == kw_words, "{label}: k_cache = past + this step's keys, written once");
    assert!(words(&out[2]) == vw_words, "{label}: v_cache = past + this step's values");
    assert!(floats(&out[3]).iter().all(|&v| v == 5.0), "{label}: a split step leaves `out` alone");
    let part = floats(&out[4]);
    assert!(part[nb * nh * stride..].iter().all(|v| v.is_nan()), "{label}: nothing past NB blocks");
    assert!(part[..nb * nh * stride].iter().all(|v| v.is_finite()), "{label}: every partial written and finite");

    let (mut k_ref, mut v_ref) = (k_held[..n_keys * c].to_vec(), v_held[..n_keys * c].to_vec());
    k_ref[pos0 * c..].copy_from_slice(&cpu::to_f64(&qkv[c..2 * c]));
    v_ref[pos0 * c..].copy_from_slice(&cpu::to_f64(&qkv[2 * c..]));
    let att = cpu::attention_with_past(&cpu::to_f64(&qkv[..c]), &k_ref, &v_ref, c, nh);

    // The projection with the merge folded in: y = y0 + att W^T (+ b).
    let (w_nk, fmt, flags) = match w_fmt {
        None => ((0..c * c).map(|i| if i / c == i % c { 1.0 } else { 0.0 }).collect::<Vec<f32>>(), WeightFormat::F32, MM_ACCUMULATE),
        Some(f) => (rng.vec(c * c, 0.5), f, MM_BIAS | MM_ACCUMULATE),
    };
    let packed = PackedMatrix::pack_nk(&w_nk, c, c, fmt);
    let bias = rng.vec(c, 1.0);
    let y0 = rng.vec(c, 1.0);
    let mm = MatmulParams {
        m: 1,
        n: c as u32,
        k: c as u32,
        flags: flags | MM_MERGE,
        x_row0: 0,
        x_stride: c as u32,
        y_stride: c as u32,
        y_col0: 0,
        w_stride: packed.w_stride() as u32,
        wfmt: fmt.code(),
        s_stride: packed.s_stride() as u32,
        lanes,
        rows,
        ln_eps: 1e-5,
        merge_nb: nb as u32,
        merge_hs: hs as u32,
    };
    let (g_ln, b_ln) = (vec![1f32; c], vec![0f32; c]);
    let out = pollster::block_on(g.run_once(
        Kernel::Gemv,
        bytemuck::bytes_of(&mm),
        &[out[4].clone(), bytes(&packed.words), bytes(&packed.scales), bytes(&bias), bytes(&y0), bytes(&g_ln), bytes(&b_ln)],
    ))
    .unwrap();
    let got = floats(&out[4]);
    let w_kn = gpt2_webgpu::quant::transpose(&packed.unpack(), c, c);
    let v = cpu::matmul(&att, &w_kn, if flags & MM_BIAS != 0 { Some(&bias) } else { None }, c, c);
    let want: Vec<f64> = y0.iter().zip(&v).map(|(&y, &v)| y as f64 + v).collect();
    // A score of 1e3 is formed in f32 to about 1e3 * eps * sqrt(hs) (1e-3 at hs = 64), which moves the
    // softmax weights (and so the output) by as much; dropping or double-counting a block would be ~0.1.
    let score_err = if outliers { 1e3 * f32::EPSILON as f64 * (hs as f64).sqrt() } else { 0.0 };
    match w_fmt {
        None => {
            let merged: Vec<f32> = got.iter().zip(&y0).map(|(g, y)| g - y).collect();
            assert_close(&label, &merged, &att, 2e-5 + score_err, 1e-4);
        }
        Some(_) => {
            assert_close(&label, &got, &want, 2e-5 * (c as f64).sqrt() + 1e-5 + score_err * (c as f64).sqrt(), 1e-4);
        }
    }
}

#[test]
fn split_decode_attention_with_the_merge_in_the_projection_matches_reference() {
    let mut seed = 900;
    // (lanes, rows): the GPU tuning's gemv shape (32 x 1) and the CPU adapters' (1 x 4, when forced to split).
    for shape in [(32u32, 1u32), (1, 4)] {
        for kv in [KvFormat::F32, KvFormat::F16] {
            for block in [32usize, 64] {
                // Contexts 1, B - 1, B, B + 1, several blocks with an odd last one.
                for n_keys in [1, block - 1, block, block + 1, 3 * block + 5] {
                    for w in [None, Some(WeightFormat::Q8)] {
                        seed += 1;
                        run_split_attention(n_keys - 1, 3, 64, block, kv, false, w, shape, seed);
                    }
                }
                seed += 1;
                run_split_attention(5 * block + 2, 2, 64, block, kv, true, None, shape, seed); // scores of +-1e3
                seed += 1;
                run_split_attention(5 * block + 2, 2, 64, block, kv, true, Some(WeightFormat::F32), shape, seed);
            }
            seed += 1;
            run_split_attention(40, 3, 7, 32, kv, true, None, shape, seed); // odd head size
            seed += 1;
            run_split_attention(600, 5, 256, 64, kv, false, Some(WeightFormat::F16), shape, seed); // hs = 256, K over two X tiles
            seed += 1;
            run_split_attention(1023, 25, 64, 32, kv, true, None, shape, seed); // gpt2-xl's 25 heads at the full context: 800 merges
        }
    }
}

fn run_attention_probs(t: usize, pos0: usize, nh: usize, hs: usize, q_scale: f32, seed: u64) {
    let g = gpu();
    let mut rng = Rng(seed);
    let c = nh * hs;
    let s = pos0 + t;
    let p = s + 3; // the cache is longer than what is used
    let qkv = attention_qkv(&mut rng, t, c, q_scale);
    let k_cache = rng.vec(p * c, 1.0);
    let prm = AttentionParams { t: t as u32, c: c as u32, nh: nh as u32, hs: hs as u32, pos0: pos0 as u32, scale: 1.0 / (hs as f32).sqrt(), kv: 0, block: 0 };
    // Garbage in the output buffer: every element, above the diagonal too, must be written.
    let out = pollster::block_on(g.run_once(Kernel::AttentionProbs, bytemuck::bytes_of(&prm), &[bytes(&qkv), bytes(&k_cache), bytes(&vec![7.0f32; nh * t * s])]))
        .unwrap();
    let got = floats(&out[2]);
    let q: Vec<f64> = (0..t).flat_map(|r| qkv[r * 3 * c..r * 3 * c + c].iter().map(|&v| v as f64)).collect();
    let kv = cpu::to_f64(&k_cache[..s * c]);
    let mut want = vec![0f64; nh * t * s]; // [NH, T, S]
    cpu::attention_probs_with_past(&q, &kv, &kv, c, nh, Some(&mut want));
    assert_close(&format!("attention_probs T={t} pos0={pos0} NH={nh} hs={hs} qscale={q_scale}"), &got, &want, 1e-6, 1e-4);
}

#[test]
fn attention_probs_match_reference_across_positions_heads_and_lengths() {
    run_attention_probs(1, 0, 1, 1, 1.0, 11); // a single key
    run_attention_probs(5, 0, 3, 64, 1.0, 12); // a short prompt
    run_attention_probs(7, 9, 2, 7, 1.0, 13); // with a past, odd head size
    run_attention_probs(300, 0, 2, 64, 1.0, 14); // more keys than threads and than attention's tile
    run_attention_probs(3, 256, 1, 200, 1.0, 15); // hs > 64
    run_attention_probs(9, 60, 2, 64, 30.0, 16); // very peaked scores
}
