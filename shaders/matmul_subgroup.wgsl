// matmul_subgroup: lavapipe's kernel for steps of several tokens (prompts) where the device has subgroups
// of at least 8 invocations (Tuning::choose; natively only, see gpu/kernels.rs): same math and Params as
// matmul/gemv (common/linear.wgsl), gemv_rows's bindings: W and its scales in textures
// (common/texels.wgsl), X from its uniform window where the step's rows fit in it, else from storage
// (pipeline constants: common/rows.wgsl).
//
//   v = X[x_row0 + m, :] . W[n, :] (+ b[n]) (GELU) ;  Y[m, y_col0 + n] (+)= v        n < N, m < M
//
// A thread owns one run of TILE_RUN = 16 rows of a tile (gemv_rows's rows, so the tiles are the same) for
// TM = 16 tokens: each chunk of W it loads and unpacks serves 16 tokens, each chunk of X 16 rows.
// Why subgroups: on lavapipe (Mesa 22.3, 8 lanes of 256 bits) a load from storage or from a uniform at a
// run-time index is a loop or gather over the 8 lanes for every 32-bit value (seen in the JIT code with
// perf: a vec4 storage load is ~240 instructions with a branch per lane), even where every lane asks for
// the same address, which every X load here does. matmul_rows (96 rows x 4 tokens) spreads that cost over
// 96 rows but then indexes its 384 accumulators at run time, and each such access is a loop over the
// lanes too. Here the 8 lanes load a chunk of X together, lane l its vec4 l (one load instruction for 32
// values), and subgroupBroadcast hands each vec4 to every lane (an extract and a splat), so X costs
// little even at 16 rows; the accumulators and X's chunks are written out, every index a constant, so
// they live in registers or fixed stack slots.
// Measured (gpt2-sized random q8 package, 128-token prompt, the prompt step's profile, ms for 12 layers,
// lavapipe, throwaway probes in matmul_rows's place, alternating, load 0.7-1.3): matmul_rows qkv 166,
// proj+residual 270, fc+gelu 221; 16 rows x 8 tokens with X loaded per lane (no subgroup) 168 / 263 /
// 222; the same with X through subgroupBroadcast 110 / 171 / 147; x 16 tokens 100 / 152 / 134 (x 12:
// 106 / 162 / 140; fma() in the dot products: no change). The epilogue is written out too: storing from
// an array of the accumulators indexed at run time cost the whole kernel 12% (115 / 164 / 151). Without
// subgroups matmul_rows stays.
// Needs: subgroups of >= 8 invocations, so the workgroup of 8 is one subgroup (the X loads depend on
// every lane: no thread returns early, and rows past N read the last tile's zero rows and are never
// stored); tokens past M are computed on token M - 1 and never stored; X is 0 past K, and a row's last
// chunk is zero-padded (see gemv_rows.wgsl).
// Dispatch: (ceil(N / (WG * ROWS)), ceil(M / TM)) workgroups of WG = 8 threads.

// The tile's shape (common/texels.wgsl) is this thread layout.
const WG: u32 = TILE_LANES;
const ROWS: u32 = TILE_RUN;
const TM: u32 = 16u;

// Words of W per chunk of 32 weights in this pipeline's format (WFMT is a constant: this folds away).
fn chunk_words() -> u32 {
    switch WFMT {
        case 1u: { return 16u; }
        case 2u: { return 8u; }
        case 3u: { return 4u; }
        default: { return 32u; }
    }
}

// W's chunk whose first texel is t, as 32 f32 (q8/q4 before their scale).
fn w_chunk(t: u32) -> array<vec4<f32>, 8> {
    switch WFMT {
        case 1u: {
            return f16_chunk(t);
        }
        case 2u: {
            let a = w_texel(t);
            let b = w_texel(t + 1u);
            return array<vec4<f32>, 8>(q8x4(a.x), q8x4(a.y), q8x4(a.z), q8x4(a.w), q8x4(b.x), q8x4(b.y), q8x4(b.z), q8x4(b.w));
        }
        case 3u: {
            let a = w_texel(t);
            let x = q4x8(a.x);
            let y = q4x8(a.y);
            let z = q4x8(a.z);
            let w = q4x8(a.w);
            return array<vec4<f32>, 8>(x[0], x[1], y[0], y[1], z[0], z[1], w[0], w[1]);
        }
        default: {
            return f32_chunk(t);
        }
    }
}

