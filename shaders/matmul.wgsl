// matmul: tiled GEMM for a prompt (M = T > 1 rows), with a fused epilogue.
//
//   v         = X[x_row0 + m, :] . W[n, :] + (bias ? b[n] : 0)       m < M, n < N, over K
//   v         = gelu ? GELU_tanh(v) : v
//   Y[m, y_col0 + n] = accumulate ? Y[m, y_col0 + n] + v : v            (accumulate = residual add)
//
// Shapes: X rows of stride x_stride f32; W [N, K] out-major (each row is one output channel, the
// transpose of Hugging Face's Conv1D [K, N], done once at load) in weight format `wfmt` (see embed.wgsl)
// with w_stride u32 words per row; b [N] f32; Y rows of stride y_stride f32.
// GPT-2 uses it for qkv (N = 3C, K = C), attn proj (+residual), fc (+gelu, N = F), mlp proj
// (+residual, K = F) and the logits against the tied wte (one dispatch per wte chunk, y_col0 = chunk start).
// Dispatch: (ceil(N / 64), ceil(M / 64)) workgroups of 16x16 threads; a workgroup computes a 64x64 tile
// of Y, each thread a 4x4 sub-tile at rows ty + 16 i, cols tx + 16 j (strided so writes coalesce).
// Edges (M, N, K not multiples of the tile) are zero-padded in workgroup memory.

struct Params {
    M: u32,
    N: u32,
    K: u32,
    flags: u32,      // 1: add bias, 2: GELU, 4: accumulate into Y
    x_row0: u32,
    x_stride: u32,
    y_stride: u32,
    y_col0: u32,
    w_stride: u32,
    wfmt: u32,
    s_stride: u32,
    lanes: u32,      // gemv only
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;            // [*, x_stride]
@group(0) @binding(2) var<storage, read> w: array<u32>;            // [N, w_stride] in wfmt
@group(0) @binding(3) var<storage, read> scales: array<u32>;       // q8/q4 group scales, f16 pairs
@group(0) @binding(4) var<storage, read> bias: array<f32>;         // [N]
@group(0) @binding(5) var<storage, read_write> y: array<f32>;      // [M, y_stride]

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;

var<workgroup> xs: array<f32, 1024>; // [BK][BM]: k-major so the inner loop reads a broadcast row
var<workgroup> ws: array<f32, 1024>; // [BK][BN]

fn scale_of(n: u32, k: u32) -> f32 {
    let e = n * p.s_stride + k / 32u;
    let pair = unpack2x16float(scales[e / 2u]);
    return select(pair.x, pair.y, (e & 1u) == 1u);
}

fn load_w(n: u32, k: u32) -> f32 {
    let row = n * p.w_stride;
    switch p.wfmt {
        case 1u: {
            let pair = unpack2x16float(w[row + k / 2u]);
            return select(pair.x, pair.y, (k & 1u) == 1u);
        }
        case 2u: {
            let word = w[row + k / 4u];
            let q = (bitcast<i32>(word << (24u - 8u * (k & 3u)))) >> 24u;
            return f32(q) * scale_of(n, k);
        }
        case 3u: {
            let word = w[row + k / 8u];
            let q = (word >> (4u * (k & 7u))) & 15u;
            return (f32(q) - 8.0) * scale_of(n, k);
        }
        default: {
            return bitcast<f32>(w[row + k]);
        }
    }
}

// GPT-2's GELU: 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))). tanh(u) is written as
// 1 - 2 / (exp(2u) + 1), which saturates cleanly to +-1 where exp overflows (some tanh builtins return NaN).
fn gelu(v: f32) -> f32 {
    let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
    let t = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
    return 0.5 * v * (1.0 + t);
}

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
                var v = acc[i * 4u + j];
                if ((p.flags & 1u) != 0u) {
                    v += bias[n];
                }
                if ((p.flags & 2u) != 0u) {
                    v = gelu(v);
                }
                let o = m * p.y_stride + p.y_col0 + n;
                if ((p.flags & 4u) != 0u) {
                    v += y[o];
                }
                y[o] = v;
            }
        }
    }
}
