//! Each WGSL kernel, dispatched alone, against the f64 CPU reference (src/cpu.rs) on adversarial shapes:
//! T = 1, sizes that are not multiples of the workgroup or tile, outliers, long rows, every weight
//! format and epilogue flag. Runs on any wgpu adapter (lavapipe in CI).
// `!(excess <= bound)` on purpose: a NaN must fail the check.
#![allow(clippy::neg_cmp_op_on_partial_ord, clippy::too_many_arguments)]

mod common;

use common::{gpu, Rng};
use gpt2_webgpu::reference::cpu;
use gpt2_webgpu::gpu::params::*;
use gpt2_webgpu::gpu::kernels::Bind;
use gpt2_webgpu::gpu::texels::tile;
use gpt2_webgpu::gpu::{Gpu, Kernel, KvFormat, Tuning, TuningKind};
use gpt2_webgpu::quant::{PackedMatrix, WeightFormat};

fn bytes<T: bytemuck::Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}
/// W's words and scales as `kernel` binds them: in the textures' tiled order where it reads textures
/// (gemv_rows, matmul_rows, embed_tex: gpu/texels.rs `tile`), else as packed.
fn weight_bytes(kernel: Kernel, m: &PackedMatrix) -> (Vec<u8>, Vec<u8>) {
    if matches!(kernel.bindings()[2].bind, Bind::Texels) {
        let (w, s) = tile(m);
        (bytes(&w), bytes(&s))
    } else {
        (bytes(&m.words), bytes(&m.scales))
    }
}
fn floats(b: &[u8]) -> Vec<f32> {
    bytemuck::pod_collect_to_vec(b)
}

/// |got - want| <= atol + rtol * |want| everywhere, else a message naming the worst element.
// `!(x <= bound)` on purpose: a NaN is a failure.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
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

// ---------------------------------------------------------------------------------------------

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

/// Y (+)= act(X' W^T + b) for X [m, k], W [n, k] through `kernel` in the gemv shape (lanes, rows per
/// group), against cpu.rs. X' = X, or under MM_LN X's rows layer-normed with random gains and biases; X
/// then carries GPT-2-like residual outliers (+-1e3 in a few channels) on a mean offset.
#[allow(clippy::too_many_arguments)]
fn run_linear(kernel: Kernel, fmt: WeightFormat, m: usize, n: usize, k: usize, flags: u32, seed: u64, shape: (u32, u32)) {
    run_linear_on(&gpu(), kernel, fmt, m, n, k, flags, seed, shape, false);
}

/// run_linear on the device `g` (whose tuning sets the pipelines' constants: `Tuning::constants`); with
/// `extremes`, every fifth q8 word is replaced by bytes -128, 127, -1 and 0 (the quantizer writes only
/// -127..=127, a package's bytes may hold any value), every fifth q4 word by nibbles 0 and 15 (-8 and 7),
/// alternating with 1 and 14.
fn run_linear_on(g: &Gpu, kernel: Kernel, fmt: WeightFormat, m: usize, n: usize, k: usize, flags: u32, seed: u64, (lanes, rows): (u32, u32), extremes: bool) {
    let mut rng = Rng(seed);
    let (x_row0, y_col0, pad_cols) = (1usize, 3usize, 2usize);
    let mut x = rng.vec((m + x_row0) * k, 1.0);
    let ln_g = rng.vec(k, 1.0);
    let ln_b = rng.vec(k, 0.5);
    let eps = 1e-5f32;
    if flags & MM_LN != 0 {
        for (r, row) in x.chunks_mut(k).enumerate() {
            for v in row.iter_mut() {
                *v += 3.0 * r as f32; // rows with a mean away from 0
            }
            row[k / 2] = 1000.0;
            row[k / 3] -= 1000.0 * (r % 2) as f32;
            row[k - 1] += 1500.0;
        }
    }
    let w_nk = rng.vec(n * k, 0.5);
    let mut packed = PackedMatrix::pack_nk(&w_nk, n, k, fmt);
    if extremes {
        let (word, per_word) = match fmt {
            WeightFormat::Q8 => (0x00ff_7f80, 4),
            WeightFormat::Q4 => (0x1e1e_f0f0, 8),
            _ => panic!("extremes are q8 or q4 values"),
        };
        let ws = packed.w_stride();
        for (i, w) in packed.words.iter_mut().enumerate() {
            // Only whole words within K: the values of a row's last word past K stay the packer's zeros.
            if i % 5 == 0 && (i % ws + 1) * per_word <= k {
                *w = word;
            }
        }
    }
    let w_used = packed.unpack(); // what the kernel must compute with
    let bias = rng.vec(n, 1.0);
    let y_stride = y_col0 + n + pad_cols;
    let y0 = rng.vec(m * y_stride, 1.0);
    let prm = MatmulParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        flags,
        x_row0: x_row0 as u32,
        x_stride: k as u32,
        y_stride: y_stride as u32,
        y_col0: y_col0 as u32,
        w_stride: packed.w_stride() as u32,
        wfmt: fmt.code(),
        s_stride: packed.s_stride() as u32,
        lanes,
        rows,
        ln_eps: eps,
        merge_nb: 0,
        merge_hs: 0,
    };
    let (w, scales) = weight_bytes(kernel, &packed);
    let mut bufs = vec![bytes(&x), w, scales, bytes(&bias), bytes(&y0), bytes(&ln_g), bytes(&ln_b)];
    if kernel.bindings().len() == bufs.len() + 2 {
        // gemv_rows and matmul_rows (W and the scales tiled in textures: run_once makes them) also read X
        // through its uniform window, where their rows of X lie in its first 64 KB.
        bufs.push(bytes(&x));
    }
    let out = pollster::block_on(g.run_once(kernel, bytemuck::bytes_of(&prm), &bufs)).unwrap();
    let got = floats(&out[4]);

    // Reference: cpu::matmul takes Hugging Face's [K, N].
    let w_kn = gpt2_webgpu::quant::transpose(&w_used, n, k);
    let mut xs = cpu::to_f64(&x[x_row0 * k..]);
    if flags & MM_LN != 0 {
        xs = cpu::layer_norm(&xs, &ln_g, &ln_b, eps as f64);
    }
    let mut v = cpu::matmul(&xs, &w_kn, if flags & MM_BIAS != 0 { Some(&bias) } else { None }, k, n);
    if flags & MM_GELU != 0 {
        cpu::gelu_inplace(&mut v);
    }
    let mut want: Vec<f64> = y0.iter().map(|&v| v as f64).collect();
    for r in 0..m {
        for j in 0..n {
            let o = r * y_stride + y_col0 + j;
            want[o] = if flags & MM_ACCUMULATE != 0 { want[o] + v[r * n + j] } else { v[r * n + j] };
        }
    }
    let atol = 2e-5 * (k as f64).sqrt() + 1e-5;
    assert_close(&format!("{kernel:?} {fmt:?} M={m} N={n} K={k} flags={flags} lanes={lanes} rows={rows}"), &got, &want, atol, 1e-4);
}

