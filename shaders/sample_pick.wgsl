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
// cut-off is the largest c < 2^31 with count(bits >= c) >= top_k (resp. mass(bits >= c) >= goal).
// Count and mass (a sum of values >= 0 in a fixed order, and rounding is monotone) only fall as c
// rises, so the bits of c can be settled four at a time: one pass over the elements tests the 15
// values the next four bits can take and keeps the largest that passes, exactly what four steps of a
// bitwise search would keep (8 passes for 31 bits, instead of 31 passes of one test each). A top-p
// cut-off is never below the top-k one (its goal is at most the top-k set's mass).
// Each virtual thread keeps its own count or mass at the search's current bounds; once the two are
// equal it has the same value at every threshold left between them (its sum only falls as c rises),
// so it stops walking its elements. After a few passes only the virtual threads holding elements near
// the cut-off still walk. The top-p search's last pass leaves the masses at the cut-off, the draw's.
// The search first runs over the candidates only (NL * M of them, not V). That is exact when the result
// is above B, the largest p of the last candidate of a lane that has more than M ids: every id with
// p > B is a candidate, so counts and masses above B are the whole row's. Otherwise (top-k past the
// candidates, top-p over a flat distribution) the search and the draw run over all V ids.
// The draw walks the kept elements in a fixed order: virtual thread by virtual thread (virtual thread
// t owns elements t, t + VT, ... of the candidates or of the row; common/sample_second.wgsl's
// draw_owner), a valid order for inverse-CDF sampling, the same whatever the workgroup size.
//
// CPU adapters (lavapipe, measured): p is recomputed from l' wherever it is read, never stored: a load
// from a buffer this dispatch also writes costs several times one from a buffer it only reads. An empty
// candidate slot is known from the lane's length, not from its id: one load per element, not two.
//
// Shapes and bindings: common/sample_second.wgsl (logits holds l' and `lanes` the candidates, both
// read only here).

const WG: u32 = 64u;
// Thread li owns virtual threads li, li + WG, li + 2 WG, li + 3 WG, so the sums' tree (t += t + s for
// s = 128, 64, ..., 1) takes its first two levels inside each thread, with no barrier.
const_assert VT == 4u * WG;
// Thresholds one pass of a search tests (the next four bits of the cut-off: 1 .. 15; slot 0 is the
// lower bound itself).
const PROBES: u32 = 15u;

// One pass's per-thread partial results [16, WG] (f32 bits or counts), each column then reduced by
// one thread.
var<workgroup> red: array<u32, 1024>;
// Whether the candidates could not decide the cut-off (the row decides it).
var<workgroup> on_row: u32;

// m and 1 / temp, for p.
var<private> row_m: f32;
var<private> row_inv_t: f32;

// The elements a search runs over: the candidates (NL * M) or the row (V).
struct Src {
    row: bool,
    n: u32,
}

// Element j's p, or -1 for an empty candidate slot (never kept, never counted): slots past the lane's
// length (lane ln holds V / NL ids, one more for ln < V % NL).
fn pv(s: Src, j: u32) -> f32 {
    if (s.row) {
        return exp((logits[p.row_off + j] - row_m) * row_inv_t);
    }
    let nl = lanes_of(p.V);
    let filled = p.V / nl + select(0u, 1u, j / M < p.V % nl);
    return select(-1.0, exp((bitcast<f32>(lanes[at_l(nl, j)]) - row_m) * row_inv_t), j % M < filled);
}

fn kept(v: f32, c: u32) -> bool {
    return v >= 0.0 && bitcast<u32>(v) >= c;
}

// Column q of `red` reduced by one thread: the tree's levels s = 32, ..., 1 (f32 bits summed in the
// tree's order).
fn column(q: u32) {
    let b = q * WG;
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        for (var t = 0u; t < s; t++) {
            red[b + t] = bitcast<u32>(bitcast<f32>(red[b + t]) + bitcast<f32>(red[b + t + s]));
        }
    }
}

// Sixteen masses or counts, one per threshold.
struct Sums {
    a: vec4<f32>,
    b: vec4<f32>,
    c: vec4<f32>,
    d: vec4<f32>,
}

// Sixteen u32: thresholds, or Sums as bits.
struct Words {
    a: vec4<u32>,
    b: vec4<u32>,
    c: vec4<u32>,
    d: vec4<u32>,
}

// Whether an element is at or above each of the thresholds th (`kept`, four at once).
fn kept4(v: f32, th: vec4<u32>) -> vec4<bool> {
    return vec4<bool>(v >= 0.0) & (vec4<u32>(bitcast<u32>(v)) >= th);
}

