//! Size plans for the whole GPT-2 family, and the q8 scale granularity measurement.

use crate::common::tiny_model;
use crate::ALL;
use gpt2_webgpu::model::buffer_plan;
use gpt2_webgpu::package::{package_size_plan, DEFAULT_SHARD_BYTES};
use gpt2_webgpu::quant::{PackedMatrix, WeightFormat};
use gpt2_webgpu::weights::{tensor_specs, Role, TensorSource};
use gpt2_webgpu::Gpt2Config;
use half::f16;

// ------------------------------------------------------------------------------------------------
// sizes

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

#[test]
fn size_plan_for_every_gpt2() {
    let max_binding = 128 << 20;
    eprintln!(
        "{:<12} {:>12} {:>10} {:>10} {:>10} {:>10}",
        "model", "params", "f32 MB", "f16 MB", "q8 MB", "q4 MB"
    );
    for name in Gpt2Config::PRESETS {
        let cfg = Gpt2Config::preset(name).unwrap();
        let sizes: Vec<u64> = ALL.iter().map(|&q| package_size_plan(&cfg, q)).collect();
        eprintln!(
            "{name:<12} {:>12} {:>10.1} {:>10.1} {:>10.1} {:>10.1}",
            cfg.n_params(),
            mb(sizes[0]),
            mb(sizes[1]),
            mb(sizes[2]),
            mb(sizes[3])
        );
        // f32 is 4 bytes a parameter, plus alignment padding (< 256 bytes a region).
        let regions = tensor_specs(&cfg).len() as u64 * 2;
        let p = cfg.n_params() as u64;
        assert!(
            sizes[0] >= 4 * p && sizes[0] < 4 * p + 256 * regions,
            "{name} f32 {}",
            sizes[0]
        );
        assert!(
            sizes[3] < sizes[2] && sizes[2] < sizes[1] && sizes[1] < sizes[0],
            "{name}: {sizes:?}"
        );
        // Every number of shards is what the writer would produce.
        let shards = sizes
            .iter()
            .map(|s| s.div_ceil(DEFAULT_SHARD_BYTES))
            .collect::<Vec<_>>();
        eprintln!("{:<12} shards of 64 MiB: {shards:?}", "");
        for q in [WeightFormat::Q8, WeightFormat::Q4, WeightFormat::F16] {
            let plan = buffer_plan(&cfg, q, max_binding).unwrap_or_else(|e| panic!("{name} {}: {e}", q.name()));
            assert!(plan.iter().all(|(_, s)| *s <= max_binding));
        }
        // A q4 package keeps wte in q8: its chunks must fit too (buffer_plan at q8 covers them).
        let wte_chunks = gpt2_webgpu::model::wte_chunks(&cfg, WeightFormat::Q8, max_binding).unwrap();
        let wte_bytes = cfg.vocab_size as u64 * WeightFormat::Q8.row_bytes(cfg.n_embd) as u64;
        eprintln!(
            "{:<12} q8 wte {:.1} MB in {} binding(s)",
            "",
            mb(wte_bytes),
            wte_chunks.len()
        );
    }
    // gpt2-xl's q8 wte is larger than a shard: it must span shards.
    let xl = Gpt2Config::preset("gpt2-xl").unwrap();
    let (entries, _) = gpt2_webgpu::package::layout(&xl, WeightFormat::Q8);
    assert!(entries[0].data.bytes > DEFAULT_SHARD_BYTES);
}

// ------------------------------------------------------------------------------------------------
// q8 scale granularity: group of 32 along K (quant.rs) vs one scale per output row. The numbers go in
// docs/format.md; run with --nocapture to see them.

/// Deterministic normal-ish numbers (xorshift + Box-Muller).
struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.uniform(), self.uniform());
        ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
    }
}

/// Quantize [N, K] with one f16 scale per row; returns the decoded matrix.
fn per_row(w: &[f32], n: usize, k: usize, qmax: f32) -> Vec<f32> {
    let mut out = vec![0f32; w.len()];
    for r in 0..n {
        let row = &w[r * k..(r + 1) * k];
        let amax = row.iter().fold(0f32, |a, v| a.max(v.abs()));
        let s = f16::from_f32(amax / qmax).to_f32();
        let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
        for (o, v) in out[r * k..(r + 1) * k].iter_mut().zip(row) {
            *o = (v * inv).round().clamp(-qmax, qmax) * s;
        }
    }
    out
}

