// common/attention_params.wgsl: what every attention kernel (attention.wgsl, attention_probs.wgsl,
// attention_rows.wgsl) shares: the Params block (mirrored by gpu::params::AttentionParams) and the KV
// cache's word formats. Each kernel declares its own bindings after the Params (qkv is binding 1).
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

// Words per head and position in an f16-pair cache.
fn kv_hw() -> u32 {
    return (p.hs + 1u) / 2u;
}

// f16 pairs round to nearest, and values past f16's range are undefined in WGSL, so they saturate at
// the largest finite f16 (GPT-2's keys and values stay far below it).
fn kv_pack(a: f32, b: f32) -> u32 {
    return pack2x16float(clamp(vec2<f32>(a, b), vec2<f32>(-65504.0), vec2<f32>(65504.0)));
}
