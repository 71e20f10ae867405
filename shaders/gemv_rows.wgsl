// gemv_rows: gemv shaped for CPU adapters (lavapipe, SwiftShader): same math and Params as gemv/matmul
// (common/linear.wgsl), picked by the CPU tuning (gpu/tuning.rs); W and its scales in textures
// (common/texels.wgsl), X through its uniform window where the dispatch's rows of X lie in its 64 KB (every
// decode step), else from storage (a pipeline constant: common/rows.wgsl).
//
//   v = X[x_row0 + m, :] . W[n, :] (+ b[n]) (GELU) ;  Y[m, y_col0 + n] (+)= v        n < N, m < M
//
// Why a kernel of its own: on lavapipe every load from a storage (or workgroup) buffer is a scalar loop
// over the SIMD lanes, about 25 cycles per lane and 32-bit value, whether or not the lanes share the
// address (measured: Mesa 22.3, 8 lanes). Streaming W is then bound by how many values a thread loads
// per weight word, not by memory. gemv.wgsl's CPU shape (1 lane x 4 rows, X staged in workgroup memory)
// loads 32 X values per 32 weights of 4 rows; here one thread owns ROWS = 16 output rows and loads each
// 32-value chunk of X once for all of them, with no workgroup memory and no barriers. Measured over one
// gpt2 decode step's matrices (q8): 0.40 GB per CPU-second against 0.185 for gemv.wgsl's CPU shape and
// about 0.5 for a kernel that only loads W's words, when all were storage loads. With W and the scales
// as texel fetches and X as uniform loads (one per chunk and thread, the address shared by the lanes),
// 0.94-0.99 against 0.35-0.36 for the storage version in the same session (machine at load 7-8).
// Rows past N are computed on row N - 1 (valid memory) and never stored. X is 0 past K, and every word
// read past a row's K (the row's padding, the next row, or the last word where Restrict bounds checks
// clamp) is a finite weight or zero padding, so it adds exactly 0.
// Chunks of X, weight unpacking: common/rows.wgsl. Prompts (M > 1) go through matmul_rows.wgsl instead.
// Dispatch: (ceil(N / (WG * ROWS)), M) workgroups of WG = 8 threads (one 256-bit SIMD vector of lavapipe:
// a small workgroup keeps a 768-row matrix in 6 workgroups, so both cores of a 2-core machine work).

const WG: u32 = 8u;
const ROWS: u32 = 16u;

// W[n, k .. k + 32) . xc, one function per format (the format switch stays outside the loops).
fn dot_f32(n: u32, k: u32, xc: array<vec4<f32>, 8>) -> f32 {
    let o = n * p.w_stride + k;
    var d = 0.0;
    for (var j = 0u; j < 8u; j++) {
        let q = o + 4u * j;
        d += dot(bitcast<vec4<f32>>(vec4<u32>(w_word(q), w_word(q + 1u), w_word(q + 2u), w_word(q + 3u))), xc[j]);
    }
    return d;
}

fn dot_f16(n: u32, k: u32, xc: array<vec4<f32>, 8>) -> f32 {
    let o = n * p.w_stride + k / 2u;
    var d = 0.0;
    for (var j = 0u; j < 8u; j++) {
        d += dot(vec4<f32>(unpack2x16float(w_word(o + 2u * j)), unpack2x16float(w_word(o + 2u * j + 1u))), xc[j]);
    }
    return d;
}

// q8: a group of 32 weights is two vec4s of words.
fn dot_q8(n: u32, k: u32, xc: array<vec4<f32>, 8>) -> f32 {
    let o = (n * p.w_stride + k / 4u) / 4u;
    let a = w_texel(o);
    let b = w_texel(o + 1u);
    let d = dot(q8x4(a.x), xc[0]) + dot(q8x4(a.y), xc[1]) + dot(q8x4(a.z), xc[2]) + dot(q8x4(a.w), xc[3])
          + dot(q8x4(b.x), xc[4]) + dot(q8x4(b.y), xc[5]) + dot(q8x4(b.z), xc[6]) + dot(q8x4(b.w), xc[7]);
    return d * scale_of(n, k);
}

// q4: a group of 32 weights is one vec4 of words.
fn dot_q4(n: u32, k: u32, xc: array<vec4<f32>, 8>) -> f32 {
    let a = w_texel((n * p.w_stride + k / 8u) / 4u);
    var d = 0.0;
    for (var j = 0u; j < 4u; j++) {
        let v = q4x8(a[j]);
        d += dot(v[0], xc[2u * j]) + dot(v[1], xc[2u * j + 1u]);
    }
    return d * scale_of(n, k);
}

