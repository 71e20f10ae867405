// matmul_rows: the CPU tuning's kernel for steps of several tokens (prompts): same math and Params as
// matmul/gemv (common/linear.wgsl), gemv_rows's bindings: W and its scales in textures
// (common/texels.wgsl), X from its uniform window where the prompt's rows fit in it, else from storage
// (pipeline constants: common/rows.wgsl).
//
//   v = X[x_row0 + m, :] . W[n, :] (+ b[n]) (GELU) ;  Y[m, y_col0 + n] (+)= v        n < N, m < M
//
// gemv_rows.wgsl with a second dimension: a thread owns ROWS = RUNS x 16 = 96 output rows of TM = 4
// tokens, so each chunk of W it loads (and unpacks, and scales) serves 4 tokens, and each chunk of X 96
// rows. On lavapipe every load, from storage, a uniform or a texture, is a loop or gather over the 8
// lanes (~20-30 instructions per 32-bit value, seen in the JIT code), while a multiply-add is one
// instruction per SIMD vector, so what counts is how many multiply-adds each loaded value feeds.
// Measured (throwaway probe, gpt2's four prompt matrices at M = 128, q8, X from storage, GFLOP per
// CPU-second, load 3): 16 rows x 4 tokens 2.0 (the shipped kernel then), 32 x 4 4.6, 64 x 4 6.1, 96 x 4
// 8.0, 128 x 4 7.4; 96 x 2 5.4, 96 x 6 6.8 (64 x 8 fell off a cliff, 0.12: 512 accumulators per thread).
// X through the window instead of storage adds only ~15% at this size (M = 16), since each chunk of X
// now serves 96 rows; the format switch outside the loops measured no slower than a q8-only kernel.
// A thread's rows: its run of TILE_RUN = 16 rows in each of RUNS = 6 consecutive 128-row tiles (the
// tiles' thread layout, common/texels.wgsl, so the 8 lanes still fetch adjacent texels), so a workgroup
// covers 768 rows, a whole number of times gpt2's N (768, 2304, 3072), and walks only the tiles that
// hold rows. Tokens past M are computed on token M - 1 and never stored; rows past N read the last
// tile's zero rows and are never stored. X is 0 past K, and a row's last chunk is zero-padded (see
// gemv_rows.wgsl). The tiled matmul's barriers cost more still on CPU adapters.
// Dispatch: (ceil(N / (WG * ROWS)), ceil(M / TM)) workgroups of WG = 8 threads.

// The tile's shape (common/texels.wgsl) is this thread layout.
const WG: u32 = TILE_LANES;
const RUNS: u32 = 6u;
const ROWS: u32 = RUNS * TILE_RUN;
const TM: u32 = 4u;

// W[n, k .. k + 32) as f32 (q8/q4 with their scale applied), one function per format: the format switch
// stays outside the loops. The chunk's texels: common/texels.wgsl (chunk_word).
fn w_f32(n: u32, k: u32) -> array<vec4<f32>, 8> {
    let t = chunk_word(n, k / 32u, 32u) / 4u;
    var c: array<vec4<f32>, 8>;
    for (var j = 0u; j < 8u; j++) {
        c[j] = bitcast<vec4<f32>>(w_texel(t + j));
    }
    return c;
}

fn w_f16(n: u32, k: u32) -> array<vec4<f32>, 8> {
    let t = chunk_word(n, k / 32u, 16u) / 4u;
    var c: array<vec4<f32>, 8>;
    for (var j = 0u; j < 4u; j++) {
        let a = w_texel(t + j);
        c[2u * j] = vec4<f32>(unpack2x16float(a.x), unpack2x16float(a.y));
        c[2u * j + 1u] = vec4<f32>(unpack2x16float(a.z), unpack2x16float(a.w));
    }
    return c;
}

