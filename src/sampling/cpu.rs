//! The sampler on the CPU: the exact twin of the GPU's two passes, `shaders/sample_scan.wgsl`, then
//! `shaders/sample_best.wgsl` (greedy), `sample_draw.wgsl` (no top-k, no top-p) or `sample_pick.wgsl`,
//! so that a seeded generation picks the same tokens on either engine whenever their logits agree
//! (bit for bit).
//!
//! Float addition is not associative, so this file reproduces the GPU's order of every float sum that
//! can decide a token: a lane's mass is summed in id order by one thread; the second pass's sums run
//! over VT = 256 virtual threads whatever its workgroup size (element j goes to virtual thread j % 256,
//! in increasing j, then a tree reduction: t adds t + s for s = 128, 64, ..., 1; shaders/common/
//! sample_params.wgsl); `vt_sum`, `mass_from` and `tree_sum` do the same. Integer counts, maxima and the arg-max
//! (largest value, lowest id on ties) do not depend on the order. Nothing depends on how many
//! workgroups sample_scan ran (the tuning's `sample_groups`): a lane is always one thread's.
//!
//! Where the two can still differ: `exp` is the platform's on the GPU and Rust's (correctly rounded to
//! within 1 ulp) here, so a probability can differ in its last bit. That moves a top-p cut-off or a draw
//! only when it falls within an ulp of a boundary; greedy decoding never depends on it.
//!
//! Algorithm (the derivation is in the shaders' headers):
//!   scan, per lane of LANE = 32 strided ids (lane l: l, l + NL, l + 2 NL, ...): repetition penalty
//!     (l > 0 ? l / r : l * r), the lane's max m_l and arg-max, Z_l = sum exp((l' - m_l) / temp), and its
//!     CANDIDATES = 4 best (l' desc, id asc);
//!   then m = max m_l, Z = sum Z_l exp((m_l - m) / temp), p_i = exp((l'_i - m) / temp);
//!   greedy: the arg-max;
//!   no cut: a two-level draw: the lane by its mass Z_l exp((m_l - m) / temp), then the id in that lane;
//!   else top-k: the largest threshold c on the IEEE bits of p with count(bits >= c) >= k (ties kept);
//!     top-p: the largest c with mass(bits >= c) >= top_p * (mass(bits >= top-k cut), or Z);
//!     both over the candidates, unless the result is not above B (the largest p of a full lane's last
//!     candidate): then over the whole row (the fallback);
//!     the draw: u = pcg(seed ^ pcg(step + 0x9e3779b9)) >> 8 / 2^24 of the kept mass z, walking kept
//!     elements virtual thread by virtual thread;
//!   alternatives: the first n in (l' descending, id ascending) order, from the candidates when the
//!     last one is above every id they left out, else from the row; p / z if kept, else 0.

use super::{Sampled, SamplingParams, MAX_ALTERNATIVES};

/// Virtual threads of the second pass's float sums (WGSL `VT`): the order of those sums follows from it.
pub const WG: usize = 256;
/// Ids one thread of sample_scan scans (WGSL `L`), strided: lane l holds l, l + NL, l + 2 NL, ...
pub const LANE: usize = 32;
/// Candidates a lane keeps (WGSL `M`).
pub const CANDIDATES: usize = 4;
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

/// Words of the GPU's `lanes` buffer for a vocabulary of `v`: four stats and 2 M candidate words per lane.
pub fn lanes_words(v: usize) -> usize {
    v.div_ceil(LANE) * (4 + 2 * CANDIDATES)
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

/// sample_pick's `draw`: the index into `p` of the element drawn, walking kept elements virtual thread
/// by virtual thread.
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
    /// The penalised logits l'.
    row: Vec<f32>,
    /// p over the row (the fallback).
    row_p: Vec<f32>,
    /// The alternatives as (id, l').
    alts: Vec<(u32, f32)>,
    /// Per lane: max, relative mass, arg-max, elements.
    lane_m: Vec<f32>,
    lane_z: Vec<f32>,
    lane_arg: Vec<u32>,
    lane_n: Vec<u32>,
    /// [NL * M] candidates: id (NONE past a lane's end), l', p (-1 for an empty slot).
    cand_id: Vec<u32>,
    cand_l: Vec<f32>,
    cand_p: Vec<f32>,
    /// Whether the last call's cut-off walked the whole row (the fallback) rather than the candidates.
    fell_back: bool,
}

