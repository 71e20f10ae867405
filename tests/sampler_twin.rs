//! The CPU sampler (`sampling::cpu`) against the GPU sampler (`shaders/sample_scan.wgsl`, then `sample_best.wgsl`,
//! `sample_draw.wgsl` or `sample_pick.wgsl`) on the same logits:
//! the same token and the same alternatives for many seeds, steps and settings (greedy, temperature,
//! top-k, top-p, repetition penalty, ties, a full 50257 vocabulary, tiny vocabularies).
//! Probabilities may differ in the last bits (exp is the platform's on the GPU), so they are compared to
//! 1e-5 relative; tokens must be identical.

mod common;

use common::{gpu, Rng};
use gpt2_webgpu::gpu::params::SampleParams;
use gpt2_webgpu::sampling::cpu::{effective_temperature, penalty_set, sample_logits, seed32, SamplerScratch};
use gpt2_webgpu::sampling::{Sampled, SamplingParams};

/// The GPU sampler on one row, with the parameters exactly as `Model::step` fills them, its first pass
/// over `groups` workgroups (0: as many as the lanes need).
fn gpu_sample_groups(logits: &[f32], hist: &[u32], s: &SamplingParams, step: u32, groups: u32) -> Sampled {
    let prm = SampleParams {
        top_k: s.top_k,
        greedy: (s.temperature == 0.0) as u32,
        temperature: effective_temperature(s.temperature),
        top_p: s.top_p,
        rep_penalty: s.repetition_penalty,
        seed: seed32(s.seed),
        step,
        n_alt: s.alternatives,
        ..Default::default()
    };
    // The penalty window as the model keeps it: a count per id (`hist` is distinct).
    let mut counts = vec![0u32; logits.len()];
    for &id in hist {
        counts[id as usize] += 1;
    }
    let w = common::gpu_sample_words(logits, &counts, prm, groups);
    let n = w[2] as usize;
    Sampled { token: w[0], prob: f32::from_bits(w[1]), alternatives: (0..n).map(|i| (w[3 + 2 * i], f32::from_bits(w[4 + 2 * i]))).collect() }
}

fn gpu_sample(logits: &[f32], hist: &[u32], s: &SamplingParams, step: u32) -> Sampled {
    gpu_sample_groups(logits, hist, s, step, 0)
}

fn close(a: f32, b: f32) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()) + 1e-12
}

fn check(what: &str, logits: &[f32], context: &[u32], s: &SamplingParams, step: u32) {
    let mut hist = Vec::new();
    if s.repetition_penalty != 1.0 {
        penalty_set(context, usize::MAX, logits.len(), &mut hist);
    }
    let g = gpu_sample(logits, &hist, s, step);
    let c = sample_logits(logits, &hist, s, seed32(s.seed), step, &mut SamplerScratch::default());
    assert_eq!(g.token, c.token, "{what} step {step} {s:?}: token");
    assert!(close(g.prob, c.prob), "{what} step {step}: prob gpu {} cpu {}", g.prob, c.prob);
    assert_eq!(g.alternatives.len(), c.alternatives.len(), "{what}: number of alternatives");
    for (a, b) in g.alternatives.iter().zip(&c.alternatives) {
        assert_eq!(a.0, b.0, "{what} step {step} {s:?}: alternative ids gpu {:?} cpu {:?}", g.alternatives, c.alternatives);
        assert!(close(a.1, b.1), "{what} step {step}: alternative prob gpu {} cpu {}", a.1, b.1);
    }
}

fn settings() -> Vec<SamplingParams> {
    let base = SamplingParams { temperature: 1.0, alternatives: 8, ..SamplingParams::default() };
    vec![
        SamplingParams { alternatives: 5, ..SamplingParams::greedy() },
        base.clone(),
        SamplingParams { temperature: 0.7, top_k: 40, ..base.clone() },
        SamplingParams { temperature: 1.3, top_p: 0.9, ..base.clone() },
        SamplingParams { temperature: 0.8, top_k: 50, top_p: 0.95, repetition_penalty: 1.3, ..base.clone() },
        SamplingParams { top_k: 1, ..base.clone() },
        SamplingParams { top_p: 0.01, alternatives: 3, ..base.clone() },
        SamplingParams { temperature: 2.5, repetition_penalty: 0.7, alternatives: 0, ..base.clone() },
    ]
}