#[test]
fn matmul_tiled_matches_reference_on_edges_formats_and_epilogues() {
    let mut seed = 10;
    for &(m, n, k) in &[(2usize, 1usize, 1usize), (63, 7, 15), (65, 129, 33), (130, 64, 200), (3, 70, 768)] {
        for flags in [0, MM_BIAS, MM_BIAS | MM_GELU, MM_BIAS | MM_ACCUMULATE] {
            seed += 1;
            run_linear(Kernel::Matmul, WeightFormat::F32, m, n, k, flags, seed, (1, 1));
        }
    }
    for fmt in [WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4] {
        for &(m, n, k) in &[(5usize, 33usize, 64usize), (66, 65, 100)] {
            seed += 1;
            run_linear(Kernel::Matmul, fmt, m, n, k, MM_BIAS | MM_GELU, seed, (1, 1));
        }
    }
}

#[test]
fn gemv_matches_reference_on_edges_formats_and_epilogues() {
    // (lanes, rows per group): both tunings' shapes (32 x 1 on GPUs, 1 x 4 on CPU adapters) and odd ones,
    // over N that is not a multiple of the rows, and K over several staged tiles of 1024 with a ragged end.
    let shapes = [(1u32, 1u32), (1, 4), (1, 3), (4, 2), (32, 1), (32, 4)];
    let mut seed = 100;
    for &(m, n, k) in &[(1usize, 1usize, 1usize), (1, 7, 15), (1, 129, 33), (2, 9, 768), (1, 50, 3072), (1, 5, 2051)] {
        for flags in [0, MM_BIAS, MM_BIAS | MM_GELU, MM_BIAS | MM_ACCUMULATE] {
            for shape in shapes {
                seed += 1;
                run_linear(Kernel::Gemv, WeightFormat::F32, m, n, k, flags, seed, shape);
            }
        }
    }
    for fmt in [WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4] {
        for &(m, n, k) in &[(1usize, 33usize, 64usize), (1, 17, 100), (1, 9, 1600), (3, 6, 2049), (1, 1, 1)] {
            for shape in shapes {
                seed += 1;
                run_linear(Kernel::Gemv, fmt, m, n, k, MM_BIAS | MM_ACCUMULATE, seed, shape);
            }
        }
    }
}

#[test]
fn gemv_with_the_layer_norm_folded_in_matches_reference_on_outliers_and_ragged_rows() {
    // MM_LN (decode under the GPU tuning: ln_1 into qkv, ln_2 into fc): T = 1 and a few rows, K not a
    // multiple of the lanes or of the 1024-value staged tile, every format, with the epilogues qkv and fc use.
    let shapes = [(32u32, 1u32), (1, 4), (8, 3)];
    let mut seed = 300;
    for &(m, n, k) in &[(1usize, 1usize, 1usize), (1, 7, 37), (1, 129, 768), (2, 9, 1025), (1, 5, 2051)] {
        for flags in [MM_LN, MM_LN | MM_BIAS, MM_LN | MM_BIAS | MM_GELU] {
            for shape in shapes {
                seed += 1;
                run_linear(Kernel::Gemv, WeightFormat::F32, m, n, k, flags, seed, shape);
            }
        }
    }
    for fmt in [WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4] {
        for &(m, n, k) in &[(1usize, 33usize, 64usize), (1, 17, 100), (1, 9, 1600), (2, 6, 2049)] {
            for shape in shapes {
                seed += 1;
                run_linear(Kernel::Gemv, fmt, m, n, k, MM_LN | MM_BIAS | MM_GELU, seed, shape);
            }
        }
    }
}

/// The pipeline variant of a rows kernel (gemv_rows, matmul_rows, matmul_run) that run_linear's dispatch of
/// `fmt` weights over M x K (rows of X from x_row0 = 1, x_stride = K) compiles to.
fn rows_variant(kernel: Kernel, fmt: WeightFormat, m: usize, k: usize) -> usize {
    kernel.variant(bytemuck::bytes_of(&MatmulParams { m: m as u32, x_row0: 1, x_stride: k as u32, wfmt: fmt.code(), ..Default::default() }))
}

/// `kernel` against the reference: every epilogue in f32 over `f32_shapes` (M, N, K), then f16, q8 and q4
/// over `quant_shapes` with the bias + accumulate and bias + GELU epilogues; a new seed per case.
fn check_rows_kernel(kernel: Kernel, mut seed: u64, f32_shapes: &[(usize, usize, usize)], quant_shapes: &[(usize, usize, usize)]) {
    // Every pipeline variant (common/rows.wgsl's WFMT x X_ALIGNED x X_IN_WINDOW): each format over rows of
    // X (x_stride = K) on vec4s and not, lying in the uniform window and past it (run_linear's x_row0 = 1).
    let mut seen: Vec<usize> = Vec::new();
    for (fmt, shapes) in [(WeightFormat::F32, f32_shapes), (WeightFormat::F16, quant_shapes), (WeightFormat::Q8, quant_shapes), (WeightFormat::Q4, quant_shapes)] {
        let variants: Vec<usize> = shapes.iter().map(|&(m, _, k)| rows_variant(kernel, fmt, m, k)).collect();
        // The pipeline compiles the format's case (WFMT's default, 0, is f32's code).
        let wfmt = |v: usize| kernel.variants()[v].iter().find(|c| c.0 == "WFMT").map_or(0.0, |c| c.1);
        assert!(variants.iter().all(|&v| wfmt(v) == fmt.code() as f64), "{}: {fmt:?} picks {variants:?}", kernel.name());
        seen.extend(variants);
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), kernel.variants().len(), "{}: the shapes reach variants {seen:?} only", kernel.name());
    for &(m, n, k) in f32_shapes {
        for flags in [0, MM_BIAS, MM_BIAS | MM_GELU, MM_BIAS | MM_ACCUMULATE] {
            seed += 1;
            run_linear(kernel, WeightFormat::F32, m, n, k, flags, seed, (1, 1));
        }
    }
    for fmt in [WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4] {
        for &(m, n, k) in quant_shapes {
            for flags in [MM_BIAS | MM_ACCUMULATE, MM_BIAS | MM_GELU] {
                seed += 1;
                run_linear(kernel, fmt, m, n, k, flags, seed, (1, 1));
            }
        }
    }
}

