// common/sample_second.wgsl: what the sampler's three second passes share (sample_best.wgsl when greedy,
// sample_draw.wgsl when sampling without a cut-off, sample_pick.wgsl with one): reductions in the
// virtual-thread order of common/sample_params.wgsl, the row's max and mass from the lanes, the first
// level of a draw, the alternatives, and the out row with the window moved on.
// The three bind the same buffers (one bind group serves whichever the step dispatches), declared here.
// The including kernel declares `const WG: u32` (a power of two <= VT); it calls these from uniform
// control flow with li = local_invocation_index (except `draw_owner`, thread 0's alone). Each reduction
// ends with a barrier, so vs_f / vs_u may be refilled right after.
//
// Shapes: logits [*, V] f32 (row at element offset row_off, penalised), counts [V] u32, ring [P] u32,
// fed [4] u32, out [K, OUT_WORDS] u32 (this step writes row out_row).
// `lanes` [NL * (4 + 2 * M)] u32: sample_scan's per-lane results, where common/sample_params.wgsl's
// at_* say.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;  // [*, V]
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;  // [V]
@group(0) @binding(3) var<storage, read_write> ring: array<u32>;    // [P]
@group(0) @binding(4) var<storage, read_write> fed: array<u32>;     // [4]
@group(0) @binding(5) var<storage, read_write> out: array<u32>;     // [K, OUT_WORDS]
@group(0) @binding(6) var<storage, read_write> lanes: array<u32>;   // see sample_scan.wgsl

var<workgroup> vs_f: array<f32, VT>;
var<workgroup> vs_u: array<u32, VT>;
var<workgroup> alt_i: array<u32, MAX_ALT>;
var<workgroup> alt_v: array<f32, MAX_ALT>;

var<workgroup> pick: u32;          // the virtual thread that holds the draw
var<workgroup> pick_r: f32;        // the draw's remaining mass inside it
var<workgroup> chosen: u32;        // the element drawn

const R_SUM: u32 = 0u;   // f32 sum (vs_f)
const R_MAX: u32 = 1u;   // f32 max (vs_f)
const R_COUNT: u32 = 2u; // u32 sum (vs_u)
const R_BEST: u32 = 3u;  // (value, id) with the larger value, the lower id on ties (vs_f, vs_u)

// Reduce the VT values each thread has written for its virtual threads (li, li + WG, ...): a tree over
// VT, so a sum adds in the same order whatever WG is. Returns (value bits, id or count).
fn v_reduce(li: u32, op: u32) -> vec2<u32> {
    workgroupBarrier();
    for (var s = VT / 2u; s > 0u; s = s / 2u) {
        for (var t = li; t < s; t += WG) {
            let a = vs_f[t];
            let b = vs_f[t + s];
            let ai = vs_u[t];
            let bi = vs_u[t + s];
            if (op == R_SUM) {
                vs_f[t] = a + b;
            } else if (op == R_MAX) {
                vs_f[t] = max(a, b);
            } else if (op == R_COUNT) {
                vs_u[t] = ai + bi;
            } else if (b > a || (b == a && bi < ai)) {
                vs_f[t] = b;
                vs_u[t] = bi;
            }
        }
        workgroupBarrier();
    }
    // workgroupUniformLoad, not a plain read: the result steers loops and branches that hold barriers
    // (alternatives' `break`), and WGSL's uniformity analysis only counts a workgroup value as uniform
    // when it is read this way (Chromium's Tint refuses the shader otherwise; naga does not check).
    let r = vec2<u32>(bitcast<u32>(workgroupUniformLoad(&vs_f[0])), workgroupUniformLoad(&vs_u[0]));
    workgroupBarrier();
    return r;
}

// The row from the lanes: (m, Z, arg-max id, bl) with m the row's max, the arg-max its lowest id,
// Z = sum_l Z_l exp((m_l - m) inv_t) (lane l on virtual thread l % VT), and bl the largest l' of a
// lane's last candidate among lanes holding more than M ids (-3e38: none; every id is a candidate).
struct Head {
    m: f32,
    z: f32,
    argmax: u32,
    bl: f32,
}

fn head(li: u32, inv_t: f32) -> Head {
    let nl = lanes_of(p.V);
    for (var t = li; t < VT; t += WG) {
        var bv = -3.0e38;
        var bi = NONE;
        for (var l = t; l < nl; l += VT) {
            let v = bitcast<f32>(lanes[at_m(nl, l)]);
            let i = lanes[at_arg(nl, l)];
            if (v > bv || (v == bv && i < bi)) {
                bv = v;
                bi = i;
            }
        }
        vs_f[t] = bv;
        vs_u[t] = bi;
    }
    let best = v_reduce(li, R_BEST);
    var h: Head;
    h.m = bitcast<f32>(best.x);
    h.argmax = best.y;
    for (var t = li; t < VT; t += WG) {
        var s = 0.0;
        var b = -3.0e38;
        for (var l = t; l < nl; l += VT) {
            s += bitcast<f32>(lanes[at_z(nl, l)]) * exp((bitcast<f32>(lanes[at_m(nl, l)]) - h.m) * inv_t);
            if (lanes[at_n(nl, l)] > M) {
                b = max(b, bitcast<f32>(lanes[at_l(nl, M * l + M - 1u)]));
            }
        }
        vs_f[t] = s;
        vs_u[t] = bitcast<u32>(b);
    }
    h.z = bitcast<f32>(v_reduce(li, R_SUM).x);
    // The bound's max reuses vs_u's bits: write them back as values.
    for (var t = li; t < VT; t += WG) {
        vs_f[t] = bitcast<f32>(vs_u[t]);
    }
    // (No barrier needed before: each thread rewrites only its own virtual threads, and v_reduce
    // ended with one.)
    h.bl = bitcast<f32>(v_reduce(li, R_MAX).x);
    return h;
}