#[test]
fn cpu_sampler_picks_the_gpu_samplers_tokens_on_a_full_vocabulary() {
    let mut rng = Rng(5);
    let v = 50257;
    let context: Vec<u32> = (0..300).map(|i| (i * 7919 % v) as u32).collect();
    for (round, s) in settings().into_iter().enumerate() {
        let mut l = rng.vec(v, 3.0);
        l[(round * 977) % v] = 8.0; // a clear favourite, sometimes inside the penalised context
        l[50256] = 7.5;
        for seed in [0u64, 42, 0xdead_beef_0000_0001] {
            let s = SamplingParams { seed, ..s.clone() };
            for step in [0u32, 1, 17] {
                check(&format!("V={v} round {round}"), &l, &context, &s, step);
            }
        }
    }
}

#[test]
fn cpu_sampler_matches_on_flat_and_tied_distributions() {
    // Many exact ties (the bitwise cut-offs keep all of them) and a flat distribution where the draw
    // walks deep into the thread-by-thread order.
    let v = 5000;
    let tied: Vec<f32> = (0..v).map(|i| ((i % 7) as f32) * 0.5).collect();
    let flat = vec![0.25f32; v];
    for s in settings() {
        for step in 0..6 {
            let s = SamplingParams { seed: 1234 + step as u64, ..s.clone() };
            check("tied", &tied, &[3, 3, 10, 4999], &s, step);
            check("flat", &flat, &[0, 1, 2], &s, step);
        }
    }
}

#[test]
fn cpu_sampler_matches_on_odd_and_tiny_vocabularies() {
    let mut rng = Rng(99);
    for v in [1usize, 2, 7, 255, 257, 1000, 4099] {
        let l = rng.vec(v, 6.0);
        for s in settings() {
            for step in 0..3 {
                check(&format!("V={v}"), &l, &[0, (v - 1) as u32, 5_000_000], &s, step);
            }
        }
    }
}