#[test]
fn gemv_rows_matches_reference_on_edges_formats_and_epilogues() {
    // The CPU tuning's gemv: 16 rows per thread, 128 per workgroup, X in chunks of 32; W and the scales
    // tiled in textures (128-row tiles). N below, at and past those (rows past N read the last tile's
    // zero rows and must not be stored); several tiles (N = 129, 131, 300);
    // K = 1, odd, under one chunk and ragged past many (words past a row's K must add exactly 0); M > 1.
    // X comes through the uniform window where the rows (from x_row0 = 1) end within its 16384 values,
    // aligned or not, up to exactly its end (K = 8192), and from storage past it, aligned or not (K = 8200
    // and 8191 with M = 2, 5000 and 4099 with M = 3).
    check_rows_kernel(
        Kernel::GemvRows,
        500,
        &[(1, 1, 1), (1, 15, 7), (1, 17, 33), (2, 129, 768), (1, 300, 31), (3, 16, 2051), (1, 50, 3072), (1, 40, 8190), (2, 40, 8200), (2, 24, 8191)],
        &[(1, 33, 64), (1, 17, 100), (2, 129, 1600), (3, 6, 2049), (1, 1, 1), (1, 131, 65), (1, 9, 8192), (3, 20, 4096), (3, 20, 5000), (3, 20, 4099)],
    );
}

#[test]
fn gemv_rows_q8_and_q4_through_unpack4x8unorm_match_reference_with_extreme_values() {
    // The SwiftShader tuning's gemv_rows (Q8_UNORM: q8 bytes through unpack4x8unorm, 255 (u . x) - 128
    // sum(x) per chunk; q4 nibbles masked into bytes, even and odd values apart, 255 (u . x) - 8 sum(x)),
    // on a device of that tuning whatever the adapter: the shapes of
    // gemv_rows_matches_reference_on_edges_formats_and_epilogues over every variant (X in the window and
    // past it, aligned or not), extreme values in every fifth word (run_linear_on), both epilogues.
    let g = pollster::block_on(Gpu::with_tuning(Some(TuningKind::SwiftShader))).unwrap();
    assert_eq!(Tuning::SWIFTSHADER.constants(Kernel::GemvRows), &[("Q8_UNORM", 1.0)]);
    assert!(g.tuning.q8_unorm, "{}", g.tuning);
    let shapes = [(1, 33, 64), (1, 17, 100), (2, 129, 1600), (3, 6, 2049), (1, 1, 1), (1, 131, 65), (1, 9, 8192), (3, 20, 4096), (3, 20, 5000), (3, 20, 4099), (1, 300, 31), (1, 2304, 768)];
    let mut seen: Vec<usize> = shapes.iter().map(|&(m, _, k)| rows_variant(Kernel::GemvRows, WeightFormat::Q8, m as usize, k as usize)).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 4, "the shapes reach q8's variants {seen:?} only");
    let mut seed = 1600;
    for fmt in [WeightFormat::Q8, WeightFormat::Q4] {
        for &(m, n, k) in &shapes {
            for flags in [MM_BIAS | MM_ACCUMULATE, MM_BIAS | MM_GELU] {
                for extremes in [false, true] {
                    seed += 1;
                    run_linear_on(&g, Kernel::GemvRows, fmt, m as usize, n as usize, k as usize, flags, seed, (1, 1), extremes);
                }
            }
        }
    }
}

#[test]
fn matmul_rows_matches_reference_on_edges_formats_and_epilogues() {
    // The CPU tuning's kernel for prompts: 96 rows (16 in each of 6 tiles of 128) x 4 tokens per thread, 768
    // rows per workgroup, W and the scales tiled in textures. M below, at and past 4 (tokens past M are computed
    // on token M - 1 and must not be stored); N past 16 and 128 (rows past N read the last tile's zero rows and
    // must not be stored), several
    // tiles of one workgroup (N = 300, 640) and a last workgroup with fewer tiles (N = 769, 1000, 1540);
    // K = 1, odd and ragged; X through the uniform window and past it from storage (M x K = 7 x 2051,
    // 32 x 3072, 13 x 2049, 9 x 2048, from x_row0 = 1).
    check_rows_kernel(
        Kernel::MatmulRows,
        900,
        &[(2, 1, 1), (3, 15, 7), (4, 17, 33), (5, 129, 768), (9, 20, 31), (7, 16, 2051), (32, 50, 3072), (6, 300, 40), (5, 769, 64), (3, 1540, 33)],
        &[(2, 33, 64), (5, 17, 100), (6, 129, 1600), (3, 6, 2049), (2, 1, 1), (13, 131, 65), (13, 20, 2049), (9, 20, 2048), (5, 640, 96), (6, 1000, 70)],
    );
}

#[test]
fn matmul_run_matches_reference_on_edges_formats_and_epilogues() {
    // The SwiftShader tuning's kernel for prompts: one run of 16 rows x 6 tokens per thread, the rows a loop,
    // q8 through unpack4x8unorm. M = 1 (a step the tuning gives gemv_rows, the kernel must still be right),
    // below, at and past 6 (tokens past M are computed on token M - 1 and must not be stored), 13 (a last
    // group of one token); N below, at and past 16 and 128 (rows past N read the last tile's zero rows and
    // must not be stored), several tiles and a short last workgroup (N = 300, 769); K = 1, odd and ragged;
    // X through the uniform window and past it from storage, aligned or not (all four variants).
    check_rows_kernel(
        Kernel::MatmulRun,
        1400,
        &[(1, 1, 1), (3, 15, 7), (6, 17, 33), (7, 129, 768), (13, 20, 31), (7, 16, 2051), (11, 50, 3072), (6, 300, 40), (5, 769, 64), (3, 1540, 33)],
        &[(2, 33, 64), (5, 17, 100), (6, 129, 1600), (3, 6, 2049), (1, 1, 1), (13, 131, 65), (13, 20, 2049), (9, 20, 2048), (11, 2304, 768), (6, 1000, 70)],
    );
    // q8 bytes the quantizer never writes (-128) and the extremes, on gpt2's prompt shapes.
    let mut seed = 1500;
    for &(m, n, k) in &[(11usize, 768usize, 3072usize), (12, 131, 64), (1, 20, 33)] {
        seed += 1;
        run_linear_on(&gpu(), Kernel::MatmulRun, WeightFormat::Q8, m, n, k, MM_BIAS | MM_ACCUMULATE, seed, (1, 1), true);
    }
}

#[test]
fn gemv_ref_matches_reference_on_q8_edges_and_epilogues() {
    // gpt2 bench's yardstick (q8 only): 4 rows per thread, 256 per workgroup, X staged 1024 values at a
    // time. N below, at and past 256 (rows past N are computed on row N - 1 and must not be stored); K = 1,
    // odd, ragged within a group and past a tile (X is 0 past K, so a row's padding adds 0); M > 1.
    let mut seed = 1300;
    for &(m, n, k) in &[(1usize, 1usize, 1usize), (1, 7, 33), (2, 255, 100), (1, 257, 1025), (3, 6, 2051), (1, 40, 3072), (1, 513, 768)] {
        for flags in [0, MM_BIAS, MM_BIAS | MM_GELU, MM_BIAS | MM_ACCUMULATE] {
            seed += 1;
            run_linear(Kernel::GemvRef, WeightFormat::Q8, m, n, k, flags, seed, (1, 1));
        }
    }
}

