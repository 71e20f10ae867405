// sample_best: the sampler's second pass when greedy (sample_draw.wgsl, sample_pick.wgsl when sampling),
// one workgroup.
// sample_scan.wgsl has penalised the row in place and left, per lane, its max, its relative mass and
// its M best candidates. The token is the row's arg-max (the lowest id on ties) from the lanes' maxima;
// its probability is 1 / Z at temperature 1 (common/sample_second.wgsl); the alternatives come from
// the candidates, or from the row when they cannot decide them. A kernel of its own so that a CPU
// adapter, which runs a workgroup's threads one after another, never steps through the sampling code.
//
// Shapes and bindings: common/sample_second.wgsl.

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn sample_best(@builtin(local_invocation_index) li: u32) {
    let h = head(li, 1.0);
    let b = p.out_row * OUT_WORDS;
    alternatives(li, h, 1.0, h.z, 0u, b);
    finish(li, h.argmax, 1.0 / h.z, b);
}
