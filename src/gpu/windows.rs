//! A prompt's attention through uniform windows (the CPU tuning on lavapipe: `Tuning::attention_windows`):
//! kv_windows copies the keys and values of positions 0 .. pos0 + T head-major into two buffers of
//! KV_WINDOWS_PER_HEAD x KV_WINDOW_BYTES per head, then attention_window runs once per head with that
//! head's keys and values bound as uniforms at dynamic offsets (shaders/attention_window.wgsl says why).
//! The buffers are made once per model; the model's arena holds one AttentionHeadParams per head
//! (model/dispatch.rs).

use super::kernels::{KV_WINDOWS_PER_HEAD, KV_WINDOW_BYTES};
use super::params::{AttentionHeadParams, AttentionParams};
use super::run::padded;
use super::{whole, Gpu, Kernel};
use crate::error::Result;

/// A `Bind::HeadWindow` binding of `buf`: KV_WINDOW_BYTES from its start (head 0's first window), moved to
/// head h's window w by a dynamic offset of (h KV_WINDOWS_PER_HEAD + w) KV_WINDOW_BYTES.
pub fn head_window(buf: &wgpu::Buffer) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: buf, offset: 0, size: wgpu::BufferSize::new(KV_WINDOW_BYTES) })
}

/// A Params binding of `size` bytes at `offset` of `buf` (a dynamic offset moves it on).
fn params_at(buf: &wgpu::Buffer, offset: u64, size: u64) -> wgpu::BindingResource<'_> {
    wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: buf, offset, size: wgpu::BufferSize::new(size) })
}

impl Gpu {
    /// kv_windows's two buffers (keys, values) for `nh` heads: KV_WINDOWS_PER_HEAD x KV_WINDOW_BYTES a
    /// head each, written as storage and read as uniforms.
    pub fn kv_windows_buffers(&self, nh: u32) -> Result<[wgpu::Buffer; 2]> {
        let bytes = nh as u64 * KV_WINDOWS_PER_HEAD * KV_WINDOW_BYTES;
        Ok([self.storage("k_windows", bytes, wgpu::BufferUsages::UNIFORM)?, self.storage("v_windows", bytes, wgpu::BufferUsages::UNIFORM)?])
    }

    /// Record a prompt's attention through the windows: kv_windows with `fill` (its Params at dynamic
    /// offset `offset`), then `walk` (attention_window, or attention_window_subgroup where the device has
    /// subgroups: `Tuning::attention_window_kernel`; the same bindings) once per head with `attend`, whose
    /// Params binding points at head 0's AttentionHeadParams, head h's lying h `head_stride` bytes further
    /// (plus `offset`), and whose windows (k_window0, k_window1, v_window0, v_window1) move to head h's.
    /// `params`: the dispatch's AttentionParams (the grids).
    pub fn dispatch_attention_windows(&self, pass: &mut wgpu::ComputePass<'_>, walk: Kernel, [fill, attend]: [&wgpu::BindGroup; 2], offset: u32, head_stride: u32, params: &[u8]) {
        self.dispatch_at(pass, Kernel::KvWindows, fill, offset, params);
        let p: AttentionParams = bytemuck::pod_read_unaligned(&params[..std::mem::size_of::<AttentionParams>()]);
        let (x, y) = self.workgroups(walk.grid(params));
        pass.set_pipeline(self.pipeline(walk, 0));
        let w = KV_WINDOW_BYTES as u32;
        for h in 0..p.nh {
            let first = h * KV_WINDOWS_PER_HEAD as u32 * w;
            pass.set_bind_group(0, attend, &[offset + h * head_stride, first, first + w, first, first + w]);
            pass.dispatch_workgroups(x, y, 1);
        }
    }

    /// For kernel tests: `p`'s attention through the windows (`walk` per head) on fresh buffers [qkv,
    /// k_cache, v_cache, out, part] (attention_rows's bindings after the Params), returning their contents
    /// afterwards (`part` unchanged), as `run_once` does for one kernel. It allocates, so the model never
    /// uses it.
    pub async fn run_attention_windows(&self, walk: Kernel, p: &AttentionParams, buffers: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let stride = 256u64.max(self.info.limits.min_uniform_buffer_offset_alignment as u64);
        let size = std::mem::size_of::<AttentionHeadParams>() as u64;
        let mut uniform = vec![0u8; (1 + p.nh as usize) * stride as usize];
        uniform[..std::mem::size_of::<AttentionParams>()].copy_from_slice(bytemuck::bytes_of(p));
        for h in 0..p.nh {
            let hp = AttentionHeadParams { att: *p, head: h, _pad: [0; 3] };
            let o = (1 + h as usize) * stride as usize;
            uniform[o..o + size as usize].copy_from_slice(bytemuck::bytes_of(&hp));
        }
        let ubuf = self.uniform_init(&uniform);
        let bufs = buffers[..4].iter().enumerate().map(|(i, b)| self.storage_init(&format!("run[{i}]"), &padded(b))).collect::<Result<Vec<_>>>()?;
        let [kw, vw] = self.kv_windows_buffers(p.nh)?;
        let fill = self.bind_group(Kernel::KvWindows, "kv_windows", &[params_at(&ubuf, 0, size), whole(&bufs[0]), whole(&bufs[1]), whole(&bufs[2]), whole(&kw), whole(&vw)]);
        let attend = self.bind_group(Kernel::AttentionWindow, "attention_window", &[params_at(&ubuf, stride, size), whole(&bufs[0]), whole(&bufs[3]), head_window(&kw), head_window(&kw), head_window(&vw), head_window(&vw)]);
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            self.dispatch_attention_windows(&mut pass, walk, [&fill, &attend], 0, stride as u32, bytemuck::bytes_of(p));
        }
        let read: Vec<_> = bufs.iter().map(|b| Some((b, b.size()))).collect();
        let mut out = self.read_back("run_attention_windows", enc, &read, &buffers[..4]).await?;
        out.push(buffers[4].clone());
        Ok(out)
    }
}
