// common/merge.wgsl: the merge pass of split decode attention (flash-decoding), done by gemv.wgsl as it
// stages X under flag 16 (MM_MERGE), so the attention projection reads the partials directly and the
// merge costs no dispatch. attention.wgsl (Params.block > 0) left, per key block b and head h,
//   X[(b NH + h) (hs + 2) + d] = o_b[d] (d < hs),  m_b at + hs,  l_b at + hs + 1,
// the unnormalized partial softmax of block b. The attention output of head h is
//   att[h hs + d] = sum_b w_bh o_b[d],   w_bh = e^(m_b - M_h) / sum_b' e^(m_b' - M_h) l_b',  M_h = max_b m_b
// (every e^ <= 1: scores of +-1e3 neither overflow nor lose the largest block). NB and hs come from
// Params (merge_nb, merge_hs), NH = K / hs. Needs common/linear.wgsl (p, x) and the kernel's WG.

// w_bh at b * NH + h, for this workgroup (NH x NB <= MERGE_MAX: gpu::MERGE_MAX, checked on the host).
const MERGE_MAX: u32 = 1024u;
var<workgroup> merge_w: array<f32, MERGE_MAX>;

// Fill merge_w (thread li takes heads li, li + WG, ...); call from uniform control flow: ends with a barrier.
fn merge_weights(li: u32) {
    let hs = p.merge_hs;
    let nh = p.K / hs;
    let nb = p.merge_nb;
    for (var h = li; h < nh; h += WG) {
        var mx = -3.0e38;
        for (var b = 0u; b < nb; b++) {
            mx = max(mx, x[(b * nh + h) * (hs + 2u) + hs]);
        }
        var l = 0.0;
        for (var b = 0u; b < nb; b++) {
            let o = (b * nh + h) * (hs + 2u) + hs;
            l += exp(x[o] - mx) * x[o + 1u];
        }
        for (var b = 0u; b < nb; b++) {
            merge_w[b * nh + h] = exp(x[(b * nh + h) * (hs + 2u) + hs] - mx) / l;
        }
    }
    workgroupBarrier();
}

// att[k] (0 past K), once merge_weights has run.
fn x_merged(k: u32) -> f32 {
    if (k >= p.K) {
        return 0.0;
    }
    let hs = p.merge_hs;
    let nh = p.K / hs;
    let h = k / hs;
    let d = k - h * hs;
    var v = 0.0;
    for (var b = 0u; b < p.merge_nb; b++) {
        v = fma(merge_w[b * nh + h], x[(b * nh + h) * (hs + 2u) + d], v);
    }
    return v;
}
