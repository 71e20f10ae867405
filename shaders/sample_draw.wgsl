// sample_draw: the sampler's second pass when sampling without top-k and top-p (sample_best.wgsl when
// greedy, sample_pick.wgsl with a cut-off), one workgroup. Everything is kept, so the draw takes two
// levels and never walks the row: first the lane, by the lanes' masses w_l = Z_l exp((m_l - m) / temp)
// (the terms of Z, common/sample_second.wgsl), walked virtual thread by virtual thread as in
// sample_pick's draw; then the id, walking that lane's L ids alone. O(NL + L) instead of O(V).
// The token's probability is exp((l' - m) / temp) / Z; the alternatives as in sample_best.wgsl.
//
// Shapes and bindings: common/sample_second.wgsl.

const WG: u32 = 64u;

// The draw without a cut: the lane by its mass w_l (virtual thread by virtual thread: draw_owner), then
// the id inside that lane in id order. Returns the token.
fn draw_two_level(li: u32, h: Head, inv_t: f32) -> u32 {
    let nl = lanes_of(p.V);
    for (var t = li; t < VT; t += WG) {
        var s = 0.0;
        for (var l = t; l < nl; l += VT) {
            s += bitcast<f32>(lanes[at_z(nl, l)]) * exp((bitcast<f32>(lanes[at_m(nl, l)]) - h.m) * inv_t);
        }
        vs_f[t] = s;
    }
    workgroupBarrier();
    if (li == 0u) {
        let o = draw_owner(h.z);
        let owner = o.t;
        var r = o.r;
        // The lane inside the owner's share.
        var acc = 0.0;
        var lane = NONE;
        var lastl = owner;
        for (var l = owner; l < nl; l += VT) {
            let w = bitcast<f32>(lanes[at_z(nl, l)]) * exp((bitcast<f32>(lanes[at_m(nl, l)]) - h.m) * inv_t);
            if (w > 0.0) {
                lastl = l;
                if (acc + w > r) {
                    lane = l;
                    r = r - acc;
                    break;
                }
            }
            acc += w;
        }
        if (lane == NONE) {
            lane = lastl;
            r = 3.0e38;
        }
        // The id inside the lane (its arg-max if rounding runs past the end: its p is the lane's largest).
        acc = 0.0;
        var got = lanes[at_arg(nl, lane)];
        for (var i = lane; i < p.V; i += nl) {
            acc += exp((logits[p.row_off + i] - h.m) * inv_t);
            if (acc > r) {
                got = i;
                break;
            }
        }
        chosen = got;
    }
    workgroupBarrier();
    return chosen;
}

@compute @workgroup_size(WG)
fn sample_draw(@builtin(local_invocation_index) li: u32) {
    let inv_t = 1.0 / p.temperature;
    let h = head(li, inv_t);
    let token = draw_two_level(li, h, inv_t);
    let b = p.out_row * OUT_WORDS;
    alternatives(li, h, inv_t, h.z, 0u, b);
    finish(li, token, exp((logits[p.row_off + token] - h.m) * inv_t) / h.z, b);
}
