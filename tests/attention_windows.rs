//! A prompt's attention through uniform windows (gpu/windows.rs: kv_windows, then attention_window, and
//! attention_window_subgroup, once per head with that head's keys and values bound as uniforms at dynamic
//! offsets, two windows of 64 KB each), as the CPU tuning picks it, against the f64 reference: gpt2's heads
//! from 1 to 512 keys, in the first window, across the two and in the second, a prompt continuing a cache,
//! both cache formats, peaked and outlier scores, and the shapes the CPU tuning sends elsewhere (past the
//! windows, odd heads). Runs on any wgpu adapter (lavapipe here).
#![allow(clippy::too_many_arguments)]

mod common;

use common::{assert_close, attention_qkv, gpu, kv_words, Rng};
use gpt2_webgpu::gpu::params::AttentionParams;
use gpt2_webgpu::gpu::{Kernel, KvFormat, Tuning};
use gpt2_webgpu::reference::cpu;

/// One attention op of a T-token step at pos0 as the CPU tuning runs it (which must be `want`; a single
/// query, which the tuning never sends to the windows, is forced through them where `want` says so), against
/// the reference: the output within 2e-5 + 1e-4 |ref| (the past as the cache holds it, this step's keys
/// and values in f32), and the cache = the past untouched + this step's keys and values appended.
/// Where `want` is the windows, both walks run: attention_window and attention_window_subgroup (this device
/// has subgroups: the CPU tuning's choice here).
fn check(t: usize, pos0: usize, nh: usize, hs: usize, q_scale: f32, seed: u64, kv: KvFormat, want: Kernel) {
    if want == Kernel::AttentionWindow {
        assert_eq!(gpu().tuning.attention_window_kernel, Kernel::AttentionWindowSubgroup, "this device's tuning: {}", gpu().tuning);
        for walk in [Kernel::AttentionWindow, Kernel::AttentionWindowSubgroup] {
            check_walk(t, pos0, nh, hs, q_scale, seed, kv, want, walk);
        }
    } else {
        check_walk(t, pos0, nh, hs, q_scale, seed, kv, want, want);
    }
}

fn check_walk(t: usize, pos0: usize, nh: usize, hs: usize, q_scale: f32, seed: u64, kv: KvFormat, want: Kernel, walk: Kernel) {
    let g = gpu();
    let mut rng = Rng(seed);
    let (c, s) = (nh * hs, pos0 + t);
    let p = s + 3;
    let mut qkv = attention_qkv(&mut rng, t, c, q_scale);
    // Saturates in an f16 cache; in f32, a large value the softmax must weigh exactly.
    qkv[c + 1] = 1e6;
    qkv[2 * c + 1] = -1e6;
    // This step's rows of the cache are NaN: reading them instead of qkv would poison the output.
    let mut k_cache = rng.vec(p * c, 1.0);
    let mut v_cache = rng.vec(p * c, 1.0);
    for v in k_cache[pos0 * c..s * c].iter_mut().chain(v_cache[pos0 * c..s * c].iter_mut()) {
        *v = f32::NAN;
    }
    let prm = AttentionParams { t: t as u32, c: c as u32, nh: nh as u32, hs: hs as u32, pos0: pos0 as u32, scale: 1.0 / (hs as f32).sqrt(), kv: kv.code(), block: 0 };
    let label = format!("{} kv={} T={t} pos0={pos0} NH={nh} hs={hs} qscale={q_scale}", walk.name(), kv.name());
    let kernel = want;
    if t > 1 || want != Kernel::AttentionWindow {
        assert_eq!(Tuning::CPU.attention_kernel_for(&prm), want, "{label}: the CPU tuning's choice");
    }
    let bytes = |w: &[u32]| bytemuck::cast_slice::<u32, u8>(w).to_vec();
    let buffers = [bytemuck::cast_slice::<f32, u8>(&qkv).to_vec(), bytes(&kv_words(&k_cache, p, nh, hs, kv).0), bytes(&kv_words(&v_cache, p, nh, hs, kv).0), vec![0u8; t * c * 4], vec![0u8; 16]];
    let out = if kernel == Kernel::AttentionWindow {
        pollster::block_on(g.run_attention_windows(walk, &prm, &buffers))
    } else {
        pollster::block_on(g.run_once(kernel, bytemuck::bytes_of(&prm), &buffers))
    }
    .unwrap();

    let (mut kw, mut vw) = (k_cache, v_cache);
    for r in 0..t {
        kw[(pos0 + r) * c..(pos0 + r + 1) * c].copy_from_slice(&qkv[r * 3 * c + c..r * 3 * c + 2 * c]);
        vw[(pos0 + r) * c..(pos0 + r + 1) * c].copy_from_slice(&qkv[r * 3 * c + 2 * c..r * 3 * c + 3 * c]);
    }
    let (kw_words, k_held) = kv_words(&kw, p, nh, hs, kv);
    let (vw_words, v_held) = kv_words(&vw, p, nh, hs, kv);
    let words = |b: &[u8]| bytemuck::pod_collect_to_vec::<u8, u32>(b);
    assert!(words(&out[1]) == kw_words, "{label}: k_cache = past + this step's keys");
    assert!(words(&out[2]) == vw_words, "{label}: v_cache = past + this step's values");
    let (mut k_ref, mut v_ref) = (k_held[..s * c].to_vec(), v_held[..s * c].to_vec());
    k_ref[pos0 * c..].copy_from_slice(&cpu::to_f64(&kw[pos0 * c..s * c]));
    v_ref[pos0 * c..].copy_from_slice(&cpu::to_f64(&vw[pos0 * c..s * c]));
    let q: Vec<f64> = (0..t).flat_map(|r| qkv[r * 3 * c..r * 3 * c + c].iter().map(|&v| v as f64)).collect();
    let want = cpu::attention_with_past(&q, &k_ref, &v_ref, c, nh);
    let got: Vec<f32> = bytemuck::pod_collect_to_vec(&out[3]);
    assert!(got.iter().all(|v| v.is_finite()), "{label}: a value is not finite");
    assert_close(&label, &got, &want, 2e-5, 1e-4);
}