#[test]
fn seeded_draws_cover_the_kept_set_and_follow_the_seed() {
    // Not a twin check: the CPU sampler alone, so its behaviour is pinned even without a GPU.
    let l: Vec<f32> = vec![2.0, 1.9, 1.8, -10.0, 1.7];
    let s = SamplingParams { temperature: 1.0, top_k: 3, seed: 7, ..SamplingParams::default() };
    let mut scratch = SamplerScratch::default();
    let mut seen = [0usize; 5];
    for step in 0..400 {
        let d = sample_logits(&l, &[], &s, seed32(s.seed), step, &mut scratch);
        seen[d.token as usize] += 1;
        assert!(d.prob > 0.0 && d.prob < 1.0);
    }
    assert!(seen[0] > 0 && seen[1] > 0 && seen[2] > 0, "every kept token is drawn sometimes: {seen:?}");
    assert_eq!(seen[3] + seen[4], 0, "tokens outside the top-3 never: {seen:?}");
    let a: Vec<u32> = (0..20).map(|st| sample_logits(&l, &[], &s, 7, st, &mut scratch).token).collect();
    let b: Vec<u32> = (0..20).map(|st| sample_logits(&l, &[], &s, 7, st, &mut scratch).token).collect();
    let c: Vec<u32> = (0..20).map(|st| sample_logits(&l, &[], &s, 8, st, &mut scratch).token).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn a_seeded_generation_gives_the_same_tokens_on_the_gpu_and_the_cpu_engine() {
    use gpt2_webgpu::engine::cpu::CpuModel;
    use gpt2_webgpu::io::hf::HfModel;
    use gpt2_webgpu::model::Model;
    use gpt2_webgpu::quant::WeightFormat;
    use gpt2_webgpu::text::generate::{GenerateOptions, Generation};
    use gpt2_webgpu::text::tokenizer::Tokenizer;
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny-gpt2"));
    let tok = Tokenizer::from_bytes(&std::fs::read(dir.join("tokenizer.json")).unwrap()).unwrap();
    let mut g = pollster::block_on(Model::load(gpu(), &mut HfModel::open(dir).unwrap(), WeightFormat::F32)).unwrap();
    let mut c = CpuModel::load(&mut HfModel::open(dir).unwrap(), WeightFormat::F32, 2).unwrap();
    let sampling = SamplingParams { temperature: 0.9, top_k: 40, top_p: 0.9, repetition_penalty: 1.2, seed: 2024, alternatives: 4 };
    let opts = GenerateOptions { max_new_tokens: 12, sampling, stop_at_eos: false };
    let mut a = Generation::new(&tok, g.config(), "The engines agree", opts.clone()).unwrap();
    let mut b = Generation::new(&tok, c.config(), "The engines agree", opts).unwrap();
    loop {
        let pa = pollster::block_on(a.next(&mut g, &tok)).unwrap();
        let pb = pollster::block_on(b.next(&mut c, &tok)).unwrap();
        match (pa, pb) {
            (Some(x), Some(y)) => {
                assert_eq!(x.token, y.token, "same seed, same token on both engines");
                let ids = |p: &gpt2_webgpu::text::generate::Piece| p.alternatives.iter().map(|a| a.token).collect::<Vec<_>>();
                assert_eq!(ids(&x), ids(&y));
            }
            (None, None) => break,
            _ => panic!("the generations ended at different steps"),
        }
    }
}

/// `check` that also says which path the sampler took (true: the whole row).
fn check_path(what: &str, logits: &[f32], context: &[u32], s: &SamplingParams, step: u32) -> bool {
    check(what, logits, context, s, step);
    let mut hist = Vec::new();
    if s.repetition_penalty != 1.0 {
        penalty_set(context, usize::MAX, logits.len(), &mut hist);
    }
    let mut scratch = SamplerScratch::default();
    sample_logits(logits, &hist, s, seed32(s.seed), step, &mut scratch);
    scratch.fell_back()
}

#[test]
fn the_candidates_decide_where_they_can_and_the_row_walk_takes_over_where_they_cannot() {
    let mut rng = Rng(77);
    let v = 50257;
    let base = SamplingParams { temperature: 1.0, alternatives: 8, seed: 9, ..SamplingParams::default() };
    let l = rng.vec(v, 3.0);
    for step in 0..3 {
        // Decided by the candidates: a small top-k, top-p over a peaked row, top-k = 1; no cut at all
        // never walks the row (two levels: the lane, then the id).
        let mut peaked = l.clone();
        for (j, i) in [5usize, 900, 40000, 50256].into_iter().enumerate() {
            peaked[i] = 14.0 - j as f32;
        }
        for s in [
            SamplingParams { top_k: 40, ..base.clone() },
            SamplingParams { top_k: 1, ..base.clone() },
            SamplingParams { top_p: 0.9, ..base.clone() },
            SamplingParams { temperature: 0.7, top_k: 50, top_p: 0.95, repetition_penalty: 1.3, ..base.clone() },
            base.clone(),
            SamplingParams { temperature: 1e-4, ..base.clone() },
        ] {
            let s = SamplingParams { seed: 9 + step as u64, ..s };
            assert!(!check_path("candidates", &peaked, &[5, 77, 40000], &s, step), "{s:?} should be decided by the candidates");
        }
        // The row walk: top-k past the 6284 candidates, top-p over a flat row.
        for (what, row, s) in [
            ("top-k 8000", &l, SamplingParams { top_k: 8000, ..base.clone() }),
            ("flat top-p", &vec![0.5f32; v], SamplingParams { top_p: 0.9, ..base.clone() }),
            ("top-p 0.999 huge temperature", &l, SamplingParams { temperature: 100.0, top_p: 0.999, ..base.clone() }),
        ] {
            let s = SamplingParams { seed: 9 + step as u64, ..s };
            assert!(check_path(what, row, &[1, 2, 3], &s, step), "{what}: {s:?} should walk the row");
        }
    }
}

#[test]
fn cpu_sampler_matches_on_adversarial_rows() {
    let mut rng = Rng(123);
    let base = SamplingParams { temperature: 1.0, alternatives: 8, seed: 31, ..SamplingParams::default() };
    // Ties exactly at a top-k cut-off, spread over many lanes (the 40th best value is shared by 30 ids).
    let mut tied = rng.vec(20000, 1.0);
    for i in 0..30 {
        tied[i * 613 + 7] = 6.0;
    }
    for i in 0..25 {
        tied[i * 701 + 3] = 7.0;
    }
    // A lane holding far more than its 4 candidates of the best ids (top-k 40 cannot be decided from
    // it, nor the alternatives): lane 17's ids 17, 17 + NL, ... (NL = 313 lanes of 32 strided ids).
    let mut crowded = rng.vec(10000, 1.0);
    for i in (17..10000).step_by(10000usize.div_ceil(32)) {
        crowded[i] += 5.0;
    }
    // The arg-max penalised below the runner-up.
    let mut pen = rng.vec(3000, 1.0);
    pen[100] = 5.0;
    pen[2999] = 4.0;
    for step in 0..4 {
        let s = |x: SamplingParams| SamplingParams { seed: 31 + step as u64, ..x };
        check("ties at top-k", &tied, &[], &s(SamplingParams { top_k: 40, ..base.clone() }), step);
        check("ties at top-k 25", &tied, &[], &s(SamplingParams { top_k: 25, ..base.clone() }), step);
        check("ties, top-p", &tied, &[], &s(SamplingParams { top_p: 0.5, ..base.clone() }), step);
        assert!(check_path("crowded lane", &crowded, &[], &s(SamplingParams { top_k: 40, ..base.clone() }), step));
        check("crowded lane top-p", &crowded, &[], &s(SamplingParams { top_p: 0.6, ..base.clone() }), step);
        check("crowded lane, no cut", &crowded, &[], &s(base.clone()), step);
        check("crowded lane, greedy (alternatives from the row)", &crowded, &[], &SamplingParams { alternatives: 8, ..SamplingParams::greedy() }, step);
        check("tiny temperature", &tied, &[], &s(SamplingParams { temperature: 1e-3, top_k: 40, ..base.clone() }), step);
        check("tiny temperature, no cut", &tied, &[], &s(SamplingParams { temperature: 1e-4, ..base.clone() }), step);
        check("huge temperature", &tied, &[], &s(SamplingParams { temperature: 1e4, top_k: 100, top_p: 0.5, ..base.clone() }), step);
        check("top-p 1, top-k 0", &pen, &[], &s(base.clone()), step);
        let p = s(SamplingParams { repetition_penalty: 2.0, top_k: 2, ..base.clone() });
        check("penalised arg-max", &pen, &[100], &p, step);
        let g = SamplingParams { repetition_penalty: 2.0, ..SamplingParams::greedy() };
        check("penalised arg-max, greedy", &pen, &[100], &g, step);
        check("top-k = V - 1", &pen, &[], &s(SamplingParams { top_k: 2999, ..base.clone() }), step);
    }
    // Cut-offs between close floats: sample_pick settles the cut-off's bits four at a time (the last pass
    // three), so here the k-th and the (k+1)-th p, and the masses around a top-p goal, differ only in their
    // last bits. 120 ids climb in steps of four ulps of l' (2^-22 near 0.5), three ids a step, so p =
    // exp(l' - m) climbs by about four ulps (2^-24 below 1), with exact ties. (Not one ulp: exp is the
    // platform's on the GPU and may differ from Rust's in the last bit.) V = 5000: the stairs lie in
    // distinct lanes (the candidates decide); V = 50257: they crowd four lanes (the row decides).
    for (v, spread, row) in [(5000usize, 1usize, false), (50257, 1571, true)] {
        let mut stairs: Vec<f32> = rng.vec(v, 1.0).into_iter().map(|x| x - 6.0).collect();
        for i in 0..120 {
            stairs[(i * spread + 5) % v] = 0.5 + (i / 3) as f32 * f32::EPSILON * 2.0;
        }
        let ks: Vec<u32> = if row { vec![1, 3, 40, 41, 119, 120, 121] } else { (1..=121).collect() };
        for step in 0..3 {
            let s = |x: SamplingParams| SamplingParams { seed: 57 + step as u64, ..x };
            for &k in &ks {
                let path = check_path(&format!("V={v} stairs, top-k {k}"), &stairs, &[], &s(SamplingParams { top_k: k, ..base.clone() }), step);
                if k == 40 {
                    assert_eq!(path, row, "V={v} stairs, top-k {k}: the row walk");
                }
            }
            for tp in [0.05, 0.3, 0.5, 0.7, 0.97] {
                check(&format!("V={v} stairs, top-p {tp}"), &stairs, &[], &s(SamplingParams { top_p: tp, ..base.clone() }), step);
                check(&format!("V={v} stairs, top-k 60 top-p {tp}"), &stairs, &[], &s(SamplingParams { top_k: 60, top_p: tp, ..base.clone() }), step);
            }
        }
    }
    // The penalty really moved the arg-max.
    let mut scratch = SamplerScratch::default();
    let g = SamplingParams { repetition_penalty: 2.0, ..SamplingParams::greedy() };
    assert_eq!(sample_logits(&pen, &[100], &g, 0, 0, &mut scratch).token, 2999);
}

#[test]
fn the_first_pass_gives_the_same_result_over_any_number_of_workgroups() {
    let mut rng = Rng(4);
    for v in [50257usize, 8193, 129] {
        let l = rng.vec(v, 3.0);
        for s in settings() {
            let want = gpu_sample_groups(&l, &[], &s, 3, 0);
            for groups in [1u32, 3, 1000] {
                let got = gpu_sample_groups(&l, &[], &s, 3, groups);
                assert_eq!(got, want, "V={v}, {groups} workgroups, {s:?}");
            }
        }
    }
}
