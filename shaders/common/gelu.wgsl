// common/gelu.wgsl: GPT-2's GELU, the fused epilogue of the fc matmul/gemv.
//
// 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))). tanh(u) is written as 1 - 2 / (exp(2u) + 1), which
// saturates cleanly to +-1 where exp overflows (some tanh builtins return NaN).
fn gelu(v: f32) -> f32 {
    let u = 0.7978845608028654 * (v + 0.044715 * v * v * v);
    let t = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
    return 0.5 * v * (1.0 + t);
}