// q8: a chunk is two texels.
fn w_q8(n: u32, k: u32) -> array<vec4<f32>, 8> {
    let t = chunk_word(n, k / 32u, 8u) / 4u;
    let s = scale_of(n, k);
    let a = w_texel(t);
    let b = w_texel(t + 1u);
    return array<vec4<f32>, 8>(q8x4(a.x) * s, q8x4(a.y) * s, q8x4(a.z) * s, q8x4(a.w) * s,
                               q8x4(b.x) * s, q8x4(b.y) * s, q8x4(b.z) * s, q8x4(b.w) * s);
}

// q4: one texel.
fn w_q4(n: u32, k: u32) -> array<vec4<f32>, 8> {
    let a = w_texel(chunk_word(n, k / 32u, 4u) / 4u);
    let s = scale_of(n, k);
    var c: array<vec4<f32>, 8>;
    for (var j = 0u; j < 4u; j++) {
        let v = q4x8(a[j]);
        c[2u * j] = v[0] * s;
        c[2u * j + 1u] = v[1] * s;
    }
    return c;
}

// X[k .. k + 32) of tokens m0 .. m0 + TM (clamped to token M - 1).
fn x_chunks(m0: u32, k: u32) -> array<array<vec4<f32>, 8>, TM> {
    var c: array<array<vec4<f32>, 8>, TM>;
    for (var t = 0u; t < TM; t++) {
        c[t] = x_chunk((p.x_row0 + min(m0 + t, p.M - 1u)) * p.x_stride, k);
    }
    return c;
}

// Row i (< ROWS) of the thread whose first row is n0: its run of TILE_RUN rows in each of RUNS tiles.
fn row_of(n0: u32, i: u32) -> u32 {
    return n0 + (i / TILE_RUN) * TILE_ROWS + i % TILE_RUN;
}

@compute @workgroup_size(WG)
fn matmul_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let tile0 = wg.x * RUNS;
    let n0 = tile0 * TILE_ROWS + li * TILE_RUN;
    let m0 = wg.y * TM;
    // The rows of this workgroup's tiles that exist (the same for all its threads, so the loops below stay
    // uniform): ROWS but in the last workgroup of an N past a multiple of WG * ROWS.
    let rows = min(ROWS, ((p.N + TILE_ROWS - 1u) / TILE_ROWS - tile0) * TILE_RUN);
    // acc[i][t]: row row_of(n0, i), token m0 + t.
    var acc: array<array<f32, TM>, ROWS>;
    switch WFMT {
        case 2u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunks(m0, k);
                for (var i = 0u; i < rows; i++) {
                    let wc = w_q8(row_of(n0, i), k);
                    for (var t = 0u; t < TM; t++) { acc[i][t] += dot8(wc, xc[t]); }
                }
            }
        }
        case 3u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunks(m0, k);
                for (var i = 0u; i < rows; i++) {
                    let wc = w_q4(row_of(n0, i), k);
                    for (var t = 0u; t < TM; t++) { acc[i][t] += dot8(wc, xc[t]); }
                }
            }
        }
        case 1u: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunks(m0, k);
                for (var i = 0u; i < rows; i++) {
                    let wc = w_f16(row_of(n0, i), k);
                    for (var t = 0u; t < TM; t++) { acc[i][t] += dot8(wc, xc[t]); }
                }
            }
        }
        default: {
            for (var k = 0u; k < p.K; k += 32u) {
                let xc = x_chunks(m0, k);
                for (var i = 0u; i < rows; i++) {
                    let wc = w_f32(row_of(n0, i), k);
                    for (var t = 0u; t < TM; t++) { acc[i][t] += dot8(wc, xc[t]); }
                }
            }
        }
    }
    for (var i = 0u; i < rows; i++) {
        let n = row_of(n0, i);
        for (var t = 0u; t < TM; t++) {
            if (m0 + t < p.M && n < p.N) {
                store_y(m0 + t, n, acc[i][t]);
            }
        }
    }
}
