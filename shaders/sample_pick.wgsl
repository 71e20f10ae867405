// sample_pick: the sampler's second pass when sampling with top-k or top-p (sample_best.wgsl when
// greedy, sample_draw.wgsl with neither), one workgroup.
// sample_scan.wgsl has penalised the row in place and left, per lane of L strided ids, its max m_l,
// its relative mass Z_l and its M best candidates. This pass draws the token from those, walking the
// whole vocabulary only where the candidates cannot decide a cut-off.
//
//   m     = max_l m_l; p_i = exp((l'_i - m) / temp)
//   Z     = sum_l Z_l * exp((m_l - m) / temp)          (the total mass; common/sample_second.wgsl)
//   keep  = the top_k largest p_i (top_k = 0: all), then the smallest top set whose mass >= top_p * (the
//           top-k set's mass, or Z without top-k); ties at a cut-off are all kept
//   token = a draw from p over `keep`, u = rng(seed, step)
//   out   = [token, prob(token), n_alt, (id, prob) x n_alt of the most likely tokens]  (probs as f32
//           bits, p / z with z the kept mass; 0 for a token outside `keep`)
//
// Cut-offs are found without sorting: p_i >= 0, so the IEEE bits of p order like the values, and the
// cut-off is the largest c with count(bits >= c) >= top_k (resp. mass(bits >= c) >= goal), by a 31-step
// bitwise search. The search first runs over the candidates only (NL * M of them, not V). That is
// exact when the result is above B, the largest p of the last candidate of a lane that has more than M
// ids: every id with p > B is a candidate, so counts and masses above B are the whole row's. Otherwise
// (top-k past the candidates, top-p over a flat distribution) the fallback runs the same searches and
// the draw over all V ids.
// The draw walks the kept elements in a fixed order: virtual thread by virtual thread (virtual thread
// t owns elements t, t + VT, ... of the candidates or of the row; common/sample_second.wgsl's
// draw_owner), a valid order for inverse-CDF sampling, the same whatever the workgroup size.
//
// Shapes and bindings: common/sample_second.wgsl (logits holds l', read only here; the candidates' p go
// to the scratch of `lanes`).

const WG: u32 = 64u;
// Where the searches look: the candidates' p (scratch in `lanes`), or p over the whole row.
const CANDS: u32 = 1u;
const ROW: u32 = 0u;

var<private> row_m: f32;           // m and 1 / temp, for p over the row
var<private> row_inv_t: f32;

fn n_of(src: u32) -> u32 {
    return select(p.V, lanes_of(p.V) * M, src == CANDS);
}

// Element j's p, or -1 for an empty candidate slot (never kept, never counted). The row's p is computed
// where it is read (the row keeps l' for the alternatives).
fn pv(src: u32, j: u32) -> f32 {
    if (src == CANDS) {
        return bitcast<f32>(lanes[(4u + 2u * M) * lanes_of(p.V) + j]);
    }
    return exp((logits[p.row_off + j] - row_m) * row_inv_t);
}

fn kept(v: f32, c: u32) -> bool {
    return v >= 0.0 && bitcast<u32>(v) >= c;
}

// Mass (R_SUM) or count (R_COUNT) of the elements of `src` whose bits are >= c.
fn above(li: u32, src: u32, c: u32, op: u32) -> vec2<u32> {
    let n = n_of(src);
    for (var t = li; t < VT; t += WG) {
        var s = 0.0;
        var k = 0u;
        for (var j = t; j < n; j += VT) {
            let v = pv(src, j);
            if (kept(v, c)) {
                s += v;
                k++;
            }
        }
        vs_f[t] = s;
        vs_u[t] = k;
    }
    return v_reduce(li, op);
}

