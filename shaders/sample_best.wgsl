// sample_best: the sampler's second pass when greedy (sample_pick.wgsl when sampling), one workgroup.
// sample_scan.wgsl has penalised the row in place and left, per lane, its max, its relative mass and
// its M best candidates. The token is the row's arg-max (the lowest id on ties) from the lanes' maxima;
// its probability is 1 / Z at temperature 1 (common/sample_second.wgsl); the alternatives come from
// the candidates, or from the row when they cannot decide them. A kernel of its own so that a CPU
// adapter, which runs a workgroup's threads one after another, never steps through the sampling code.
//
// Shapes: logits [*, V] f32 (row at element offset row_off, penalised), counts [V] u32, ring [P] u32,
// fed [4] u32, out [K, OUT_WORDS] u32 (this step writes row out_row), lanes as in sample_scan.wgsl.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;  // [*, V]
@group(0) @binding(2) var<storage, read_write> counts: array<u32>;  // [V]
@group(0) @binding(3) var<storage, read_write> ring: array<u32>;    // [P]
@group(0) @binding(4) var<storage, read_write> fed: array<u32>;     // [4]
@group(0) @binding(5) var<storage, read_write> out: array<u32>;     // [K, OUT_WORDS]
@group(0) @binding(6) var<storage, read_write> lanes: array<u32>;   // see sample_scan.wgsl

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn sample_best(@builtin(local_invocation_index) li: u32) {
    let h = head(li, 1.0);
    let b = p.out_row * OUT_WORDS;
    alternatives(li, h, 1.0, h.z, 0u, b);
    finish(li, h.argmax, 1.0 / h.z, b);
}