// The q8/q4 scales of chunk c of the run whose first row is n0 (rows 4 g .. 4 g + 4 in [g]); 1 for f32 and
// f16, which have none.
fn scales16(n0: u32, c: u32) -> array<vec4<f32>, 4> {
    if (WFMT >= 2u) {
        return run_scales(scale_elem(n0, c));
    }
    return array<vec4<f32>, 4>(vec4<f32>(1.0), vec4<f32>(1.0), vec4<f32>(1.0), vec4<f32>(1.0));
}

// The first value of token m's row of X (tokens past M: token M - 1's).
fn x_row(m: u32) -> u32 {
    return (p.x_row0 + min(m, p.M - 1u)) * p.x_stride;
}

// X[xo + k .. xo + k + 32), 0 past K (common/rows.wgsl's x_chunk), loaded by the subgroup together: lane
// `lane` loads the chunk's vec4 `lane` and subgroupBroadcast gives every lane all eight. Rows of X off a
// vec4 (X_ALIGNED false) also need a ninth vec4, which every lane loads at one address.
fn x_lanes(xo: u32, k: u32, lane: u32) -> array<vec4<f32>, 8> {
    let s = select(xo & 3u, 0u, X_ALIGNED);
    let b = (xo + k) / 4u;
    let v = x_vec(b + lane);
    var ninth = vec4<f32>(0.0);
    if (!X_ALIGNED) {
        ninth = x_vec(b + 8u);
    }
    let q0 = subgroupBroadcast(v, 0u);
    let q1 = subgroupBroadcast(v, 1u);
    let q2 = subgroupBroadcast(v, 2u);
    let q3 = subgroupBroadcast(v, 3u);
    let q4 = subgroupBroadcast(v, 4u);
    let q5 = subgroupBroadcast(v, 5u);
    let q6 = subgroupBroadcast(v, 6u);
    let q7 = subgroupBroadcast(v, 7u);
    return array<vec4<f32>, 8>(x_part(q0, q1, s, k), x_part(q1, q2, s, k + 4u), x_part(q2, q3, s, k + 8u), x_part(q3, q4, s, k + 12u),
                               x_part(q4, q5, s, k + 16u), x_part(q5, q6, s, k + 20u), x_part(q6, q7, s, k + 24u), x_part(q7, ninth, s, k + 28u));
}

// Four rows' chunks against one token's.
fn quad(w0: array<vec4<f32>, 8>, w1: array<vec4<f32>, 8>, w2: array<vec4<f32>, 8>, w3: array<vec4<f32>, 8>, x: array<vec4<f32>, 8>) -> vec4<f32> {
    return vec4<f32>(dot8(w0, x), dot8(w1, x), dot8(w2, x), dot8(w3, x));
}

// Token m's 16 outputs, rows n0 + 4 g + j in a_g[j], those that exist (written out: no array indexed at
// run time, see the header).
fn store16(m: u32, n0: u32, a0: vec4<f32>, a1: vec4<f32>, a2: vec4<f32>, a3: vec4<f32>) {
    if (m < p.M) {
        store4(m, n0, a0);
        store4(m, n0 + 4u, a1);
        store4(m, n0 + 8u, a2);
        store4(m, n0 + 12u, a3);
    }
}

