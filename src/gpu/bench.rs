//! The yardsticks for `gpt2 bench`: how fast a plain q8 GEMV (shaders/gemv_ref.wgsl, shaped by no
//! tuning) and the tuning's own gemv kernel stream weights on this adapter, measured in the same process
//! as the model (machines are noisy; only ratios taken in one run mean anything). Native only: it blocks
//! on the device.

use super::params::MatmulParams;
use super::{whole, Bind, Gpu, Kernel};
use crate::error::{Error, Result};

/// GB/s at which `kernel` alone (`Kernel::GemvRef`, the plain yardstick, or the tuning's gemv kernel,
/// gemv.wgsl or gemv_rows.wgsl, shaped by this GPU's tuning) reads a q8 matrix W [N, K] of about
/// `bytes` bytes (weights + scales), `reps` times in one submit: the rate a decode step whose only work
/// is streaming its weights could reach. The matrix is random words (the speed does not depend on values).
pub fn gemv_q8_stream_gb_s(gpu: &Gpu, kernel: Kernel, bytes: u64, k: u32, reps: u32) -> Result<f64> {
    if !matches!(kernel, Kernel::GemvRef | Kernel::Gemv | Kernel::GemvRows) {
        return Err(Error::InvalidArgument(format!("the q8 stream yardstick runs a gemv kernel, not {}", kernel.name())));
    }
    let fmt = crate::quant::WeightFormat::Q8;
    let (w_stride, s_stride) = (fmt.w_stride(k as usize) as u32, fmt.s_stride(k as usize) as u32);
    let row_bytes = 4 * w_stride as u64 + 2 * s_stride as u64;
    let n = ((bytes / row_bytes) as u32).max(1);
    // W and the scales where `kernel` reads them: textures (gemv_rows; tiled, gpu/texels.rs) or storage
    // buffers, as many words as the model's matrix of this shape takes there.
    let textures = matches!(kernel.bindings()[2].bind, Bind::Texels);
    let (n_words, n_scales) = if textures {
        super::texels::tiled_words(fmt, n as usize, k as usize)
    } else {
        (n as usize * w_stride as usize, (n as usize * s_stride as usize).div_ceil(2))
    };
    // Deterministic filler: an LCG's words; scales 2^-7 (f16 0x2000) so sums stay finite.
    let mut s = 0x9E37_79B9u32;
    let words: Vec<u32> = (0..n_words)
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            s
        })
        .collect();
    let scales = vec![0x2000_2000u32; n_scales];
    let (w, sc) = if textures {
        (Err(gpu.texels_init("bench.w", &words)?), Err(gpu.texels_init("bench.scales", &scales)?))
    } else {
        (Ok(gpu.storage_init("bench.w", bytemuck::cast_slice(&words))?), Ok(gpu.storage_init("bench.scales", bytemuck::cast_slice(&scales))?))
    };
    drop(words);
    fn res(s: &Result<wgpu::Buffer, super::Texels>) -> wgpu::BindingResource<'_> {
        match s {
            Ok(b) => whole(b),
            Err(t) => wgpu::BindingResource::TextureView(&t.view),
        }
    }
    let x = gpu.window_buffer("bench.x", k as u64 * 4)?;
    gpu.queue.write_buffer(&x, 0, bytemuck::cast_slice(&vec![0.01f32; k as usize]));
    let bias = gpu.storage("bench.bias", n as u64 * 4, wgpu::BufferUsages::empty())?;
    let y = gpu.storage("bench.y", n as u64 * 4, wgpu::BufferUsages::empty())?;
    let t = &gpu.tuning;
    let prm = MatmulParams {
        m: 1,
        n,
        k,
        flags: 0,
        x_row0: 0,
        x_stride: k,
        y_stride: n,
        y_col0: 0,
        w_stride,
        wfmt: fmt.code(),
        s_stride,
        lanes: t.gemv_lanes,
        rows: t.gemv_rows_per_thread,
        ..Default::default()
    };
    let ubuf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("bench.params"),
        size: std::mem::size_of::<MatmulParams>() as u64,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    gpu.queue.write_buffer(&ubuf, 0, bytemuck::bytes_of(&prm));
    let mut bound = vec![whole(&ubuf), whole(&x), res(&w), res(&sc), whole(&bias), whole(&y), whole(&x), whole(&x)];
    if textures {
        bound.push(super::window(&x)); // gemv_rows reads X through its uniform window
    }
    let bind = gpu.bind_group(kernel, "bench.gemv", &bound);
    let run = |reps: u32| -> Result<f64> {
        let t0 = std::time::Instant::now();
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for _ in 0..reps {
                gpu.dispatch(&mut pass, kernel, &bind, bytemuck::bytes_of(&prm));
            }
        }
        gpu.queue.submit([enc.finish()]);
        gpu.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(format!("waiting for the GPU: {e}")))?;
        gpu.check()?;
        Ok(t0.elapsed().as_secs_f64())
    };
    run(1)?; // warm-up: drivers compile pipelines lazily
    let secs = run(reps.max(1))?;
    Ok(reps.max(1) as f64 * n as f64 * row_bytes as f64 / secs / 1e9)
}