#[test]
fn prompt_attention_through_the_windows_matches_reference_on_gpt2_heads_and_edges() {
    let w = Kernel::AttentionWindow;
    for kv in [KvFormat::F32, KvFormat::F16] {
        // gpt2's heads (NH 12, hs 64: 256 keys a window): a 7-token prompt (one partial workgroup of 8
        // queries), 128, 256 (S = 256 fills the first window exactly), and 130 continuing a 17-token cache.
        check(7, 0, 12, 64, 1.0, 1, kv, w);
        check(128, 0, 12, 64, 1.0, 2, kv, w);
        check(256, 0, 12, 64, 1.0, 3, kv, w);
        check(130, 17, 12, 64, 1.0, 4, kv, w);
        check(2, 254, 12, 64, 1.0, 5, kv, w); // a short step at the first window's end
        // Past 256 keys, the second window: a 300-token prompt (its first 32 workgroups end in the first
        // window, the rest walk both), a step across the windows' seam, 7 tokens after a 500-token cache (the
        // outlier key and value of the step's first token in the second window), S = 512 filling both.
        check(300, 0, 12, 64, 1.0, 17, kv, w);
        check(2, 255, 12, 64, 1.0, 18, kv, w);
        check(7, 500, 12, 64, 1.0, 19, kv, w);
        check(256, 256, 12, 64, 1.0, 23, kv, w);
        check(3, 509, 12, 64, 30.0, 24, kv, w); // peaked scores at the end of the second window
        check(9, 40, 3, 64, 30.0, 6, kv, w); // very peaked scores: the running max moves
        check(9, 40, 3, 64, 300.0, 7, kv, w); // outlier queries: scores in the thousands
        check(17, 3, 5, 8, 1.0, 8, kv, w); // hs = 8: 2 vec4s per key, odd NH, T past two workgroups
        check(11, 5, 2, 40, 1.0, 9, kv, w); // hs = 40: 10 of the 16 registers
        // Past the windows (S > 512 at hs 64): attention_rows_prompt.
        check(13, 500, 12, 64, 1.0, 10, kv, Kernel::AttentionRowsPrompt);
        check(130, 383, 2, 64, 1.0, 11, kv, Kernel::AttentionRowsPrompt);
        // Decode is never windowed; odd heads run attention.
        check(1, 17, 12, 64, 1.0, 12, kv, Kernel::AttentionRows);
        check(5, 4, 2, 7, 1.0, 13, kv, Kernel::Attention);
    }
    // hs = 12 and 36 take the windows with the f32 cache (whole vec4s) and not with f16 pairs: attention.
    for hs in [12, 36] {
        check(6, 2, 2, hs, 1.0, 14, KvFormat::F32, w);
        check(6, 2, 2, hs, 1.0, 15, KvFormat::F16, Kernel::Attention);
    }
    // hs = 32: 512 keys a window, 1024 in all.
    check(300, 212, 2, 32, 1.0, 16, KvFormat::F16, w);
    check(100, 900, 2, 32, 1.0, 25, KvFormat::F16, w);
    // hs = 40: 409 whole keys a window (6 vec4s of the first left over), so key 409 starts the second: a
    // layout that ran on across the seam, or read the second window from the first's end, is caught here.
    for kv in [KvFormat::F32, KvFormat::F16] {
        check(20, 400, 2, 40, 1.0, 26, kv, w);
        check(9, 809, 2, 40, 1.0, 27, kv, w); // S = 818: both windows full
        check(10, 809, 2, 40, 1.0, 28, kv, Kernel::AttentionRowsPrompt); // S = 819
    }
}

/// The windows compute a single query too (masked lanes: 7 of the workgroup's 8 past T), at the first
/// window's start, inside and at its last key, at the second's first key and at its last (S = 512).
#[test]
fn one_query_through_the_windows_matches_reference() {
    for kv in [KvFormat::F32, KvFormat::F16] {
        for (pos0, seed) in [(0, 20), (17, 21), (255, 22), (256, 29), (511, 30)] {
            check(1, pos0, 12, 64, 1.0, seed, kv, Kernel::AttentionWindow);
        }
    }
}
