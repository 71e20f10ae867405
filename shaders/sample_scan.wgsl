// sample_scan: the sampler's first pass (the second is sample_pick.wgsl). Many threads, no barriers:
// the vocabulary is cut into lanes of L = 128 consecutive ids (NL = ceil(V / L) lanes), and one thread
// scans a whole lane, so what it writes depends only on the lane, never on how many workgroups ran.
//
// For each lane it
//   - applies the repetition penalty in place (l > 0 ? l / r : l * r for ids in the window), so the row
//     holds the penalised logits l' afterwards (only this thread touches the lane);
//   - finds the lane's max m_l (first id on ties) and its mass relative to it,
//     Z_l = sum_i exp((l'_i - m_l) / temp), summed in id order (temp = 1 when greedy);
//   - keeps the lane's M = 16 best (l', id) pairs in the order (l' descending, id ascending): the
//     candidates sample_pick decides top-k / top-p from.
// Writes, in `lanes` (words): stats [NL, 4] = (m_l bits, Z_l bits, arg-max id, elements in the lane),
// then candidates [NL, M, 2] = (id, l' bits), id = NONE past the lane's end.
//
// The penalty window moves on in sample_pick (which alone writes counts and ring): a step fed the
// previous step's token (p.fed = its stream index f) counts that token in and, once f >= P, counts out
// ring[f % P] here on the fly, exactly as the update sample_pick makes after the draw.
//
// Shapes: logits [*, V] f32 (row at element offset row_off), counts [V] u32, ring [P] u32, fed [4] u32,
// lanes [NL * (4 + 2 * M) + NL * M] u32 (the last part is sample_pick's scratch).
// Dispatch: Grid (groups, 1) of 64 threads; thread g scans lanes g, g + 64 * groups, ...

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
    out_row: u32,
    fed: u32,
    window: u32,
    groups: u32,    // workgroups of this pass
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;  // [*, V], penalised in place
@group(0) @binding(2) var<storage, read> counts: array<u32>;        // [V] window occurrences per id
@group(0) @binding(3) var<storage, read> ring: array<u32>;          // [P] window tokens by stream index % P
@group(0) @binding(4) var<storage, read> fed: array<u32>;           // [4]: [0] the token this step was fed
@group(0) @binding(5) var<storage, read_write> lanes: array<u32>;   // see the header

const WG: u32 = 64u;
const L: u32 = 128u;
const M: u32 = 16u;
const NONE: u32 = 0xffffffffu;

@compute @workgroup_size(WG)
fn sample_scan(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let nl = (p.V + L - 1u) / L;
    let o = p.row_off;
    let inv_t = select(1.0 / p.temperature, 1.0, p.greedy != 0u);
    // The window's pending move (see the header): +1 for the fed token, -1 for the one leaving.
    var t_in = NONE;
    var t_out = NONE;
    if (p.fed != NONE) {
        t_in = fed[0];
        if (p.fed >= p.window) {
            t_out = ring[p.fed % p.window];
        }
    }
    let penalise = p.rep_penalty != 1.0;

    for (var ln = wg.x * WG + li; ln < nl; ln += p.groups * WG) {
        let lo = ln * L;
        let hi = min(lo + L, p.V);

        // Penalty in place, then the lane's max and arg-max.
        var m = -3.0e38;
        var am = NONE;
        for (var i = lo; i < hi; i++) {
            var l = logits[o + i];
            if (penalise) {
                let n = counts[i] + select(0u, 1u, i == t_in);
                if (n > select(0u, 1u, i == t_out)) {
                    l = select(l * p.rep_penalty, l / p.rep_penalty, l > 0.0);
                    logits[o + i] = l;
                }
            }
            if (l > m) {
                m = l;
                am = i;
            }
        }

        // The lane's mass relative to its max, and its M best in (l' desc, id asc) order: a strict >
        // keeps the earlier (lower) id ahead on ties.
        var z = 0.0;
        var cv: array<f32, M>;
        var ci: array<u32, M>;
        var n = 0u;
        for (var i = lo; i < hi; i++) {
            let l = logits[o + i];
            z += exp((l - m) * inv_t);
            var at = n;
            if (n < M) {
                n++;
            } else if (l > cv[M - 1u]) {
                at = M - 1u;
            } else {
                continue;
            }
            while (at > 0u && l > cv[at - 1u]) {
                cv[at] = cv[at - 1u];
                ci[at] = ci[at - 1u];
                at--;
            }
            cv[at] = l;
            ci[at] = i;
        }

        lanes[4u * ln] = bitcast<u32>(m);
        lanes[4u * ln + 1u] = bitcast<u32>(z);
        lanes[4u * ln + 2u] = am;
        lanes[4u * ln + 3u] = hi - lo;
        let c0 = 4u * nl + 2u * M * ln;
        for (var r = 0u; r < M; r++) {
            lanes[c0 + 2u * r] = select(NONE, ci[r], r < n);
            lanes[c0 + 2u * r + 1u] = bitcast<u32>(cv[r]);
        }
    }
}