@compute @workgroup_size(WG)
fn matmul_subgroup(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(subgroup_invocation_id) lane: u32) {
    let n0 = (wg.x * WG + li) * ROWS;
    let m0 = wg.y * TM;
    let cw = chunk_words();
    // Texels from one row's chunk to the next row's within a run (common/texels.wgsl's chunk_word).
    let step = TILE_LANES * cw / 4u;
    // a{t}_{g}: token m0 + t, rows n0 + 4 g .. n0 + 4 g + 4 (written out so they stay registers or fixed
    // stack slots: an array indexed at run time is a loop over the lanes per access on lavapipe).
    var a0_0 = vec4<f32>(0.0); var a0_1 = vec4<f32>(0.0); var a0_2 = vec4<f32>(0.0); var a0_3 = vec4<f32>(0.0);
    var a1_0 = vec4<f32>(0.0); var a1_1 = vec4<f32>(0.0); var a1_2 = vec4<f32>(0.0); var a1_3 = vec4<f32>(0.0);
    var a2_0 = vec4<f32>(0.0); var a2_1 = vec4<f32>(0.0); var a2_2 = vec4<f32>(0.0); var a2_3 = vec4<f32>(0.0);
    var a3_0 = vec4<f32>(0.0); var a3_1 = vec4<f32>(0.0); var a3_2 = vec4<f32>(0.0); var a3_3 = vec4<f32>(0.0);
    var a4_0 = vec4<f32>(0.0); var a4_1 = vec4<f32>(0.0); var a4_2 = vec4<f32>(0.0); var a4_3 = vec4<f32>(0.0);
    var a5_0 = vec4<f32>(0.0); var a5_1 = vec4<f32>(0.0); var a5_2 = vec4<f32>(0.0); var a5_3 = vec4<f32>(0.0);
    var a6_0 = vec4<f32>(0.0); var a6_1 = vec4<f32>(0.0); var a6_2 = vec4<f32>(0.0); var a6_3 = vec4<f32>(0.0);
    var a7_0 = vec4<f32>(0.0); var a7_1 = vec4<f32>(0.0); var a7_2 = vec4<f32>(0.0); var a7_3 = vec4<f32>(0.0);
    var a8_0 = vec4<f32>(0.0); var a8_1 = vec4<f32>(0.0); var a8_2 = vec4<f32>(0.0); var a8_3 = vec4<f32>(0.0);
    var a9_0 = vec4<f32>(0.0); var a9_1 = vec4<f32>(0.0); var a9_2 = vec4<f32>(0.0); var a9_3 = vec4<f32>(0.0);
    var a10_0 = vec4<f32>(0.0); var a10_1 = vec4<f32>(0.0); var a10_2 = vec4<f32>(0.0); var a10_3 = vec4<f32>(0.0);
    var a11_0 = vec4<f32>(0.0); var a11_1 = vec4<f32>(0.0); var a11_2 = vec4<f32>(0.0); var a11_3 = vec4<f32>(0.0);
    var a12_0 = vec4<f32>(0.0); var a12_1 = vec4<f32>(0.0); var a12_2 = vec4<f32>(0.0); var a12_3 = vec4<f32>(0.0);
    var a13_0 = vec4<f32>(0.0); var a13_1 = vec4<f32>(0.0); var a13_2 = vec4<f32>(0.0); var a13_3 = vec4<f32>(0.0);
    var a14_0 = vec4<f32>(0.0); var a14_1 = vec4<f32>(0.0); var a14_2 = vec4<f32>(0.0); var a14_3 = vec4<f32>(0.0);
    var a15_0 = vec4<f32>(0.0); var a15_1 = vec4<f32>(0.0); var a15_2 = vec4<f32>(0.0); var a15_3 = vec4<f32>(0.0);
    for (var k = 0u; k < p.K; k += 32u) {
        let x0 = x_lanes(x_row(m0 + 0u), k, lane);
        let x1 = x_lanes(x_row(m0 + 1u), k, lane);
        let x2 = x_lanes(x_row(m0 + 2u), k, lane);
        let x3 = x_lanes(x_row(m0 + 3u), k, lane);
        let x4 = x_lanes(x_row(m0 + 4u), k, lane);
        let x5 = x_lanes(x_row(m0 + 5u), k, lane);
        let x6 = x_lanes(x_row(m0 + 6u), k, lane);
        let x7 = x_lanes(x_row(m0 + 7u), k, lane);
        let x8 = x_lanes(x_row(m0 + 8u), k, lane);
        let x9 = x_lanes(x_row(m0 + 9u), k, lane);
        let x10 = x_lanes(x_row(m0 + 10u), k, lane);
        let x11 = x_lanes(x_row(m0 + 11u), k, lane);
        let x12 = x_lanes(x_row(m0 + 12u), k, lane);
        let x13 = x_lanes(x_row(m0 + 13u), k, lane);
        let x14 = x_lanes(x_row(m0 + 14u), k, lane);
        let x15 = x_lanes(x_row(m0 + 15u), k, lane);
        let sc = scales16(n0, k / 32u);
        let t0 = chunk_word(n0, k / 32u, cw) / 4u;
        {
            let w0 = w_chunk(t0 + 0u * step); let w1 = w_chunk(t0 + 1u * step); let w2 = w_chunk(t0 + 2u * step); let w3 = w_chunk(t0 + 3u * step);
            a0_0 += quad(w0, w1, w2, w3, x0) * sc[0]; a1_0 += quad(w0, w1, w2, w3, x1) * sc[0];
            a2_0 += quad(w0, w1, w2, w3, x2) * sc[0]; a3_0 += quad(w0, w1, w2, w3, x3) * sc[0];
            a4_0 += quad(w0, w1, w2, w3, x4) * sc[0]; a5_0 += quad(w0, w1, w2, w3, x5) * sc[0];
            a6_0 += quad(w0, w1, w2, w3, x6) * sc[0]; a7_0 += quad(w0, w1, w2, w3, x7) * sc[0];
            a8_0 += quad(w0, w1, w2, w3, x8) * sc[0]; a9_0 += quad(w0, w1, w2, w3, x9) * sc[0];
            a10_0 += quad(w0, w1, w2, w3, x10) * sc[0]; a11_0 += quad(w0, w1, w2, w3, x11) * sc[0];
            a12_0 += quad(w0, w1, w2, w3, x12) * sc[0]; a13_0 += quad(w0, w1, w2, w3, x13) * sc[0];
            a14_0 += quad(w0, w1, w2, w3, x14) * sc[0]; a15_0 += quad(w0, w1, w2, w3, x15) * sc[0];
        }
        {
            let w0 = w_chunk(t0 + 4u * step); let w1 = w_chunk(t0 + 5u * step); let w2 = w_chunk(t0 + 6u * step); let w3 = w_chunk(t0 + 7u * step);
            a0_1 += quad(w0, w1, w2, w3, x0) * sc[1]; a1_1 += quad(w0, w1, w2, w3, x1) * sc[1];
            a2_1 += quad(w0, w1, w2, w3, x2) * sc[1]; a3_1 += quad(w0, w1, w2, w3, x3) * sc[1];
            a4_1 += quad(w0, w1, w2, w3, x4) * sc[1]; a5_1 += quad(w0, w1, w2, w3, x5) * sc[1];
            a6_1 += quad(w0, w1, w2, w3, x6) * sc[1]; a7_1 += quad(w0, w1, w2, w3, x7) * sc[1];
            a8_1 += quad(w0, w1, w2, w3, x8) * sc[1]; a9_1 += quad(w0, w1, w2, w3, x9) * sc[1];
            a10_1 += quad(w0, w1, w2, w3, x10) * sc[1]; a11_1 += quad(w0, w1, w2, w3, x11) * sc[1];
            a12_1 += quad(w0, w1, w2, w3, x12) * sc[1]; a13_1 += quad(w0, w1, w2, w3, x13) * sc[1];
            a14_1 += quad(w0, w1, w2, w3, x14) * sc[1]; a15_1 += quad(w0, w1, w2, w3, x15) * sc[1];
        }
        {
            let w0 = w_chunk(t0 + 8u * step); let w1 = w_chunk(t0 + 9u * step); let w2 = w_chunk(t0 + 10u * step); let w3 = w_chunk(t0 + 11u * step);
            a0_2 += quad(w0, w1, w2, w3, x0) * sc[2]; a1_2 += quad(w0, w1, w2, w3, x1) * sc[2];
            a2_2 += quad(w0, w1, w2, w3, x2) * sc[2]; a3_2 += quad(w0, w1, w2, w3, x3) * sc[2];
            a4_2 += quad(w0, w1, w2, w3, x4) * sc[2]; a5_2 += quad(w0, w1, w2, w3, x5) * sc[2];
            a6_2 += quad(w0, w1, w2, w3, x6) * sc[2]; a7_2 += quad(w0, w1, w2, w3, x7) * sc[2];
            a8_2 += quad(w0, w1, w2, w3, x8) * sc[2]; a9_2 += quad(w0, w1, w2, w3, x9) * sc[2];
            a10_2 += quad(w0, w1, w2, w3, x10) * sc[2]; a11_2 += quad(w0, w1, w2, w3, x11) * sc[2];
            a12_2 += quad(w0, w1, w2, w3, x12) * sc[2]; a13_2 += quad(w0, w1, w2, w3, x13) * sc[2];
            a14_2 += quad(w0, w1, w2, w3, x14) * sc[2]; a15_2 += quad(w0, w1, w2, w3, x15) * sc[2];
        }
        {
            let w0 = w_chunk(t0 + 12u * step); let w1 = w_chunk(t0 + 13u * step); let w2 = w_chunk(t0 + 14u * step); let w3 = w_chunk(t0 + 15u * step);
            a0_3 += quad(w0, w1, w2, w3, x0) * sc[3]; a1_3 += quad(w0, w1, w2, w3, x1) * sc[3];
            a2_3 += quad(w0, w1, w2, w3, x2) * sc[3]; a3_3 += quad(w0, w1, w2, w3, x3) * sc[3];
            a4_3 += quad(w0, w1, w2, w3, x4) * sc[3]; a5_3 += quad(w0, w1, w2, w3, x5) * sc[3];
            a6_3 += quad(w0, w1, w2, w3, x6) * sc[3]; a7_3 += quad(w0, w1, w2, w3, x7) * sc[3];
            a8_3 += quad(w0, w1, w2, w3, x8) * sc[3]; a9_3 += quad(w0, w1, w2, w3, x9) * sc[3];
            a10_3 += quad(w0, w1, w2, w3, x10) * sc[3]; a11_3 += quad(w0, w1, w2, w3, x11) * sc[3];
            a12_3 += quad(w0, w1, w2, w3, x12) * sc[3]; a13_3 += quad(w0, w1, w2, w3, x13) * sc[3];
            a14_3 += quad(w0, w1, w2, w3, x14) * sc[3]; a15_3 += quad(w0, w1, w2, w3, x15) * sc[3];
        }
    }
    store16(m0 + 0u, n0, a0_0, a0_1, a0_2, a0_3);
    store16(m0 + 1u, n0, a1_0, a1_1, a1_2, a1_3);
    store16(m0 + 2u, n0, a2_0, a2_1, a2_2, a2_3);
    store16(m0 + 3u, n0, a3_0, a3_1, a3_2, a3_3);
    store16(m0 + 4u, n0, a4_0, a4_1, a4_2, a4_3);
    store16(m0 + 5u, n0, a5_0, a5_1, a5_2, a5_3);
    store16(m0 + 6u, n0, a6_0, a6_1, a6_2, a6_3);
    store16(m0 + 7u, n0, a7_0, a7_1, a7_2, a7_3);
    store16(m0 + 8u, n0, a8_0, a8_1, a8_2, a8_3);
    store16(m0 + 9u, n0, a9_0, a9_1, a9_2, a9_3);
    store16(m0 + 10u, n0, a10_0, a10_1, a10_2, a10_3);
    store16(m0 + 11u, n0, a11_0, a11_1, a11_2, a11_3);
    store16(m0 + 12u, n0, a12_0, a12_1, a12_2, a12_3);
    store16(m0 + 13u, n0, a13_0, a13_1, a13_2, a13_3);
    store16(m0 + 14u, n0, a14_0, a14_1, a14_2, a14_3);
    store16(m0 + 15u, n0, a15_0, a15_1, a15_2, a15_3);

}
