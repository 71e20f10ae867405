//! The linear kernels (matmul, gemv with and without the layer norm folded in, gemv_rows, matmul_rows,
//! matmul_run, the bench's gemv_ref) and their fused GELU.

use crate::common::{assert_close, gpu, Rng};
use crate::helpers::{bytes, floats, weight_bytes};
use gpt2_webgpu::gpu::params::*;
use gpt2_webgpu::gpu::{Gpu, Kernel, Tuning, TuningKind};
use gpt2_webgpu::quant::{PackedMatrix, WeightFormat};
use gpt2_webgpu::reference::cpu;

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
fn matmul_subgroup_matches_reference_on_edges_formats_and_epilogues() {
    // The CPU tuning's kernel for prompts where the device has subgroups of 8 (lavapipe): one run of 16 rows
    // x 16 tokens per thread, each chunk of X loaded by the 8 lanes together and shared by subgroupBroadcast.
    // This device must have them (the tests run on lavapipe), so the kernel is really run.
    let g = gpu();
    assert!(g.info.features.contains(wgpu::Features::SUBGROUP) && g.info.adapter.subgroup_min_size >= 8, "no subgroups of 8 here: {}", g.info);
    assert_eq!(g.tuning.matmul_kernel, Kernel::MatmulSubgroup, "{}", g.tuning);
    // M = 1, below, at and past 16 (tokens past M are computed on token M - 1 and must not be stored), 33 (a
    // last group of one token); N below, at and past 16 and 128 (rows past N read the last tile's zero rows,
    // their threads still load X for the others, and must not be stored), several tiles (N = 300, 769,
    // 1540); K = 1, odd, ragged within and past a chunk (X is 0 past K); X through the uniform window and past
    // it from storage, on vec4s and not (all four variants of each format: M x K = 17 x 3072, 7 x 2051,
    // 13 x 2049, 9 x 2048 from x_row0 = 1 lie past the window).
    check_rows_kernel(
        Kernel::MatmulSubgroup,
        1700,
        &[(1, 1, 1), (3, 15, 7), (16, 17, 33), (17, 129, 768), (33, 20, 31), (7, 16, 2051), (17, 50, 3072), (6, 300, 40), (5, 769, 64), (3, 1540, 33)],
        &[(2, 33, 64), (15, 17, 100), (16, 129, 1600), (3, 6, 2049), (1, 1, 1), (13, 131, 65), (13, 20, 2049), (9, 20, 2048), (20, 2304, 768), (6, 1000, 70)],
    );
    // q8 bytes the quantizer never writes (-128) and the extremes, on gpt2's prompt shapes.
    let mut seed = 1800;
    for &(m, n, k) in &[(19usize, 768usize, 3072usize), (32, 131, 64), (1, 20, 33)] {
        seed += 1;
        run_linear_on(&g, Kernel::MatmulSubgroup, WeightFormat::Q8, m, n, k, MM_BIAS | MM_ACCUMULATE, seed, (1, 1), true);
    }
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
