// embed_tex: embed.wgsl with wte read from textures (common/texels.wgsl), for the CPU tuning, whose
// linear kernels read every weight matrix from textures (Tuning::weights_in_textures). wte is both the
// embedding and the (tied) logits matrix: one copy, in textures, serves both.
//
//   x[t, c] = wte[ids[t], c] + wpe[pos0 + t, c]          t < T, c < C
//
// Shapes: ids [T] u32 (checked < V on the host), wte [V, C] in weight format `wfmt`, wpe [P, C] f32,
// x [T, C] f32. wte may be split into row chunks so that each fits one texture (the adapter's
// max_texture_dimension_2d rows of 4096 texels): this dispatch covers the vocabulary rows
// [vocab_lo, vocab_hi) of one chunk and writes only the tokens that fall in it.
// Dispatch: ceil(T*C / 256) workgroups of 256 threads, one thread per output element.

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

@compute @workgroup_size(WG)
fn embed_tex(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