// The cut-off over `src`; (threshold bits, top-k threshold bits). Both searches run in one loop of up
// to 62 steps, so the kernel holds one search and one reduction.
fn cut_off(li: u32, src: u32, z_all: f32) -> vec2<u32> {
    let k_on = p.top_k > 0u && p.top_k < p.V;
    let p_on = p.top_p < 1.0;
    var kthr = 0u;
    var c = 0u;
    var goal = 0.0;
    for (var s = select(31u, 0u, k_on); s < 62u; s++) {
        if (s == 31u) {
            // Top-k is decided: top-p searches within its set (or the row).
            kthr = c;
            if (!p_on) {
                break;
            }
            var zk = z_all;
            if (k_on) {
                zk = bitcast<f32>(above(li, src, kthr, R_SUM).x);
            }
            goal = max(p.top_p, 0.0) * zk;
            c = 0u;
        }
        let bit = 1u << (30u - s % 31u);
        let cand = c | bit;
        let r = above(li, src, cand, select(R_SUM, R_COUNT, s < 31u));
        let ok = select(bitcast<f32>(r.x) >= goal, r.y >= p.top_k, s < 31u);
        if (ok) {
            c = cand;
        }
    }
    return vec2<u32>(max(kthr, c), kthr);
}

// The draw over the kept elements of `src`, virtual thread by virtual thread: the chosen element's index.
fn draw(li: u32, src: u32, thr: u32, z: f32) -> u32 {
    let n = n_of(src);
    for (var t = li; t < VT; t += WG) {
        var local = 0.0;
        for (var j = t; j < n; j += VT) {
            let v = pv(src, j);
            if (kept(v, thr)) {
                local += v;
            }
        }
        vs_f[t] = local;
    }
    workgroupBarrier();
    if (li == 0u) {
        let o = draw_owner(z);
        pick = o.t;
        pick_r = o.r;
    }
    workgroupBarrier();
    let owner = pick;
    if (owner % WG == li) {
        var acc = 0.0;
        var last = NONE;
        var got = NONE;
        for (var j = owner; j < n; j += VT) {
            let v = pv(src, j);
            if (kept(v, thr)) {
                acc += v;
                last = j;
                if (acc > pick_r) {
                    got = j;
                    break;
                }
            }
        }
        chosen = select(got, last, got == NONE);
    }
    workgroupBarrier();
    return chosen;
}

@compute @workgroup_size(WG)
fn sample_pick(@builtin(local_invocation_index) li: u32) {
    let nl = lanes_of(p.V);
    let c0 = 4u * nl;                // candidates
    let p0 = (4u + 2u * M) * nl;     // their p
    let nc = nl * M;
    let inv_t = 1.0 / p.temperature;
    let h = head(li, inv_t);
    row_m = h.m;
    row_inv_t = inv_t;
    let k_on = p.top_k > 0u && p.top_k < p.V;

    var thr = 0u;
    // The candidates' p, and B: the largest p of a full lane's last candidate (-1: no lane is full).
    for (var t = li; t < VT; t += WG) {
        var b = -1.0;
        for (var j = t; j < nc; j += VT) {
            let id = lanes[c0 + 2u * j];
            var v = -1.0;
            if (id != NONE) {
                v = exp((bitcast<f32>(lanes[c0 + 2u * j + 1u]) - h.m) * inv_t);
            }
            lanes[p0 + j] = bitcast<u32>(v);
            if (j % M == M - 1u && lanes[4u * (j / M) + 3u] > M) {
                b = max(b, v);
            }
        }
        vs_f[t] = b;
    }
    let bound = bitcast<f32>(v_reduce(li, R_MAX).x);
    storageBarrier();

    // The cut-off from the candidates where they decide it, else from the row.
    var src = CANDS;
    for (var attempt = 0u; attempt < 2u; attempt++) {
        let c = cut_off(li, src, h.z);
        thr = c.x;
        let bb = bitcast<u32>(bound);
        if (src == ROW || bound < 0.0 || ((!k_on || c.y > bb) && c.x > bb)) {
            break;
        }
        src = ROW;
    }
    let z = bitcast<f32>(above(li, src, thr, R_SUM).x);
    let j = draw(li, src, thr, z);
    let p_tok = pv(src, j);
    let token = select(j, lanes[c0 + 2u * j], src == CANDS);

    let b = p.out_row * OUT_WORDS;
    alternatives(li, h, inv_t, z, thr, b);
    finish(li, token, p_tok / z, b);
}
