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
// W and its scales are tiled for this thread layout (common/texels.wgsl): the 8 threads' i-th rows lie
// side by side. Rows past N read the last tile's zero rows and are never stored. X is 0 past K, and
// the padding of a row's last chunk is zero, so it adds exactly 0.
// Chunks of X, weight unpacking: common/rows.wgsl. Longer steps (M > Tuning::gemv_max_rows) go through
// matmul_rows.wgsl (lavapipe) or matmul_run.wgsl (SwiftShader) instead.
// Dispatch: (ceil(N / (WG * ROWS)), M) workgroups of WG = 8 threads (one 256-bit SIMD vector of lavapipe:
// a small workgroup keeps a 768-row matrix in 6 workgroups, so both cores of a 2-core machine work).

// The tile's shape (common/texels.wgsl) is this thread layout.
const WG: u32 = TILE_LANES;
const ROWS: u32 = TILE_RUN;

// Whether q8 weights are unpacked with unpack4x8unorm (q8_row_unorm) instead of shifts (q8x4): a tuning's
// pipeline constant (gpu::Tuning::q8_unorm), true on SwiftShader. There a shift of a vector (every
// component of a vec4, or a value of 4 invocations) costs a scalar loop over its lanes, while
// unpack4x8unorm is SwiftShader's own code with constant shifts: one gpt2 decode step's matrices (q8,
// throwaway probe, CPU ms, alternating, load 3.6) 353 with shifts, 193-213 with unpack4x8unorm. On
// lavapipe the shifts are the faster (the probe: 32-38 against 38-43 ms). q4 too (q4_row_unorm: one vector
// shift per texel, not seven per word): gpt2's q4 package natively on SwiftShader, CPU ms per decode token
// (gpt2 bench, load 1.6-2.8) 768-772 with q4x8's shifts, 166-171 through unpack4x8unorm.
override Q8_UNORM: bool = false;

// Chunk . xc for the chunk whose first tiled word is w (chunk_word), one function per format (the
// format switch stays outside the loops); q8/q4 before their scale.
fn dot_f32(w: u32, xc: array<vec4<f32>, 8>) -> f32 {
    let t = w / 4u;
    var d = 0.0;
    for (var j = 0u; j < 8u; j++) {
        d += dot(bitcast<vec4<f32>>(w_texel(t + j)), xc[j]);
    }
    return d;
}

fn dot_f16(w: u32, xc: array<vec4<f32>, 8>) -> f32 {
    let t = w / 4u;
    var d = 0.0;
    for (var j = 0u; j < 4u; j++) {
        let a = w_texel(t + j);
        d += dot(vec4<f32>(unpack2x16float(a.x), unpack2x16float(a.y)), xc[2u * j])
           + dot(vec4<f32>(unpack2x16float(a.z), unpack2x16float(a.w)), xc[2u * j + 1u]);
    }
    return d;
}

// q8: a chunk is two texels.
fn dot_q8(w: u32, xc: array<vec4<f32>, 8>) -> f32 {
    let a = w_texel(w / 4u);
    let b = w_texel(w / 4u + 1u);
    return dot(q8x4(a.x), xc[0]) + dot(q8x4(a.y), xc[1]) + dot(q8x4(a.z), xc[2]) + dot(q8x4(a.w), xc[3])
         + dot(q8x4(b.x), xc[4]) + dot(q8x4(b.y), xc[5]) + dot(q8x4(b.z), xc[6]) + dot(q8x4(b.w), xc[7]);
}

