// gemv: the one-token (decode) form of matmul: same math, same Params and bindings.
//
//   v = X[x_row0 + m, :] . W[n, :] (+ b[n]) (GELU) ;  Y[m, y_col0 + n] (+)= v        n < N, m < M
//
// Math, shapes, bindings and epilogue: common/linear.wgsl. W [N, K] out-major in format `wfmt`, w_stride u32 words per row.
// At T = 1 a tiled GEMM wastes 63/64 of its tile, and the op is bound by reading W once, so here
// `lanes` threads share one output row: they walk the row's words side by side (coalesced reads on a
// GPU), each unpacks 1 (f32), 2 (f16), 4 (q8) or 8 (q4) weights per word, and the partial sums are
// reduced in workgroup memory. `lanes` (a power of two <= 32) is chosen per device: 32 on GPUs; 1 on
// CPU adapters (lavapipe, SwiftShader), where every workgroup barrier costs a context switch and a
// thread that owns a whole row is an order of magnitude faster.
// Dispatch: (ceil(N / (256 / lanes)), M) workgroups of 256 threads = (256 / lanes) rows x lanes.

const WG: u32 = 256u;
var<workgroup> red: array<f32, WG>; // partial sums, reduced within each row's `lanes` threads

// x[xo + k], or 0 past the end of the row (rows are padded to whole words).
fn xk(xo: u32, k: u32) -> f32 {
    return select(0.0, x[xo + k], k < p.K);
}

fn row_dot(n: u32, m: u32, lane: u32, lanes: u32) -> f32 {
    let wo = n * p.w_stride;
    let xo = (p.x_row0 + m) * p.x_stride;
    var acc = 0.0;
    switch p.wfmt {
        case 1u: { // f16: 2 per word
            for (var i = lane; i < p.w_stride; i += lanes) {
                let v = unpack2x16float(w[wo + i]);
                acc += xk(xo, 2u * i) * v.x + xk(xo, 2u * i + 1u) * v.y;
            }
        }
        case 2u: { // q8: 4 per word, 8 words per group of 32
            for (var i = lane; i < p.w_stride; i += lanes) {
                let word = w[wo + i];
                let k = 4u * i;
                let q = vec4<f32>(vec4<i32>(
                    bitcast<i32>(word << 24u) >> 24u, bitcast<i32>(word << 16u) >> 24u,
                    bitcast<i32>(word << 8u) >> 24u, bitcast<i32>(word) >> 24u));
                let xv = vec4<f32>(xk(xo, k), xk(xo, k + 1u), xk(xo, k + 2u), xk(xo, k + 3u));
                acc += dot(q, xv) * scale_of(n, k);
            }
        }
        case 3u: { // q4: 8 per word, 4 words per group of 32
            for (var i = lane; i < p.w_stride; i += lanes) {
                let word = w[wo + i];
                let k = 8u * i;
                let lo = vec4<f32>(vec4<u32>(word & 15u, (word >> 4u) & 15u, (word >> 8u) & 15u, (word >> 12u) & 15u)) - 8.0;
                let hi = vec4<f32>(vec4<u32>((word >> 16u) & 15u, (word >> 20u) & 15u, (word >> 24u) & 15u, word >> 28u)) - 8.0;
                let x0 = vec4<f32>(xk(xo, k), xk(xo, k + 1u), xk(xo, k + 2u), xk(xo, k + 3u));
                let x1 = vec4<f32>(xk(xo, k + 4u), xk(xo, k + 5u), xk(xo, k + 6u), xk(xo, k + 7u));
                acc += (dot(lo, x0) + dot(hi, x1)) * scale_of(n, k);
            }
        }
        default: { // f32
            for (var i = lane; i < p.K; i += lanes) {
                acc += x[xo + i] * bitcast<f32>(w[wo + i]);
            }
        }
    }
    return acc;
}

@compute @workgroup_size(WG)
fn gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let lanes = p.lanes;
    let r = li / lanes;
    let lane = li % lanes;
    let n = wg.x * (WG / lanes) + r;
    let m = wg.y;
    var acc = 0.0;
    if (n < p.N) {
        acc = row_dot(n, m, lane, lanes);
    }
    if (lanes > 1u) {
        red[li] = acc;
        workgroupBarrier();
        for (var s = lanes / 2u; s > 0u; s = s / 2u) {
            if (lane < s) {
                red[li] = red[li] + red[li + s];
            }
            workgroupBarrier();
        }
        acc = red[li];
    }
    if (lane == 0u && n < p.N) {
        store_y(m, n, acc);
    }
}
