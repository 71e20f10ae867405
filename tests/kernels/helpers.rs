//! Shared by the kernel tests: buffers to bytes and back, and weights as a kernel binds them (the
//! tolerance check is tests/common's `assert_close`).

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

