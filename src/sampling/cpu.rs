//! The sampler on the CPU: the exact twin of the GPU's two passes, `shaders/sample_scan.wgsl` and
//! `shaders/sample_pick.wgsl`, so that a seeded generation picks the same tokens on either engine
//! whenever their logits agree (bit for bit).
//!
//! Float addition is not associative, so this file reproduces the GPU's order of every float sum that
//! can decide a token: a lane's mass is summed in id order by one thread; sample_pick's sums are a
//! per-thread sum over its own elements (element j goes to thread j % 256) in increasing j, then a tree
//! reduction (thread t adds t + s for s = 128, 64, ..., 1); `lanes` + `tree_sum` do the same. Integer
//! counts, maxima and the arg-max (largest value, lowest index on ties) do not depend on the order.
//! Nothing depends on how many workgroups sample_scan ran (the tuning's `sample_groups`): a lane is
//! always one thread's.
//!
//! Where the two can still differ: `exp` is the platform's on the GPU and Rust's (correctly rounded to
//! within 1 ulp) here, so a probability can differ in its last bit. That moves a top-p cut-off or a draw
//! only when it falls within an ulp of a boundary; greedy decoding never depends on it.
//!
//! Algorithm (the derivation is in the shaders' headers):
//!   scan, per lane of LANE = 128 ids: repetition penalty (l > 0 ? l / r : l * r), the lane's max m_l and
//!     arg-max, Z_l = sum exp((l' - m_l) / temp), and its CANDIDATES = 16 best (l' desc, id asc)
//!   pick: m = max m_l, Z = sum Z_l exp((m_l - m) / temp), p_i = exp((l'_i - m) / temp);
//!     top-k: the largest threshold c on the IEEE bits of p with count(bits >= c) >= k (ties kept);
//!     top-p: the largest c with mass(bits >= c) >= top_p * (mass(bits >= top-k cut), or Z);
//!     both over the candidates, unless the result is not above B (the largest p of a full lane's last
//!     candidate): then over the whole row (the fallback), as is a draw without any cut;
//!     the draw: u = pcg(seed ^ pcg(step + 0x9e3779b9)) >> 8 / 2^24 of the kept mass z, walking kept
//!     elements thread by thread; alternatives: the first n candidates in (l' desc, id asc) order, with
//!     p / z if kept, else 0.

use super::{Sampled, SamplingParams, MAX_ALTERNATIVES};

/// Threads of sample_pick's workgroup: the order of its float sums follows from it.
pub const WG: usize = 256;
/// Ids one thread of sample_scan scans (its WGSL `L`).
pub const LANE: usize = 128;
/// Candidates a lane keeps (its WGSL `M`).
pub const CANDIDATES: usize = 16;
const NONE: u32 = u32::MAX;

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

/// Words of the GPU's `lanes` buffer for a vocabulary of `v`: stats [NL, 4], candidates [NL, M, 2] and
/// sample_pick's scratch [NL, M].
pub fn lanes_words(v: usize) -> usize {
    v.div_ceil(LANE) * (4 + 3 * CANDIDATES)
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

/// Whether an element of p (-1: an empty candidate slot) is at or above the cut-off bits `c`.
fn kept(v: f32, c: u32) -> bool {
    v >= 0.0 && v.to_bits() >= c
}

/// The mass of p over elements at or above `c`, summed in the GPU's order.
fn mass_from(p: &[f32], c: u32) -> f32 {
    let mut lanes = [0f32; WG];
    for chunk in p.chunks(WG) {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            if kept(v, c) {
                *lane += v;
            }
        }
    }
    tree_sum(&mut lanes)
}

fn count_from(p: &[f32], c: u32) -> u32 {
    p.iter().filter(|&&v| kept(v, c)).count() as u32
}

/// sample_pick's `cut_off`: (threshold bits, top-k threshold bits) over `p`.
fn cut_off(p: &[f32], params: &SamplingParams, v: u32, z_all: f32) -> (u32, u32) {
    let k_on = params.top_k > 0 && params.top_k < v;
    let mut thr = 0u32;
    if k_on {
        let mut c = 0u32;
        for b in (1..32).rev() {
            let cand = c | (1 << (b - 1));
            if count_from(p, cand) >= params.top_k {
                c = cand;
            }
        }
        thr = c;
    }
    let kthr = thr;
    if params.top_p < 1.0 {
        let zk = if k_on { mass_from(p, thr) } else { z_all };
        let goal = params.top_p.max(0.0) * zk;
        let mut c = 0u32;
        for b in (1..32).rev() {
            let cand = c | (1 << (b - 1));
            if mass_from(p, cand) >= goal {
                c = cand;
            }
        }
        thr = thr.max(c);
    }
    (thr, kthr)
}

