// common/attention_head.wgsl: what attention.wgsl and attention_probs.wgsl (one workgroup of WG threads per
// (head h, query t)) share after common/attention_params.wgsl: the query binding, the workgroup shape, and
// staging one head's query in workgroup memory.
//
// Shapes: qkv [T, 3C] f32 (q | k | v per row), C = NH * hs, hs <= MAX_HS.

@group(0) @binding(1) var<storage, read> qkv: array<f32>;          // [T, 3C]

const WG: u32 = 64u;
const MAX_HS: u32 = 256u;

// Head h's query of row t, pre-multiplied by the softmax scale: both kernels form exactly the same scores.
var<workgroup> q: array<f32, MAX_HS>;

// Stage head `ho / hs`'s query of row t into q (this thread's share); the caller syncs with a barrier.
fn stage_query(t: u32, ho: u32, li: u32) {
    for (var d = li; d < p.hs; d += WG) {
        q[d] = qkv[t * 3u * p.C + ho + d] * p.scale;
    }
}
