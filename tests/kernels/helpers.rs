//! Shared by the kernel tests: buffers to bytes and back, weights as a kernel binds them, and the
//! tolerance check.

use gpt2_webgpu::gpu::kernels::Bind;
use gpt2_webgpu::gpu::texels::tile;
use gpt2_webgpu::gpu::Kernel;
use gpt2_webgpu::quant::PackedMatrix;

pub fn bytes<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}
/// W's words and scales as `kernel` binds them: in the textures' tiled order where it reads textures
/// (gemv_rows, matmul_rows, embed_tex: gpu/texels.rs `tile`), else as packed.
pub fn weight_bytes(kernel: Kernel, m: &PackedMatrix) -> (Vec<u8>, Vec<u8>) {
    if matches!(kernel.bindings()[2].bind, Bind::Texels) {
        let (w, s) = tile(m);
        (bytes(&w), bytes(&s))
    } else {
        (bytes(&m.words), bytes(&m.scales))
    }
}
pub fn floats(b: &[u8]) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(b)
}

/// |got - want| <= atol + rtol * |want| everywhere, else a message naming the worst element.
// `!(x <= bound)` on purpose: a NaN is a failure.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0usize, 0f64);
    let mut bad = 0;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g as f64 - w).abs();
        let excess = err - (atol + rtol * w.abs());
        if !(excess <= 0.0) {
            bad += 1;
            if !(excess <= worst.1) {
                worst = (i, excess);
            }
        }
    }
    assert!(bad == 0, "{what}: {bad} of {} elements out of tolerance; worst at {}: got {} want {}", got.len(), worst.0, got[worst.0], want[worst.0]);
}
