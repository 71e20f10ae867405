// kv_append: write this step's keys and values into the layer's KV cache.
//
//   k_cache[pos0 + t, c] = qkv[t, C + c]        v_cache[pos0 + t, c] = qkv[t, 2C + c]     t < T, c < C
//
// Shapes: qkv [T, 3C] f32 (q | k | v, heads interleaved as h * hs + d inside each third, as Hugging Face
// splits c_attn), k_cache / v_cache [P, C] f32.
// Dispatch: ceil(T*C / 256) workgroups (x, with y past 65535) of 256 threads, one thread per (t, c).

struct Params {
    T: u32,
    C: u32,
    pos0: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;             // [T, 3C]
@group(0) @binding(2) var<storage, read_write> k_cache: array<f32>;   // [P, C]
@group(0) @binding(3) var<storage, read_write> v_cache: array<f32>;   // [P, C]

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn kv_append(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.T * p.C) {
        return;
    }
    let t = i / p.C;
    let c = i % p.C;
    let dst = (p.pos0 + t) * p.C + c;
    k_cache[dst] = qkv[t * 3u * p.C + p.C + c];
    v_cache[dst] = qkv[t * 3u * p.C + 2u * p.C + c];
}