/// sample_pick's `draw`: the index into `p` of the element drawn, walking kept elements thread by thread.
fn draw(p: &[f32], thr: u32, z: f32, seed: u32, step: u32) -> usize {
    let mut local = [0f32; WG];
    let mut last = [NONE; WG];
    for (j, &x) in p.iter().enumerate() {
        if kept(x, thr) {
            local[j % WG] += x;
            last[j % WG] = j as u32;
        }
    }
    let goal = uniform(seed, step) * z;
    let mut acc = 0f32;
    let mut owner = usize::MAX;
    let mut lastnz = 0usize;
    let mut pick_r = 0f32;
    for (t, &s) in local.iter().enumerate() {
        if s > 0.0 {
            lastnz = t;
            if owner == usize::MAX && acc + s > goal {
                owner = t;
                pick_r = goal - acc;
            }
        }
        acc += s;
    }
    if owner == usize::MAX {
        // Rounding put the draw past the end: the last kept element.
        owner = lastnz;
        pick_r = 3.0e38;
    }
    let mut acc = 0f32;
    let mut chosen = last[owner];
    for j in (owner..p.len()).step_by(WG) {
        let x = p[j];
        if kept(x, thr) {
            acc += x;
            if acc > pick_r {
                chosen = j as u32;
                break;
            }
        }
    }
    chosen as usize
}

/// Scratch space the sampler reuses across steps (so a decode step allocates nothing once warm).
#[derive(Default, Debug)]
pub struct SamplerScratch {
    /// The penalised logits l', then (fallback) p over the row.
    row: Vec<f32>,
    /// Per lane: max, relative mass, arg-max, elements.
    lane_m: Vec<f32>,
    lane_z: Vec<f32>,
    lane_arg: Vec<u32>,
    lane_n: Vec<u32>,
    /// [NL * M] candidates: id (NONE past a lane's end), l', p (-1 for an empty slot).
    cand_id: Vec<u32>,
    cand_l: Vec<f32>,
    cand_p: Vec<f32>,
    /// Whether the last call walked the whole row (the fallback) rather than the candidates.
    fell_back: bool,
}

impl SamplerScratch {
    /// Whether the last `sample_logits` walked the whole row: a draw without a cut, or a cut-off the
    /// candidates could not decide (the tests make sure both paths run).
    pub fn fell_back(&self) -> bool {
        self.fell_back
    }
}

/// sample_scan: penalty in place, then per lane its max, arg-max, relative mass and best candidates.
fn scan(s: &mut SamplerScratch, logits: &[f32], hist: &[u32], r: f32, inv_t: f32) {
    let v = logits.len();
    let nl = v.div_ceil(LANE);
    s.row.clear();
    s.row.extend_from_slice(logits);
    if r != 1.0 {
        // Ids distinct: each penalised once.
        for &id in hist {
            if let Some(l) = s.row.get_mut(id as usize) {
                *l = if *l > 0.0 { *l / r } else { *l * r };
            }
        }
    }
    for b in [&mut s.lane_m, &mut s.lane_z, &mut s.cand_l, &mut s.cand_p] {
        b.clear();
    }
    s.lane_arg.clear();
    s.lane_n.clear();
    s.cand_id.clear();
    for ln in 0..nl {
        let (lo, hi) = (ln * LANE, ((ln + 1) * LANE).min(v));
        let lane = &s.row[lo..hi];
        let (mut m, mut am) = (-3.0e38f32, NONE);
        for (i, &l) in lane.iter().enumerate() {
            if l > m {
                m = l;
                am = (lo + i) as u32;
            }
        }
        let mut z = 0f32;
        let (mut cv, mut ci, mut n) = ([0f32; CANDIDATES], [0u32; CANDIDATES], 0usize);
        for (i, &l) in lane.iter().enumerate() {
            z += ((l - m) * inv_t).exp();
            let mut at = n;
            if n < CANDIDATES {
                n += 1;
            } else if l > cv[CANDIDATES - 1] {
                at = CANDIDATES - 1;
            } else {
                continue;
            }
            while at > 0 && l > cv[at - 1] {
                cv[at] = cv[at - 1];
                ci[at] = ci[at - 1];
                at -= 1;
            }
            cv[at] = l;
            ci[at] = (lo + i) as u32;
        }
        s.lane_m.push(m);
        s.lane_z.push(z);
        s.lane_arg.push(am);
        s.lane_n.push((hi - lo) as u32);
        for r in 0..CANDIDATES {
            s.cand_id.push(if r < n { ci[r] } else { NONE });
            s.cand_l.push(cv[r]);
        }
    }
}

