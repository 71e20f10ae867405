// common/rows.wgsl: what gemv_rows.wgsl and matmul_rows.wgsl (the CPU tuning's linear kernels) share:
// X bound as vec4s and as a uniform window, 32-value chunks of X, weight word unpacking, row clamping.
// Needs common/linear.wgsl (Params, the other bindings) and common/texels.wgsl (W and its scales, in
// textures).
// Why these kernels load X in chunks once per thread and keep every loop free of format switches: on
// lavapipe every storage load is a scalar loop over the SIMD lanes (~25 cycles per lane and value), and a
// switch on the (uniform) format inside the loop measured half the speed: the cases run under masks.
// Why vec4s: lavapipe loops over the lanes once per load instruction and fetches every component inside
// that loop, so a vec4 load costs one loop, not four (0.44 GB of q8 W per CPU-second against 0.38 with
// u32 loads, when W was a storage buffer too). Buffers are whole vec4s (Gpu::storage rounds sizes up to
// 16 bytes), so no word is out of reach.
// Why X also through a uniform window: a uniform load whose address is the same in every lane (here:
// workgroup id, loop counter and Params only) is one scalar load and a broadcast on lavapipe, where a
// storage load loops over the lanes. Measured over gpt2's decode matrices (q8, W and scales in textures,
// GB of W per CPU-second): X from storage 0.98, from an rgba32float texture 1.92, from a uniform 2.75.
// A uniform binding holds at most 64 KB (WebGPU's guaranteed maxUniformBufferBindingSize), so `xu` is
// the first X_WINDOW vec4s of X's buffer: gemv_rows reads X there where the dispatch's rows of X lie in
// it (every decode step: M = 1 from row 0), from `x` otherwise (the SwiftShader tuning's prompts run
// through gemv_rows too); matmul_rows always from `x`. (The choice is per chunk, uniform across the
// dispatch; the window alone measured 1.21 against 0.97 GB per CPU-second with the choice, at load 7-8.)

@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;      // [*, x_stride] f32, four per element
@group(0) @binding(8) var<uniform> xu: array<vec4<f32>, X_WINDOW>; // the first 64 KB of x's buffer

const X_WINDOW: u32 = 4096u; // vec4s in the uniform window (gpu::kernels::X_WINDOW_BYTES / 16)

// Whether this dispatch's rows of X lie in the uniform window (uniform across the dispatch).
fn x_in_window() -> bool {
    return (p.x_row0 + p.M) * p.x_stride <= 4u * X_WINDOW;
}

// X[xo + k .. xo + k + 32), 0 past K: from the window where the dispatch's rows lie in it, else x_chunk.
fn x_read(xo: u32, k: u32) -> array<vec4<f32>, 8> {
    if (x_in_window()) {
        return x_chunk_window(xo, k);
    }
    return x_chunk(xo, k);
}

// X[xo + k .. xo + k + 32), 0 past K, from the uniform window (x_in_window()): eight vec4 loads where the row
// starts on a vec4, single values otherwise. Indices past the window (a chunk's values past K, whose
// row ends within it) are clamped and their values masked.
fn x_chunk_window(xo: u32, k: u32) -> array<vec4<f32>, 8> {
    var c: array<vec4<f32>, 8>;
    if ((xo & 3u) == 0u) {
        let b = (xo + k) / 4u;
        for (var j = 0u; j < 8u; j++) {
            let kk = k + 4u * j;
            c[j] = select(vec4<f32>(0.0), xu[min(b + j, X_WINDOW - 1u)], vec4<u32>(kk, kk + 1u, kk + 2u, kk + 3u) < vec4<u32>(p.K));
        }
    } else {
        for (var j = 0u; j < 8u; j++) {
            let kk = k + 4u * j;
            let i = min(xo + kk, 4u * X_WINDOW - 4u);
            c[j] = vec4<f32>(select(0.0, xu[i / 4u][i % 4u], kk < p.K), select(0.0, xu[(i + 1u) / 4u][(i + 1u) % 4u], kk + 1u < p.K),
                             select(0.0, xu[(i + 2u) / 4u][(i + 2u) % 4u], kk + 2u < p.K), select(0.0, xu[(i + 3u) / 4u][(i + 3u) % 4u], kk + 3u < p.K));
        }
    }
    return c;
}

// X[xo + k .. xo + k + 32), 0 past K, from storage (matmul_rows): eight vec4 loads where the row starts
// on a vec4 (every row of the model: C, 3C and 4C are multiples of 4), single values otherwise.
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
