//! What each package quantization costs on tiny-gpt2, against Hugging Face's float64 logits, with
//! bounds derived from the measured weight error (docs/format.md, "Quality"):
//!   a weight error of relative RMS e perturbs each quantized matmul's output by about e of its size;
//!   errors of the 4L + 1 matmuls on the path add independently, so the logits (std ~1.1 here) move by
//!   sigma ~ 1.1 * e * sqrt(4L + 1) RMS; the largest of 50257 such errors is ~4.5 sigma, and
//!   KL ~ sigma^2 / 2. With e = 0.54% (q8) and 9.7% (q4) and L = 2: sigma = 0.018 (q8), 0.32 (q4).
//! Bounds are ~3x those estimates; the top-1 token must agree wherever the reference's top-two margin
//! exceeds 4 sigma.

mod common;

use common::*;
use gpt2_webgpu::reference::compare::compare_logits;
use gpt2_webgpu::gpu::{Gpu, KvFormat};
use gpt2_webgpu::model::Model;
use gpt2_webgpu::package::{write_package, Package};
use gpt2_webgpu::quant::WeightFormat;
use std::sync::Arc;

struct Bound {
    max_abs: f64,
    kl_max: f64,
    margin: f64,
}

#[test]
fn every_package_quantization_stays_within_its_derived_bounds() {
    let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a wgpu adapter"));
    let reference = load_reference();
    let tok = read(&tiny_file("tokenizer.json"));
    let v = reference.vocab_size;
    let formats = [
        (WeightFormat::F32, Bound { max_abs: 1e-3, kl_max: 1e-6, margin: 1e-3 }),
        (WeightFormat::F16, Bound { max_abs: 1e-2, kl_max: 1e-4, margin: 1e-2 }),
        (WeightFormat::Q8, Bound { max_abs: 0.25, kl_max: 2e-3, margin: 0.072 }),
        // No fixture row has a margin above q4's 4 sigma (1.28; the largest is 0.56): q4's top-1 is
        // checked against the f32 model over many more rows in the next test.
        (WeightFormat::Q4, Bound { max_abs: 4.5, kl_max: 0.3, margin: f64::INFINITY }),
    ];
    eprintln!("format case   rows  max|dlogit|   KL mean    KL max   top-1  confident top-1");
    for (fmt, bound) in formats {
        let mut confident = 0;
        let dir = TempDir::new(&format!("quality-{}", fmt.name()));
        write_package(&mut tiny_model(), &tok, fmt, "tiny-gpt2", dir.path()).unwrap();
        let mut pkg = Package::open(dir.path()).unwrap();
        let mut model = pollster::block_on(Model::load(gpu.clone(), &mut pkg, fmt)).unwrap();
        for case in &reference.cases {
            let (positions, want) = positions_and_rows(case);
            model.reset();
            let got = pollster::block_on(model.append_logits_at(&case.ids, &positions)).unwrap();
            let s = compare_logits(&got, &want, v, bound.margin);
            eprintln!(
                "{:>6} {:>5} {:>5} {:>12.3e} {:>10.2e} {:>9.2e} {:>4}/{:<3} {:>4}/{:<3}",
                fmt.name(),
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
            assert!(s.max_abs <= bound.max_abs, "{} {}: max |dlogit| {} > {}", fmt.name(), case.name, s.max_abs, bound.max_abs);
            assert!(s.kl_max <= bound.kl_max, "{} {}: KL {} > {}", fmt.name(), case.name, s.kl_max, bound.kl_max);
            assert_eq!(s.confident_agree, s.confident_rows, "{} {}: top-1 changed where the margin was > {}", fmt.name(), case.name, bound.margin);
            confident += s.confident_rows;
        }
        // The top-1 check constrains something: rows with a margin above the bound exist.
        assert!(fmt == WeightFormat::Q4 || confident > 0, "{}: no row has a margin above {}: the top-1 check is empty", fmt.name(), bound.margin);
    }
}

/// What the f16 KV cache of q8, q4 and f16 packages may add to a logit, on top of the package's bound
/// above. Rounding K and V to f16 is a relative error of at most 2^-11 (RMS ~2^-12 = 2.4e-4) per cached
/// value, only on positions before the step (this step's keys and values stay f32): like a weight error
/// of e = 2.4e-4 at two more points per layer, sigma ~ 1.1 * e * sqrt(2L) = 5.3e-4 at L = 2, and the
/// largest of 50257 ~4.5 sigma = 2.4e-3. Measured on these fixtures: see the test below (README, "KV
/// cache"). The stated term is ~4x that estimate.
const KV_F16_TERM: f64 = 1e-2;

/// Logits at `positions` (ascending) of `ids` computed through the KV cache, [k, V]: the first half of
/// the prompt in one step, then one token per step, so every later position attends to a cached past.
fn logits_through_the_cache(m: &mut Model, ids: &[u32], positions: &[usize]) -> Vec<f32> {
    let h = (ids.len() / 2).max(1);
    m.reset();
    let early: Vec<usize> = positions.iter().copied().filter(|&p| p < h).collect();
    let mut out = pollster::block_on(m.append_logits_at(&ids[..h], &early)).unwrap();
    for i in h..ids.len() {
        let want: &[usize] = if positions.contains(&i) { &[0] } else { &[] };
        out.extend(pollster::block_on(m.append_logits_at(&ids[i..i + 1], want)).unwrap());
    }
    out
}

/// q8, q4 and f16 packages keep K and V as f16 pairs (half the cache's bytes): decoded through the cache,
/// their logits stay within the package's bound of Hugging Face's float64 logits plus KV_F16_TERM, and
/// within KV_F16_TERM of the same package with an f32 cache.
#[test]
fn the_f16_kv_cache_adds_at_most_its_stated_term_to_each_package_bound() {
    let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a wgpu adapter"));
    let mut g32 = pollster::block_on(Gpu::new()).expect("a wgpu adapter");
    g32.tuning.kv_cache = Some(KvFormat::F32);
    let gpu_f32_cache = Arc::new(g32);
    let reference = load_reference();
    let tok = read(&tiny_file("tokenizer.json"));
    let v = reference.vocab_size;
    eprintln!("format case   rows  max|dlogit| vs HF (f16 cache, f32 cache)  max|f16 cache - f32 cache|");
    for (fmt, bound) in [(WeightFormat::F16, 1e-2), (WeightFormat::Q8, 0.25), (WeightFormat::Q4, 4.5)] {
        let dir = TempDir::new(&format!("quality-kv-{}", fmt.name()));
        write_package(&mut tiny_model(), &tok, fmt, "tiny-gpt2", dir.path()).unwrap();
        let mut m16 = pollster::block_on(Model::load(gpu.clone(), &mut Package::open(dir.path()).unwrap(), fmt)).unwrap();
        let mut m32 = pollster::block_on(Model::load(gpu_f32_cache.clone(), &mut Package::open(dir.path()).unwrap(), fmt)).unwrap();
        assert_eq!((m16.kv_format(), m32.kv_format()), (KvFormat::F16, KvFormat::F32));
        // The two caches (2 x L x [P, C]) differ by half their f32 size, and nothing else does.
        let cfg = m16.config();
        let f32_cache = 2 * cfg.n_layer as u64 * cfg.n_positions as u64 * cfg.n_embd as u64 * 4;
        assert_eq!(m32.gpu_bytes() - m16.gpu_bytes(), f32_cache / 2, "{}: gpu_bytes with the f16 cache", fmt.name());
        let mut worst = 0f64;
        for case in &reference.cases {
            let (positions, want) = positions_and_rows(case);
            let a = logits_through_the_cache(&mut m16, &case.ids, &positions);
            let b = logits_through_the_cache(&mut m32, &case.ids, &positions);
            let d = a.iter().zip(&b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max);
            let (sa, sb) = (compare_logits(&a, &want, v, f64::INFINITY), compare_logits(&b, &want, v, f64::INFINITY));
            eprintln!("{:>6} {:>5} {:>5} {:>12.3e} {:>12.3e} {:>12.3e}", fmt.name(), case.name, sa.rows, sa.max_abs, sb.max_abs, d);
            assert!(d.is_finite() && d <= KV_F16_TERM, "{} {}: the f16 cache moved a logit by {d} > {KV_F16_TERM}", fmt.name(), case.name);
            assert!(sa.max_abs <= bound + KV_F16_TERM, "{} {}: max |dlogit| {} > {bound} + {KV_F16_TERM}", fmt.name(), case.name, sa.max_abs);
            worst = worst.max(d);
        }
        // The cache was read: a zero difference would mean no position attended to a rounded past.
        assert!(worst > 0.0, "{}: the f16 cache changed nothing", fmt.name());
    }
}

/// q4 against the f32 model (itself within 1e-3 of Hugging Face's float64 logits, above) on every
/// position of each short case's prompt plus 64 greedy tokens (~300 rows): its distribution stays close (KL
/// bounds: sigma ~ 0.32 gives KL ~ sigma^2 / 2 ~ 0.05 per row) and it keeps the f32 model's top-1 where
/// that model is sure. A flip needs the q4 error of the top-two difference (sigma * sqrt 2 ~ 0.45) to
/// exceed the margin: rows with a margin above 2 sigma (0.64) flip with probability < 8% each, rows
/// above 3 sigma (0.96) < 2%. A broken q4 (wrong scales, a wrong nibble order) agrees on almost no row.
#[test]
fn q4_keeps_the_f32_models_top1_where_its_margin_is_large() {
    let gpu = Arc::new(pollster::block_on(Gpu::new()).expect("a wgpu adapter"));
    let reference = load_reference();
    let v = reference.vocab_size;
    let mut f32m = pollster::block_on(Model::load(gpu.clone(), &mut tiny_model(), WeightFormat::F32)).unwrap();
    let tok = read(&tiny_file("tokenizer.json"));
    let dir = TempDir::new("quality-q4-top1");
    write_package(&mut tiny_model(), &tok, WeightFormat::Q4, "tiny-gpt2", dir.path()).unwrap();
    let mut q4 = pollster::block_on(Model::load(gpu.clone(), &mut Package::open(dir.path()).unwrap(), WeightFormat::Q4)).unwrap();
    let (mut got, mut want) = (Vec::new(), Vec::new());
    // The short prompts (the 1024-token case leaves no room to continue) and 64 greedy tokens each.
    for case in reference.cases.iter().filter(|c| c.ids.len() <= 64) {
        // The prompt and the f32 model's greedy continuation: rows the model itself produced.
        let mut ids = case.ids.clone();
        f32m.reset();
        let mut l = pollster::block_on(f32m.append_logits(&ids)).unwrap();
        for _ in 0..64 {
            let next = argmax(&l[l.len() - v..]) as u32;
            ids.push(next);
            l = pollster::block_on(f32m.append_logits(&[next])).unwrap();
        }
        f32m.reset();
        q4.reset();
        want.extend(pollster::block_on(f32m.append_logits(&ids)).unwrap());
        got.extend(pollster::block_on(q4.append_logits(&ids)).unwrap());
    }
    let rows = got.len() / v;
    let (s2, s3) = (compare_logits(&got, &want, v, 0.64), compare_logits(&got, &want, v, 0.96));
    eprintln!(
        "q4 vs f32 model, {rows} rows: KL mean {:.3e} max {:.3e}; top-1 {}/{rows}; margin > 2 sigma: {}/{}; > 3 sigma: {}/{}",
        s2.kl_mean, s2.kl_max, s2.top1_agree, s2.confident_agree, s2.confident_rows, s3.confident_agree, s3.confident_rows
    );
    assert!(rows >= 250, "{rows} rows");
    assert!(s2.kl_mean <= 0.15, "q4 KL mean {} > 0.15", s2.kl_mean);
    assert!(s2.kl_max <= 0.6, "q4 KL max {} > 0.6", s2.kl_max);
    // Enough sure rows for the rates to mean something, and the rates the error model predicts (with
    // room for chance: 3 standard deviations of a binomial).
    assert!(s2.confident_rows >= 20 && s3.confident_rows >= 5, "too few sure rows: {} / {}", s2.confident_rows, s3.confident_rows);
    let allowed = |n: usize, p: f64| (n as f64 * p + 3.0 * (n as f64 * p * (1.0 - p)).sqrt()).floor() as usize;
    assert!(
        s2.confident_rows - s2.confident_agree <= allowed(s2.confident_rows, 0.08),
        "q4 changed the top-1 on {} of {} rows with a margin > 0.64",
        s2.confident_rows - s2.confident_agree,
        s2.confident_rows
    );
    assert!(
        s3.confident_rows - s3.confident_agree <= allowed(s3.confident_rows, 0.02),
        "q4 changed the top-1 on {} of {} rows with a margin > 0.96",
        s3.confident_rows - s3.confident_agree,
        s3.confident_rows
    );
}