// The first n_alt ids in (l' descending, id ascending) order, each with p / z where kept (p's bits >=
// thr), else 0, written to out row `b`. From the candidates when they decide it (the last one's l' is
// above bl: every id above bl is a candidate), else from the whole row.
fn alternatives(li: u32, h: Head, inv_t: f32, z: f32, thr: u32, b: u32) {
    let nl = lanes_of(p.V);
    let n_alt = min(p.n_alt, MAX_ALT);
    var row = 0u;
    for (var attempt = 0u; attempt < 2u; attempt++) {
        let n = select(nl * M, p.V, row != 0u);
        var prev_v = 3.0e38;
        var prev_i = 0u;
        for (var r = 0u; r < n_alt; r++) {
            for (var t = li; t < VT; t += WG) {
                var cv = -3.0e38;
                var ci = NONE;
                for (var j = t; j < n; j += VT) {
                    var i = j;
                    var v = 0.0;
                    if (row != 0u) {
                        v = logits[p.row_off + j];
                    } else {
                        i = lanes[at_id(nl, j)];
                        v = bitcast<f32>(lanes[at_l(nl, j)]);
                    }
                    let after = v < prev_v || (v == prev_v && i > prev_i);
                    if (i != NONE && after && (v > cv || (v == cv && i < ci))) {
                        cv = v;
                        ci = i;
                    }
                }
                vs_f[t] = cv;
                vs_u[t] = ci;
            }
            let a = v_reduce(li, R_BEST);
            prev_v = bitcast<f32>(a.x);
            prev_i = a.y;
            if (li == 0u) {
                alt_i[r] = prev_i;
                alt_v[r] = prev_v;
            }
        }
        // Decided: no lane left ids out, or the last alternative is above every id left out.
        if (row != 0u || n_alt == 0u || h.bl == -3.0e38 || (prev_i != NONE && prev_v > h.bl)) {
            break;
        }
        row = 1u;
    }
    workgroupBarrier();
    if (li == 0u) {
        for (var r = 0u; r < n_alt; r++) {
            let i = alt_i[r];
            let pa = select(exp((alt_v[r] - h.m) * inv_t), 0.0, i == NONE);
            out[b + 3u + 2u * r] = i;
            out[b + 4u + 2u * r] = bitcast<u32>(select(0.0, pa / z, i != NONE && pa >= 0.0 && bitcast<u32>(pa) >= thr));
        }
    }
}

// Thread 0: the out row and the window moved on by the token this step was fed (p.fed: its stream
// index f; ring[f % P] leaves the window once f >= P; sample_scan applied the same move on the fly);
// the chosen token goes to fed[0], where the next step's embed reads it.
fn finish(li: u32, token: u32, prob: f32, b: u32) {
    if (li == 0u) {
        out[b] = token;
        out[b + 1u] = bitcast<u32>(prob);
        out[b + 2u] = min(p.n_alt, MAX_ALT);
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

// Which virtual thread holds the draw, for `draw_owner`: t, and the draw's remaining mass r inside it.
struct Owner {
    t: u32,
    r: f32,
}

// Thread 0 only, after every thread has written its virtual threads' masses to vs_f and a barrier: the
// draw u * z walked virtual thread by virtual thread (a valid order for inverse-CDF sampling, the same
// whatever WG is): the first virtual thread whose running mass passes it, and the remainder inside it.
// Where rounding puts the draw past the end, the last virtual thread with mass and r = 3e38 (its last
// element with mass).
fn draw_owner(z: f32) -> Owner {
    let goal = uniform01() * z;
    var acc = 0.0;
    var o = Owner(NONE, 3.0e38);
    var lastnz = 0u;
    for (var t = 0u; t < VT; t++) {
        let s = vs_f[t];
        if (s > 0.0) {
            lastnz = t;
            if (o.t == NONE && acc + s > goal) {
                o.t = t;
                o.r = goal - acc;
            }
        }
        acc += s;
    }
    if (o.t == NONE) {
        o.t = lastnz;
    }
    return o;
}

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

fn uniform01() -> f32 {
    return f32(pcg(p.seed ^ pcg(p.step + 0x9e3779b9u)) >> 8u) / 16777216.0;
}
