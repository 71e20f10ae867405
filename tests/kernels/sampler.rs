//! The sampler: greedy, repetition penalty, seeded temperature, top-k and top-p.

use crate::common::Rng;
use gpt2_webgpu::gpu::params::*;

struct Draw {
    token: u32,
    prob: f32,
    alts: Vec<(u32, f32)>,
}

/// The sampler on one row; `hist` (distinct ids) is the penalty window, given as the counts the model
/// keeps (one per id), with nothing fed (the window moving on is tested through the model).
fn sample(logits: &[f32], hist: &[u32], prm: SampleParams) -> Draw {
    let mut counts = vec![0u32; logits.len()];
    for &id in hist {
        counts[id as usize] += 1;
    }
    let w = crate::common::gpu_sample_words(logits, &counts, prm, 0);
    let n = w[2] as usize;
    Draw { token: w[0], prob: f32::from_bits(w[1]), alts: (0..n).map(|i| (w[3 + 2 * i], f32::from_bits(w[4 + 2 * i]))).collect() }
}

fn greedy_params() -> SampleParams {
    SampleParams { greedy: 1, temperature: 1.0, top_p: 1.0, rep_penalty: 1.0, n_alt: 5, ..Default::default() }
}

fn softmax(l: &[f32], temp: f64) -> Vec<f64> {
    let m = l.iter().fold(f64::MIN, |a, &b| a.max(b as f64));
    let e: Vec<f64> = l.iter().map(|&v| ((v as f64 - m) / temp).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| v / z).collect()
}

#[test]
fn greedy_is_argmax_with_exact_alternatives_on_a_full_vocabulary() {
    let mut rng = Rng(21);
    let mut l = rng.vec(50257, 4.0);
    l[31337] = 9.5;
    l[777] = 9.0;
    l[50256] = 8.75; // the very last element
    let d = sample(&l, &[], greedy_params());
    let p = softmax(&l, 1.0);
    assert_eq!(d.token, 31337);
    assert!((d.prob as f64 - p[31337]).abs() < 1e-5, "prob {} vs {}", d.prob, p[31337]);
    let ids: Vec<u32> = d.alts.iter().map(|a| a.0).collect();
    let mut order: Vec<usize> = (0..l.len()).collect();
    order.sort_by(|&a, &b| l[b].partial_cmp(&l[a]).unwrap().then(a.cmp(&b)));
    assert_eq!(ids, order[..5].iter().map(|&i| i as u32).collect::<Vec<_>>());
    for (id, pr) in &d.alts {
        assert!((*pr as f64 - p[*id as usize]).abs() < 1e-5);
    }
}

#[test]
fn greedy_ties_pick_the_lowest_id_and_tiny_vocabularies_work() {
    let d = sample(&[1.0, 3.0, 3.0, -2.0, 3.0], &[], greedy_params());
    assert_eq!(d.token, 1);
    assert_eq!(d.alts.iter().map(|a| a.0).collect::<Vec<_>>(), vec![1, 2, 4, 0, 3]);
    let d = sample(&[-5.0], &[], SampleParams { greedy: 0, temperature: 0.7, top_k: 3, top_p: 0.5, ..greedy_params() });
    assert_eq!((d.token, d.prob), (0, 1.0));
}

