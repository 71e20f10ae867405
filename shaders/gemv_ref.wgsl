// gemv_ref: the yardstick of `gpt2 bench` (gpu/bench.rs), never on a model's path: a plain q8 GEMV as
// a GPU programmer would first write it, to measure how fast this adapter streams q8 weights with a
// kernel that is not ours to tune. Same Params and bindings as the other linear kernels
// (common/linear.wgsl); q8 weights only (gpu/bench.rs only binds q8; the kernel test checks it).
//
//   v = X[x_row0 + m, :] . W[n, :] (+ b[n]) (GELU) ;  Y[m, y_col0 + n] (+)= v        n < N, m < M
//
// Each thread owns RT = 4 output rows; the workgroup stages X in workgroup memory, TILE values at a time,
// and every thread walks its rows over the tile group by group (32 weights: 8 words, one f16 scale).
// Rows past N are computed on row N - 1 (valid memory) and never stored; X is staged as 0 past K, so the
// words of a row's last group past K add exactly 0.
// Dispatch: (ceil(N / (WG * RT)), M) workgroups of WG = 64 threads.

const WG: u32 = 64u;
const RT: u32 = 4u;
const TILE: u32 = 1024u;

var<workgroup> xs: array<f32, TILE>;

fn ref_q8x4(word: u32) -> vec4<f32> {
    return vec4<f32>(vec4<i32>(
        bitcast<i32>(word << 24u) >> 24u, bitcast<i32>(word << 16u) >> 24u,
        bitcast<i32>(word << 8u) >> 24u, bitcast<i32>(word) >> 24u));
}

@compute @workgroup_size(WG)
fn gemv_ref(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let n0 = (wg.x * WG + li) * RT;
    let m = wg.y;
    let xo = (p.x_row0 + m) * p.x_stride;
    var acc = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.K; k0 += TILE) {
        // Every thread reaches both barriers (none returns early), so the tile is whole when read.
        workgroupBarrier();
        for (var i = li; i < TILE; i += WG) {
            xs[i] = select(0.0, x[xo + k0 + i], k0 + i < p.K);
        }
        workgroupBarrier();
        let kn = min(TILE, p.K - k0);
        for (var g = 0u; g < kn; g += 32u) {
            for (var r = 0u; r < RT; r++) {
                let n = min(n0 + r, p.N - 1u);
                let o = n * p.w_stride + (k0 + g) / 4u;
                var d = 0.0;
                for (var j = 0u; j < 8u; j++) {
                    let e = g + 4u * j;
                    d += dot(ref_q8x4(w[o + j]), vec4<f32>(xs[e], xs[e + 1u], xs[e + 2u], xs[e + 3u]));
                }
                acc[r] += d * scale_of(n, k0 + g);
            }
        }
    }
    for (var r = 0u; r < RT; r++) {
        if (n0 + r < p.N) {
            store_y(m, n0 + r, acc[r]);
        }
    }
}
