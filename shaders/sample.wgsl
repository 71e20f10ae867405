// sample: pick the next token from one row of logits, on the GPU, so a decode step reads back a few
// bytes (the token, its probability, the top alternatives) instead of V floats.
//
//   l_i   = logits[i]                         i < V
//   l_i   = l_i > 0 ? l_i / r : l_i * r        for i with counts[i] > 0 (repetition penalty r, as Hugging
//                                              Face/CTRL: once per distinct token of the window)
//   p_i   = exp((l_i - max l) / temp)          (temp = 1 when greedy; p_i in (0, 1], stored over logits)
//   keep  = the top_k largest p_i (top_k = 0: all), then the smallest top set whose mass >= top_p
//   token = greedy ? argmax l (lowest index on ties) : draw from p restricted to keep, u = rng(seed, step)
//   out   = [token, prob(token), n_alt, (id, prob) x n_alt of the most likely tokens]  (probs as f32 bits,
//           normalised over `keep`)
//
// Shapes: logits [*, V] f32 (row at element offset row_off, overwritten with p), counts [V] u32, ring [P] u32,
// fed [4] u32, out [K, 3 + 2 * 8] u32 (this step writes row out_row).
//
// Several decode steps run in one submit, so the sampler keeps on the GPU what the host used to supply:
// - fed[0]: the chosen token is written there at the end; the next step's embedding reads it (the
//   decode steps' embed ops bind `fed` as their ids), so the token never visits the host in between.
// - counts[i]: occurrences of id i among the last P tokens of the context (the repetition penalty's
//   window), and ring[j % P]: the window token with stream index j. The host fills both from the window
//   when it feeds tokens itself (a prompt, a re-encoded window; p.fed = NONE then). A step fed by the
//   previous step's token (p.fed = its stream index f) first counts it in and, once f >= P, counts out
//   the token it replaces in the ring (stream index f - P, which has just left the window): exact for
//   any number of steps per submit.
// Dispatch: exactly one workgroup of 256 threads. Thread li owns elements li, li + 256, ... in every
// phase, so most phases touch only their own elements. Thresholds are found without sorting: because
// p_i >= 0, the IEEE bits of p_i order like the values, so the k-th largest p and the top-p cut-off are
// found by a 31-step bitwise search for the largest threshold c with count(bits >= c) >= top_k (resp.
// sum(p : bits >= c) >= top_p * Z). Ties at the cut-off are all kept.
// Sampling walks the kept elements in a fixed order (thread by thread), which is a valid enumeration for
// inverse-CDF sampling and keeps the result deterministic for a seed.

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
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;  // [*, V]
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;  // [V] window occurrences per id
@group(0) @binding(3) var<storage, read_write> ring: array<u32>;    // [P] window tokens by stream index % P
@group(0) @binding(4) var<storage, read_write> fed: array<u32>;     // [4]: [0] the token the next step embeds
@group(0) @binding(5) var<storage, read_write> out: array<u32>;     // [K, OUT_WORDS]

const WG: u32 = 256u;
const MAX_ALT: u32 = 8u;
const OUT_WORDS: u32 = 3u + 2u * MAX_ALT;
const NONE: u32 = 0xffffffffu;

var<workgroup> pick: array<u32, 2>;   // [thread that holds the draw, unused]
var<workgroup> pick_r: f32;           // the draw's remaining mass inside that thread

fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}

// Mass of p over elements whose bits are >= c (this thread's share, then the workgroup's).
fn mass_from(li: u32, c: u32) -> f32 {
    var s = 0.0;
    for (var i = li; i < p.V; i += WG) {
        let v = logits[p.row_off + i];
        if (bitcast<u32>(v) >= c) {
            s += v;
        }
    }
    return wg_sum(li, s);
}

