// common/attention_head.wgsl: what attention.wgsl and attention_probs.wgsl share: the Params block (mirrored
// by gpu::params::AttentionParams), the query binding, the workgroup shape, and staging one head's query.
//
// Shapes: qkv [T, 3C] f32 (q | k | v per row), C = NH * hs, hs <= MAX_HS. One workgroup of WG threads per
// (head h, query t). Each kernel declares its own bindings after qkv (binding 1).

struct Params {
    T: u32,
    C: u32,
    NH: u32,
    hs: u32,
    pos0: u32,
    scale: f32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
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
