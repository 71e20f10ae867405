// matmul_run: the SwiftShader tuning's kernel for steps of several tokens (prompts): same math and Params
// as matmul/gemv (common/linear.wgsl), gemv_rows's bindings: W and its scales in textures
// (common/texels.wgsl), X from its uniform window where the step's rows fit in it, else from storage
// (pipeline constants: common/rows.wgsl).
//
//   v = X[x_row0 + m, :] . W[n, :] (+ b[n]) (GELU) ;  Y[m, y_col0 + n] (+)= v        n < N, m < M
//
// A thread owns one run of TILE_RUN = 16 rows of a tile (gemv_rows's rows, so the tiles are the same) for
// TM = 6 tokens: each chunk of W it loads and unpacks serves 6 tokens, each chunk of X 16 rows. Why not
// matmul_rows (96 rows x 4 tokens, lavapipe's shape): on SwiftShader (Subzero, SSE, 4 invocations per
// vector) every value lives in memory between instructions and the cost is the instructions, not the
// loads; q8 and q4 are unpacked with unpack4x8unorm (a vector shift is a loop over the lanes there: see
// gemv_rows.wgsl's Q8_UNORM), and the 16 rows are a loop, not unrolled: the unrolled kernel ran ~1.35x
// faster but took 1.9 s to compile against 0.4 (q8 alone), and the browser compiles at load.
// Measured (throwaway probe, Chromium's SwiftShader natively, one gpt2 layer set of q8 matrices x 12, an
// 11-token prompt, CPU ms per token, alternating, load 3-3.8): gemv_rows once per token (Q8_UNORM)
// 200-300, this shape 95-103 (16 x 4: 90-120, 16 x 8: 113-158); a thread per row walking K
// with X reloaded per row 550-630.
// Tokens past M are computed on token M - 1 and never stored; rows past N read the last tile's zero rows
// and are never stored. X is 0 past K, and a row's last chunk is zero-padded (see gemv_rows.wgsl).
// Dispatch: (ceil(N / (WG * ROWS)), ceil(M / TM)) workgroups of WG = 8 threads.

// The tile's shape (common/texels.wgsl) is this thread layout.
const WG: u32 = TILE_LANES;
const ROWS: u32 = TILE_RUN;
const TM: u32 = 6u;

// W's chunk as 32 f32 (q8/q4 with their scale s applied), from its first tiled word w (chunk_word), one
// function per format: the format switch stays outside the loops (f32 and f16: common/rows.wgsl's
// f32_chunk and f16_chunk, from the chunk's first texel w / 4).

// q8: two texels. unpack4x8unorm of the word xor 0x80808080 is (q + 128) / 255 per byte, exact for every
// byte, so q s = u (255 s) - 128 s.
fn w_q8(w: u32, s: f32) -> array<vec4<f32>, 8> {
    let a = w_texel(w / 4u) ^ vec4<u32>(0x80808080u);
    let b = w_texel(w / 4u + 1u) ^ vec4<u32>(0x80808080u);
    let m = 255.0 * s;
    let o = vec4<f32>(-128.0 * s);
    return array<vec4<f32>, 8>(unpack4x8unorm(a.x) * m + o, unpack4x8unorm(a.y) * m + o, unpack4x8unorm(a.z) * m + o, unpack4x8unorm(a.w) * m + o,
                               unpack4x8unorm(b.x) * m + o, unpack4x8unorm(b.y) * m + o, unpack4x8unorm(b.z) * m + o, unpack4x8unorm(b.w) * m + o);
}

// q4: one texel, its values in common/rows.wgsl's q4_split order (word j's even values, then its odd ones), as gemv_rows's
// Q8_UNORM q4 reads them: the low nibbles of a word's bytes (w & 0x0f0f0f0f) are its values 0, 2, 4, 6 plus
// 8, the high ones (w >> 4, masked) 1, 3, 5, 7 plus 8; unpack4x8unorm gives (q + 8) / 255, so q s = u (255
// s) - 8 s. One vector shift per texel instead of q4x8's seven per word (gemv_rows.wgsl says what that
// bought for decode).
fn w_q4(w: u32, s: f32) -> array<vec4<f32>, 8> {
    let a = w_texel(w / 4u);
    let lo = a & vec4<u32>(0x0f0f0f0fu);
    let hi = (a >> vec4<u32>(4u)) & vec4<u32>(0x0f0f0f0fu);
    let m = 255.0 * s;
    let o = vec4<f32>(-8.0 * s);
    return array<vec4<f32>, 8>(unpack4x8unorm(lo.x) * m + o, unpack4x8unorm(hi.x) * m + o, unpack4x8unorm(lo.y) * m + o, unpack4x8unorm(hi.y) * m + o,
                               unpack4x8unorm(lo.z) * m + o, unpack4x8unorm(hi.z) * m + o, unpack4x8unorm(lo.w) * m + o, unpack4x8unorm(hi.w) * m + o);
}