@compute @workgroup_size(WG)
fn gemv_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n0 = (wg.x * WG + li) * ROWS;
    let m = wg.y;
    if (n0 >= p.N) {
        return;
    }
    let xo = (p.x_row0 + m) * p.x_stride;
    // Four accumulators of four rows each, written out so they stay in registers.
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    switch p.wfmt {
        case 2u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunk(xo, k);
                a0 += vec4<f32>(dot_q8(row(n0, 0u), k, xc), dot_q8(row(n0, 1u), k, xc), dot_q8(row(n0, 2u), k, xc), dot_q8(row(n0, 3u), k, xc));
                a1 += vec4<f32>(dot_q8(row(n0, 4u), k, xc), dot_q8(row(n0, 5u), k, xc), dot_q8(row(n0, 6u), k, xc), dot_q8(row(n0, 7u), k, xc));
                a2 += vec4<f32>(dot_q8(row(n0, 8u), k, xc), dot_q8(row(n0, 9u), k, xc), dot_q8(row(n0, 10u), k, xc), dot_q8(row(n0, 11u), k, xc));
                a3 += vec4<f32>(dot_q8(row(n0, 12u), k, xc), dot_q8(row(n0, 13u), k, xc), dot_q8(row(n0, 14u), k, xc), dot_q8(row(n0, 15u), k, xc));
            }
        }
        case 3u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunk(xo, k);
                a0 += vec4<f32>(dot_q4(row(n0, 0u), k, xc), dot_q4(row(n0, 1u), k, xc), dot_q4(row(n0, 2u), k, xc), dot_q4(row(n0, 3u), k, xc));
                a1 += vec4<f32>(dot_q4(row(n0, 4u), k, xc), dot_q4(row(n0, 5u), k, xc), dot_q4(row(n0, 6u), k, xc), dot_q4(row(n0, 7u), k, xc));
                a2 += vec4<f32>(dot_q4(row(n0, 8u), k, xc), dot_q4(row(n0, 9u), k, xc), dot_q4(row(n0, 10u), k, xc), dot_q4(row(n0, 11u), k, xc));
                a3 += vec4<f32>(dot_q4(row(n0, 12u), k, xc), dot_q4(row(n0, 13u), k, xc), dot_q4(row(n0, 14u), k, xc), dot_q4(row(n0, 15u), k, xc));
            }
        }
        case 1u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunk(xo, k);
                a0 += vec4<f32>(dot_f16(row(n0, 0u), k, xc), dot_f16(row(n0, 1u), k, xc), dot_f16(row(n0, 2u), k, xc), dot_f16(row(n0, 3u), k, xc));
                a1 += vec4<f32>(dot_f16(row(n0, 4u), k, xc), dot_f16(row(n0, 5u), k, xc), dot_f16(row(n0, 6u), k, xc), dot_f16(row(n0, 7u), k, xc));
                a2 += vec4<f32>(dot_f16(row(n0, 8u), k, xc), dot_f16(row(n0, 9u), k, xc), dot_f16(row(n0, 10u), k, xc), dot_f16(row(n0, 11u), k, xc));
                a3 += vec4<f32>(dot_f16(row(n0, 12u), k, xc), dot_f16(row(n0, 13u), k, xc), dot_f16(row(n0, 14u), k, xc), dot_f16(row(n0, 15u), k, xc));
            }
        }
        default: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunk(xo, k);
                a0 += vec4<f32>(dot_f32(row(n0, 0u), k, xc), dot_f32(row(n0, 1u), k, xc), dot_f32(row(n0, 2u), k, xc), dot_f32(row(n0, 3u), k, xc));
                a1 += vec4<f32>(dot_f32(row(n0, 4u), k, xc), dot_f32(row(n0, 5u), k, xc), dot_f32(row(n0, 6u), k, xc), dot_f32(row(n0, 7u), k, xc));
                a2 += vec4<f32>(dot_f32(row(n0, 8u), k, xc), dot_f32(row(n0, 9u), k, xc), dot_f32(row(n0, 10u), k, xc), dot_f32(row(n0, 11u), k, xc));
                a3 += vec4<f32>(dot_f32(row(n0, 12u), k, xc), dot_f32(row(n0, 13u), k, xc), dot_f32(row(n0, 14u), k, xc), dot_f32(row(n0, 15u), k, xc));
            }
        }
    }
    for (var i = 0u; i < 4u; i++) {
        if (n0 + i < p.N) { store_y(m, n0 + i, a0[i]); }
        if (n0 + 4u + i < p.N) { store_y(m, n0 + 4u + i, a1[i]); }
        if (n0 + 8u + i < p.N) { store_y(m, n0 + 8u + i, a2[i]); }
        if (n0 + 12u + i < p.N) { store_y(m, n0 + 12u + i, a3[i]); }
    }
}
