// common/embed_body.wgsl: what embed.wgsl and embed_tex.wgsl share, everything but where wte lives:
// their Params (mirrored by gpu::params::EmbedParams), the bindings other than wte's, and the work.
//
//   x[t, c] = wte[ids[t], c] + wpe[pos0 + t, c]          t < T, c < C
//
// Shapes: ids [T] u32 (checked < V on the host), wte [V, C] in weight format `wfmt`
// (common/weights.wgsl), wpe [P, C] f32, x [T, C] f32.
// wte may be split into row chunks (so that no binding, or no texture, exceeds the adapter's limit):
// one dispatch covers the vocabulary rows [vocab_lo, vocab_hi) of one chunk and writes only the
// tokens that fall in it; one dispatch per chunk covers every token once.
// Dispatch: ceil(T*C / 256) workgroups of 256 threads, one thread per output element.
// The including kernel binds wte as `w` and its scales as `scales` (bindings 2 and 3) and provides
// `load_w(n, k)` over them (common/weights.wgsl for storage buffers, common/texels.wgsl for textures).

struct Params {
    T: u32,
    C: u32,
    pos0: u32,
    vocab_lo: u32,
    vocab_hi: u32,
    w_stride: u32,
    wfmt: u32,
    s_stride: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;         // [T]
@group(0) @binding(4) var<storage, read> wpe: array<f32>;         // [P, C]
@group(0) @binding(5) var<storage, read_write> x: array<f32>;     // [T, C]

const WG: u32 = 256u;

// Thread (gid, nwg)'s element of x, if it has one and its token lies in this chunk.
fn embed_at(gid: vec3<u32>, nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i >= p.T * p.C) {
        return;
    }
    let t = i / p.C;
    let c = i % p.C;
    let id = ids[t];
    if (id < p.vocab_lo || id >= p.vocab_hi) {
        return; // another chunk's token
    }
    x[i] = load_w(id - p.vocab_lo, c) + wpe[(p.pos0 + t) * p.C + c];
}
