// sample_pick: the sampler's second pass, one workgroup. sample_scan.wgsl has penalised the row in place
// and left, per lane of 128 ids, its max m_l, its relative mass Z_l and its 16 best candidates. This pass
// picks the token from those, walking the whole vocabulary only where the candidates cannot decide.
//
//   m     = max_l m_l, argmax = the first lane's arg-max among those reaching m (lowest id on ties)
//   p_i   = exp((l'_i - m) / temp)                     (temp = 1 when greedy)
//   Z     = sum_l Z_l * exp((m_l - m) / temp)          (the total mass)
//   keep  = the top_k largest p_i (top_k = 0: all), then the smallest top set whose mass >= top_p * (the
//           top-k set's mass, or Z without top-k); ties at a cut-off are all kept
//   token = greedy ? argmax : a draw from p over `keep`, u = rng(seed, step)
//   out   = [token, prob(token), n_alt, (id, prob) x n_alt of the most likely tokens]  (probs as f32
//           bits, p / z with z the kept mass; 0 for a token outside `keep`)
//
// Cut-offs are found without sorting: p_i >= 0, so the IEEE bits of p order like the values, and the
// cut-off is the largest c with count(bits >= c) >= top_k (resp. mass(bits >= c) >= goal), by a 31-step
// bitwise search. The search first runs over the candidates only (NL * 16 of them, not V). That is
// exact when the result is above B, the largest p of the 16th candidate of a lane that has more than 16
// ids: every id with p > B is a candidate (a lane's unlisted ids have l' <= its 16th), so counts and
// masses above B are the whole row's. Otherwise (top-k past the candidates, top-p over a flat
// distribution, or no cut at all) the fallback writes p over the row and runs the same searches and
// the draw over all V ids, as the one-workgroup sampler did.
// The draw walks the kept elements in a fixed order: thread by thread (thread li owns elements li,
// li + 256, ... of the candidates or of the row), a valid order for inverse-CDF sampling.
// The alternatives are the first n_alt of the order (l' descending, id ascending); every one of them is a
// candidate (a lane's 16 best include its share of the row's first 16).
//
// Last, thread 0 moves the penalty window on by the token this step was fed (p.fed: its stream index f;
// ring[f % P] leaves the window once f >= P; sample_scan applied the same move on the fly), and writes
// the chosen token to fed[0], where the next step's embed reads it (several steps run in one submit).
//
// Shapes: logits [*, V] f32 (row at element offset row_off: l' on entry, may be overwritten with p),
// counts [V] u32, ring [P] u32, fed [4] u32, out [K, 3 + 2 * 8] u32 (this step writes row out_row),
// lanes: stats [NL, 4], candidates [NL, 16, 2] (sample_scan), then scratch [NL * 16] f32 (their p).