// q8 under Q8_UNORM (SwiftShader): the bytes come out of unpack4x8unorm as u = (q + 128) / 255 (the word
// xor 0x80808080 turns each q into q + 128), so chunk . xc = 255 (u . xc) - 128 sum(xc): q8_row_unorm
// returns u . xc, the caller applies the 255 and the -128 sum(xc) once per 4 rows. X comes as eight vec4s,
// not an array: SwiftShader copies an array argument at every call.
fn q8_row_unorm(w: u32, i: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>, x4: vec4<f32>, x5: vec4<f32>, x6: vec4<f32>, x7: vec4<f32>) -> f32 {
    let t = (w + i * TILE_LANES * 8u) / 4u;
    let a = w_texel(t) ^ vec4<u32>(0x80808080u);
    let b = w_texel(t + 1u) ^ vec4<u32>(0x80808080u);
    return dot(unpack4x8unorm(a.x), x0) + dot(unpack4x8unorm(a.y), x1) + dot(unpack4x8unorm(a.z), x2) + dot(unpack4x8unorm(a.w), x3)
         + dot(unpack4x8unorm(b.x), x4) + dot(unpack4x8unorm(b.y), x5) + dot(unpack4x8unorm(b.z), x6) + dot(unpack4x8unorm(b.w), x7);
}

// q4 under Q8_UNORM (SwiftShader), as q8_row_unorm: the low nibbles of a word's bytes (w & 0x0f0f0f0f) are
// its values 0, 2, 4, 6 plus 8, the high ones (w >> 4, masked) values 1, 3, 5, 7 plus 8, so one vector shift
// per texel instead of seven per word; unpack4x8unorm gives them / 255, and chunk . xc = 255 (u . xc) -
// 8 sum(xc): q4_row_unorm returns u . xc over X split into its even (e) and odd (o) values per word.
fn q4_row_unorm(w: u32, i: u32, e0: vec4<f32>, o0: vec4<f32>, e1: vec4<f32>, o1: vec4<f32>, e2: vec4<f32>, o2: vec4<f32>, e3: vec4<f32>, o3: vec4<f32>) -> f32 {
    let a = w_texel((w + i * TILE_LANES * 4u) / 4u);
    let lo = a & vec4<u32>(0x0f0f0f0fu);
    let hi = (a >> vec4<u32>(4u)) & vec4<u32>(0x0f0f0f0fu);
    return dot(unpack4x8unorm(lo.x), e0) + dot(unpack4x8unorm(hi.x), o0) + dot(unpack4x8unorm(lo.y), e1) + dot(unpack4x8unorm(hi.y), o1)
         + dot(unpack4x8unorm(lo.z), e2) + dot(unpack4x8unorm(hi.z), o2) + dot(unpack4x8unorm(lo.w), e3) + dot(unpack4x8unorm(hi.w), o3);
}

// q4: a chunk is one texel.
fn dot_q4(w: u32, xc: array<vec4<f32>, 8>) -> f32 {
    let a = w_texel(w / 4u);
    var d = 0.0;
    for (var j = 0u; j < 4u; j++) {
        let v = q4x8(a[j]);
        d += dot(v[0], xc[2u * j]) + dot(v[1], xc[2u * j + 1u]);
    }
    return d;
}

// Row i of the thread's run, given its first row's chunk at word w: the rows of a run are TILE_LANES
// chunks apart. (q8/q4 before their scales: run_scales.)
fn q8_row(w: u32, i: u32, xc: array<vec4<f32>, 8>) -> f32 {
    return dot_q8(w + i * TILE_LANES * 8u, xc);
}

fn q4_row(w: u32, i: u32, xc: array<vec4<f32>, 8>) -> f32 {
    return dot_q4(w + i * TILE_LANES * 4u, xc);
}

fn f16_row(w: u32, i: u32, xc: array<vec4<f32>, 8>) -> f32 {
    return dot_f16(w + i * TILE_LANES * 16u, xc);
}