impl SamplerScratch {
    /// Whether the last `sample_logits` walked the whole row: a cut-off the candidates could not decide
    /// (the tests make sure both paths run). A draw without a cut never does (two levels: the lane,
    /// then the id).
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
        let ids = (ln..v).step_by(nl);
        let (mut m, mut am, mut n) = (-3.0e38f32, NONE, 0u32);
        for i in ids.clone() {
            let l = s.row[i];
            if l > m {
                m = l;
                am = i as u32;
            }
            n += 1;
        }
        // The candidates bubble down: a new id passes every slot it beats strictly (or an empty one).
        let mut z = 0f32;
        let (mut cv, mut ci) = ([-3.0e38f32; CANDIDATES], [NONE; CANDIDATES]);
        for i in ids {
            let l = s.row[i];
            z += ((l - m) * inv_t).exp();
            if ci[CANDIDATES - 1] == NONE || l > cv[CANDIDATES - 1] {
                let (mut x, mut xi) = (l, i as u32);
                for (c, d) in cv.iter_mut().zip(ci.iter_mut()) {
                    if *d == NONE || x > *c {
                        std::mem::swap(&mut x, c);
                        std::mem::swap(&mut xi, d);
                    }
                }
            }
        }
        s.lane_m.push(m);
        s.lane_z.push(z);
        s.lane_arg.push(am);
        s.lane_n.push(n);
        s.cand_id.extend_from_slice(&ci);
        s.cand_l.extend_from_slice(&cv);
    }
}

/// The per-virtual-thread sums of `f` over `n` elements (element j on virtual thread j % WG, in
/// increasing j), then the tree.
fn vt_sum(n: usize, mut f: impl FnMut(usize) -> f32) -> f32 {
    let mut lanes = [0f32; WG];
    for j in 0..n {
        lanes[j % WG] += f(j);
    }
    tree_sum(&mut lanes)
}

/// The first `n` ids in (l' descending, id ascending) order among `(id, l')` pairs (NONE past the end).
fn best_n(pairs: impl Iterator<Item = (u32, f32)> + Clone, n: usize, out: &mut Vec<(u32, f32)>) {
    out.clear();
    let (mut prev_v, mut prev_i) = (3.0e38f32, 0u32);
    for _ in 0..n {
        let (mut cv, mut ci) = (-3.0e38f32, NONE);
        for (i, x) in pairs.clone() {
            let after = x < prev_v || (x == prev_v && i > prev_i);
            if i != NONE && after && (x > cv || (x == cv && i < ci)) {
                cv = x;
                ci = i;
            }
        }
        prev_v = cv;
        prev_i = ci;
        out.push((ci, cv));
    }
}