struct Params {
    V: u32,
    top_k: u32,
    greedy: u32,
    temperature: f32,
    top_p: f32,
    rep_penalty: f32,
    seed: u32,
    step: u32,
    n_alt: u32,
    row_off: u32,
    out_row: u32,   // row of `out` this step writes
    fed: u32,       // stream index of the token in fed[0] (count it in), or NONE
    window: u32,    // P
    groups: u32,    // sample_scan's workgroups (unused here)
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;  // [*, V]
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;  // [V]
@group(0) @binding(3) var<storage, read_write> ring: array<u32>;    // [P]
@group(0) @binding(4) var<storage, read_write> fed: array<u32>;     // [4]
@group(0) @binding(5) var<storage, read_write> out: array<u32>;     // [K, OUT_WORDS]
@group(0) @binding(6) var<storage, read_write> lanes: array<u32>;   // see the header

const WG: u32 = 256u;
const L: u32 = 128u;
const M: u32 = 16u;
const MAX_ALT: u32 = 8u;
const OUT_WORDS: u32 = 3u + 2u * MAX_ALT;
const NONE: u32 = 0xffffffffu;
// Where the searches look: the candidates' p (scratch in `lanes`), or p over the whole row.
const CANDS: u32 = 1u;
const ROW: u32 = 0u;

var<workgroup> pick: u32;          // the thread that holds the draw
var<workgroup> pick_r: f32;        // the draw's remaining mass inside that thread
var<workgroup> undecided: u32;     // 1: the candidates cannot decide the cut-off

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn n_of(src: u32) -> u32 {
    let nl = (p.V + L - 1u) / L;
    return select(p.V, nl * M, src == CANDS);
}

// Element j's p, or -1 for an empty candidate slot (never kept, never counted).
fn pv(src: u32, j: u32) -> f32 {
    if (src == CANDS) {
        let nl = (p.V + L - 1u) / L;
        return bitcast<f32>(lanes[(4u + 2u * M) * nl + j]);
    }
    return logits[p.row_off + j];
}

fn kept(v: f32, c: u32) -> bool {
    return v >= 0.0 && bitcast<u32>(v) >= c;
}

// Mass of p over elements whose bits are >= c: this thread's share in order, then the tree.
fn mass_from(li: u32, src: u32, c: u32) -> f32 {
    var s = 0.0;
    let n = n_of(src);
    for (var j = li; j < n; j += WG) {
        let v = pv(src, j);
        if (kept(v, c)) {
            s += v;
        }
    }
    return wg_sum(li, s);
}

fn count_from(li: u32, src: u32, c: u32) -> u32 {
    var k = 0u;
    let n = n_of(src);
    for (var j = li; j < n; j += WG) {
        k += select(0u, 1u, kept(pv(src, j), c));
    }
    return wg_sum_u32(li, k);
}

// The cut-off over `src`; (threshold bits, top-k threshold bits).
fn cut_off(li: u32, src: u32, z_all: f32) -> vec2<u32> {
    var thr = 0u;
    if (p.top_k > 0u && p.top_k < p.V) {
        var c = 0u;
        for (var b = 31u; b > 0u; b--) {
            let cand = c | (1u << (b - 1u));
            if (count_from(li, src, cand) >= p.top_k) {
                c = cand;
            }
        }
        thr = c;
    }
    let kthr = thr;
    if (p.top_p < 1.0) {
        var zk = z_all;
        if (p.top_k > 0u && p.top_k < p.V) {
            zk = mass_from(li, src, thr);
        }
        let goal = max(p.top_p, 0.0) * zk;
        var c = 0u;
        for (var b = 31u; b > 0u; b--) {
            let cand = c | (1u << (b - 1u));
            if (mass_from(li, src, cand) >= goal) {
                c = cand;
            }
        }
        thr = max(thr, c);
    }
    return vec2<u32>(thr, kthr);
}

// The draw over the kept elements of `src`, thread by thread: the chosen element's index.
fn draw(li: u32, src: u32, thr: u32, z: f32) -> u32 {
    let n = n_of(src);
    var local = 0.0;
    var last = NONE;
    for (var j = li; j < n; j += WG) {
        let v = pv(src, j);
        if (kept(v, thr)) {
            local += v;
            last = j;
        }
    }
    red_f[li] = local;
    workgroupBarrier();
    if (li == 0u) {
        let u = f32(pcg(p.seed ^ pcg(p.step + 0x9e3779b9u)) >> 8u) / 16777216.0;
        let goal = u * z;
        var acc = 0.0;
        var owner = NONE;
        var lastnz = 0u;
        for (var t = 0u; t < WG; t++) {
            let s = red_f[t];
            if (s > 0.0) {
                lastnz = t;
                if (owner == NONE && acc + s > goal) {
                    owner = t;
                    pick_r = goal - acc;
                }
            }
            acc += s;
        }
        if (owner == NONE) { // rounding put the draw past the end: take the last kept element
            owner = lastnz;
            pick_r = 3.0e38;
        }
        pick = owner;
    }
    workgroupBarrier();
    if (pick == li) {
        var acc = 0.0;
        var chosen = last;
        for (var j = li; j < n; j += WG) {
            let v = pv(src, j);
            if (kept(v, thr)) {
                acc += v;
                if (acc > pick_r) {
                    chosen = j;
                    break;
                }
            }
        }
        red_u[0] = chosen;
    }
    workgroupBarrier();
    let r = red_u[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(WG)
fn sample_pick(@builtin(local_invocation_index) li: u32) {
    let o = p.row_off;
    let nl = (p.V + L - 1u) / L;
    let c0 = 4u * nl;                // candidates
    let p0 = (4u + 2u * M) * nl;     // their p
    let nc = nl * M;
    let greedy = p.greedy != 0u;
    let inv_t = select(1.0 / p.temperature, 1.0, greedy);

    // 1. The row's max and arg-max from the lanes'.
    var bv = -3.0e38;
    var bi = NONE;
    for (var l = li; l < nl; l += WG) {
        let v = bitcast<f32>(lanes[4u * l]);
        if (v > bv) {
            bv = v;
            bi = lanes[4u * l + 2u];
        }
    }
    let best = wg_best(li, bv, bi);
    let m = bitcast<f32>(best.x);
    let argmax = best.y;

    // 2. The total mass.
    var zs = 0.0;
    for (var l = li; l < nl; l += WG) {
        zs += bitcast<f32>(lanes[4u * l + 1u]) * exp((bitcast<f32>(lanes[4u * l]) - m) * inv_t);
    }
    let z_all = wg_sum(li, zs);

    // 3. The candidates' p, and B: the largest p of a full lane's last candidate (-1: no lane is full).
    var b_loc = -1.0;
    for (var j = li; j < nc; j += WG) {
        let id = lanes[c0 + 2u * j];
        var v = -1.0;
        if (id != NONE) {
            v = exp((bitcast<f32>(lanes[c0 + 2u * j + 1u]) - m) * inv_t);
        }
        lanes[p0 + j] = bitcast<u32>(v);
        if (j % M == M - 1u && lanes[4u * (j / M) + 3u] > M) {
            b_loc = max(b_loc, v);
        }
    }
    let bound = wg_max(li, b_loc);
    storageBarrier();

    // 4. The cut-off and the kept mass, from the candidates where they decide it.
    let k_on = p.top_k > 0u && p.top_k < p.V;
    let cut = !greedy && (k_on || p.top_p < 1.0);
    var src = CANDS;
    var thr = 0u;
    var z = z_all;
    if (cut) {
        let c = cut_off(li, CANDS, z_all);
        thr = c.x;
        if (li == 0u) {
            let bb = bitcast<u32>(bound);
            undecided = select(0u, 1u, bound >= 0.0 && !((!k_on || c.y > bb) && c.x > bb));
        }
    } else if (li == 0u) {
        // No cut: everything is kept, so the draw needs the whole row.
        undecided = select(1u, 0u, greedy);
    }
    if (workgroupUniformLoad(&undecided) != 0u) {
        // The fallback: p over the row (in place), then the same cut-off and draw over all of it.
        src = ROW;
        for (var i = li; i < p.V; i += WG) {
            logits[o + i] = exp((logits[o + i] - m) * inv_t);
        }
        storageBarrier();
        if (cut) {
            thr = cut_off(li, ROW, z_all).x;
        }
    }
    if (cut) {
        z = mass_from(li, src, thr);
    }

    // 5. The draw.
    var token = argmax;
    var p_tok = 1.0; // greedy: exp(0)
    if (!greedy) {
        let j = draw(li, src, thr, z);
        p_tok = pv(src, j);
        token = select(j, lanes[c0 + 2u * j], src == CANDS);
    }

    // 6. The alternatives: the candidates in (l' desc, id asc) order, kept ones with p / z.
    let b = p.out_row * OUT_WORDS;
    var prev_v = 3.0e38;
    var prev_i = 0u;
    let n_alt = min(p.n_alt, MAX_ALT);
    for (var r = 0u; r < n_alt; r++) {
        var cv = -3.0e38;
        var ci = NONE;
        var cj = 0u;
        for (var j = li; j < nc; j += WG) {
            let i = lanes[c0 + 2u * j];
            let v = bitcast<f32>(lanes[c0 + 2u * j + 1u]);
            let after = v < prev_v || (v == prev_v && i > prev_i);
            if (i != NONE && after && (v > cv || (v == cv && i < ci))) {
                cv = v;
                ci = i;
            }
        }
        let a = wg_best(li, cv, ci);
        prev_v = bitcast<f32>(a.x);
        prev_i = a.y;
        if (li == 0u) {
            let pa = select(exp((prev_v - m) * inv_t), 0.0, prev_i == NONE);
            out[b + 3u + 2u * r] = prev_i;
            out[b + 4u + 2u * r] = bitcast<u32>(select(0.0, pa / z, kept(pa, thr) && prev_i != NONE));
        }
    }

    // 7. The result, and the window moved on by the token this step was fed.
    if (li == 0u) {
        out[b] = token;
        out[b + 1u] = bitcast<u32>(p_tok / z);
        out[b + 2u] = n_alt;
        if (p.fed != NONE) {
            let slot = p.fed % p.window;
            if (p.fed >= p.window) {
                let gone = ring[slot];
                if (gone < p.V) {
                    counts[gone] -= 1u;
                }
            }
            let t = fed[0];
            ring[slot] = t;
            if (t < p.V) {
                counts[t] += 1u;
            }
        }
        fed[0] = token;
    }
}