#[test]
fn gelu_saturates_without_nan_on_huge_inputs() {
    // The fused GELU must not produce NaN where exp overflows (tanh saturates to +-1).
    let g = gpu();
    let xs = [-1e4f32, -50.0, -3.0, -0.5, 0.0, 0.5, 3.0, 50.0, 1e4];
    let (m, k, n) = (xs.len(), 1usize, 1usize);
    let w = PackedMatrix::pack_nk(&[1.0], n, k, WeightFormat::F32);
    let prm = MatmulParams { m: m as u32, n: 1, k: 1, flags: MM_GELU, x_row0: 0, x_stride: 1, y_stride: 1, y_col0: 0, w_stride: 1, wfmt: 0, s_stride: 0, lanes: 1, rows: 1, ..Default::default() };
    let out = pollster::block_on(g.run_once(
        Kernel::Matmul,
        bytemuck::bytes_of(&prm),
        &[bytes(&xs), bytes(&w.words), vec![0; 16], vec![0; 16], vec![0u8; m * 4], vec![0; 16], vec![0; 16]],
    ))
    .unwrap();
    let got = floats(&out[4]);
    let want: Vec<f64> = xs.iter().map(|&v| cpu::gelu(v as f64)).collect();
    assert_close("gelu", &got, &want, 1e-6, 1e-5);
}

/// The words of a KV cache [P, C] in `kv`'s layout (f32 bits, or per (position, head) f16 pairs padded to
/// a whole word), and the values it holds as f64 (what attention must compute with).
fn kv_words(vals: &[f32], p: usize, nh: usize, hs: usize, kv: KvFormat) -> (Vec<u32>, Vec<f64>) {
    match kv {
        KvFormat::F32 => (vals.iter().map(|v| v.to_bits()).collect(), cpu::to_f64(vals)),
        KvFormat::F16 => {
            let hw = hs.div_ceil(2);
            let mut words = vec![0u32; p * nh * hw];
            let mut held = vec![0f64; p * nh * hs];
            for (i, &v) in vals.iter().enumerate() {
                let (s, h, d) = (i / (nh * hs), i / hs % nh, i % hs);
                let v = half::f16::from_f32(v.clamp(-65504.0, 65504.0));
                words[(s * nh + h) * hw + d / 2] |= (v.to_bits() as u32) << (16 * (d % 2));
                held[i] = v.to_f64();
            }
            (words, held)
        }
    }
}

/// One attention dispatch of `kernel` (attention, attention_rows) against the f64 reference; `kernel` None:
/// the CPU tuning's choice for these Params (attention_rows where it fits, else attention's fallback).
fn run_attention(t: usize, pos0: usize, nh: usize, hs: usize, q_scale: f32, seed: u64, kv: KvFormat, kernel: Option<Kernel>) {
    let g = gpu();
    let mut rng = Rng(seed);
    let c = nh * hs;
    let s = pos0 + t;
    let p = s + 3; // the cache is longer than what is used
    let mut qkv = rng.vec(t * 3 * c, 1.0);
    for r in 0..t {
        for v in &mut qkv[r * 3 * c..r * 3 * c + c] {
            *v *= q_scale; // large q -> peaked softmax, stresses the running max
        }
    }
    // Values past f16's range must saturate in an f16 cache, not become inf or NaN.
    if c > 1 {
        qkv[c + 1] = 1e6;
        qkv[2 * c + 1] = -1e6;
    }
    // The cache holds positions < pos0; this step's rows are NaN there, so reading them instead of qkv
    // would poison the output. The kernel must fill them from qkv for the next step.
    let mut k_cache = rng.vec(p * c, 1.0);
    let mut v_cache = rng.vec(p * c, 1.0);
    for v in k_cache[pos0 * c..s * c].iter_mut().chain(v_cache[pos0 * c..s * c].iter_mut()) {
        *v = f32::NAN;
    }
    let prm = AttentionParams {
        t: t as u32,
        c: c as u32,
        nh: nh as u32,
        hs: hs as u32,
        pos0: pos0 as u32,
        scale: 1.0 / (hs as f32).sqrt(),
        kv: kv.code(),
        block: 0,
    };
    let kernel = kernel.unwrap_or_else(|| Tuning::CPU.attention_kernel_for(&prm));
    let (kc, _) = kv_words(&k_cache, p, nh, hs, kv);
    let (vc, _) = kv_words(&v_cache, p, nh, hs, kv);
    let buffers = [bytes(&qkv), bytes(&kc), bytes(&vc), vec![0u8; t * c * 4], vec![0u8; 16]];
    // attention_window stands for kv_windows + one attention_window per head (gpu/windows.rs).
    let out = if kernel == Kernel::AttentionWindow {
        pollster::block_on(g.run_attention_windows(&prm, &buffers))
    } else {
        pollster::block_on(g.run_once(kernel, bytemuck::bytes_of(&prm), &buffers))
    }
    .unwrap();
    // What the cache must hold afterwards: the past untouched, this step's K and V appended.
    let (mut kw, mut vw) = (k_cache.clone(), v_cache.clone());
    for r in 0..t {
        kw[(pos0 + r) * c..(pos0 + r + 1) * c].copy_from_slice(&qkv[r * 3 * c + c..r * 3 * c + 2 * c]);
        vw[(pos0 + r) * c..(pos0 + r + 1) * c].copy_from_slice(&qkv[r * 3 * c + 2 * c..r * 3 * c + 3 * c]);
    }
    let label = format!("{} kv={} T={t} pos0={pos0} NH={nh} hs={hs} qscale={q_scale}", kernel.name(), kv.name());
    let (kw_words, k_held) = kv_words(&kw, p, nh, hs, kv);
    let (vw_words, v_held) = kv_words(&vw, p, nh, hs, kv);
    let words = |b: &[u8]| bytemuck::pod_collect_to_vec::<u8, u32>(b);
    assert!(words(&out[1]) == kw_words, "{label}: k_cache = past + this step's keys");
    assert!(words(&out[2]) == vw_words, "{label}: v_cache = past + this step's values");
    let got = floats(&out[3]);
    // The past as the cache holds it; this step's keys and values in f32, straight from qkv.
    let (mut k_ref, mut v_ref) = (k_held[..s * c].to_vec(), v_held[..s * c].to_vec());
    k_ref[pos0 * c..].copy_from_slice(&cpu::to_f64(&kw[pos0 * c..s * c]));
    v_ref[pos0 * c..].copy_from_slice(&cpu::to_f64(&vw[pos0 * c..s * c]));
    let q: Vec<f64> = (0..t).flat_map(|r| qkv[r * 3 * c..r * 3 * c + c].iter().map(|&v| v as f64)).collect();
    let want = cpu::attention_with_past(&q, &k_ref, &v_ref, c, nh);
    assert_close(&label, &got, &want, 2e-5, 1e-4);
}

