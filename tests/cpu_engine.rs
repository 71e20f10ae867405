//! The CPU engine (src/engine/cpu) against Hugging Face's float64 outputs for tiny-gpt2 and against the
//! f64 reference, with the same bounds as the GPU: f32 logits and hidden states within 1e-3, greedy
//! continuation, KV cache = recompute, every quantization's quality bound (tests/quality.rs derives
//! them), adversarial shapes (T = 1, odd lengths, the full 1024-token context). Each SIMD path this
//! CPU has is checked against the scalar one. No GPU needed.

mod common;

use common::*;
use gpt2_webgpu::reference::compare::compare_logits;
use gpt2_webgpu::engine::cpu::kernels::{self, QuantX, Simd};
use gpt2_webgpu::engine::cpu::pool::Pool;
use gpt2_webgpu::engine::cpu::CpuModel;
use gpt2_webgpu::package::{write_package, Package};
use gpt2_webgpu::quant::{PackedMatrix, WeightFormat, GROUP};
use gpt2_webgpu::sampling::SamplingParams;
use gpt2_webgpu::Error;
use std::sync::{Mutex, OnceLock};

const FORMATS: [WeightFormat; 4] = [WeightFormat::F32, WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4];

/// x as the q8/q4 kernels see it: per block of 32, d = max|x| / 127, round(x / d) * d.
fn dequantized_x(x: &[f32], k: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(k) {
        for blk in row.chunks(GROUP) {
            let d = blk.iter().fold(0f32, |a, v| a.max(v.abs())) / 127.0;
            let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
            out.extend(blk.iter().map(|&v| (v * inv).round().clamp(-127.0, 127.0) as f64 * d as f64));
        }
    }
    out
}

