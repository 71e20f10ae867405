// matmul: tiled GEMM for a prompt (M = T > 1 rows), with a fused epilogue.
//
// Math, shapes, bindings and the epilogue (bias, GELU, residual add): common/linear.wgsl.
// GPT-2 uses it for qkv (N = 3C, K = C), attn proj (+residual), fc (+gelu, N = F), mlp proj
// (+residual, K = F) and the logits against the tied wte (one dispatch per wte chunk, y_col0 = chunk start).
// Dispatch: (ceil(N / 64), ceil(M / 64)) workgroups of 16x16 threads; a workgroup computes a 64x64 tile
// of Y, each thread a 4x4 sub-tile at rows ty + 16 i, cols tx + 16 j (strided so writes coalesce).
// Edges (M, N, K not multiples of the tile) are zero-padded in workgroup memory.

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> xs: array<f32, 1024>; // [BK][BM]: k-major so the inner loop reads a broadcast row
var<workgroup> ws: array<f32, 1024>; // [BK][BN]

@compute @workgroup_size(16, 16)
fn matmul(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
          @builtin(local_invocation_index) li: u32) {
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    var acc: array<f32, 16>;
    for (var i = 0u; i < 16u; i++) {
        acc[i] = 0.0;
    }

    for (var k0 = 0u; k0 < p.K; k0 += BK) {
        // Stage a [BM x BK] tile of X and a [BN x BK] tile of W (4 elements of each per thread).
        for (var i = 0u; i < 4u; i++) {
            let e = li + i * 256u;
            let r = e / BK;
            let kk = e % BK;
            let k = k0 + kk;
            var xv = 0.0;
            if (m0 + r < p.M && k < p.K) {
                xv = x[(p.x_row0 + m0 + r) * p.x_stride + k];
            }
            xs[kk * BM + r] = xv;
            var wv = 0.0;
            if (n0 + r < p.N && k < p.K) {
                wv = load_w(n0 + r, k);
            }
            ws[kk * BN + r] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = xs[kk * BM + lid.y + 16u * i];
                b[i] = ws[kk * BN + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(a[i], b[j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var i = 0u; i < 4u; i++) {
        let m = m0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let n = n0 + lid.x + 16u * j;
            if (m < p.M && n < p.N) {
                store_y(m, n, acc[i * 4u + j]);
            }
        }
    }
}