/// (sum of squared error, sum of squares)
fn sq_err(got: &[f32], want: &[f32]) -> (f64, f64) {
    got.iter().zip(want).fold((0.0, 0.0), |(e, s), (g, w)| {
        (e + ((g - w) as f64).powi(2), s + (*w as f64).powi(2))
    })
}

#[test]
fn q8_scale_granularity_measurement() {
    // name, [N, K] matrices
    type Mats = Vec<(Vec<f32>, usize, usize)>;
    let mut sets: Vec<(String, Mats)> = Vec::new();
    let mut src = tiny_model();
    let mut tiny = Vec::new();
    for spec in tensor_specs(src.config()) {
        let w = src.read_f32(&spec).unwrap();
        match spec.role {
            Role::Matrix => tiny.push((
                gpt2_webgpu::quant::transpose(&w, spec.shape[0], spec.shape[1]),
                spec.shape[1],
                spec.shape[0],
            )),
            Role::Embedding => tiny.push((w, spec.shape[0], spec.shape[1])),
            Role::Vector => {}
        }
    }
    sets.push(("tiny-gpt2 (all matrices + wte)".into(), tiny));
    let (n, k) = (3072, 768); // gpt2's c_fc, out-major
    let mut rng = Rng(0x9E3779B97F4A7C15);
    let gauss: Vec<f32> = (0..n * k).map(|_| 0.02 * rng.normal()).collect();
    sets.push(("random 3072x768 N(0, 0.02)".into(), vec![(gauss.clone(), n, k)]));
    // GPT-2's real weights have a few input channels with much larger weights (outlier features);
    // model that with 1% of the K columns scaled by 10.
    let mut outl = gauss;
    for r in 0..n {
        for c in (0..k).step_by(100) {
            outl[r * k + c] *= 10.0;
        }
    }
    sets.push(("random 3072x768, 1% outlier columns x10".into(), vec![(outl, n, k)]));

    eprintln!(
        "{:<42} {:>14} {:>14} {:>14} {:>14}",
        "matrices", "q8 group-32", "q8 per-row", "q4 group-32", "q4 per-row"
    );
    for (name, mats) in &sets {
        let mut acc = [(0f64, 0f64); 4];
        for (w, n, k) in mats {
            let g8 = PackedMatrix::pack_nk(w, *n, *k, WeightFormat::Q8).unpack();
            let g4 = PackedMatrix::pack_nk(w, *n, *k, WeightFormat::Q4).unpack();
            let r8 = per_row(w, *n, *k, 127.0);
            let r4 = per_row(w, *n, *k, 7.0);
            for (a, got) in acc.iter_mut().zip([&g8, &r8, &g4, &r4]) {
                let (e, s) = sq_err(got, w);
                a.0 += e;
                a.1 += s;
            }
        }
        let rel: Vec<f64> = acc.iter().map(|(e, s)| (e / s).sqrt()).collect();
        eprintln!(
            "{name:<42} {:>13.3}% {:>13.3}% {:>13.3}% {:>13.3}%",
            rel[0] * 100.0,
            rel[1] * 100.0,
            rel[2] * 100.0,
            rel[3] * 100.0
        );
        assert!(
            rel[0] <= rel[1] && rel[2] <= rel[3],
            "{name}: group-32 should not be worse than per-row: {rel:?}"
        );
        assert!(rel[0] < 0.01, "{name}: q8 group-32 relative RMS error {}", rel[0]);
    }
    // Size: per group of 32 weights one f16 scale = 2 bytes on 32 (q8) or 16 (q4) bytes of weights.
    let k = 768;
    for q in [WeightFormat::Q8, WeightFormat::Q4] {
        let w = q.row_bytes(k) as f64;
        let s = q.s_stride(k) as f64 * 2.0;
        eprintln!(
            "{} row of K={k}: {w} bytes of weights + {s} bytes of group scales = +{:.2}% (per-row: +{:.2}%)",
            q.name(),
            s / w * 100.0,
            2.0 / w * 100.0
        );
    }
}
