// common/linear.wgsl: what the linear kernels (matmul, gemv, gemv_rows, matmul_rows) share: the Params
// block (mirrored by gpu::params::MatmulParams), the bindings (one layout, so one bind group serves every
// linear kernel and T picks the kernel at step time) and the fused epilogue. X (binding 1) and W
// (binding 2) and the scales (binding 3) are declared by common/linear_scalar.wgsl (storage buffers of f32
// values and u32 words: matmul, gemv) or common/texels.wgsl and common/rows.wgsl (W and the scales in
// textures, X as vec4s and a uniform window: the CPU tuning's kernels, whose bind group layout is its own).
//
//   X'        = ln ? LN(X[x_row0 + m, :]) * ln_g + ln_b : X[x_row0 + m, :]   (gemv.wgsl only)
//   v         = X' . W[n, :] + (bias ? b[n] : 0)                       m < M, n < N, over K
//   v         = gelu ? GELU_tanh(v) : v
//   Y[m, y_col0 + n] = accumulate ? Y[m, y_col0 + n] + v : v            (accumulate = residual add)
//
// Shapes: X rows of stride x_stride f32; W [N, K] out-major (each row is one output channel, the
// transpose of Hugging Face's Conv1D [K, N], done once at load) in weight format `wfmt` (see
// common/weights.wgsl) with w_stride u32 words per row; b [N] f32; Y rows of stride y_stride f32.
// Needs common/gelu.wgsl, and X and W declared (above).

struct Params {
    M: u32,
    N: u32,
    K: u32,
    flags: u32,      // 1: add bias, 2: GELU, 4: accumulate into Y, 8: layer-norm X first (gemv only),
                     // 16: merge X from split attention's partials (gemv only, common/merge.wgsl)
    x_row0: u32,
    x_stride: u32,
    y_stride: u32,
    y_col0: u32,
    w_stride: u32,
    wfmt: u32,
    s_stride: u32,
    lanes: u32,      // threads per row group (gemv only; matmul ignores it)
    rows: u32,       // output rows per row group (gemv only)
    ln_eps: f32,     // the layer norm's epsilon (flag 8)
    merge_nb: u32,   // flag 16: NB key blocks
    merge_hs: u32,   // flag 16: head size hs (NH = K / hs)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> bias: array<f32>;         // [N]
@group(0) @binding(5) var<storage, read_write> y: array<f32>;      // [M, y_stride]
@group(0) @binding(6) var<storage, read> ln_g: array<f32>;         // [K] (flag 8; any buffer otherwise)
@group(0) @binding(7) var<storage, read> ln_b: array<f32>;         // [K]

// The epilogue: bias, GELU and the residual add of output (m, n) whose dot product is `acc`.
fn store_y(m: u32, n: u32, acc: f32) {
    var v = acc;
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
