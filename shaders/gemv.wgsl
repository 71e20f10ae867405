// gemv: the few-token (decode) form of matmul: same math, same Params and bindings.
//
//   v = X[x_row0 + m, :] . W[n, :] (+ b[n]) (GELU) ;  Y[m, y_col0 + n] (+)= v        n < N, m < M
//
// Math, shapes, bindings and epilogue: common/linear.wgsl. W [N, K] out-major in format `wfmt`, w_stride
// u32 words per row. At T = 1 a tiled GEMM wastes 63/64 of its tile, and the op is bound by reading W
// once, so here each output row is one pass over its words. The shape comes from the adapter's Tuning:
//   lanes  threads share a row group and walk its words side by side (32 on GPUs: coalesced reads;
//          1 on CPU adapters, where every barrier costs a context switch), their partial sums reduced in
//          workgroup memory;
//   rows   output rows per row group (1..=4): each load of X (and its unpacking into registers) serves
//          `rows` rows of W, which is what lets a CPU adapter stream W at its memory rate.
// X's row is staged in workgroup memory, XT values at a time, so the inner loop reads it without
// bounds checks (zeros past K; packed rows are zero-padded to whole groups, so padding adds 0).
// Flag 8 (MM_LN) folds the block's layer norm in, so a decode step needs no layer_norm dispatch before
// qkv and fc: every workgroup first reduces its row's mean and then its centred variance (two passes,
// as layer_norm.wgsl: E[x^2] - E[x]^2 cancels on GPT-2's residual outliers of 1e3+), then stages the
// normalized X' = (x - mean) * rstd * ln_g + ln_b. The row (K <= a few thousand) is re-read by every
// workgroup, which a GPU's cache serves; the weights still dominate the bytes.
// Flag 16 (MM_MERGE) builds X from split decode attention's partials instead (common/merge.wgsl): the
// attention projection is the merge pass of flash-decoding, so it costs no dispatch.
// Dispatch: (ceil(N / ((WG / lanes) * rows)), M) workgroups of WG threads.

const WG: u32 = 256u;
const XT: u32 = 1024u; // X values per staged tile: WG vec4s, a whole number of q8/q4 groups of 32
var<workgroup> xs: array<vec4<f32>, 256>; // XT / 4
// Workgroup sums (the layer norm's mean and variance) are common/reduce.wgsl's `wg_sum`; its `red_f`
// also holds the partial sums reduced within each row group's `lanes` threads below.

// X'[k] of the row at xo: 0 past K, layer-normed (mean, rstd) with ln_g, ln_b under flag 8.
fn x_in(xo: u32, k: u32, ln: bool, mean: f32, rstd: f32) -> f32 {
    if (k >= p.K) {
        return 0.0;
    }
    if (ln) {
        return (x[xo + k] - mean) * rstd * ln_g[k] + ln_b[k];
    }
    return x[xo + k];
}

fn q8x4(word: u32) -> vec4<f32> {
    return vec4<f32>(vec4<i32>(
        bitcast<i32>(word << 24u) >> 24u, bitcast<i32>(word << 16u) >> 24u,
        bitcast<i32>(word << 8u) >> 24u, bitcast<i32>(word) >> 24u));
}

