//! The sampler on the CPU: the exact twin of `shaders/sample.wgsl`, so that a seeded generation picks the
//! same tokens on either engine whenever their logits agree (bit for bit).
//!
//! The GPU kernel is one workgroup of `WG` = 256 threads; thread `li` owns elements li, li + 256, ... and
//! every float sum is first a per-thread sum over its own elements in increasing index, then a tree
//! reduction (thread li adds li + s for s = 128, 64, ..., 1). Float addition is not associative, so this
//! file reproduces that order exactly: `lanes` keeps one running sum per thread (element i goes to lane
//! i % 256) and `tree_sum` folds them as the workgroup does. Integer counts and the arg-max (largest
//! value, lowest index on ties) do not depend on the order.
//!
//! Where the two can still differ: `exp` is the platform's on the GPU and Rust's (correctly rounded to
//! within 1 ulp) here, so a probability can differ in its last bit. That moves a top-p cut-off or a draw
//! only when it falls within an ulp of a boundary; greedy decoding never depends on it.
//!
//! Algorithm (see sample.wgsl for the derivation):
//!   1. repetition penalty on the distinct context ids: l > 0 ? l / r : l * r
//!   2. max and arg-max of the logits
//!   3. p_i = exp((l_i - max) / temp), temp = 1 when greedy
//!   4. top-k: the largest threshold c on the IEEE bits of p with count(bits >= c) >= k (ties kept)
//!   5. top-p: the largest c with mass(bits >= c) >= top_p * mass(bits >= top-k cut), never below it
//!   6. the draw: u = pcg(seed ^ pcg(step + 0x9e3779b9)) >> 8 / 2^24 of the kept mass z, walking kept
//!      elements thread by thread (thread 0's elements, then thread 1's, ...)
//!   7. alternatives: the n most likely tokens (ties: lower id first), probability p / z if kept, else 0

use super::{Sampled, SamplingParams, MAX_ALTERNATIVES};

/// Threads of the GPU sampler's workgroup: the order of every float sum follows from it.
pub const WG: usize = 256;

/// The GPU kernel's PCG hash (one round of PCG-RXS-M-XS on a 32-bit state).
pub fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

/// The uniform draw in [0, 1) for `seed` (the 32 bits the GPU gets) at generation step `step`.
pub fn uniform(seed: u32, step: u32) -> f32 {
    (pcg(seed ^ pcg(step.wrapping_add(0x9e37_79b9))) >> 8) as f32 / 16_777_216.0
}

/// The 32-bit seed both samplers use for a 64-bit `SamplingParams::seed`.
pub fn seed32(seed: u64) -> u32 {
    (seed ^ (seed >> 32)) as u32
}

/// The temperature both samplers divide by (0 means greedy; never divide by 0).
pub fn effective_temperature(t: f32) -> f32 {
    t.max(1e-6)
}

/// The workgroup's tree reduction over per-thread sums.
fn tree_sum(lanes: &mut [f32; WG]) -> f32 {
    let mut s = WG / 2;
    while s > 0 {
        for li in 0..s {
            lanes[li] += lanes[li + s];
        }
        s /= 2;
    }
    lanes[0]
}

/// The mass of p over elements whose bits are >= c, summed in the GPU's order.
fn mass_from(p: &[f32], c: u32) -> f32 {
    let mut lanes = [0f32; WG];
    for chunk in p.chunks(WG) {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            if v.to_bits() >= c {
                *lane += v;
            }
        }
    }
    tree_sum(&mut lanes)
}

fn count_from(p: &[f32], c: u32) -> u32 {
    p.iter().filter(|v| v.to_bits() >= c).count() as u32
}

/// Scratch space the sampler reuses across steps (so a decode step allocates nothing once warm).
#[derive(Default, Debug)]
pub struct SamplerScratch {
    p: Vec<f32>,
}