#[test]
fn attention_matches_reference_across_tiles_heads_and_positions() {
    for kv in [KvFormat::F32, KvFormat::F16] {
        let k = Some(Kernel::Attention);
        run_attention(1, 0, 1, 1, 1.0, 1, kv, k); // a single key
        run_attention(1, 7, 2, 7, 1.0, 2, kv, k); // decode, odd head size (f16: a padded word per head)
        run_attention(5, 0, 3, 64, 1.0, 3, kv, k); // prefill
        run_attention(1, 600, 2, 64, 1.0, 4, kv, k); // decode over three key tiles
        run_attention(300, 0, 2, 64, 1.0, 5, kv, k); // prefill crossing the 256-key tile
        run_attention(3, 256, 1, 200, 1.0, 6, kv, k); // exactly one tile of past, hs > 64 (4 dims per thread)
        run_attention(9, 260, 2, 64, 30.0, 7, kv, k); // very peaked scores: online softmax rescaling
        run_attention(2, 5, 3, 1, 1.0, 8, kv, k); // hs = 1: every head's word half empty
    }
}

// attention_rows (the CPU tunings' attention: one thread per (head, query)) on the same kinds of case,
// and the CPU tuning's choice, which falls back to attention where attention_rows does not take the shape.
#[test]
fn attention_rows_matches_reference_and_falls_back_where_it_does_not_fit() {
    // attention_rows_prompt (4 queries per thread) on the prompts below, and attention_rows (one) on all.
    for kv in [KvFormat::F32, KvFormat::F16] {
        let k = Some(Kernel::AttentionRowsPrompt);
        run_attention(2, 0, 3, 64, 1.0, 37, kv, k); // 2 queries: a thread whose last 2 lie past T
        run_attention(8, 5, 3, 64, 1.0, 38, kv, k); // two whole groups of 4 queries, with a past
        run_attention(1, 7, 2, 64, 1.0, 39, kv, k); // one query: 3 past T
        run_attention(5, 0, 3, 64, 1.0, 40, kv, k); // NH x groups = 6: a partial last workgroup
        run_attention(7, 3, 5, 64, 1.0, 41, kv, k); // odd T with a past, an odd number of heads
        run_attention(300, 0, 2, 64, 1.0, 42, kv, k); // a 300-token prefill
        // gpt2's heads: the 128-token prompt of the probe whose run stalled last session (not reproduced:
        // README, "CPU adapters: prompt attention"), and a 130-token prompt continuing a 17-token cache.
        run_attention(128, 0, 12, 64, 1.0, 48, kv, k);
        run_attention(130, 17, 12, 64, 1.0, 49, kv, k);
        run_attention(9, 260, 2, 64, 30.0, 43, kv, k); // very peaked scores
        run_attention(9, 40, 3, 64, 300.0, 44, kv, k); // outlier queries
        run_attention(4, 9, 3, 8, 1.0, 45, kv, k); // hs = 8
        run_attention(3, 11, 2, 40, 1.0, 46, kv, k); // hs = 40
    }
    for kv in [KvFormat::F32, KvFormat::F16] {
        let k = Some(Kernel::AttentionRows);
        run_attention(1, 0, 1, 64, 1.0, 21, kv, k); // a single key
        run_attention(1, 7, 2, 64, 1.0, 22, kv, k); // decode
        run_attention(5, 0, 3, 64, 1.0, 23, kv, k); // prefill, NH T = 15: a partial last workgroup
        run_attention(7, 3, 5, 64, 1.0, 24, kv, k); // odd T with a past, an odd number of heads
        run_attention(1, 600, 2, 64, 1.0, 25, kv, k); // a 600-key decode
        run_attention(300, 0, 2, 64, 1.0, 26, kv, k); // a 300-token prefill
        run_attention(9, 260, 2, 64, 30.0, 27, kv, k); // very peaked scores: the online softmax rescales
        run_attention(9, 40, 3, 64, 300.0, 28, kv, k); // outlier queries: scores in the thousands
        run_attention(4, 9, 3, 8, 1.0, 29, kv, k); // hs = 8: two vec4s per head (one of f16 words)
        run_attention(3, 11, 2, 40, 1.0, 30, kv, k); // hs = 40: 10 of the 16 registers
    }
    // hs = 4, 12, 36 take the f32 cache (whole vec4s) but not f16 pairs (hs / 2 words not whole vec4s).
    for hs in [4, 12, 36] {
        run_attention(3, 5, 2, hs, 1.0, 31, KvFormat::F32, Some(Kernel::AttentionRows));
        run_attention(3, 5, 2, hs, 1.0, 47, KvFormat::F32, Some(Kernel::AttentionRowsPrompt));
    }
    // What the CPU tuning picks: odd, unaligned and too large heads, and split steps, run attention.
    let fits = |hs: u32, kv: KvFormat, block: u32| {
        let p = AttentionParams { t: 1, c: 2 * hs, nh: 2, hs, pos0: 3, scale: 1.0, kv: kv.code(), block };
        Tuning::CPU.attention_kernel_for(&p) == Kernel::AttentionRows
    };
    assert!(fits(64, KvFormat::F32, 0) && fits(64, KvFormat::F16, 0) && fits(8, KvFormat::F16, 0) && fits(4, KvFormat::F32, 0));
    assert!(!fits(4, KvFormat::F16, 0) && !fits(12, KvFormat::F16, 0) && !fits(7, KvFormat::F32, 0) && !fits(1, KvFormat::F32, 0));
    assert!(!fits(68, KvFormat::F32, 0) && !fits(128, KvFormat::F16, 0) && !fits(200, KvFormat::F32, 0));
    assert!(!fits(64, KvFormat::F32, 64), "a split decode step writes partials: attention's");
    let prompt = AttentionParams { t: 2, c: 128, nh: 2, hs: 64, pos0: 0, scale: 1.0, kv: 0, block: 0 };
    let no_windows = Tuning { attention_windows: false, ..Tuning::CPU };
    assert_eq!(no_windows.attention_kernel_for(&prompt), Kernel::AttentionRowsPrompt, "a step of several tokens");
    assert_eq!(Tuning::CPU.attention_kernel_for(&prompt), Kernel::AttentionWindow, "one whose heads fit their windows");
    assert_eq!(Tuning::CPU.attention_kernel_for(&AttentionParams { hs: 68, ..prompt }), Kernel::Attention, "hs > 64");
    let gpu_picks = AttentionParams { t: 1, c: 128, nh: 2, hs: 64, pos0: 3, scale: 1.0, kv: 0, block: 0 };
    assert_eq!(Tuning::GPU.attention_kernel_for(&gpu_picks), Kernel::Attention);
    for kv in [KvFormat::F32, KvFormat::F16] {
        run_attention(1, 7, 2, 7, 1.0, 32, kv, None); // odd head size
        run_attention(2, 5, 3, 1, 1.0, 33, kv, None); // hs = 1
        run_attention(3, 256, 1, 200, 1.0, 34, kv, None); // hs > 64
        run_attention(5, 4, 2, 12, 1.0, 35, kv, None); // f32: attention_rows; f16: attention
        run_attention(6, 2, 2, 64, 1.0, 36, kv, None); // attention_rows
    }
}

