// common/texels.wgsl: a weight matrix W [N, K] (common/weights.wgsl's formats) and its q8/q4 group scales
// read from textures, for the kernels of the CPU tuning (Tuning::weights_in_textures: gemv_rows,
// matmul_rows, embed_tex).
//
// Why textures: on lavapipe every storage-buffer load is a scalar loop over the 8 SIMD lanes (a bounds
// check, a branch and an insert per lane and component), while a texel fetch is one gather without a
// per-lane branch. Measured over gpt2's decode matrices (q8, GB of W per CPU-second): W as
// array<vec4<u32>> storage 0.43-0.45, W in an rgba32uint texture 1.02-1.12 (README, "CPU adapters").
//
// Layout (gpu::Gpu::texture_init, TEXTURE_WIDTH = 4096 texels per texture row): word i of W is component
// i % 4 of texel t = i / 4 at (t % 4096, t / 4096) of an rgba32uint texture; word e of the scales (f16
// pairs, as in the buffer) is the texel (e % 4096, e / 4096) of an r32uint texture. Texels past the data
// are zero. The including kernel provides `p.w_stride`, `p.wfmt` and `p.s_stride`.

@group(0) @binding(2) var w: texture_2d<u32>;        // [N, w_stride] words in wfmt, 4 per texel
@group(0) @binding(3) var scales: texture_2d<u32>;   // q8/q4 group scales, one word (an f16 pair) per texel

const TEX_SHIFT: u32 = 12u; // log2(TEXTURE_WIDTH)

// Texel t of W: words 4t .. 4t + 4.
fn w_texel(t: u32) -> vec4<u32> {
    return textureLoad(w, vec2<u32>(t & ((1u << TEX_SHIFT) - 1u), t >> TEX_SHIFT), 0);
}

// Word i of W (f16 and f32 rows, which need not start on a texel).
fn w_word(i: u32) -> u32 {
    return w_texel(i / 4u)[i % 4u];
}

// The q8/q4 group scale of W[n, k].
fn scale_of(n: u32, k: u32) -> f32 {
    let e = n * p.s_stride + k / 32u;
    let i = e / 2u;
    let pair = unpack2x16float(textureLoad(scales, vec2<u32>(i & ((1u << TEX_SHIFT) - 1u), i >> TEX_SHIFT), 0).x);
    return select(pair.x, pair.y, (e & 1u) == 1u);
}

// W[n, k] as f32, whatever its format (common/weights.wgsl's load_w over textures).
fn load_w(n: u32, k: u32) -> f32 {
    let row = n * p.w_stride;
    switch p.wfmt {
        case 1u: {
            let pair = unpack2x16float(w_word(row + k / 2u));
            return select(pair.x, pair.y, (k & 1u) == 1u);
        }
        case 2u: {
            let word = w_word(row + k / 4u);
            let q = (bitcast<i32>(word << (24u - 8u * (k & 3u)))) >> 24u;
            return f32(q) * scale_of(n, k);
        }
        case 3u: {
            let word = w_word(row + k / 8u);
            let q = (word >> (4u * (k & 7u))) & 15u;
            return (f32(q) - 8.0) * scale_of(n, k);
        }
        default: {
            return bitcast<f32>(w_word(row + k));
        }
    }
}
