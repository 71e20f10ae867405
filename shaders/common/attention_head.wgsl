// common/attention_head.wgsl: what attention.wgsl and attention_probs.wgsl share: the Params block (mirrored
// by gpu::params::AttentionParams), the query binding, the workgroup shape, and staging one head's query.
//
// Shapes: qkv [T, 3C] f32 (q | k | v per row), C = NH * hs, hs <= MAX_HS. One workgroup of WG threads per
// (head h, query t). Each kernel declares its own bindings after qkv (binding 1).
// The KV cache is words (u32) in one of two formats (Params.kv, gpu::KvFormat):
//   0 f32:       element (s, h, d) is word s * C + h * hs + d, its bits.
//   1 f16 pairs: element (s, h, d) is half (d & 1) of word (s * NH + h) * HW + d / 2, HW = ceil(hs / 2):
//                each head's row starts on a whole word, so no two workgroups write one word, whatever hs.
// The f32 path also reads words and bitcasts them, so one declaration serves both formats.

struct Params {
    T: u32,
    C: u32,
    NH: u32,
    hs: u32,
    pos0: u32,
    scale: f32,
    kv: u32,
    block: u32, // B keys per workgroup of a split decode step, 0 unsplit (attention.wgsl)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;          // [T, 3C]

const WG: u32 = 64u;
const MAX_HS: u32 = 256u;

// Head h's query of row t, pre-multiplied by the softmax scale: both kernels form exactly the same scores.
var<workgroup> q: array<f32, MAX_HS>;

// Words per head and position in an f16-pair cache.
fn kv_hw() -> u32 {
    return (p.hs + 1u) / 2u;
}

// f16 pairs round to nearest, and values past f16's range are undefined in WGSL, so they saturate at
// the largest finite f16 (GPT-2's keys and values stay far below it).
fn kv_pack(a: f32, b: f32) -> u32 {
    return pack2x16float(clamp(vec2<f32>(a, b), vec2<f32>(-65504.0), vec2<f32>(65504.0)));
}

// Stage head `ho / hs`'s query of row t into q (this thread's share); the caller syncs with a barrier.
fn stage_query(t: u32, ho: u32, li: u32) {
    for (var d = li; d < p.hs; d += WG) {
        q[d] = qkv[t * 3u * p.C + ho + d] * p.scale;
    }
}
