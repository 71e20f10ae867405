// common/linear_scalar.wgsl: X and W of the linear kernels (common/linear.wgsl) as single f32 values and
// u32 words and the q8/q4 scales, storage buffers all, for matmul.wgsl and gemv.wgsl (common/weights.wgsl's
// load_w reads W this way).

@group(0) @binding(1) var<storage, read> x: array<f32>;            // [*, x_stride]
@group(0) @binding(2) var<storage, read> w: array<u32>;            // [N, w_stride] in wfmt
@group(0) @binding(3) var<storage, read> scales: array<u32>;       // q8/q4 group scales, f16 pairs