@compute @workgroup_size(WG)
fn matmul_run(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n0 = (wg.x * WG + li) * ROWS;
    let m0 = wg.y * TM;
    if (n0 >= p.N) {
        return;
    }
    // acc[i][t]: row n0 + i, token m0 + t. The tokens are written out (c0 .. c5: X's chunk of each), the
    // rows a loop (see the header).
    var acc: array<array<f32, TM>, ROWS>;
    switch WFMT {
        case 2u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let c0 = x_chunk((p.x_row0 + min(m0 + 0u, p.M - 1u)) * p.x_stride, k);
                let c1 = x_chunk((p.x_row0 + min(m0 + 1u, p.M - 1u)) * p.x_stride, k);
                let c2 = x_chunk((p.x_row0 + min(m0 + 2u, p.M - 1u)) * p.x_stride, k);
                let c3 = x_chunk((p.x_row0 + min(m0 + 3u, p.M - 1u)) * p.x_stride, k);
                let c4 = x_chunk((p.x_row0 + min(m0 + 4u, p.M - 1u)) * p.x_stride, k);
                let c5 = x_chunk((p.x_row0 + min(m0 + 5u, p.M - 1u)) * p.x_stride, k);
                let sc = run_scales(scale_elem(n0, k / 32u));
                for (var i = 0u; i < ROWS; i++) {
                    let wc = w_q8(chunk_word(n0, k / 32u, 8u) + i * TILE_LANES * 8u, sc[i / 4u][i % 4u]);
                    acc[i][0] += dot(wc[0], c0[0]) + dot(wc[1], c0[1]) + dot(wc[2], c0[2]) + dot(wc[3], c0[3]) + dot(wc[4], c0[4]) + dot(wc[5], c0[5]) + dot(wc[6], c0[6]) + dot(wc[7], c0[7]);
                    acc[i][1] += dot(wc[0], c1[0]) + dot(wc[1], c1[1]) + dot(wc[2], c1[2]) + dot(wc[3], c1[3]) + dot(wc[4], c1[4]) + dot(wc[5], c1[5]) + dot(wc[6], c1[6]) + dot(wc[7], c1[7]);
                    acc[i][2] += dot(wc[0], c2[0]) + dot(wc[1], c2[1]) + dot(wc[2], c2[2]) + dot(wc[3], c2[3]) + dot(wc[4], c2[4]) + dot(wc[5], c2[5]) + dot(wc[6], c2[6]) + dot(wc[7], c2[7]);
                    acc[i][3] += dot(wc[0], c3[0]) + dot(wc[1], c3[1]) + dot(wc[2], c3[2]) + dot(wc[3], c3[3]) + dot(wc[4], c3[4]) + dot(wc[5], c3[5]) + dot(wc[6], c3[6]) + dot(wc[7], c3[7]);
                    acc[i][4] += dot(wc[0], c4[0]) + dot(wc[1], c4[1]) + dot(wc[2], c4[2]) + dot(wc[3], c4[3]) + dot(wc[4], c4[4]) + dot(wc[5], c4[5]) + dot(wc[6], c4[6]) + dot(wc[7], c4[7]);
                    acc[i][5] += dot(wc[0], c5[0]) + dot(wc[1], c5[1]) + dot(wc[2], c5[2]) + dot(wc[3], c5[3]) + dot(wc[4], c5[4]) + dot(wc[5], c5[5]) + dot(wc[6], c5[6]) + dot(wc[7], c5[7]);
                }
            }
        }
        case 3u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let c0 = q4_split(x_chunk((p.x_row0 + min(m0 + 0u, p.M - 1u)) * p.x_stride, k));
                let c1 = q4_split(x_chunk((p.x_row0 + min(m0 + 1u, p.M - 1u)) * p.x_stride, k));
                let c2 = q4_split(x_chunk((p.x_row0 + min(m0 + 2u, p.M - 1u)) * p.x_stride, k));
                let c3 = q4_split(x_chunk((p.x_row0 + min(m0 + 3u, p.M - 1u)) * p.x_stride, k));
                let c4 = q4_split(x_chunk((p.x_row0 + min(m0 + 4u, p.M - 1u)) * p.x_stride, k));
                let c5 = q4_split(x_chunk((p.x_row0 + min(m0 + 5u, p.M - 1u)) * p.x_stride, k));
                let sc = run_scales(scale_elem(n0, k / 32u));
                for (var i = 0u; i < ROWS; i++) {
                    let wc = w_q4(chunk_word(n0, k / 32u, 4u) + i * TILE_LANES * 4u, sc[i / 4u][i % 4u]);
                    acc[i][0] += dot(wc[0], c0[0]) + dot(wc[1], c0[1]) + dot(wc[2], c0[2]) + dot(wc[3], c0[3]) + dot(wc[4], c0[4]) + dot(wc[5], c0[5]) + dot(wc[6], c0[6]) + dot(wc[7], c0[7]);
                    acc[i][1] += dot(wc[0], c1[0]) + dot(wc[1], c1[1]) + dot(wc[2], c1[2]) + dot(wc[3], c1[3]) + dot(wc[4], c1[4]) + dot(wc[5], c1[5]) + dot(wc[6], c1[6]) + dot(wc[7], c1[7]);
                    acc[i][2] += dot(wc[0], c2[0]) + dot(wc[1], c2[1]) + dot(wc[2], c2[2]) + dot(wc[3], c2[3]) + dot(wc[4], c2[4]) + dot(wc[5], c2[5]) + dot(wc[6], c2[6]) + dot(wc[7], c2[7]);
                    acc[i][3] += dot(wc[0], c3[0]) + dot(wc[1], c3[1]) + dot(wc[2], c3[2]) + dot(wc[3], c3[3]) + dot(wc[4], c3[4]) + dot(wc[5], c3[5]) + dot(wc[6], c3[6]) + dot(wc[7], c3[7]);
                    acc[i][4] += dot(wc[0], c4[0]) + dot(wc[1], c4[1]) + dot(wc[2], c4[2]) + dot(wc[3], c4[3]) + dot(wc[4], c4[4]) + dot(wc[5], c4[5]) + dot(wc[6], c4[6]) + dot(wc[7], c4[7]);
                    acc[i][5] += dot(wc[0], c5[0]) + dot(wc[1], c5[1]) + dot(wc[2], c5[2]) + dot(wc[3], c5[3]) + dot(wc[4], c5[4]) + dot(wc[5], c5[5]) + dot(wc[6], c5[6]) + dot(wc[7], c5[7]);
                }
            }
        }
        case 1u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let c0 = x_chunk((p.x_row0 + min(m0 + 0u, p.M - 1u)) * p.x_stride, k);
                let c1 = x_chunk((p.x_row0 + min(m0 + 1u, p.M - 1u)) * p.x_stride, k);
                let c2 = x_chunk((p.x_row0 + min(m0 + 2u, p.M - 1u)) * p.x_stride, k);
                let c3 = x_chunk((p.x_row0 + min(m0 + 3u, p.M - 1u)) * p.x_stride, k);
                let c4 = x_chunk((p.x_row0 + min(m0 + 4u, p.M - 1u)) * p.x_stride, k);
                let c5 = x_chunk((p.x_row0 + min(m0 + 5u, p.M - 1u)) * p.x_stride, k);
                for (var i = 0u; i < ROWS; i++) {
                    let wc = f16_chunk((chunk_word(n0, k / 32u, 16u) + i * TILE_LANES * 16u) / 4u);
                    acc[i][0] += dot(wc[0], c0[0]) + dot(wc[1], c0[1]) + dot(wc[2], c0[2]) + dot(wc[3], c0[3]) + dot(wc[4], c0[4]) + dot(wc[5], c0[5]) + dot(wc[6], c0[6]) + dot(wc[7], c0[7]);
                    acc[i][1] += dot(wc[0], c1[0]) + dot(wc[1], c1[1]) + dot(wc[2], c1[2]) + dot(wc[3], c1[3]) + dot(wc[4], c1[4]) + dot(wc[5], c1[5]) + dot(wc[6], c1[6]) + dot(wc[7], c1[7]);
                    acc[i][2] += dot(wc[0], c2[0]) + dot(wc[1], c2[1]) + dot(wc[2], c2[2]) + dot(wc[3], c2[3]) + dot(wc[4], c2[4]) + dot(wc[5], c2[5]) + dot(wc[6], c2[6]) + dot(wc[7], c2[7]);
                    acc[i][3] += dot(wc[0], c3[0]) + dot(wc[1], c3[1]) + dot(wc[2], c3[2]) + dot(wc[3], c3[3]) + dot(wc[4], c3[4]) + dot(wc[5], c3[5]) + dot(wc[6], c3[6]) + dot(wc[7], c3[7]);
                    acc[i][4] += dot(wc[0], c4[0]) + dot(wc[1], c4[1]) + dot(wc[2], c4[2]) + dot(wc[3], c4[3]) + dot(wc[4], c4[4]) + dot(wc[5], c4[5]) + dot(wc[6], c4[6]) + dot(wc[7], c4[7]);
                    acc[i][5] += dot(wc[0], c5[0]) + dot(wc[1], c5[1]) + dot(wc[2], c5[2]) + dot(wc[3], c5[3]) + dot(wc[4], c5[4]) + dot(wc[5], c5[5]) + dot(wc[6], c5[6]) + dot(wc[7], c5[7]);
                }
            }
        }
        default: {
            for (var k = 0u; k < p.K; k += 32u) {
                let c0 = x_chunk((p.x_row0 + min(m0 + 0u, p.M - 1u)) * p.x_stride, k);
                let c1 = x_chunk((p.x_row0 + min(m0 + 1u, p.M - 1u)) * p.x_stride, k);
                let c2 = x_chunk((p.x_row0 + min(m0 + 2u, p.M - 1u)) * p.x_stride, k);
                let c3 = x_chunk((p.x_row0 + min(m0 + 3u, p.M - 1u)) * p.x_stride, k);
                let c4 = x_chunk((p.x_row0 + min(m0 + 4u, p.M - 1u)) * p.x_stride, k);
                let c5 = x_chunk((p.x_row0 + min(m0 + 5u, p.M - 1u)) * p.x_stride, k);
                for (var i = 0u; i < ROWS; i++) {
                    let wc = f32_chunk((chunk_word(n0, k / 32u, 32u) + i * TILE_LANES * 32u) / 4u);
                    acc[i][0] += dot(wc[0], c0[0]) + dot(wc[1], c0[1]) + dot(wc[2], c0[2]) + dot(wc[3], c0[3]) + dot(wc[4], c0[4]) + dot(wc[5], c0[5]) + dot(wc[6], c0[6]) + dot(wc[7], c0[7]);
                    acc[i][1] += dot(wc[0], c1[0]) + dot(wc[1], c1[1]) + dot(wc[2], c1[2]) + dot(wc[3], c1[3]) + dot(wc[4], c1[4]) + dot(wc[5], c1[5]) + dot(wc[6], c1[6]) + dot(wc[7], c1[7]);
                    acc[i][2] += dot(wc[0], c2[0]) + dot(wc[1], c2[1]) + dot(wc[2], c2[2]) + dot(wc[3], c2[3]) + dot(wc[4], c2[4]) + dot(wc[5], c2[5]) + dot(wc[6], c2[6]) + dot(wc[7], c2[7]);
                    acc[i][3] += dot(wc[0], c3[0]) + dot(wc[1], c3[1]) + dot(wc[2], c3[2]) + dot(wc[3], c3[3]) + dot(wc[4], c3[4]) + dot(wc[5], c3[5]) + dot(wc[6], c3[6]) + dot(wc[7], c3[7]);
                    acc[i][4] += dot(wc[0], c4[0]) + dot(wc[1], c4[1]) + dot(wc[2], c4[2]) + dot(wc[3], c4[3]) + dot(wc[4], c4[4]) + dot(wc[5], c4[5]) + dot(wc[6], c4[6]) + dot(wc[7], c4[7]);
                    acc[i][5] += dot(wc[0], c5[0]) + dot(wc[1], c5[1]) + dot(wc[2], c5[2]) + dot(wc[3], c5[3]) + dot(wc[4], c5[4]) + dot(wc[5], c5[5]) + dot(wc[6], c5[6]) + dot(wc[7], c5[7]);
                }
            }
        }
    }
    for (var i = 0u; i < ROWS; i++) {
        if (n0 + i >= p.N) {
            break;
        }
        if (m0 + 0u < p.M) { store_y(m0 + 0u, n0 + i, acc[i][0]); }
        if (m0 + 1u < p.M) { store_y(m0 + 1u, n0 + i, acc[i][1]); }
        if (m0 + 2u < p.M) { store_y(m0 + 2u, n0 + i, acc[i][2]); }
        if (m0 + 3u < p.M) { store_y(m0 + 3u, n0 + i, acc[i][3]); }
        if (m0 + 4u < p.M) { store_y(m0 + 4u, n0 + i, acc[i][4]); }
        if (m0 + 5u < p.M) { store_y(m0 + 5u, n0 + i, acc[i][5]); }
    }
}