// Dot products of rows n0 .. n0 + nr - 1 of W with the staged tile (X[k0 .. k0 + kt)), this thread's
// share (`lane` of `lanes`).
fn tile_dot(n0: u32, nr: u32, k0: u32, kt: u32, lane: u32, lanes: u32) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    switch p.wfmt {
        case 2u: { // q8: one group of 32 = 8 words and one scale per step
            for (var g = lane; 32u * g < kt; g += lanes) {
                let j = 8u * g; // first vec4 of X in the tile
                let x0 = xs[j]; let x1 = xs[j + 1u]; let x2 = xs[j + 2u]; let x3 = xs[j + 3u];
                let x4 = xs[j + 4u]; let x5 = xs[j + 5u]; let x6 = xs[j + 6u]; let x7 = xs[j + 7u];
                let k = k0 + 32u * g;
                for (var r = 0u; r < nr; r++) {
                    let n = n0 + r;
                    let o = n * p.w_stride + k / 4u;
                    let d = dot(q8x4(w[o]), x0) + dot(q8x4(w[o + 1u]), x1) + dot(q8x4(w[o + 2u]), x2) + dot(q8x4(w[o + 3u]), x3)
                          + dot(q8x4(w[o + 4u]), x4) + dot(q8x4(w[o + 5u]), x5) + dot(q8x4(w[o + 6u]), x6) + dot(q8x4(w[o + 7u]), x7);
                    acc[r] += d * scale_of(n, k);
                }
            }
        }
        case 3u: { // q4: one group of 32 = 4 words and one scale per step
            for (var g = lane; 32u * g < kt; g += lanes) {
                let j = 8u * g;
                let k = k0 + 32u * g;
                for (var r = 0u; r < nr; r++) {
                    let n = n0 + r;
                    let o = n * p.w_stride + k / 8u;
                    var d = 0.0;
                    for (var i = 0u; i < 4u; i++) {
                        let word = w[o + i];
                        let lo = vec4<f32>(vec4<u32>(word & 15u, (word >> 4u) & 15u, (word >> 8u) & 15u, (word >> 12u) & 15u)) - 8.0;
                        let hi = vec4<f32>(vec4<u32>((word >> 16u) & 15u, (word >> 20u) & 15u, (word >> 24u) & 15u, word >> 28u)) - 8.0;
                        d += dot(lo, xs[j + 2u * i]) + dot(hi, xs[j + 2u * i + 1u]);
                    }
                    acc[r] += d * scale_of(n, k);
                }
            }
        }
        case 1u: { // f16: 2 per word, rows padded to whole words
            for (var e = lane; 2u * e < kt; e += lanes) {
                let xv = xs[e / 2u];
                let xp = select(xv.xy, xv.zw, (e & 1u) == 1u);
                let word = (k0 / 2u) + e;
                for (var r = 0u; r < nr; r++) {
                    acc[r] += dot(unpack2x16float(w[(n0 + r) * p.w_stride + word]), xp);
                }
            }
        }
        default: { // f32: rows are exactly K words
            for (var e = lane; e < kt; e += lanes) {
                let xv = xs[e / 4u][e & 3u];
                for (var r = 0u; r < nr; r++) {
                    acc[r] += xv * bitcast<f32>(w[(n0 + r) * p.w_stride + k0 + e]);
                }
            }
        }
    }
    return acc;
}

@compute @workgroup_size(WG)
fn gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let lanes = p.lanes;
    let rows = p.rows;
    let lane = li % lanes;
    let n0 = (wg.x * (WG / lanes) + li / lanes) * rows;
    let m = wg.y;
    let xo = (p.x_row0 + m) * p.x_stride;
    // Rows this group owns (0 past N: it still takes part in staging and barriers).
    let nr = select(0u, min(rows, p.N - n0), n0 < p.N);
    // The row's layer-norm statistics (flag 8; p is uniform, so the barriers inside stay uniform).
    let ln = (p.flags & 8u) != 0u;
    var mean = 0.0;
    var rstd = 1.0;
    if (ln) {
        var s = 0.0;
        for (var k = li; k < p.K; k += WG) {
            s += x[xo + k];
        }
        mean = wg_sum(li, s) / f32(p.K);
        var v = 0.0;
        for (var k = li; k < p.K; k += WG) {
            let d = x[xo + k] - mean;
            v += d * d;
        }
        rstd = inverseSqrt(wg_sum(li, v) / f32(p.K) + p.ln_eps);
    }
    // The merge's weights per (block, head) (flag 16; uniform, as above).
    let merge = (p.flags & 16u) != 0u;
    if (merge) {
        merge_weights(li);
    }
    var acc = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.K; k0 += XT) {
        let k = k0 + 4u * li;
        if (merge) {
            xs[li] = vec4<f32>(x_merged(k), x_merged(k + 1u), x_merged(k + 2u), x_merged(k + 3u));
        } else {
            xs[li] = vec4<f32>(x_in(xo, k, ln, mean, rstd), x_in(xo, k + 1u, ln, mean, rstd),
                               x_in(xo, k + 2u, ln, mean, rstd), x_in(xo, k + 3u, ln, mean, rstd));
        }
        workgroupBarrier();
        acc += tile_dot(n0, nr, k0, min(XT, p.K - k0), lane, lanes);
        workgroupBarrier();
    }
    if (lanes > 1u) {
        for (var r = 0u; r < rows; r++) {
            red_f[li] = acc[r];
            workgroupBarrier();
            for (var s = lanes / 2u; s > 0u; s = s / 2u) {
                if (lane < s) {
                    red_f[li] = red_f[li] + red_f[li + s];
                }
                workgroupBarrier();
            }
            acc[r] = red_f[li];
            workgroupBarrier();
        }
    }
    if (lane == 0u) {
        for (var r = 0u; r < nr; r++) {
            store_y(m, n0 + r, acc[r]);
        }
    }
}
