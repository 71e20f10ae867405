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
//
// Weight formats (shared with matmul/gemv): a row of W is `w_stride` u32 words.
//   0 f32: one value per word.   1 f16: two per word, even k in the low half.
//   2 q8:  four int8 per word (k%4 = byte), value = q * scale.
//   3 q4:  eight 4-bit per word (k%8 = nibble), value = (q - 8) * scale.
//   q8/q4 scales: one f16 per group of 32 along k, entry n*s_stride + k/32 of `scales` (two per word).

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
@group(0) @binding(2) var<storage, read> wte: array<u32>;         // [vocab_hi - vocab_lo, C] in wfmt
@group(0) @binding(3) var<storage, read> scales: array<u32>;      // q8/q4 group scales, f16 pairs
@group(0) @binding(4) var<storage, read> wpe: array<f32>;         // [P, C]
@group(0) @binding(5) var<storage, read_write> x: array<f32>;     // [T, C]

fn scale_of(n: u32, k: u32) -> f32 {
    let e = n * p.s_stride + k / 32u;
    let pair = unpack2x16float(scales[e / 2u]);
    return select(pair.x, pair.y, (e & 1u) == 1u);
}

fn load_w(n: u32, k: u32) -> f32 {
    let row = n * p.w_stride;
    switch p.wfmt {
        case 1u: {
            let pair = unpack2x16float(wte[row + k / 2u]);
            return select(pair.x, pair.y, (k & 1u) == 1u);
        }
        case 2u: {
            let word = wte[row + k / 4u];
            let q = (bitcast<i32>(word << (24u - 8u * (k & 3u)))) >> 24u;
            return f32(q) * scale_of(n, k);
        }
        case 3u: {
            let word = wte[row + k / 8u];
            let q = (word >> (4u * (k & 7u))) & 15u;
            return (f32(q) - 8.0) * scale_of(n, k);
        }
        default: {
            return bitcast<f32>(wte[row + k]);
        }
    }
}

@compute @workgroup_size(256)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
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
