// embed: token + position embedding, the first op of the forward pass.
//
//   x[t, c] = wte[ids[t], c] + wpe[pos0 + t, c]          t < T, c < C
//
// Shapes: ids [T] u32 (checked < V on the host), wte [V, C] in weight format `wfmt` (see below),
// wpe [P, C] f32, x [T, C] f32.
// wte may be split into row chunks so that no binding exceeds max_storage_buffer_binding_size
// (gpt2-xl's f32 wte is 321 MB): this dispatch covers the vocabulary rows [vocab_lo, vocab_hi) of one
// chunk and writes only the tokens that fall in it; one dispatch per chunk covers every token once.
// Dispatch: ceil(T*C / 256) workgroups of 256 threads, one thread per output element.
// Weights are read through common/weights.wgsl (wte is bound as `w`, the name that file reads).

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
@group(0) @binding(2) var<storage, read> w: array<u32>;           // wte [vocab_hi - vocab_lo, C] in wfmt
@group(0) @binding(3) var<storage, read> scales: array<u32>;      // q8/q4 group scales, f16 pairs
@group(0) @binding(4) var<storage, read> wpe: array<f32>;         // [P, C]
@group(0) @binding(5) var<storage, read_write> x: array<f32>;     // [T, C]

const WG: u32 = 256u;

@compute @workgroup_size(WG)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
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
