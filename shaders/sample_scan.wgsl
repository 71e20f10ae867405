// sample_scan: the sampler's first pass (the second is sample_best.wgsl when greedy, else
// sample_pick.wgsl). Many threads, no barriers: one thread scans a whole lane of L strided ids
// (common/sample_params.wgsl), so what it writes depends only on the lane, never on how many
// workgroups ran.
//
// For each lane it
//   - applies the repetition penalty in place (l > 0 ? l / r : l * r for ids in the window), so the row
//     holds the penalised logits l' afterwards (only this thread touches the lane's ids);
//   - finds the lane's max m_l (lowest id on ties) and its mass relative to it,
//     Z_l = sum_i exp((l'_i - m_l) / temp), summed in id order (temp = 1 when greedy);
//   - keeps the lane's M best (l', id) pairs in the order (l' descending, id ascending): the
//     candidates the second pass decides top-k / top-p / the alternatives from. They live in M named
//     registers, never an indexed array (a CPU adapter spills those to memory), and a new id bubbles
//     down through them with selects.
// Writes, in `lanes` (where: common/sample_params.wgsl's at_*), per lane: m_l, Z_l, its arg-max id, its
// number of ids, and its candidates' ids and l' (id = NONE past the lane's end).
//
// The penalty window moves on in the second pass (which alone writes counts and ring): a step fed the
// previous step's token (p.fed = its stream index f) counts that token in and, once f >= P, counts out
// ring[f % P] here on the fly, exactly as the update the second pass makes after the draw.
//
// Shapes: logits [*, V] f32 (row at element offset row_off), counts [V] u32, ring [P] u32, fed [4] u32,
// lanes [NL * (4 + 2 * M)] u32.
// Dispatch: Grid (groups, 1) of 64 threads; thread g scans lanes g, g + 64 * groups, ...

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;  // [*, V], penalised in place
@group(0) @binding(2) var<storage, read> counts: array<u32>;        // [V] window occurrences per id
@group(0) @binding(3) var<storage, read> ring: array<u32>;          // [P] window tokens by stream index % P
@group(0) @binding(4) var<storage, read> fed: array<u32>;           // [4]: [0] the token this step was fed
@group(0) @binding(5) var<storage, read_write> lanes: array<u32>;   // see the header

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn sample_scan(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let nl = lanes_of(p.V);
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
        // Penalty in place, then the lane's max and arg-max (ids rise along the lane: a strict >
        // keeps the lowest id on ties).
        var m = -3.0e38;
        var am = NONE;
        var n = 0u;
        for (var i = ln; i < p.V; i += nl) {
            var l = logits[o + i];
            if (penalise) {
                let c = counts[i] + select(0u, 1u, i == t_in);
                if (c > select(0u, 1u, i == t_out)) {
                    l = select(l * p.rep_penalty, l / p.rep_penalty, l > 0.0);
                    logits[o + i] = l;
                }
            }
            if (l > m) {
                m = l;
                am = i;
            }
            n++;
        }

        // The lane's mass relative to its max, and its M best in (l' desc, id asc) order: a new id
        // goes below every candidate it does not beat strictly, so the lower id stays ahead on ties.
        var z = 0.0;
        var c0 = -3.0e38;
        var c1 = -3.0e38;
        var c2 = -3.0e38;
        var c3 = -3.0e38;
        var i0 = NONE;
        var i1 = NONE;
        var i2 = NONE;
        var i3 = NONE;
        for (var i = ln; i < p.V; i += nl) {
            var x = logits[o + i];
            z += exp((x - m) * inv_t);
            if (i3 == NONE || x > c3) {
                var xi = i;
                var t = i0 == NONE || x > c0;
                var tv = c0;
                var ti = i0;
                c0 = select(c0, x, t);
                i0 = select(i0, xi, t);
                x = select(x, tv, t);
                xi = select(xi, ti, t);
                t = i1 == NONE || x > c1;
                tv = c1;
                ti = i1;
                c1 = select(c1, x, t);
                i1 = select(i1, xi, t);
                x = select(x, tv, t);
                xi = select(xi, ti, t);
                t = i2 == NONE || x > c2;
                tv = c2;
                ti = i2;
                c2 = select(c2, x, t);
                i2 = select(i2, xi, t);
                x = select(x, tv, t);
                xi = select(xi, ti, t);
                t = i3 == NONE || x > c3;
                c3 = select(c3, x, t);
                i3 = select(i3, xi, t);
            }
        }

        lanes[at_m(nl, ln)] = bitcast<u32>(m);
        lanes[at_z(nl, ln)] = bitcast<u32>(z);
        lanes[at_arg(nl, ln)] = am;
        lanes[at_n(nl, ln)] = n;
        let j = M * ln;
        lanes[at_id(nl, j)] = i0;
        lanes[at_id(nl, j + 1u)] = i1;
        lanes[at_id(nl, j + 2u)] = i2;
        lanes[at_id(nl, j + 3u)] = i3;
        lanes[at_l(nl, j)] = bitcast<u32>(c0);
        lanes[at_l(nl, j + 1u)] = bitcast<u32>(c1);
        lanes[at_l(nl, j + 2u)] = bitcast<u32>(c2);
        lanes[at_l(nl, j + 3u)] = bitcast<u32>(c3);
    }
}