@compute @workgroup_size(WG)
fn sample(@builtin(local_invocation_index) li: u32) {
    let o = p.row_off;
    let greedy = p.greedy != 0u;

    // 0. The window moves on by the token this step was fed (see the header).
    if (li == 0u && p.fed != NONE) {
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
    storageBarrier();

    // 1. Repetition penalty (in place), once per id present in the window.
    if (p.rep_penalty != 1.0) {
        for (var i = li; i < p.V; i += WG) {
            if (counts[i] > 0u) {
                let l = logits[o + i];
                logits[o + i] = select(l * p.rep_penalty, l / p.rep_penalty, l > 0.0);
            }
        }
    }
    storageBarrier();

    // 2. Max and argmax.
    var bv = -3.0e38;
    var bi = 0xffffffffu;
    for (var i = li; i < p.V; i += WG) {
        let v = logits[o + i];
        if (v > bv) {
            bv = v;
            bi = i;
        }
    }
    let best = wg_best(li, bv, bi);
    let lmax = bitcast<f32>(best.x);
    let argmax = best.y;

    // 3. Unnormalised probabilities, overwriting this thread's logits.
    let inv_t = select(1.0 / p.temperature, 1.0, greedy);
    for (var i = li; i < p.V; i += WG) {
        logits[o + i] = exp((logits[o + i] - lmax) * inv_t);
    }
    storageBarrier();

    // 4. Top-k cut-off: the largest c with count(bits >= c) >= top_k.
    var thr = 0u;
    if (!greedy && p.top_k > 0u && p.top_k < p.V) {
        var c = 0u;
        for (var b = 31u; b > 0u; b--) {
            let cand = c | (1u << (b - 1u));
            var n = 0u;
            for (var i = li; i < p.V; i += WG) {
                n += select(0u, 1u, bitcast<u32>(logits[o + i]) >= cand);
            }
            if (wg_sum_u32(li, n) >= p.top_k) {
                c = cand;
            }
        }
        thr = c;
    }

    // 5. Top-p cut-off: the largest c with mass(bits >= c) >= top_p * Z, never below the top-k cut.
    if (!greedy && p.top_p < 1.0) {
        let goal = max(p.top_p, 0.0) * mass_from(li, thr);
        var c = 0u;
        for (var b = 31u; b > 0u; b--) {
            let cand = c | (1u << (b - 1u));
            if (mass_from(li, cand) >= goal) {
                c = cand;
            }
        }
        thr = max(thr, c);
    }
    let z = mass_from(li, thr);

    // 6. The draw.
    var token = argmax;
    if (!greedy) {
        var local = 0.0;
        var last = 0xffffffffu;
        for (var i = li; i < p.V; i += WG) {
            let v = logits[o + i];
            if (bitcast<u32>(v) >= thr) {
                local += v;
                last = i;
            }
        }
        red_f[li] = local;
        workgroupBarrier();
        if (li == 0u) {
            let u = f32(pcg(p.seed ^ pcg(p.step + 0x9e3779b9u)) >> 8u) / 16777216.0;
            let goal = u * z;
            var acc = 0.0;
            var owner = 0xffffffffu;
            var lastnz = 0u;
            for (var j = 0u; j < WG; j++) {
                let s = red_f[j];
                if (s > 0.0) {
                    lastnz = j;
                    if (owner == 0xffffffffu && acc + s > goal) {
                        owner = j;
                        pick_r = goal - acc;
                    }
                }
                acc += s;
            }
            if (owner == 0xffffffffu) { // rounding put the draw past the end: take the last kept token
                owner = lastnz;
                pick_r = 3.0e38;
            }
            pick[0] = owner;
        }
        workgroupBarrier();
        if (pick[0] == li) {
            var acc = 0.0;
            var chosen = last;
            for (var i = li; i < p.V; i += WG) {
                let v = logits[o + i];
                if (bitcast<u32>(v) >= thr) {
                    acc += v;
                    if (acc > pick_r) {
                        chosen = i;
                        break;
                    }
                }
            }
            red_u[0] = chosen;
        }
        workgroupBarrier();
        token = red_u[0];
        workgroupBarrier();
    }

    // 7. The top alternatives, in order of probability (ties: lower id first).
    let b = p.out_row * OUT_WORDS;
    var prev_v = 3.0e38;
    var prev_i = 0u;
    var n_alt = min(p.n_alt, MAX_ALT);
    for (var r = 0u; r < n_alt; r++) {
        var cv = -3.0e38;
        var ci = 0xffffffffu;
        for (var i = li; i < p.V; i += WG) {
            let v = logits[o + i];
            let after = v < prev_v || (v == prev_v && i > prev_i);
            if (after && (v > cv || (v == cv && i < ci))) {
                cv = v;
                ci = i;
            }
        }
        let a = wg_best(li, cv, ci);
        prev_v = bitcast<f32>(a.x);
        prev_i = a.y;
        if (li == 0u) {
            let kept = a.x >= thr;
            out[b + 3u + 2u * r] = a.y;
            out[b + 4u + 2u * r] = bitcast<u32>(select(0.0, prev_v / z, kept));
        }
    }

    if (li == 0u) {
        out[b] = token;
        out[b + 1u] = bitcast<u32>(logits[o + token] / z);
        out[b + 2u] = n_alt;
        fed[0] = token; // what the next step embeds (only this thread read fed[0], in phase 0)
    }
}