#[test]
fn linear_kernels_match_the_f64_product_on_odd_shapes_with_outliers_for_every_path_and_thread_count() {
    let mut rng = Rng(77);
    // T = 2 and 6 leave tiles of 2 rows; K = 1001 ends in a partial block after whole groups of blocks.
    // T = 1 is the decode path (whole chunks of rows per call natively): 2304 x 768 and 300 x 257 end in
    // a partial chunk, K = 257 / 300 / 520 in a partial group of 8 blocks, 100 x 3072 is mlp_proj's K.
    let shapes = [(1usize, 1usize, 1usize), (1, 7, 31), (3, 17, 33), (4, 64, 768), (5, 9, 100), (9, 40, 3072), (1, 2304, 768), (1, 5, 300), (1, 3, 520), (2, 11, 300), (6, 3, 1001), (1, 300, 257), (1, 100, 3072)];
    for &(t, n, k) in &shapes {
        let mut w = rng.vec(n * k, 0.05);
        w[(n * k) / 3] = 1.7; // an outlier weight
        let mut x = rng.vec(t * k, 1.0);
        x[k / 2] = 25.0; // an outlier activation (GPT-2's residual stream has them)
        let bias = rng.vec(n, 0.3);
        for fmt in FORMATS {
            let m = PackedMatrix::pack_nk(&w, n, k, fmt);
            let wu = m.unpack();
            let xr: Vec<f64> = if fmt.has_scales() { dequantized_x(&x, k) } else { x.iter().map(|&v| v as f64).collect() };
            let want: Vec<f64> = (0..t * n)
                .map(|i| {
                    let (r, c) = (i / n, i % n);
                    (0..k).map(|j| wu[c * k + j] as f64 * xr[r * k + j]).sum::<f64>() + bias[c] as f64
                })
                .collect();
            let mut scalar = None;
            for simd in Simd::available() {
                for threads in [1, 2, 3] {
                    let pool = Pool::new(threads);
                    let mut y = vec![f32::NAN; t * n];
                    kernels::linear(&pool, simd, &m, &x, Some(&bias), &mut y, &mut QuantX::default());
                    let what = format!("{fmt:?} {} T={t} N={n} K={k} threads={threads}", simd.name());
                    // f32 accumulation over K terms of size ~|w||x|: 1e-5 relative to the row's scale.
                    let scale: f64 = 1.0 + (k as f64).sqrt() * 0.05 * 25.0;
                    assert_close(&what, &y, &want, 2e-6 * scale * (k as f64).sqrt(), 1e-5);
                    match &scalar {
                        None => scalar = Some(y),
                        Some(s) => {
                            assert_close(&format!("{what} vs scalar"), &y, &s.iter().map(|&v| v as f64).collect::<Vec<_>>(), 1e-6 * scale * (k as f64).sqrt(), 1e-5);
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn quantizing_activations_through_simd_equals_the_scalar_path_bit_for_bit() {
    let mut rng = Rng(79);
    for k in [1usize, 31, 32, 33, 100, 768, 3072] {
        for t in [1usize, 3] {
            let mut x = rng.vec(t * k, 2.0);
            // Ties (x / d lands on .5: halves go away from zero), zeros, a block of zeros, NaN and inf.
            let spots = [(0, 127.0), (1 % k, 0.5), (2 % k, -0.5), (3 % k, 1.5), (4 % k, -2.5), (5 % k, 0.0)];
            for &(i, v) in &spots {
                x[i] = v;
            }
            if k >= 64 {
                x[32..64].fill(0.0);
            }
            if t > 1 {
                x[k] = f32::NAN;
                x[2 * k + k / 2] = f32::INFINITY;
                x[2 * k] = -1e30;
            }
            for q4 in [false, true] {
                let mut scalar = QuantX::default();
                scalar.quantize(&x, k, q4);
                for simd in Simd::available() {
                    let mut got = QuantX::default();
                    got.quantize_with(simd, &x, k, q4);
                    let what = format!("{} K={k} T={t} q4={q4}", simd.name());
                    assert_eq!((got.kp, got.nb), (scalar.kp, scalar.nb), "{what}");
                    assert_eq!(got.qs, scalar.qs, "{what}: ints");
                    assert_eq!(got.d.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), scalar.d.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "{what}: scales");
                    assert_eq!(got.sums, scalar.sums, "{what}: sums");
                }
            }
        }
    }
}

#[test]
fn linear_gelu_is_gelu_of_the_linear_product_on_every_path_and_thread_count() {
    let mut rng = Rng(78);
    for &(t, n, k) in &[(1usize, 1usize, 1usize), (1, 300, 257), (1, 3072, 768), (3, 70, 40)] {
        let w = rng.vec(n * k, 0.08);
        let mut x = rng.vec(t * k, 1.0);
        x[k / 2] = 12.0;
        let bias = rng.vec(n, 0.3);
        for fmt in FORMATS {
            let m = PackedMatrix::pack_nk(&w, n, k, fmt);
            for simd in Simd::available() {
                for threads in [1, 2, 3] {
                    let pool = Pool::new(threads);
                    let mut plain = vec![f32::NAN; t * n];
                    kernels::linear(&pool, simd, &m, &x, Some(&bias), &mut plain, &mut QuantX::default());
                    let mut fused = vec![f32::NAN; t * n];
                    kernels::linear_gelu(&pool, simd, &m, &x, Some(&bias), &mut fused, &mut QuantX::default());
                    let want: Vec<f64> = plain.iter().map(|&v| gpt2_webgpu::reference::cpu::gelu(v as f64)).collect();
                    assert_close(&format!("linear_gelu {fmt:?} {} T={t} N={n} K={k} threads={threads}", simd.name()), &fused, &want, 1e-6, 1e-5);
                }
            }
        }
    }
}

#[test]
fn decode_row_layer_norm_gelu_and_attention_match_the_reference() {
    let mut rng = Rng(3);
    let (n, k) = (5, 70);
    let w = rng.vec(n * k, 0.4);
    for fmt in FORMATS {
        let m = PackedMatrix::pack_nk(&w, n, k, fmt);
        let u = m.unpack();
        let mut row = vec![0f32; k];
        for r in 0..n {
            kernels::decode_row(&m, r, &mut row);
            assert_eq!(row, u[r * k..(r + 1) * k], "{fmt:?} row {r}");
        }
    }
    // layer norm and GELU against cpu.rs in f64
    let (t, c) = (3, 37);
    let x = rng.vec(t * c, 3.0);
    let (g, b) = (rng.vec(c, 1.0), rng.vec(c, 0.5));
    let mut y = vec![0f32; t * c];
    kernels::layer_norm(&x, &g, &b, 1e-5, &mut y);
    assert_close("layer_norm", &y, &gpt2_webgpu::reference::cpu::layer_norm(&gpt2_webgpu::reference::cpu::to_f64(&x), &g, &b, 1e-5), 1e-5, 1e-5);
    let mut gx = x.clone();
    kernels::gelu(&mut gx);
    let want: Vec<f64> = x.iter().map(|&v| gpt2_webgpu::reference::cpu::gelu(v as f64)).collect();
    assert_close("gelu", &gx, &want, 1e-6, 1e-5);
    // every path, over the range GPT-2's MLP sees and past it (tanh saturates, -3 < u < 0 where
    // 1 + tanh cancels), tiny values, a length with a tail of 8
    let mut u: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.01).collect();
    u.extend([1e-7, -1e-7, 0.0, -0.0, 30.0, -30.0, 1e4, -1e4, 0.5, -5.5, 7.25]);
    let want: Vec<f64> = u.iter().map(|&v| gpt2_webgpu::reference::cpu::gelu(v as f64)).collect();
    for simd in Simd::available() {
        let mut g = u.clone();
        kernels::gelu_with(simd, &mut g);
        assert_close(&format!("gelu {}", simd.name()), &g, &want, 1e-7, 2e-6);
    }
    // attention: T = 3 new queries after 4 cached positions, 3 heads of 5, against cpu.rs
    let (nh, hs, pos0, t) = (3usize, 5usize, 4usize, 3usize);
    let c = nh * hs;
    let p = 16;
    let qkv = rng.vec(t * 3 * c, 2.0);
    let mut kc = rng.vec(p * c, 2.0);
    let mut vc = rng.vec(p * c, 2.0);
    for i in 0..t {
        kc[(pos0 + i) * c..][..c].copy_from_slice(&qkv[i * 3 * c + c..][..c]);
        vc[(pos0 + i) * c..][..c].copy_from_slice(&qkv[i * 3 * c + 2 * c..][..c]);
    }
    let s = pos0 + t;
    let q: Vec<f64> = (0..t).flat_map(|i| qkv[i * 3 * c..][..c].iter().map(|&v| v as f64)).collect();
    let want = gpt2_webgpu::reference::cpu::attention_with_past(&q, &gpt2_webgpu::reference::cpu::to_f64(&kc[..s * c]), &gpt2_webgpu::reference::cpu::to_f64(&vc[..s * c]), c, nh);
    for simd in Simd::available() {
        for threads in [1, 2] {
            let mut out = vec![0f32; t * c];
            let mut probs = vec![0f32; nh * t * s];
            kernels::attention(&Pool::new(threads), simd, &qkv, &kc, &vc, c, nh, pos0, &mut vec![0f32; nh * p], &mut out, Some(&mut probs));
            assert_close(&format!("attention {} threads={threads}", simd.name()), &out, &want, 1e-5, 1e-5);
            // The probabilities it returns are softmax(q k / sqrt(hs)) over the keys each query sees.
            for (h, i) in (0..nh).flat_map(|h| (0..t).map(move |i| (h, i))) {
                let row = &probs[(h * t + i) * s..][..s];
                let sc: Vec<f64> = (0..=pos0 + i)
                    .map(|j| (0..hs).map(|d| q[i * c + h * hs + d] * kc[j * c + h * hs + d] as f64).sum::<f64>() / (hs as f64).sqrt())
                    .collect();
                let mx = sc.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z: f64 = sc.iter().map(|v| (v - mx).exp()).sum();
                let mut want_row: Vec<f64> = sc.iter().map(|v| (v - mx).exp() / z).collect();
                want_row.resize(s, 0.0);
                assert_close(&format!("attention probs {} head {h} query {i}", simd.name()), row, &want_row, 1e-6, 1e-5);
            }
        }
    }
}

fn f32_model() -> std::sync::MutexGuard<'static, CpuModel> {
    static M: OnceLock<Mutex<CpuModel>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(CpuModel::load(&mut tiny_model(), WeightFormat::F32, 2).unwrap())).lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn f32_logits_and_hidden_states_match_hugging_face_on_every_path_including_the_full_context() {
    let mut m = f32_model();
    let v = m.config().vocab_size;
    for simd in Simd::available() {
        m.set_simd(simd).unwrap();
        for case in &reference().cases {
            m.reset();
            let t = case.ids.len();
            let mut positions = case.logits_positions.clone();
            positions.push(t - 1);
            let l = m.append_logits_at(&case.ids, &positions).unwrap();
            for (i, &pos) in case.logits_positions.iter().enumerate() {
                assert_close(&format!("{} {} logits_at[{pos}] T={t}", simd.name(), case.name), &l[i * v..(i + 1) * v], case.logits_at_row(i), 1e-3, 0.0);
            }
            let s = assert_close(&format!("{} {} logits_last T={t}", simd.name(), case.name), &l[(positions.len() - 1) * v..], &case.logits_last, 1e-3, 0.0);
            eprintln!("{} {}: T={t} max |dlogit| = {:.2e}", simd.name(), case.name, s.max_abs);
            if !case.hidden.is_empty() {
                let h = m.hidden_states(&case.ids).unwrap();
                assert_eq!(h.len(), case.hidden.len());
                for (j, (got, want)) in h.iter().zip(&case.hidden).enumerate() {
                    assert_close(&format!("{} {} hidden.{j}", simd.name(), case.name), got, want, 1e-3, 0.0);
                }
            }
        }
    }
    m.set_simd(Simd::detect()).unwrap();
}

#[test]
fn greedy_steps_follow_the_reference_and_the_kv_cache_equals_recompute() {
    let mut m = f32_model();
    for case in reference().cases.iter().filter(|c| !c.greedy_next_ids.is_empty()) {
        let trusted = case.greedy_margins.iter().position(|&g| g < 1e-2).map_or(case.greedy_next_ids.len(), |i| i + 1);
        let n_exact = trusted - usize::from(trusted < case.greedy_next_ids.len());
        m.reset();
        let mut ctx = case.ids.clone();
        let mut got = Vec::new();
        let mut feed = case.ids.clone();
        for step in 0..n_exact {
            let s = m.step(&feed, &SamplingParams::greedy(), &ctx, step as u32).unwrap();
            got.push(s.token);
            ctx.push(s.token);
            feed = vec![s.token];
        }
        assert_eq!(got, case.greedy_next_ids[..n_exact], "{}: greedy continuation", case.name);
    }
    // KV cache: prefill 13, then 1, 2, 1, ... tokens; against one pass over everything.
    let ids = reference().cases[2].ids.clone();
    let v = m.config().vocab_size;
    m.reset();
    m.append_logits(&ids[..13]).unwrap();
    let mut incremental = Vec::new();
    let mut i = 13;
    while i < ids.len() {
        let n = if i == 15 { 2 } else { 1 };
        let l = m.append_logits(&ids[i..i + n]).unwrap();
        incremental.push((i + n - 1, l[(n - 1) * v..].to_vec()));
        i += n;
    }
    m.reset();
    let full = m.append_logits(&ids).unwrap();
    for (pos, l) in incremental {
        assert_close(&format!("cached logits at {pos}"), &l, &full[pos * v..(pos + 1) * v], 1e-4, 0.0);
    }
}

#[test]
fn bad_inputs_give_errors_and_leave_the_model_working() {
    let mut m = f32_model();
    m.reset();
    match m.append_logits(&[5, 50257, 7]) {
        Err(Error::TokenOutOfRange { id: 50257, vocab: 50257 }) => {}
        other => panic!("expected TokenOutOfRange, got {:?}", other.map(|v| v.len())),
    }
    assert!(matches!(m.append_logits(&[]), Err(Error::InvalidArgument(_))));
    assert!(matches!(m.append_logits(&vec![1u32; 1025]), Err(Error::InvalidArgument(_))));
    assert!(matches!(m.append_logits_at(&[1, 2], &[2]), Err(Error::InvalidArgument(_))));
    let bad = SamplingParams { top_p: 0.0, ..SamplingParams::greedy() };
    assert!(matches!(m.step(&[1], &bad, &[1], 0), Err(Error::InvalidArgument(_))));
    assert_eq!(m.position(), 0, "failed steps append nothing");
    m.append_logits(&vec![3u32; 1000]).unwrap();
    assert!(matches!(m.append_logits(&[1u32; 25]), Err(Error::InvalidArgument(_))), "past the 1024-token context");
    assert_eq!(m.position(), 1000);
    let case = &reference().cases[0];
    m.reset();
    let l = m.append_logits(&case.ids).unwrap();
    assert_close("logits after errors", &l[(case.ids.len() - 1) * 50257..], &case.logits_last, 1e-3, 0.0);
}

#[test]
fn every_package_quantization_stays_within_the_gpu_bounds_on_the_cpu_engine() {
    // The bounds of tests/quality.rs. The CPU engine also quantizes activations to int8 per block for
    // q8/q4 weights; that error is of the size of q8's weight error and fits the same bounds.
    let reference = reference();
    let tok = read(&tiny_file("tokenizer.json"));
    let v = reference.vocab_size;
    let bounds = [(WeightFormat::F32, 1e-3, 1e-6, 1e-3), (WeightFormat::F16, 1e-2, 1e-4, 1e-2), (WeightFormat::Q8, 0.25, 2e-3, 0.072), (WeightFormat::Q4, 4.5, 0.3, 1.28)];
    eprintln!("format case   rows  max|dlogit|   KL mean    KL max   top-1  confident top-1");
    for (fmt, max_abs, kl_max, margin) in bounds {
        let dir = TempDir::new(&format!("cpu-quality-{}", fmt.name()));
        write_package(&mut tiny_model(), &tok, fmt, "tiny-gpt2", dir.path()).unwrap();
        let mut pkg = Package::open(dir.path()).unwrap();
        let mut m = CpuModel::load(&mut pkg, fmt, 2).unwrap();
        for simd in Simd::available() {
            m.set_simd(simd).unwrap();
            for case in &reference.cases {
                let (positions, want) = positions_and_rows(case);
                m.reset();
                let got = m.append_logits_at(&case.ids, &positions).unwrap();
                let s = compare_logits(&got, &want, v, margin);
                eprintln!(
                    "{:>6} {:>7} {:>5} {:>5} {:>12.3e} {:>10.2e} {:>9.2e} {:>4}/{:<3} {:>4}/{:<3}",
                    fmt.name(),
                    simd.name(),
                    case.name,
                    s.rows,
                    s.max_abs,
                    s.kl_mean,
                    s.kl_max,
                    s.top1_agree,
                    s.rows,
                    s.confident_agree,
                    s.confident_rows
                );
                assert!(s.max_abs <= max_abs, "{} {}: max |dlogit| {} > {}", fmt.name(), case.name, s.max_abs, max_abs);
                assert!(s.kl_max <= kl_max, "{} {}: KL {} > {}", fmt.name(), case.name, s.kl_max, kl_max);
                assert_eq!(s.confident_agree, s.confident_rows, "{} {}: top-1 changed where the margin was > {}", fmt.name(), case.name, margin);
            }
        }
    }
}

#[test]
fn generation_on_the_cpu_engine_slides_the_window_and_is_reproducible() {
    use gpt2_webgpu::text::generate::{GenerateOptions, Generation};
    use gpt2_webgpu::text::tokenizer::Tokenizer;
    let mut m = f32_model();
    check_the_window_slides(&mut *m, |m, window| m.append_logits_at(window, &[window.len() - 1]).unwrap());
    let tok = Tokenizer::from_bytes(&read(&tiny_file("tokenizer.json"))).unwrap();
    let run = |m: &mut CpuModel, seed: u64| {
        let sampling = SamplingParams { temperature: 0.9, top_k: 40, top_p: 0.95, repetition_penalty: 1.2, seed, alternatives: 3 };
        let opts = GenerateOptions { max_new_tokens: 10, sampling, stop_at_eos: false };
        let mut gen = Generation::new(&tok, m.config(), "Grüße aus Köln", opts).unwrap();
        let mut ids = Vec::new();
        while let Some(p) = pollster::block_on(gen.next(m, &tok)).unwrap() {
            assert!(p.alternatives.len() == 3 && p.prob > 0.0 && p.prob <= 1.0);
            ids.push(p.token);
        }
        ids
    };
    assert_eq!(run(&mut m, 7), run(&mut m, 7));
    assert_ne!(run(&mut m, 7), run(&mut m, 8));
}