#[test]
fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
    // Token 0 leads (2.0) but is in the context: 2.0 / 1.5 = 1.33 < 1.5, so token 1 wins.
    let l = [2.0f32, 1.5, -1.0, -0.9, 0.1];
    assert_eq!(sample(&l, &[], greedy_params()).token, 0);
    let pen = SampleParams { rep_penalty: 1.5, ..greedy_params() };
    let d = sample(&l, &[0, 3], pen);
    assert_eq!(d.token, 1);
    // Token 3 (-0.9) becomes -1.35, so it falls below token 2 (-1.0) in the alternatives.
    let ids: Vec<u32> = d.alts.iter().map(|a| a.0).collect();
    assert_eq!(ids, vec![1, 0, 4, 2, 3]);
    let pen_l = [2.0 / 1.5, 1.5, -1.0, -0.9 * 1.5, 0.1];
    let p = softmax(&pen_l, 1.0);
    for (id, pr) in &d.alts {
        assert!((*pr as f64 - p[*id as usize]).abs() < 1e-6);
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_top_k_1_is_greedy() {
    let mut rng = Rng(31);
    let l = rng.vec(5000, 3.0);
    let argmax = sample(&l, &[], greedy_params()).token;
    let base = SampleParams { greedy: 0, temperature: 1.3, top_k: 0, top_p: 1.0, rep_penalty: 1.0, seed: 42, step: 0, n_alt: 3, ..Default::default() };
    let a: Vec<u32> = (0..8).map(|s| sample(&l, &[], SampleParams { step: s, ..base }).token).collect();
    let b: Vec<u32> = (0..8).map(|s| sample(&l, &[], SampleParams { step: s, ..base }).token).collect();
    assert_eq!(a, b, "same seed and step, same token");
    let c: Vec<u32> = (0..8).map(|s| sample(&l, &[], SampleParams { step: s, seed: 43, ..base }).token).collect();
    assert_ne!(a, c, "another seed gives another sequence");
    let mut distinct = a.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 1, "temperature sampling over 5000 flat-ish logits draws different tokens");
    for s in 0..5 {
        let d = sample(&l, &[], SampleParams { top_k: 1, step: s, ..base });
        assert_eq!((d.token, d.prob), (argmax, 1.0), "top-k = 1 is greedy");
    }
}

#[test]
fn top_k_and_top_p_draw_only_from_the_specified_set_with_the_right_frequencies() {
    // Ten candidates with known probabilities, the rest negligible.
    let mut l = vec![-30.0f32; 1000];
    let lead = [(10usize, 3.0f32), (20, 2.5), (30, 2.0), (40, 1.5), (50, 1.0), (60, 0.5), (70, 0.0), (80, -0.5)];
    for (i, v) in lead {
        l[i] = v;
    }
    let p = softmax(&l, 1.0);
    let mut by_p: Vec<usize> = (0..l.len()).collect();
    by_p.sort_by(|&a, &b| p[b].partial_cmp(&p[a]).unwrap());

    // top-k = 3: only the three best, frequencies ~ renormalised probabilities.
    let base = SampleParams { greedy: 0, temperature: 1.0, top_k: 3, top_p: 1.0, rep_penalty: 1.0, seed: 7, n_alt: 4, ..Default::default() };
    let n = 300;
    let mut count = std::collections::HashMap::new();
    for s in 0..n {
        let d = sample(&l, &[], SampleParams { step: s, ..base });
        assert!(by_p[..3].contains(&(d.token as usize)), "top-k 3 drew token {}", d.token);
        let z: f64 = by_p[..3].iter().map(|&i| p[i]).sum();
        assert!((d.prob as f64 - p[d.token as usize] / z).abs() < 1e-4, "reported probability is renormalised over the kept set");
        assert_eq!(d.alts[3].1, 0.0, "the 4th alternative is outside top-k, probability 0");
        *count.entry(d.token).or_insert(0usize) += 1;
    }
    let z: f64 = by_p[..3].iter().map(|&i| p[i]).sum();
    for &i in &by_p[..3] {
        let expect = p[i] / z * n as f64;
        let got = *count.get(&(i as u32)).unwrap_or(&0) as f64;
        // 4.5 standard deviations of a binomial: fails only if the distribution is wrong.
        let sd = (n as f64 * (p[i] / z) * (1.0 - p[i] / z)).sqrt();
        assert!((got - expect).abs() < 4.5 * sd + 1.0, "token {i}: drawn {got} times, expected {expect:.1}");
    }

    // top-p = 0.8: the smallest top set with mass >= 0.8 (computed here in f64).
    let mut mass = 0.0;
    let mut keep = 0;
    while mass < 0.8 {
        mass += p[by_p[keep]];
        keep += 1;
    }
    let tp = SampleParams { top_k: 0, top_p: 0.8, ..base };
    let mut seen = std::collections::HashSet::new();
    for s in 0..200 {
        let d = sample(&l, &[], SampleParams { step: s, ..tp });
        assert!(by_p[..keep].contains(&(d.token as usize)), "top-p 0.8 drew token {} outside the {keep}-token nucleus", d.token);
        seen.insert(d.token);
    }
    assert_eq!(seen.len(), keep, "every token of the nucleus gets drawn");
    // top-p tiny: only the best token.
    let d = sample(&l, &[], SampleParams { top_k: 0, top_p: 0.01, ..base });
    assert_eq!((d.token as usize, d.prob), (by_p[0], 1.0));
}