/// sample_draw's two-level draw without a cut: the lane by its mass, then the id inside it.
fn draw_two_level(s: &SamplerScratch, m: f32, inv_t: f32, z_all: f32, seed: u32, step: u32) -> u32 {
    let nl = s.lane_m.len();
    let v = s.row.len();
    let w = |l: usize| s.lane_z[l] * ((s.lane_m[l] - m) * inv_t).exp();
    let mut local = [0f32; WG];
    for l in 0..nl {
        local[l % WG] += w(l);
    }
    let goal = uniform(seed, step) * z_all;
    let (mut acc, mut owner, mut lastnz, mut r) = (0f32, usize::MAX, 0usize, 3.0e38f32);
    for (t, &x) in local.iter().enumerate() {
        if x > 0.0 {
            lastnz = t;
            if owner == usize::MAX && acc + x > goal {
                owner = t;
                r = goal - acc;
            }
        }
        acc += x;
    }
    if owner == usize::MAX {
        owner = lastnz;
    }
    let (mut acc, mut lane, mut lastl) = (0f32, usize::MAX, owner);
    for l in (owner..nl).step_by(WG) {
        let x = w(l);
        if x > 0.0 {
            lastl = l;
            if acc + x > r {
                lane = l;
                r -= acc;
                break;
            }
        }
        acc += x;
    }
    if lane == usize::MAX {
        lane = lastl;
        r = 3.0e38;
    }
    let mut acc = 0f32;
    for i in (lane..v).step_by(nl) {
        acc += ((s.row[i] - m) * inv_t).exp();
        if acc > r {
            return i as u32;
        }
    }
    s.lane_arg[lane]
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

    // The head (common/sample_second.wgsl): max and arg-max (lowest id on ties), the total mass, bl.
    let (mut m, mut argmax) = (-3.0e38f32, NONE);
    for (&lm, &la) in s.lane_m.iter().zip(&s.lane_arg) {
        if lm > m || (lm == m && la < argmax) {
            m = lm;
            argmax = la;
        }
    }
    let z_all = vt_sum(nl, |l| s.lane_z[l] * ((s.lane_m[l] - m) * inv_t).exp());
    let bl = (0..nl).filter(|&l| s.lane_n[l] > CANDIDATES as u32).map(|l| s.cand_l[l * CANDIDATES + CANDIDATES - 1]).fold(-3.0e38f32, f32::max);

    let k_on = params.top_k > 0 && params.top_k < v;
    let cut = !greedy && (k_on || params.top_p < 1.0);
    let (mut thr, mut z, mut row) = (0u32, z_all, false);
    s.fell_back = false;
    let (token, p_tok) = if greedy {
        (argmax, 1.0f32)
    } else if !cut {
        let t = draw_two_level(s, m, inv_t, z_all, seed, step);
        (t, ((s.row[t as usize] - m) * inv_t).exp())
    } else {
        // The candidates' p and the bound B (-1: no lane is full).
        let mut bound = -1f32;
        for (j, (&id, &l)) in s.cand_id.iter().zip(&s.cand_l).enumerate() {
            let x = if id == NONE { -1.0 } else { ((l - m) * inv_t).exp() };
            s.cand_p.push(x);
            if j % CANDIDATES == CANDIDATES - 1 && s.lane_n[j / CANDIDATES] > CANDIDATES as u32 {
                bound = bound.max(x);
            }
        }
        let (t, kt) = cut_off(&s.cand_p, params, v, z_all);
        thr = t;
        let bb = bound.to_bits();
        if bound >= 0.0 && !((!k_on || kt > bb) && t > bb) {
            // The fallback: p over the row.
            row = true;
            s.fell_back = true;
            s.row_p.clear();
            s.row_p.extend(s.row.iter().map(|&l| ((l - m) * inv_t).exp()));
            thr = cut_off(&s.row_p, params, v, z_all).0;
        }
        let p: &[f32] = if row { &s.row_p } else { &s.cand_p };
        z = mass_from(p, thr);
        let j = draw(p, thr, z, seed, step);
        let p_tok = p.get(j).copied().unwrap_or(0.0);
        (if row { j as u32 } else { s.cand_id.get(j).copied().unwrap_or(NONE) }, p_tok)
    };

    // Alternatives: from the candidates when the last is above every id they left out, else the row.
    let n_alt = (params.alternatives as usize).min(MAX_ALTERNATIVES);
    let mut alts = std::mem::take(&mut s.alts);
    best_n(s.cand_id.iter().copied().zip(s.cand_l.iter().copied()), n_alt, &mut alts);
    let decided = n_alt == 0 || bl == -3.0e38 || alts.last().is_some_and(|&(i, x)| i != NONE && x > bl);
    if !decided {
        best_n((0..v).zip(s.row.iter().copied()), n_alt, &mut alts);
    }
    let alternatives = alts
        .iter()
        .map(|&(ci, cv)| {
            let pa = if ci == NONE { 0.0 } else { ((cv - m) * inv_t).exp() };
            (ci, if ci != NONE && kept(pa, thr) { pa / z } else { 0.0 })
        })
        .collect();
    s.alts = alts;

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