fn f32_row(w: u32, i: u32, xc: array<vec4<f32>, 8>) -> f32 {
    return dot_f32(w + i * TILE_LANES * 32u, xc);
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
    switch WFMT {
        case 2u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunk(xo, k);
                let w = chunk_word(n0, k / 32u, 8u);
                let sc = run_scales(scale_elem(n0, k / 32u));
                if (Q8_UNORM) {
                    let x0 = xc[0]; let x1 = xc[1]; let x2 = xc[2]; let x3 = xc[3];
                    let x4 = xc[4]; let x5 = xc[5]; let x6 = xc[6]; let x7 = xc[7];
                    let o = vec4<f32>(-128.0 * dot(x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7, vec4<f32>(1.0)));
                    a0 += (vec4<f32>(q8_row_unorm(w, 0u, x0, x1, x2, x3, x4, x5, x6, x7), q8_row_unorm(w, 1u, x0, x1, x2, x3, x4, x5, x6, x7),
                                     q8_row_unorm(w, 2u, x0, x1, x2, x3, x4, x5, x6, x7), q8_row_unorm(w, 3u, x0, x1, x2, x3, x4, x5, x6, x7)) * 255.0 + o) * sc[0];
                    a1 += (vec4<f32>(q8_row_unorm(w, 4u, x0, x1, x2, x3, x4, x5, x6, x7), q8_row_unorm(w, 5u, x0, x1, x2, x3, x4, x5, x6, x7),
                                     q8_row_unorm(w, 6u, x0, x1, x2, x3, x4, x5, x6, x7), q8_row_unorm(w, 7u, x0, x1, x2, x3, x4, x5, x6, x7)) * 255.0 + o) * sc[1];
                    a2 += (vec4<f32>(q8_row_unorm(w, 8u, x0, x1, x2, x3, x4, x5, x6, x7), q8_row_unorm(w, 9u, x0, x1, x2, x3, x4, x5, x6, x7),
                                     q8_row_unorm(w, 10u, x0, x1, x2, x3, x4, x5, x6, x7), q8_row_unorm(w, 11u, x0, x1, x2, x3, x4, x5, x6, x7)) * 255.0 + o) * sc[2];
                    a3 += (vec4<f32>(q8_row_unorm(w, 12u, x0, x1, x2, x3, x4, x5, x6, x7), q8_row_unorm(w, 13u, x0, x1, x2, x3, x4, x5, x6, x7),
                                     q8_row_unorm(w, 14u, x0, x1, x2, x3, x4, x5, x6, x7), q8_row_unorm(w, 15u, x0, x1, x2, x3, x4, x5, x6, x7)) * 255.0 + o) * sc[3];
                } else {
                    a0 += vec4<f32>(q8_row(w, 0u, xc), q8_row(w, 1u, xc), q8_row(w, 2u, xc), q8_row(w, 3u, xc)) * sc[0];
                    a1 += vec4<f32>(q8_row(w, 4u, xc), q8_row(w, 5u, xc), q8_row(w, 6u, xc), q8_row(w, 7u, xc)) * sc[1];
                    a2 += vec4<f32>(q8_row(w, 8u, xc), q8_row(w, 9u, xc), q8_row(w, 10u, xc), q8_row(w, 11u, xc)) * sc[2];
                    a3 += vec4<f32>(q8_row(w, 12u, xc), q8_row(w, 13u, xc), q8_row(w, 14u, xc), q8_row(w, 15u, xc)) * sc[3];
                }
            }
        }
        case 3u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunk(xo, k);
                let w = chunk_word(n0, k / 32u, 4u);
                let sc = run_scales(scale_elem(n0, k / 32u));
                if (Q8_UNORM) {
                    // Each word's even and odd values of X (common/rows.wgsl's q4_split).
                    let xs = q4_split(xc);
                    let e0 = xs[0]; let o0 = xs[1]; let e1 = xs[2]; let o1 = xs[3];
                    let e2 = xs[4]; let o2 = xs[5]; let e3 = xs[6]; let o3 = xs[7];
                    let o = vec4<f32>(-8.0 * dot(e0 + o0 + e1 + o1 + e2 + o2 + e3 + o3, vec4<f32>(1.0)));
                    a0 += (vec4<f32>(q4_row_unorm(w, 0u, e0, o0, e1, o1, e2, o2, e3, o3), q4_row_unorm(w, 1u, e0, o0, e1, o1, e2, o2, e3, o3),
                                     q4_row_unorm(w, 2u, e0, o0, e1, o1, e2, o2, e3, o3), q4_row_unorm(w, 3u, e0, o0, e1, o1, e2, o2, e3, o3)) * 255.0 + o) * sc[0];
                    a1 += (vec4<f32>(q4_row_unorm(w, 4u, e0, o0, e1, o1, e2, o2, e3, o3), q4_row_unorm(w, 5u, e0, o0, e1, o1, e2, o2, e3, o3),
                                     q4_row_unorm(w, 6u, e0, o0, e1, o1, e2, o2, e3, o3), q4_row_unorm(w, 7u, e0, o0, e1, o1, e2, o2, e3, o3)) * 255.0 + o) * sc[1];
                    a2 += (vec4<f32>(q4_row_unorm(w, 8u, e0, o0, e1, o1, e2, o2, e3, o3), q4_row_unorm(w, 9u, e0, o0, e1, o1, e2, o2, e3, o3),
                                     q4_row_unorm(w, 10u, e0, o0, e1, o1, e2, o2, e3, o3), q4_row_unorm(w, 11u, e0, o0, e1, o1, e2, o2, e3, o3)) * 255.0 + o) * sc[2];
                    a3 += (vec4<f32>(q4_row_unorm(w, 12u, e0, o0, e1, o1, e2, o2, e3, o3), q4_row_unorm(w, 13u, e0, o0, e1, o1, e2, o2, e3, o3),
                                     q4_row_unorm(w, 14u, e0, o0, e1, o1, e2, o2, e3, o3), q4_row_unorm(w, 15u, e0, o0, e1, o1, e2, o2, e3, o3)) * 255.0 + o) * sc[3];
                    continue;
                }
                a0 += vec4<f32>(q4_row(w, 0u, xc), q4_row(w, 1u, xc), q4_row(w, 2u, xc), q4_row(w, 3u, xc)) * sc[0];
                a1 += vec4<f32>(q4_row(w, 4u, xc), q4_row(w, 5u, xc), q4_row(w, 6u, xc), q4_row(w, 7u, xc)) * sc[1];
                a2 += vec4<f32>(q4_row(w, 8u, xc), q4_row(w, 9u, xc), q4_row(w, 10u, xc), q4_row(w, 11u, xc)) * sc[2];
                a3 += vec4<f32>(q4_row(w, 12u, xc), q4_row(w, 13u, xc), q4_row(w, 14u, xc), q4_row(w, 15u, xc)) * sc[3];
            }
        }
        case 1u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunk(xo, k);
                let w = chunk_word(n0, k / 32u, 16u);
                a0 += vec4<f32>(f16_row(w, 0u, xc), f16_row(w, 1u, xc), f16_row(w, 2u, xc), f16_row(w, 3u, xc));
                a1 += vec4<f32>(f16_row(w, 4u, xc), f16_row(w, 5u, xc), f16_row(w, 6u, xc), f16_row(w, 7u, xc));
                a2 += vec4<f32>(f16_row(w, 8u, xc), f16_row(w, 9u, xc), f16_row(w, 10u, xc), f16_row(w, 11u, xc));
                a3 += vec4<f32>(f16_row(w, 12u, xc), f16_row(w, 13u, xc), f16_row(w, 14u, xc), f16_row(w, 15u, xc));
            }
        }
        default: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunk(xo, k);
                let w = chunk_word(n0, k / 32u, 32u);
                a0 += vec4<f32>(f32_row(w, 0u, xc), f32_row(w, 1u, xc), f32_row(w, 2u, xc), f32_row(w, 3u, xc));
                a1 += vec4<f32>(f32_row(w, 4u, xc), f32_row(w, 5u, xc), f32_row(w, 6u, xc), f32_row(w, 7u, xc));
                a2 += vec4<f32>(f32_row(w, 8u, xc), f32_row(w, 9u, xc), f32_row(w, 10u, xc), f32_row(w, 11u, xc));
                a3 += vec4<f32>(f32_row(w, 12u, xc), f32_row(w, 13u, xc), f32_row(w, 14u, xc), f32_row(w, 15u, xc));
            }
        }
    }
    store4(m, n0, a0);
    store4(m, n0 + 4u, a1);
    store4(m, n0 + 8u, a2);
    store4(m, n0 + 12u, a3);
}
