//! layer_norm and layer_norm_rows, embed and embed_tex.

use crate::common::{assert_close, gpu, Rng};
use crate::helpers::{bytes, floats, weight_bytes};
use gpt2_webgpu::gpu::params::*;
use gpt2_webgpu::gpu::{Kernel, Tuning};
use gpt2_webgpu::quant::{PackedMatrix, WeightFormat};
use gpt2_webgpu::reference::cpu;

// layer_norm, and layer_norm_rows (the CPU tunings': one thread per row, rows on whole vec4s) where it
// takes the shape; the CPU tuning falls back to layer_norm for C % 4 != 0.
#[test]
fn layer_norm_matches_reference_with_outliers_and_odd_sizes() {
    let g = gpu();
    let mut rng = Rng(1);
    let shapes = [(1usize, 1usize), (1, 5), (3, 128), (17, 257), (2, 1600), (5, 3000), (1, 4), (9, 768), (130, 768), (11, 36)];
    for &(rows, c) in &shapes {
        let kernels: &[Kernel] = if c % 4 == 0 { &[Kernel::LayerNorm, Kernel::LayerNormRows] } else { &[Kernel::LayerNorm] };
        assert_eq!(Tuning::CPU.layer_norm_kernel_for(c as u32), kernels[kernels.len() - 1], "C = {c}");
        let mut x = rng.vec((rows + 2) * c, 1.0);
        // Outliers like GPT-2's residual stream (a few channels in the thousands), and a constant row.
        x[c / 2] = 3000.0;
        x[c + c / 3] = -1500.0;
        if rows > 2 {
            for v in &mut x[2 * c..3 * c] {
                *v = 7.0;
            }
        }
        // Rows with a mean far from their spread (the two-pass variance must not cancel).
        for r in 3..rows {
            for v in &mut x[r * c..(r + 1) * c] {
                *v += 60.0 * (r % 3) as f32;
            }
        }
        let gm = rng.vec(c, 1.0);
        let bt = rng.vec(c, 0.5);
        let (in_row0, out_row0) = (2u32.min(rows as u32 - 1), 1u32);
        let prm = LayerNormParams { rows: rows as u32, c: c as u32, in_row0, out_row0, eps: 1e-5, _pad: [0; 3] };
        let xi = &x[in_row0 as usize * c..(in_row0 as usize + rows) * c];
        let want = cpu::layer_norm(&cpu::to_f64(xi), &gm, &bt, 1e-5);
        for &kernel in kernels {
            // Garbage past the last row: nothing may be written there.
            let mut y0 = vec![0f32; (rows + 2) * c];
            y0[(rows + 1) * c..].fill(-9.0);
            let out = pollster::block_on(g.run_once(kernel, bytemuck::bytes_of(&prm), &[bytes(&x), bytes(&gm), bytes(&bt), bytes(&y0)])).unwrap();
            let got = floats(&out[3]);
            let label = format!("{} rows={rows} C={c}", kernel.name());
            assert_close(&label, &got[c..(rows + 1) * c], &want, 1e-4, 1e-4);
            assert!(got[..c].iter().all(|&v| v == 0.0), "{label}: rows before out_row0 untouched");
            assert!(got[(rows + 1) * c..].iter().all(|&v| v == -9.0), "{label}: rows past the last untouched");
        }
    }
}

#[test]
fn embed_adds_positions_and_respects_chunks_in_every_format() {
    // embed reads wte from storage, embed_tex (the CPU tuning) from textures.
    for kernel in [Kernel::Embed, Kernel::EmbedTex] {
        embed_matches(kernel);
    }
}

fn embed_matches(kernel: Kernel) {
    let g = gpu();
    let mut rng = Rng(11);
    let (v, c, p, t, pos0) = (300usize, 64usize, 40usize, 7usize, 9usize);
    let ids: Vec<u32> = vec![0, 299, 150, 151, 5, 150, 298];
    for fmt in [WeightFormat::F32, WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4] {
        let wte = rng.vec(v * c, 1.0);
        let wpe = rng.vec(p * c, 1.0);
        let full = PackedMatrix::pack_nk(&wte, v, c, fmt);
        let used = full.unpack();
        let sentinel = vec![-7.0f32; t * c];
        let mut x = sentinel.clone();
        for (lo, hi) in [(0usize, 151usize), (151, 300)] {
            let chunk = full.rows(lo, hi);
            let prm = EmbedParams {
                t: t as u32,
                c: c as u32,
                pos0: pos0 as u32,
                vocab_lo: lo as u32,
                vocab_hi: hi as u32,
                w_stride: chunk.w_stride() as u32,
                wfmt: fmt.code(),
                s_stride: chunk.s_stride() as u32,
            };
            let (w, scales) = weight_bytes(kernel, &chunk);
            let out = pollster::block_on(g.run_once(
                kernel,
                bytemuck::bytes_of(&prm),
                &[bytes(&ids), w, scales, bytes(&wpe), bytes(&x)],
            ))
            .unwrap();
            let after = floats(&out[4]);
            for (r, &id) in ids.iter().enumerate() {
                let in_chunk = (id as usize) >= lo && (id as usize) < hi;
                for j in 0..c {
                    if !in_chunk {
                        assert_eq!(after[r * c + j], x[r * c + j], "{fmt:?}: token {id} outside chunk [{lo},{hi}) untouched");
                    }
                }
            }
            x = after;
        }
        let want: Vec<f64> =
            (0..t * c).map(|i| used[ids[i / c] as usize * c + i % c] as f64 + wpe[(pos0 + i / c) * c + i % c] as f64).collect();
        assert_close(&format!("{} {fmt:?}", kernel.name()), &x, &want, 1e-6, 1e-6);
    }
}