// Virtual thread t's masses (or counts: sums of 1, exact below 2^24 > V) at the thresholds th, in increasing j (an element below a threshold adds
// +0, which leaves a sum of values >= 0 as it is); where the virtual thread is settled (its mass at the
// search's lower bound equals that at its upper bound, so it is the same at every threshold between)
// that mass, without a walk.
fn vt_sums(s: Src, t: u32, th: Words, lo: u32, hi: u32, counting: bool) -> Sums {
    let k = vec4<f32>(bitcast<f32>(lo));
    var r = Sums(k, k, k, k);
    if (lo != hi) {
        r = Sums(vec4<f32>(), vec4<f32>(), vec4<f32>(), vec4<f32>());
        for (var j = t; j < s.n; j += VT) {
            let v = pv(s, j);
            let w = vec4<f32>(select(v, 1.0, counting));
            r.a += select(vec4<f32>(), w, kept4(v, th.a));
            r.b += select(vec4<f32>(), w, kept4(v, th.b));
            r.c += select(vec4<f32>(), w, kept4(v, th.c));
            r.d += select(vec4<f32>(), w, kept4(v, th.d));
        }
    }
    return r;
}

// Slot q of sixteen values.
fn slot(a: Words, q: u32) -> u32 {
    let v = select(select(a.a, a.b, q >= 4u), select(a.c, a.d, q >= 12u), q >= 8u);
    return v[q & 3u];
}

fn sums_bits(a: Sums) -> Words {
    return Words(bitcast<vec4<u32>>(a.a), bitcast<vec4<u32>>(a.b), bitcast<vec4<u32>>(a.c), bitcast<vec4<u32>>(a.d));
}

// Thread li's values for thresholds 4q .. 4q + 3 into their columns.
fn put(q: u32, li: u32, v: vec4<u32>) {
    red[(4u * q) * WG + li] = v.x;
    red[(4u * q + 1u) * WG + li] = v.y;
    red[(4u * q + 2u) * WG + li] = v.z;
    red[(4u * q + 3u) * WG + li] = v.w;
}

// This thread's virtual threads' masses or counts (bits) at the search's lower bound c and its upper
// bound (component q: virtual thread li + q WG); lo = NONE before the first pass.
var<private> lo4: vec4<u32>;
var<private> hi4: vec4<u32>;

// Virtual thread li + q WG's bounds after a pass that kept x of its values a (slot x = threshold
// c | x << sh, slot 0 = c): the new lower bound's value and, unless x is the last slot (the old upper
// bound stays), the next slot's.
fn settle(q: u32, a: Words, x: u32, xmax: u32) {
    lo4[q] = slot(a, x);
    if (x < xmax) {
        hi4[q] = slot(a, x + 1u);
    }
}

// One pass of a search: with the bits above `sh` settled in c, the largest x < 16 (< 8 for the last
// three bits) for which c | x << sh passes (count >= top_k, or mass >= goal); returns c | x << sh.
// Slot 0 tests c itself, for the bounds.
fn probe(li: u32, s: Src, c: u32, sh: u32, counting: bool, goal: f32) -> u32 {
    let x = vec4<u32>(0u, 1u, 2u, 3u);
    let shv = vec4<u32>(sh);
    let cv = vec4<u32>(c);
    let th = Words(cv | (x << shv), cv | ((x + 4u) << shv), cv | ((x + 8u) << shv), cv | ((x + 12u) << shv));
    // The tree's first two levels: (t + (t + 128)) + ((t + 64) + (t + 192)).
    let f0 = vt_sums(s, li, th, lo4.x, hi4.x, counting);
    let f1 = vt_sums(s, li + WG, th, lo4.y, hi4.y, counting);
    let f2 = vt_sums(s, li + 2u * WG, th, lo4.z, hi4.z, counting);
    let f3 = vt_sums(s, li + 3u * WG, th, lo4.w, hi4.w, counting);
    put(0u, li, bitcast<vec4<u32>>((f0.a + f2.a) + (f1.a + f3.a)));
    put(1u, li, bitcast<vec4<u32>>((f0.b + f2.b) + (f1.b + f3.b)));
    put(2u, li, bitcast<vec4<u32>>((f0.c + f2.c) + (f1.c + f3.c)));
    put(3u, li, bitcast<vec4<u32>>((f0.d + f2.d) + (f1.d + f3.d)));
    workgroupBarrier();
    if (li >= 1u && li <= PROBES) {
        column(li);
    }
    workgroupBarrier();
    let xmax = select(PROBES, 7u, sh == 0u);
    var n = 0u;
    for (var q = 1u; q <= xmax; q++) {
        let r = red[q * WG];
        n += select(0u, 1u, bitcast<f32>(r) >= select(goal, f32(p.top_k), counting));
    }
    workgroupBarrier();
    settle(0u, sums_bits(f0), n, xmax);
    settle(1u, sums_bits(f1), n, xmax);
    settle(2u, sums_bits(f2), n, xmax);
    settle(3u, sums_bits(f3), n, xmax);
    return c | (n << sh);
}

// The largest c < 2^31 that passes: bits 30 .. 3 four per pass, then bits 2 .. 0. Leaves lo4 = this
// thread's virtual threads' masses (or counts) at c.
fn search(li: u32, s: Src, counting: bool, goal: f32) -> u32 {
    lo4 = vec4<u32>(NONE);
    hi4 = vec4<u32>(0u);
    var c = 0u;
    for (var i = 0u; i < 8u; i++) {
        c = probe(li, s, c, select(27u - 4u * i, 0u, i == 7u), counting, goal);
    }
    return c;
}