/// Pick the next token from one row of logits [V] exactly as `shaders/sample.wgsl` does.
/// `hist`: the distinct token ids of the context window (the repetition penalty's set; ids >= V are
/// ignored). `seed` is the 32-bit seed (`seed32`), `step` the generation step. `scratch` holds the
/// probabilities afterwards.
pub fn sample_logits(logits: &[f32], hist: &[u32], params: &SamplingParams, seed: u32, step: u32, scratch: &mut SamplerScratch) -> Sampled {
    let v = logits.len();
    let p = &mut scratch.p;
    p.clear();
    p.extend_from_slice(logits);
    let greedy = params.temperature == 0.0;

    // 1. Repetition penalty (ids distinct: each penalised once).
    let r = params.repetition_penalty;
    if r != 1.0 {
        for &id in hist {
            if let Some(l) = p.get_mut(id as usize) {
                *l = if *l > 0.0 { *l / r } else { *l * r };
            }
        }
    }

    // 2. Max and arg-max: largest value, lowest index on ties (NaN never wins, as on the GPU).
    let mut lmax = -3.0e38f32;
    let mut argmax = u32::MAX;
    for (i, &l) in p.iter().enumerate() {
        if l > lmax {
            lmax = l;
            argmax = i as u32;
        }
    }

    // 3. Unnormalised probabilities.
    let inv_t = if greedy { 1.0 } else { 1.0 / effective_temperature(params.temperature) };
    for x in p.iter_mut() {
        *x = ((*x - lmax) * inv_t).exp();
    }

    // 4. Top-k cut-off.
    let mut thr = 0u32;
    let v32 = v as u32;
    if !greedy && params.top_k > 0 && params.top_k < v32 {
        let mut c = 0u32;
        for b in (1..32).rev() {
            let cand = c | (1 << (b - 1));
            if count_from(p, cand) >= params.top_k {
                c = cand;
            }
        }
        thr = c;
    }

    // 5. Top-p cut-off.
    if !greedy && params.top_p < 1.0 {
        let goal = params.top_p.max(0.0) * mass_from(p, thr);
        let mut c = 0u32;
        for b in (1..32).rev() {
            let cand = c | (1 << (b - 1));
            if mass_from(p, cand) >= goal {
                c = cand;
            }
        }
        thr = thr.max(c);
    }
    let z = mass_from(p, thr);

    // 6. The draw, walking kept elements thread by thread.
    let mut token = argmax;
    if !greedy {
        let mut local = [0f32; WG];
        let mut last = [u32::MAX; WG];
        for (i, &x) in p.iter().enumerate() {
            if x.to_bits() >= thr {
                local[i % WG] += x;
                last[i % WG] = i as u32;
            }
        }
        let goal = uniform(seed, step) * z;
        let mut acc = 0f32;
        let mut owner = usize::MAX;
        let mut lastnz = 0usize;
        let mut pick_r = 0f32;
        for (j, &s) in local.iter().enumerate() {
            if s > 0.0 {
                lastnz = j;
                if owner == usize::MAX && acc + s > goal {
                    owner = j;
                    pick_r = goal - acc;
                }
            }
            acc += s;
        }
        if owner == usize::MAX {
            // Rounding put the draw past the end: the last kept token.
            owner = lastnz;
            pick_r = 3.0e38;
        }
        let mut acc = 0f32;
        let mut chosen = last[owner];
        for i in (owner..v).step_by(WG) {
            let x = p[i];
            if x.to_bits() >= thr {
                acc += x;
                if acc > pick_r {
                    chosen = i as u32;
                    break;
                }
            }
        }
        token = chosen;
    }

    // 7. Alternatives: the first n of the order (p descending, id ascending).
    let n_alt = (params.alternatives as usize).min(MAX_ALTERNATIVES);
    let mut alternatives = Vec::with_capacity(n_alt);
    let (mut prev_v, mut prev_i) = (3.0e38f32, 0u32);
    for _ in 0..n_alt {
        let (mut cv, mut ci) = (-3.0e38f32, u32::MAX);
        for (i, &x) in p.iter().enumerate() {
            let i = i as u32;
            let after = x < prev_v || (x == prev_v && i > prev_i);
            if after && (x > cv || (x == cv && i < ci)) {
                cv = x;
                ci = i;
            }
        }
        prev_v = cv;
        prev_i = ci;
        let kept = cv.to_bits() >= thr;
        alternatives.push((ci, if kept { cv / z } else { 0.0 }));
    }

    let prob = p.get(token as usize).map_or(0.0, |&x| x / z);
    Sampled { token, prob, alternatives }
}

/// The distinct ids of the context window the repetition penalty looks at (as the GPU model uploads
/// them): the last `window` tokens, sorted, deduplicated, ids >= V dropped. Reuses `out`.
pub fn penalty_set(context: &[u32], window: usize, vocab: usize, out: &mut Vec<u32>) {
    out.clear();
    out.extend_from_slice(&context[context.len().saturating_sub(window)..]);
    out.sort_unstable();
    out.dedup();
    out.retain(|&t| (t as usize) < vocab);
}