/// A decode step (T = 1) at position pos0 with attention split into blocks of `block` keys (flash-decoding:
/// attention.wgsl writes one partial per block and head), then the attention projection through gemv
/// with the merge folded into its X staging (MM_MERGE), Y = y0 + att W^T + b, against cpu.rs. With
/// `outliers`, a few cached keys are scaled along q so their scores are +1e3, +999 and -1e3 in different
/// blocks: the merge must rescale by the largest block max without overflow or losing the second.
/// `w_fmt` None: W = I in f32 and no bias, so Y - y0 is the merged attention itself, held to attention's
/// own tolerance.
fn run_split_attention(pos0: usize, nh: usize, hs: usize, block: usize, kv: KvFormat, outliers: bool, w_fmt: Option<WeightFormat>, (lanes, rows): (u32, u32), seed: u64) {
    let g = gpu();
    let mut rng = Rng(seed);
    let c = nh * hs;
    let n_keys = pos0 + 1;
    let nb = n_keys.div_ceil(block);
    let p = n_keys + 3;
    let scale = 1.0 / (hs as f32).sqrt();
    let qkv = rng.vec(3 * c, 1.0);
    let mut k_cache = rng.vec(p * c, 1.0);
    let mut v_cache = rng.vec(p * c, 1.0);
    if outliers && pos0 > 2 {
        // Key s of head h along q_h with score `target`: k = q * target / (scale |q_h|^2).
        for (s, target) in [(pos0 / 3, 1000.0f32), (2 * pos0 / 3, 999.0), (pos0 - 1, -1000.0)] {
            for h in 0..nh {
                let q = &qkv[h * hs..(h + 1) * hs];
                let q2: f32 = q.iter().map(|v| v * v).sum();
                for d in 0..hs {
                    k_cache[s * c + h * hs + d] = q[d] * target / (scale * q2);
                }
            }
        }
    }
    for v in k_cache[pos0 * c..n_keys * c].iter_mut().chain(v_cache[pos0 * c..n_keys * c].iter_mut()) {
        *v = f32::NAN; // the step's own row comes from qkv
    }
    let prm = AttentionParams { t: 1, c: c as u32, nh: nh as u32, hs: hs as u32, pos0: pos0 as u32, scale, kv: kv.code(), block: block as u32 };
    assert_eq!(Kernel::Attention.grid(bytemuck::bytes_of(&prm)), gpt2_webgpu::gpu::Grid::Xy(nh as u32, nb as u32));
    let (kc, _) = kv_words(&k_cache, p, nh, hs, kv);
    let (vc, _) = kv_words(&v_cache, p, nh, hs, kv);
    let stride = attention_part_stride(hs as u32) as usize;
    let part0 = vec![f32::NAN; (nb + 1) * nh * stride]; // one block too many: must stay untouched
    let out = pollster::block_on(g.run_once(Kernel::Attention, bytemuck::bytes_of(&prm), &[bytes(&qkv), bytes(&kc), bytes(&vc), bytes(&vec![5.0f32; c]), bytes(&part0)])).unwrap();
    let label = format!("split attention kv={} pos0={pos0} NH={nh} hs={hs} B={block} outliers={outliers} W={w_fmt:?} lanes={lanes} rows={rows}", kv.name());
    let (mut kw, mut vw) = (k_cache.clone(), v_cache.clone());
    kw[pos0 * c..n_keys * c].copy_from_slice(&qkv[c..2 * c]);
    vw[pos0 * c..n_keys * c].copy_from_slice(&qkv[2 * c..]);
    let (kw_words, k_held) = kv_words(&kw, p, nh, hs, kv);
    let (vw_words, v_held) = kv_words(&vw, p, nh, hs, kv);
    let words = |b: &[u8]| bytemuck::pod_collect_to_vec::<u8, u32>(b);
    assert!(words(&out[1]) == kw_words, "{label}: k_cache = past + this step's keys, written once");
    assert!(words(&out[2]) == vw_words, "{label}: v_cache = past + this step's values");
    assert!(floats(&out[3]).iter().all(|&v| v == 5.0), "{label}: a split step leaves `out` alone");
    let part = floats(&out[4]);
    assert!(part[nb * nh * stride..].iter().all(|v| v.is_nan()), "{label}: nothing past NB blocks");
    assert!(part[..nb * nh * stride].iter().all(|v| v.is_finite()), "{label}: every partial written and finite");

    let (mut k_ref, mut v_ref) = (k_held[..n_keys * c].to_vec(), v_held[..n_keys * c].to_vec());
    k_ref[pos0 * c..].copy_from_slice(&cpu::to_f64(&qkv[c..2 * c]));
    v_ref[pos0 * c..].copy_from_slice(&cpu::to_f64(&qkv[2 * c..]));
    let att = cpu::attention_with_past(&cpu::to_f64(&qkv[..c]), &k_ref, &v_ref, c, nh);

    // The projection with the merge folded in: y = y0 + att W^T (+ b).
    let (w_nk, fmt, flags) = match w_fmt {
        None => ((0..c * c).map(|i| if i / c == i % c { 1.0 } else { 0.0 }).collect::<Vec<f32>>(), WeightFormat::F32, MM_ACCUMULATE),
        Some(f) => (rng.vec(c * c, 0.5), f, MM_BIAS | MM_ACCUMULATE),
    };
    let packed = PackedMatrix::pack_nk(&w_nk, c, c, fmt);
    let bias = rng.vec(c, 1.0);
    let y0 = rng.vec(c, 1.0);
    let mm = MatmulParams {
        m: 1,
        n: c as u32,
        k: c as u32,
        flags: flags | MM_MERGE,
        x_row0: 0,
        x_stride: c as u32,
        y_stride: c as u32,
        y_col0: 0,
        w_stride: packed.w_stride() as u32,
        wfmt: fmt.code(),
        s_stride: packed.s_stride() as u32,
        lanes,
        rows,
        ln_eps: 1e-5,
        merge_nb: nb as u32,
        merge_hs: hs as u32,
    };
    let (g_ln, b_ln) = (vec![1f32; c], vec![0f32; c]);
    let out = pollster::block_on(g.run_once(
        Kernel::Gemv,
        bytemuck::bytes_of(&mm),
        &[out[4].clone(), bytes(&packed.words), bytes(&packed.scales), bytes(&bias), bytes(&y0), bytes(&g_ln), bytes(&b_ln)],
    ))
    .unwrap();
    let got = floats(&out[4]);
    let w_kn = gpt2_webgpu::quant::transpose(&packed.unpack(), c, c);
    let v = cpu::matmul(&att, &w_kn, if flags & MM_BIAS != 0 { Some(&bias) } else { None }, c, c);
    let want: Vec<f64> = y0.iter().zip(&v).map(|(&y, &v)| y as f64 + v).collect();
    // A score of 1e3 is formed in f32 to about 1e3 * eps * sqrt(hs) (1e-3 at hs = 64), which moves the
    // softmax weights (and so the output) by as much; dropping or double-counting a block would be ~0.1.
    let score_err = if outliers { 1e3 * f32::EPSILON as f64 * (hs as f64).sqrt() } else { 0.0 };
    match w_fmt {
        None => {
            let merged: Vec<f32> = got.iter().zip(&y0).map(|(g, y)| g - y).collect();
            assert_close(&label, &merged, &att, 2e-5 + score_err, 1e-4);
        }
        Some(_) => assert_close(&label, &got, &want, 2e-5 * (c as f64).sqrt() + 1e-5 + score_err * (c as f64).sqrt(), 1e-4),
    }
}

