//! The kernel tests' and tools' runners: one kernel, or a chain of them, once over fresh buffers, and
//! every buffer read back. They allocate per call, so the model never uses them (its buffers, bind groups
//! and Params are made once at load: model/).

use super::{whole, window, Bind, Gpu, Kernel, Texels};
use crate::error::Result;

impl Gpu {
    /// Run one kernel once on fresh buffers and return the final contents of every binding after the
    /// params (in binding order); the grid comes from the kernel table. A `Bind::Texels` binding gets a
    /// texture of the bytes' words, which must already be in the textures' order (`texels::tile`), and
    /// gives them back unchanged, a `Bind::Window` one the uniform
    /// window of its own buffer. For kernel tests and tools: it
    /// allocates, so the model never uses it.
    pub async fn run_once(&self, kernel: Kernel, params: &[u8], buffers: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let all: Vec<usize> = (0..buffers.len()).collect();
        self.run_chain(&[(kernel, &all)], params, buffers).await
    }

    /// A uniform buffer holding `data` (the test runners' Params blocks; the model's own live in its arena).
    pub(super) fn uniform_init(&self, data: &[u8]) -> wgpu::Buffer {
        use wgpu::util::DeviceExt;
        self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some("params"), contents: data, usage: wgpu::BufferUsages::UNIFORM })
    }

    /// Several kernels in one pass over shared buffers (the sampler's two passes, in the tests): each
    /// step binds the Params and then `buffers[i]` for the listed i, in binding order. Returns every
    /// buffer's contents afterwards.
    pub async fn run_chain(&self, steps: &[(Kernel, &[usize])], params: &[u8], buffers: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let mut uniform = params.to_vec();
        uniform.resize(uniform.len().next_multiple_of(16).max(16), 0);
        let ubuf = self.uniform_init(&uniform);
        // Each buffer as the first step that binds it binds it: a texture of its words, a storage buffer
        // also readable through its uniform window, or a plain storage buffer.
        let kind_of = |i: usize| steps.iter().find_map(|(k, which)| which.iter().position(|&j| j == i).map(|at| k.bindings()[at + 1].bind));
        enum Res {
            Buf(wgpu::Buffer, u64),
            Tex(Texels),
        }
        let res = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let data = padded(b);
                let label = format!("run[{i}]");
                Ok(match kind_of(i) {
                    Some(Bind::Texels) => Res::Tex(self.texels_init(&label, bytemuck::cast_slice(&data))?),
                    Some(Bind::Window) => {
                        let buf = self.window_buffer(&label, data.len() as u64)?;
                        self.queue.write_buffer(&buf, 0, &data);
                        Res::Buf(buf, data.len() as u64)
                    }
                    _ => Res::Buf(self.storage_init(&label, &data)?, data.len() as u64),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let binds: Vec<wgpu::BindGroup> = steps
            .iter()
            .map(|(kernel, which)| {
                let mut bound = vec![whole(&ubuf)];
                bound.extend(which.iter().enumerate().map(|(at, &i)| match (&res[i], kernel.bindings()[at + 1].bind) {
                    (Res::Tex(t), _) => wgpu::BindingResource::TextureView(&t.view),
                    (Res::Buf(b, _), Bind::Window) => window(b),
                    (Res::Buf(b, _), _) => whole(b),
                }));
                self.bind_group(*kernel, kernel.name(), &bound)
            })
            .collect();
        let bufs: Vec<Option<(&wgpu::Buffer, u64)>> = res.iter().map(|r| match r {
            Res::Buf(b, n) => Some((b, *n)),
            Res::Tex(_) => None,
        }).collect();
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for ((kernel, _), bind) in steps.iter().zip(&binds) {
                self.dispatch(&mut pass, *kernel, bind, params);
            }
        }
        self.read_back("run_once", enc, &bufs, buffers).await
    }

    /// Finish a runner's work: copy the first n bytes of each buffer of `bufs` into one readback buffer
    /// after what `enc` recorded, submit, and return each one's contents cut to its original's length
    /// (`originals`, in the same order); a `None` (a texture: read-only) gives its original back.
    pub(super) async fn read_back(&self, label: &str, mut enc: wgpu::CommandEncoder, bufs: &[Option<(&wgpu::Buffer, u64)>], originals: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let total: u64 = bufs.iter().flatten().map(|(_, n)| *n).sum::<u64>().max(4);
        let read = self.readback_buffer(label, total)?;
        let mut off = 0;
        for (b, n) in bufs.iter().flatten() {
            enc.copy_buffer_to_buffer(b, 0, &read, off, *n);
            off += n;
        }
        self.queue.submit([enc.finish()]);
        let all = self.read(&read, total).await?;
        let mut out = Vec::new();
        let mut off = 0;
        for (b, orig) in bufs.iter().zip(originals) {
            match b {
                Some((_, n)) => {
                    out.push(all[off..off + orig.len()].to_vec());
                    off += *n as usize;
                }
                None => out.push(orig.clone()),
            }
        }
        Ok(out)
    }
}

/// A runner's bytes for one buffer: padded with zeros to whole words, at least 16 bytes (one vec4).
pub(super) fn padded(b: &[u8]) -> Vec<u8> {
    let mut data = b.to_vec();
    data.resize(data.len().next_multiple_of(4).max(16), 0);
    data
}