fn vt_mass(s: Src, t: u32, c: u32) -> f32 {
    var m = 0.0;
    for (var j = t; j < s.n; j += VT) {
        let v = pv(s, j);
        if (kept(v, c)) {
            m += v;
        }
    }
    return m;
}

// The mass of the elements of s whose bits are >= c, in the sums' order (common/sample_params.wgsl);
// leaves each virtual thread's share in vs_f, which the draw walks. `known`: c is the cut-off the last
// mass search over s found, whose lo4 holds those shares already.
fn mass_at(li: u32, s: Src, c: u32, known: bool) -> f32 {
    var m = bitcast<vec4<f32>>(lo4);
    if (!known) {
        m = vec4<f32>(vt_mass(s, li, c), vt_mass(s, li + WG, c), vt_mass(s, li + 2u * WG, c), vt_mass(s, li + 3u * WG, c));
    }
    vs_f[li] = m.x;
    vs_f[li + WG] = m.y;
    vs_f[li + 2u * WG] = m.z;
    vs_f[li + 3u * WG] = m.w;
    red[li] = bitcast<u32>((m.x + m.z) + (m.y + m.w));
    workgroupBarrier();
    if (li == 0u) {
        column(0u);
    }
    workgroupBarrier();
    let r = bitcast<f32>(red[0]);
    workgroupBarrier();
    return r;
}

// The cut-off over s; (threshold bits, top-k threshold bits).
fn cut_off(li: u32, s: Src, z_all: f32) -> vec2<u32> {
    let k_on = p.top_k > 0u && p.top_k < p.V;
    let p_on = p.top_p < 1.0;
    var kthr = 0u;
    var c = 0u;
    var goal = 0.0;
    // Phase 0: top-k (counts); phase 1: top-p (masses) within the top-k set (or the row). One call
    // site, so the kernel holds one search.
    for (var phase = select(1u, 0u, k_on); phase < select(1u, 2u, p_on); phase++) {
        if (phase == 1u) {
            kthr = c;
            var zk = z_all;
            if (k_on) {
                zk = mass_at(li, s, kthr, false);
            }
            goal = max(p.top_p, 0.0) * zk;
        }
        c = search(li, s, phase == 0u, goal);
    }
    if (!p_on) {
        kthr = c;
    }
    return vec2<u32>(max(kthr, c), kthr);
}

// The draw over the elements of s kept by thr: the kept mass z, the chosen element's index j (NONE if
// nothing is kept) and its p.
struct Drawn {
    z: f32,
    j: u32,
    pj: f32,
}

fn draw(li: u32, s: Src, thr: u32) -> Drawn {
    // With top-p, thr is the top-p search's cut-off (never below the top-k one).
    let z = mass_at(li, s, thr, p.top_p < 1.0);
    // vs_f holds each virtual thread's kept mass (mass_at's barriers made it visible).
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
        for (var j = owner; j < s.n; j += VT) {
            let v = pv(s, j);
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
    let j = chosen;
    return Drawn(z, j, pv(s, j));
}

@compute @workgroup_size(WG)
fn sample_pick(@builtin(local_invocation_index) li: u32) {
    let nl = lanes_of(p.V);
    let nc = nl * M;
    let cands = Src(false, nc);
    let row = Src(true, p.V);
    let inv_t = 1.0 / p.temperature;
    let h = head(li, inv_t);
    row_m = h.m;
    row_inv_t = inv_t;
    let k_on = p.top_k > 0u && p.top_k < p.V;

    // B: the largest p of a full lane's last candidate (-1: no lane is full). Lane ln is full when it
    // holds more than M ids (V / NL of them, one more for ln < V % NL).
    for (var t = li; t < VT; t += WG) {
        var b = -1.0;
        for (var ln = t; ln < nl; ln += VT) {
            if (p.V / nl + select(0u, 1u, ln < p.V % nl) > M) {
                b = max(b, pv(cands, M * ln + M - 1u));
            }
        }
        vs_f[t] = b;
    }
    let bound = bitcast<f32>(v_reduce(li, R_MAX).x);

    // The cut-off from the candidates where they decide it, else from the row.
    var c = cut_off(li, cands, h.z);
    let bb = bitcast<u32>(bound);
    if (li == 0u) {
        on_row = select(1u, 0u, bound < 0.0 || ((!k_on || c.y > bb) && c.x > bb));
    }
    var d: Drawn;
    var token: u32;
    if (workgroupUniformLoad(&on_row) != 0u) {
        c = cut_off(li, row, h.z);
        d = draw(li, row, c.x);
        token = d.j;
    } else {
        d = draw(li, cands, c.x);
        token = lanes[at_id(nl, d.j)];
    }

    let b = p.out_row * OUT_WORDS;
    alternatives(li, h, inv_t, d.z, c.x, b);
    finish(li, token, d.pj / d.z, b);
}