/// Pick the next token from one row of logits [V] exactly as the GPU's two passes do.
/// `hist`: the distinct token ids of the context window (the repetition penalty's set; ids >= V are
/// ignored). `seed` is the 32-bit seed (`seed32`), `step` the generation step.
pub fn sample_logits(logits: &[f32], hist: &[u32], params: &SamplingParams, seed: u32, step: u32, scratch: &mut SamplerScratch) -> Sampled {
    let v = logits.len() as u32;
    let greedy = params.temperature == 0.0;
    let inv_t = if greedy { 1.0 } else { 1.0 / effective_temperature(params.temperature) };
    scan(scratch, logits, hist, params.repetition_penalty, inv_t);
    let s = scratch;
    let nl = s.lane_m.len();

    // 1. Max and arg-max from the lanes' (the first lane reaching the max: the lowest id).
    let (mut m, mut argmax) = (-3.0e38f32, NONE);
    for (&lm, &la) in s.lane_m.iter().zip(&s.lane_arg) {
        if lm > m {
            m = lm;
            argmax = la;
        }
    }

    // 2. The total mass, lane l on thread l % WG.
    let mut lanes = [0f32; WG];
    for ln in 0..nl {
        lanes[ln % WG] += s.lane_z[ln] * ((s.lane_m[ln] - m) * inv_t).exp();
    }
    let z_all = tree_sum(&mut lanes);

    // 3. The candidates' p and the bound B (-1: no lane is full).
    let mut bound = -1f32;
    for (j, (&id, &l)) in s.cand_id.iter().zip(&s.cand_l).enumerate() {
        let x = if id == NONE { -1.0 } else { ((l - m) * inv_t).exp() };
        s.cand_p.push(x);
        if j % CANDIDATES == CANDIDATES - 1 && s.lane_n[j / CANDIDATES] > CANDIDATES as u32 {
            bound = bound.max(x);
        }
    }

    // 4. The cut-off and the kept mass, from the candidates where they decide it.
    let k_on = params.top_k > 0 && params.top_k < v;
    let cut = !greedy && (k_on || params.top_p < 1.0);
    let (mut thr, mut z, mut row) = (0u32, z_all, false);
    let undecided = if cut {
        let (t, kt) = cut_off(&s.cand_p, params, v, z_all);
        thr = t;
        let bb = bound.to_bits();
        bound >= 0.0 && !((!k_on || kt > bb) && t > bb)
    } else {
        !greedy
    };
    s.fell_back = undecided;
    if undecided {
        row = true;
        for x in s.row.iter_mut() {
            *x = ((*x - m) * inv_t).exp();
        }
        if cut {
            thr = cut_off(&s.row, params, v, z_all).0;
        }
    }
    let p: &[f32] = if row { &s.row } else { &s.cand_p };
    if cut {
        z = mass_from(p, thr);
    }

    // 5. The draw.
    let (mut token, mut p_tok) = (argmax, 1.0f32);
    if !greedy {
        let j = draw(p, thr, z, seed, step);
        p_tok = p.get(j).copied().unwrap_or(0.0);
        token = if row { j as u32 } else { s.cand_id.get(j).copied().unwrap_or(NONE) };
    }

    // 6. Alternatives: the first n candidates of the order (l' descending, id ascending).
    let n_alt = (params.alternatives as usize).min(MAX_ALTERNATIVES);
    let mut alternatives = Vec::with_capacity(n_alt);
    let (mut prev_v, mut prev_i) = (3.0e38f32, 0u32);
    for _ in 0..n_alt {
        let (mut cv, mut ci) = (-3.0e38f32, NONE);
        for (&i, &x) in s.cand_id.iter().zip(&s.cand_l) {
            let after = x < prev_v || (x == prev_v && i > prev_i);
            if i != NONE && after && (x > cv || (x == cv && i < ci)) {
                cv = x;
                ci = i;
            }
        }
        prev_v = cv;
        prev_i = ci;
        let pa = if ci == NONE { 0.0 } else { ((cv - m) * inv_t).exp() };
        alternatives.push((ci, if ci != NONE && kept(pa, thr) { pa / z } else { 0.0 }));
    }

    Sampled { token, prob: p_tok / z, alternatives }
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
