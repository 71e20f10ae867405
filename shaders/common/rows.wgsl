// common/rows.wgsl: what gemv_rows.wgsl and matmul_rows.wgsl (the CPU tuning's linear kernels) share:
// X and W bound as vec4s, 32-value chunks of X, weight word unpacking, group scales, row clamping. Needs
// common/linear.wgsl (Params, the other bindings).
// Why these kernels load X in chunks once per thread and keep every loop free of format switches: on
// lavapipe every storage load is a scalar loop over the SIMD lanes (~25 cycles per lane and value), and a
// switch on the (uniform) format inside the loop measured half the speed: the cases run under masks.
// Why vec4s: lavapipe loops over the lanes once per load instruction and fetches every component inside
// that loop, so a vec4 load costs one loop, not four. Measured over gpt2's decode matrices (q8, gemv_rows):
// 0.44 GB of W per CPU-second against 0.38 with u32 loads. q8 and q4 rows are whole groups of 32 values
// (8 and 4 words), so their chunks are aligned vec4s; f16 and f32 rows (any K) read single words
// (w_word). Buffers are whole vec4s (Gpu::storage rounds sizes up to 16 bytes), so no word is out of reach.

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;      // [*, x_stride] f32, four per element
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;      // [N, w_stride] words in wfmt, four per element

// Word i of W (f16 and f32 rows, which need not start on a vec4).
fn w_word(i: u32) -> u32 {
    return w[i / 4u][i % 4u];
}

// The q8/q4 group scale of W[n, k] (common/weights.wgsl's scale_of; that file reads W as u32 words).
fn row_scale(n: u32, k: u32) -> f32 {
    let e = n * p.s_stride + k / 32u;
    let pair = unpack2x16float(scales[e / 2u]);
    return select(pair.x, pair.y, (e & 1u) == 1u);
}

// X[xo + k .. xo + k + 32), 0 past K: eight vec4 loads where the row starts on a vec4 (every row of
// the model: C, 3C and 4C are multiples of 4), single values otherwise.
fn x_chunk(xo: u32, k: u32) -> array<vec4<f32>, 8> {
    var c: array<vec4<f32>, 8>;
    if ((xo & 3u) == 0u) {
        let b = (xo + k) / 4u;
        for (var j = 0u; j < 8u; j++) {
            let kk = k + 4u * j;
            c[j] = select(vec4<f32>(0.0), x[b + j], vec4<u32>(kk, kk + 1u, kk + 2u, kk + 3u) < vec4<u32>(p.K));
        }
    } else {
        for (var j = 0u; j < 8u; j++) {
            let kk = k + 4u * j;
            let i = xo + kk;
            c[j] = vec4<f32>(select(0.0, x[i / 4u][i % 4u], kk < p.K), select(0.0, x[(i + 1u) / 4u][(i + 1u) % 4u], kk + 1u < p.K),
                             select(0.0, x[(i + 2u) / 4u][(i + 2u) % 4u], kk + 2u < p.K), select(0.0, x[(i + 3u) / 4u][(i + 3u) % 4u], kk + 3u < p.K));
        }
    }
    return c;
}

fn q8x4(word: u32) -> vec4<f32> {
    return vec4<f32>(vec4<i32>(
        bitcast<i32>(word << 24u) >> 24u, bitcast<i32>(word << 16u) >> 24u,
        bitcast<i32>(word << 8u) >> 24u, bitcast<i32>(word) >> 24u));
}

fn q4x8(word: u32) -> array<vec4<f32>, 2> {
    let lo = vec4<f32>(vec4<u32>(word & 15u, (word >> 4u) & 15u, (word >> 8u) & 15u, (word >> 12u) & 15u)) - 8.0;
    let hi = vec4<f32>(vec4<u32>((word >> 16u) & 15u, (word >> 20u) & 15u, (word >> 24u) & 15u, word >> 28u)) - 8.0;
    return array<vec4<f32>, 2>(lo, hi);
}

// Row i of this thread's rows (n0 ..), clamped to the last row of W.
fn row(n0: u32, i: u32) -> u32 {
    return min(n0 + i, p.N - 1u);
}
