// common/rows.wgsl: what gemv_rows.wgsl and matmul_rows.wgsl (the CPU tuning's linear kernels) share:
// 32-value chunks of X, weight word unpacking, row clamping. Needs common/linear.wgsl (Params, x, w).
// Why these kernels load X in chunks once per thread and keep every loop free of format switches: on
// lavapipe every storage load is a scalar loop over the SIMD lanes (~25 cycles per lane and value), and a
// switch on the (uniform) format inside the loop measured half the speed: the cases run under masks.

// X[xo + k .. xo + k + 32), 0 past K.
fn x_chunk(xo: u32, k: u32) -> array<vec4<f32>, 8> {
    var c: array<vec4<f32>, 8>;
    for (var j = 0u; j < 8u; j++) {
        let kk = k + 4u * j;
        c[j] = vec4<f32>(select(0.0, x[xo + kk], kk < p.K), select(0.0, x[xo + kk + 1u], kk + 1u < p.K),
                         select(0.0, x[xo + kk + 2u], kk + 2u < p.K), select(0.0, x[xo + kk + 3u], kk + 3u < p.K));
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

