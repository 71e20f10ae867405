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
use gpt2_webgpu::gpu::Gpu;
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
        (WeightFormat::Q4, Bound { max_abs: 4.5, kl_max: 0.3, margin: 1.28 }),
    ];
    eprintln!("format case   rows  max|dlogit|   KL mean    KL max   top-1  confident top-1");
    for (fmt, bound) in formats {
        let dir = TempDir::new(&format!("quality-{}", fmt.name()));
        write_package(&mut tiny_model(), &tok, fmt, "tiny-gpt2", dir.path()).unwrap();
        let mut pkg = Package::open(dir.path()).unwrap();
        let mut model = pollster::block_on(Model::load(gpu.clone(), &mut pkg, fmt)).unwrap();
        for case in &reference.cases {
            let t = case.ids.len();
            let mut positions = case.logits_positions.clone();
            let mut want: Vec<f32> = case.logits_at.clone();
            if positions.last() != Some(&(t - 1)) {
                positions.push(t - 1);
                want.extend_from_slice(&case.logits_last);
            }
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
        }
    }
}