#[test]
fn split_decode_attention_with_the_merge_in_the_projection_matches_reference() {
    let mut seed = 900;
    // (lanes, rows): the GPU tuning's gemv shape (32 x 1) and the CPU adapters' (1 x 4, when forced to split).
    for shape in [(32u32, 1u32), (1, 4)] {
        for kv in [KvFormat::F32, KvFormat::F16] {
            for block in [32usize, 64] {
                // Contexts 1, B - 1, B, B + 1, several blocks with an odd last one.
                for n_keys in [1, block - 1, block, block + 1, 3 * block + 5] {
                    for w in [None, Some(WeightFormat::Q8)] {
                        seed += 1;
                        run_split_attention(n_keys - 1, 3, 64, block, kv, false, w, shape, seed);
                    }
                }
                seed += 1;
                run_split_attention(5 * block + 2, 2, 64, block, kv, true, None, shape, seed); // scores of +-1e3
                seed += 1;
                run_split_attention(5 * block + 2, 2, 64, block, kv, true, Some(WeightFormat::F32), shape, seed);
            }
            seed += 1;
            run_split_attention(40, 3, 7, 32, kv, true, None, shape, seed); // odd head size
            seed += 1;
            run_split_attention(600, 5, 256, 64, kv, false, Some(WeightFormat::F16), shape, seed); // hs = 256, K over two X tiles
            seed += 1;
            run_split_attention(1023, 25, 64, 32, kv, true, None, shape, seed); // gpt2-xl's 25 heads at the full context: 800 merges
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

// ---- sampling ---------------------------------------------------------------------------------

struct Draw {
    token: u32,
    prob: f32,
    alts: Vec<(u32, f32)>,
}

/// The sampler on one row; `hist` (distinct ids) is the penalty window, given as the counts the model
/// keeps (one per id), with nothing fed (the window moving on is tested through the model).
fn sample(logits: &[f32], hist: &[u32], prm: SampleParams) -> Draw {
    let mut counts = vec![0u32; logits.len()];
    for &id in hist {
        counts[id as usize] += 1;
    }
    let w = common::gpu_sample_words(logits, &counts, prm, 0);
    let n = w[2] as usize;
    Draw { token: w[0], prob: f32::from_bits(w[1]), alts: (0..n).map(|i| (w[3 + 2 * i], f32::from_bits(w[4 + 2 * i]))).collect() }
}

fn greedy_params() -> SampleParams {
    SampleParams { greedy: 1, temperature: 1.0, top_p: 1.0, rep_penalty: 1.0, n_alt: 5, ..Default::default() }
}

fn softmax(l: &[f32], temp: f64) -> Vec<f64> {
    let m = l.iter().fold(f64::MIN, |a, &b| a.max(b as f64));
    let e: Vec<f64> = l.iter().map(|&v| ((v as f64 - m) / temp).exp()).collect();
    let z: f64 = e.iter().sum();
    e.iter().map(|v| v / z).collect()
}

#[test]
fn greedy_is_argmax_with_exact_alternatives_on_a_full_vocabulary() {
    let mut rng = Rng(21);
    let mut l = rng.vec(50257, 4.0);
    l[31337] = 9.5;
    l[777] = 9.0;
    l[50256] = 8.75; // the very last element
    let d = sample(&l, &[], greedy_params());
    let p = softmax(&l, 1.0);
    assert_eq!(d.token, 31337);
    assert!((d.prob as f64 - p[31337]).abs() < 1e-5, "prob {} vs {}", d.prob, p[31337]);
    let ids: Vec<u32> = d.alts.iter().map(|a| a.0).collect();
    let mut order: Vec<usize> = (0..l.len()).collect();
    order.sort_by(|&a, &b| l[b].partial_cmp(&l[a]).unwrap().then(a.cmp(&b)));
    assert_eq!(ids, order[..5].iter().map(|&i| i as u32).collect::<Vec<_>>());
    for (id, pr) in &d.alts {
        assert!((*pr as f64 - p[*id as usize]).abs() < 1e-5);
    }
}

#[test]
fn greedy_ties_pick_the_lowest_id_and_tiny_vocabularies_work() {
    let d = sample(&[1.0, 3.0, 3.0, -2.0, 3.0], &[], greedy_params());
    assert_eq!(d.token, 1);
    assert_eq!(d.alts.iter().map(|a| a.0).collect::<Vec<_>>(), vec![1, 2, 4, 0, 3]);
    let d = sample(&[-5.0], &[], SampleParams { greedy: 0, temperature: 0.7, top_k: 3, top_p: 0.5, ..greedy_params() });
    assert_eq!((d.token, d.prob), (0, 1.0));
}

#[test]
fn repetition_penalty_divides_positive_and_multiplies_negative_logits() {
    // Token 0 leads (2.0) but is in the context: 2.0 / 1.5 = 1.33 < 1.5, so token 1 wins.
    let l = [2.0f32, 1.5, -1.0, -0.9, 0.1];
    assert_eq!(sample(&l, &[], greedy_params()).token, 0);
    let pen = SampleParams { rep_penalty: 1.5, ..greedy_params() };
    let d = sample(&l, &[0, 3], pen);
    assert_eq!(d.token, 1);
    // Token 3 (-0.9) becomes -1.35, so it falls below token 2 (-1.0) in the alternatives.
    let ids: Vec<u32> = d.alts.iter().map(|a| a.0).collect();
    assert_eq!(ids, vec![1, 0, 4, 2, 3]);
    let pen_l = [2.0 / 1.5, 1.5, -1.0, -0.9 * 1.5, 0.1];
    let p = softmax(&pen_l, 1.0);
    for (id, pr) in &d.alts {
        assert!((*pr as f64 - p[*id as usize]).abs() < 1e-6);
    }
}

#[test]
fn seeded_sampling_is_reproducible_and_top_k_1_is_greedy() {
    let mut rng = Rng(31);
    let l = rng.vec(5000, 3.0);
    let argmax = sample(&l, &[], greedy_params()).token;
    let base = SampleParams { greedy: 0, temperature: 1.3, top_k: 0, top_p: 1.0, rep_penalty: 1.0, seed: 42, step: 0, n_alt: 3, ..Default::default() };
    let a: Vec<u32> = (0..8).map(|s| sample(&l, &[], SampleParams { step: s, ..base }).token).collect();
    let b: Vec<u32> = (0..8).map(|s| sample(&l, &[], SampleParams { step: s, ..base }).token).collect();
    assert_eq!(a, b, "same seed and step, same token");
    let c: Vec<u32> = (0..8).map(|s| sample(&l, &[], SampleParams { step: s, seed: 43, ..base }).token).collect();
    assert_ne!(a, c, "another seed gives another sequence");
    let mut distinct = a.clone();
    distinct.sort();
    distinct.dedup();
    assert!(distinct.len() > 1, "temperature sampling over 5000 flat-ish logits draws different tokens");
    for s in 0..5 {
        let d = sample(&l, &[], SampleParams { top_k: 1, step: s, ..base });
        assert_eq!((d.token, d.prob), (argmax, 1.0), "top-k = 1 is greedy");
    }
}

#[test]
fn top_k_and_top_p_draw_only_from_the_specified_set_with_the_right_frequencies() {
    // Ten candidates with known probabilities, the rest negligible.
    let mut l = vec![-30.0f32; 1000];
    let lead = [(10usize, 3.0f32), (20, 2.5), (30, 2.0), (40, 1.5), (50, 1.0), (60, 0.5), (70, 0.0), (80, -0.5)];
    for (i, v) in lead {
        l[i] = v;
    }
    let p = softmax(&l, 1.0);
    let mut by_p: Vec<usize> = (0..l.len()).collect();
    by_p.sort_by(|&a, &b| p[b].partial_cmp(&p[a]).unwrap());

    // top-k = 3: only the three best, frequencies ~ renormalised probabilities.
    let base = SampleParams { greedy: 0, temperature: 1.0, top_k: 3, top_p: 1.0, rep_penalty: 1.0, seed: 7, n_alt: 4, ..Default::default() };
    let n = 300;
    let mut count = std::collections::HashMap::new();
    for s in 0..n {
        let d = sample(&l, &[], SampleParams { step: s, ..base });
        assert!(by_p[..3].contains(&(d.token as usize)), "top-k 3 drew token {}", d.token);
        let z: f64 = by_p[..3].iter().map(|&i| p[i]).sum();
        assert!((d.prob as f64 - p[d.token as usize] / z).abs() < 1e-4, "reported probability is renormalised over the kept set");
        assert_eq!(d.alts[3].1, 0.0, "the 4th alternative is outside top-k, probability 0");
        *count.entry(d.token).or_insert(0usize) += 1;
    }
    let z: f64 = by_p[..3].iter().map(|&i| p[i]).sum();
    for &i in &by_p[..3] {
        let expect = p[i] / z * n as f64;
        let got = *count.get(&(i as u32)).unwrap_or(&0) as f64;
        // 4.5 standard deviations of a binomial: fails only if the distribution is wrong.
        let sd = (n as f64 * (p[i] / z) * (1.0 - p[i] / z)).sqrt();
        assert!((got - expect).abs() < 4.5 * sd + 1.0, "token {i}: drawn {got} times, expected {expect:.1}");
    }

    // top-p = 0.8: the smallest top set with mass >= 0.8 (computed here in f64).
    let mut mass = 0.0;
    let mut keep = 0;
    while mass < 0.8 {
        mass += p[by_p[keep]];
        keep += 1;
    }
    let tp = SampleParams { top_k: 0, top_p: 0.8, ..base };
    let mut seen = std::collections::HashSet::new();
    for s in 0..200 {
        let d = sample(&l, &[], SampleParams { step: s, ..tp });
        assert!(by_p[..keep].contains(&(d.token as usize)), "top-p 0.8 drew token {} outside the {keep}-token nucleus", d.token);
        seen.insert(d.token);
    }
    assert_eq!(seen.len(), keep, "every token of the nucleus gets drawn");
    // top-p tiny: only the best token.
    let d = sample(&l, &[], SampleParams { top_k: 0, top_p: 0.01, ..base });
    assert_eq!((d.token as usize, d.prob), (by_p[0], 1.0));
}

fn run_attention_probs(t: usize, pos0: usize, nh: usize, hs: usize, q_scale: f32, seed: u64) {
    let g = gpu();
    let mut rng = Rng(seed);
    let c = nh * hs;
    let s = pos0 + t;
    let p = s + 3; // the cache is longer than what is used
    let mut qkv = rng.vec(t * 3 * c, 1.0);
    for r in 0..t {
        for v in &mut qkv[r * 3 * c..r * 3 * c + c] {
            *v *= q_scale;
        }
    }
    let k_cache = rng.vec(p * c, 1.0);
    let prm = AttentionParams { t: t as u32, c: c as u32, nh: nh as u32, hs: hs as u32, pos0: pos0 as u32, scale: 1.0 / (hs as f32).sqrt(), kv: 0, block: 0 };
    // Garbage in the output buffer: every element, above the diagonal too, must be written.
    let out = pollster::block_on(g.run_once(Kernel::AttentionProbs, bytemuck::bytes_of(&prm), &[bytes(&qkv), bytes(&k_cache), bytes(&vec![7.0f32; nh * t * s])]))
        .unwrap();
    let got = floats(&out[2]);
    let q: Vec<f64> = (0..t).flat_map(|r| qkv[r * 3 * c..r * 3 * c + c].iter().map(|&v| v as f64)).collect();
    let kv = cpu::to_f64(&k_cache[..s * c]);
    let mut want = vec![0f64; nh * t * s]; // [NH, T, S]
    cpu::attention_probs_with_past(&q, &kv, &kv, c, nh, Some(&mut want));
    assert_close(&format!("attention_probs T={t} pos0={pos0} NH={nh} hs={hs} qscale={q_scale}"), &got, &want, 1e-6, 1e-4);
}

#[test]
fn attention_probs_match_reference_across_positions_heads_and_lengths() {
    run_attention_probs(1, 0, 1, 1, 1.0, 11); // a single key
    run_attention_probs(5, 0, 3, 64, 1.0, 12); // a short prompt
    run_attention_probs(7, 9, 2, 7, 1.0, 13); // with a past, odd head size
    run_attention_probs(300, 0, 2, 64, 1.0, 14); // more keys than threads and than attention's tile
    run_attention_probs(3, 256, 1, 200, 1.0, 15); // hs > 64
    run_attention_probs(9, 60, 2, 64, 30.0, 16); // very peaked scores
}
