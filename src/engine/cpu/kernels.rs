//! The CPU engine's kernels over the package's weight formats, exactly as stored (src/quant.rs):
//! W [N, K] out-major rows of u32 words; q8 = int8 x f16 scale per 32, q4 = (nibble - 8) x f16 scale
//! per 32, f16 pairs, f32. Activations are f32.
//!
//! q8/q4 rows are dotted with int8 activations: x is quantized per block of 32 (d = max|x| / 127, the
//! same blocks as the weights), so one block is an exact integer dot product times d_w * d_x. That
//! costs about what the weight quantization already costs (see tests/cpu_engine.rs for the bounds) and
//! lets AVX2 (`maddubs`) and wasm `simd128` (`i32x4_dot_i16x8`) do 16-32 multiply-adds per instruction.
//! f32/f16 rows are dotted with f32 activations (FMA; f16 via F16C natively, a bit trick in wasm).
//!
//! Every kernel has a scalar path (`Simd::Scalar`); tests check each SIMD path against it and against
//! the f64 reference. Shapes: T tokens, K inputs, N outputs, nb = ceil(K / 32) blocks, kp = 32 nb.

use super::pool::{Pool, SyncPtr};
use crate::quant::{PackedMatrix, WeightFormat, GROUP};

/// Which instruction set the kernels use, chosen once at run time natively (at build time in wasm).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Simd {
    Scalar,
    /// x86-64 AVX2 + FMA + F16C.
    Avx2,
    /// wasm32 simd128.
    Simd128,
    /// aarch64 NEON (baseline there), int8 dots by widening multiplies.
    Neon,
    /// aarch64 NEON with the dotprod extension (`sdot`), where the CPU reports it.
    NeonDot,
}

impl Simd {
    /// The best path this CPU offers.
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") && std::is_x86_feature_detected!("f16c") {
                return Simd::Avx2;
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            return Simd::Simd128;
        }
        #[cfg(target_arch = "aarch64")]
        {
            return if std::arch::is_aarch64_feature_detected!("dotprod") { Simd::NeonDot } else { Simd::Neon };
        }
        #[allow(unreachable_code)]
        Simd::Scalar
    }

    pub fn name(self) -> &'static str {
        match self {
            Simd::Scalar => "scalar",
            Simd::Avx2 => "avx2",
            Simd::Simd128 => "simd128",
            Simd::Neon => "neon",
            Simd::NeonDot => "neon+dotprod",
        }
    }

    /// Every path this build can run here (tests compare each with the scalar one).
    pub fn available() -> Vec<Simd> {
        let mut v = vec![Simd::Scalar];
        if Simd::detect() == Simd::NeonDot {
            v.push(Simd::Neon); // the plain NEON path runs wherever dotprod does
        }
        if Simd::detect() != Simd::Scalar {
            v.push(Simd::detect());
        }
        v
    }
}

/// Activations quantized per block of 32 for a q8/q4 matrix: [T, kp] int8 (for q4 each block is
/// reordered to its 16 even then 16 odd k, the order of the low and high nibbles), with per block the
/// scale d [T, nb] and the sum of the ints [T, nb] (q4's "- 8" comes out as -8 * sum).
#[derive(Default, Debug)]
pub struct QuantX {
    pub qs: Vec<i8>,
    pub d: Vec<f32>,
    pub sums: Vec<i32>,
    pub kp: usize,
    pub nb: usize,
}

impl QuantX {
    /// Quantize x [T, K]; `q4` chooses the nibble order.
    pub fn quantize(&mut self, x: &[f32], k: usize, q4: bool) {
        self.quantize_with(Simd::Scalar, x, k, q4)
    }

    /// `quantize` through a SIMD path where there is one (AVX2, q8 order): the same result bit for bit.
    pub fn quantize_with(&mut self, simd: Simd, x: &[f32], k: usize, q4: bool) {
        let t = x.len() / k;
        let nb = k.div_ceil(GROUP);
        let kp = nb * GROUP;
        self.kp = kp;
        self.nb = nb;
        self.qs.clear();
        self.qs.resize(t * kp, 0);
        self.d.clear();
        self.d.resize(t * nb, 0.0);
        self.sums.clear();
        self.sums.resize(t * nb, 0);
        for r in 0..t {
            let row = &x[r * k..(r + 1) * k];
            // Whole blocks through SIMD where there is a quantizer (x86-64, q8 order), the rest below.
            #[cfg(target_arch = "x86_64")]
            let done = if simd == Simd::Avx2 && !q4 {
                let (qs, d, sums) = (&mut self.qs[r * kp..(r + 1) * kp], &mut self.d[r * nb..(r + 1) * nb], &mut self.sums[r * nb..(r + 1) * nb]);
                unsafe { super::x86::quantize_q8(row, qs, d, sums) }
            } else {
                0
            };
            #[cfg(not(target_arch = "x86_64"))]
            let done = {
                let _ = simd;
                0
            };
            for b in done..nb {
                let blk = &row[b * GROUP..((b + 1) * GROUP).min(k)];
                let amax = blk.iter().fold(0f32, |a, v| a.max(v.abs()));
                let d = amax / 127.0;
                let inv = if d > 0.0 { 1.0 / d } else { 0.0 };
                let out = &mut self.qs[r * kp + b * GROUP..][..GROUP];
                let mut sum = 0i32;
                for (j, &v) in blk.iter().enumerate() {
                    let q = (v * inv).round().clamp(-127.0, 127.0) as i8;
                    sum += q as i32;
                    let at = if q4 { (j % 2) * 16 + j / 2 } else { j };
                    out[at] = q;
                }
                self.d[r * nb + b] = d;
                self.sums[r * nb + b] = sum;
            }
        }
    }
}

/// f16 bits -> f32 (exact for every finite half).
#[inline]
pub fn h2f(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// The matrix's bytes and f16 scale entries (little-endian words: byte i of a row is k = i for q8, and
/// holds k = 2i (low nibble), 2i + 1 (high) for q4).
pub fn bytes_of(m: &PackedMatrix) -> (&[u8], &[u16]) {
    (bytemuck::cast_slice(&m.words), bytemuck::cast_slice(&m.scales))
}

/// Rows of W dotted with up to 4 token rows: out[r] = W[n] . x[t0 + r] for r < rows.
/// `x` is the f32 activations [T, K] (f32/f16 weights) and `qx` the quantized ones (q8/q4).
#[allow(clippy::too_many_arguments)]
fn dot_tile(simd: Simd, m: &PackedMatrix, n: usize, x: &[f32], qx: &QuantX, t0: usize, rows: usize, out: &mut [f32; 4]) {
    let (bytes, scales) = bytes_of(m);
    let k = m.k;
    let ws = m.w_stride();
    let ss = m.s_stride();
    match m.format {
        WeightFormat::Q8 | WeightFormat::Q4 => {
            let row = &bytes[n * ws * 4..(n + 1) * ws * 4];
            let sc = &scales[n * ss..(n + 1) * ss];
            let xq = &qx.qs[t0 * qx.kp..(t0 + rows) * qx.kp];
            let xd = &qx.d[t0 * qx.nb..(t0 + rows) * qx.nb];
            let xs = &qx.sums[t0 * qx.nb..(t0 + rows) * qx.nb];
            let q4 = m.format == WeightFormat::Q4;
            match simd {
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => unsafe { super::x86::quant_rows(q4, row, sc, xq, xd, xs, qx.nb, rows, out) },
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                Simd::Simd128 => super::wasm::quant_rows(q4, row, sc, xq, xd, qx.nb, rows, out),
                #[cfg(target_arch = "aarch64")]
                Simd::Neon | Simd::NeonDot => unsafe { super::neon::quant_rows(simd == Simd::NeonDot, q4, row, sc, xq, xd, qx.nb, rows, out) },
                _ => quant_rows_scalar(q4, row, sc, xq, xd, xs, qx.nb, rows, out),
            }
        }
        WeightFormat::F32 => {
            let row: &[f32] = bytemuck::cast_slice(&m.words[n * ws..(n + 1) * ws]);
            let xt = &x[t0 * k..(t0 + rows) * k];
            match simd {
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => unsafe { super::x86::f32_rows(row, xt, k, rows, out) },
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                Simd::Simd128 => super::wasm::f32_rows(row, xt, k, rows, out),
                #[cfg(target_arch = "aarch64")]
                Simd::Neon | Simd::NeonDot => super::neon::f32_rows(row, xt, k, rows, out),
                _ => f32_rows_scalar(row, xt, k, rows, out),
            }
        }
        WeightFormat::F16 => {
            let row = &bytemuck::cast_slice::<u32, u16>(&m.words[n * ws..(n + 1) * ws])[..k];
            let xt = &x[t0 * k..(t0 + rows) * k];
            match simd {
                #[cfg(target_arch = "x86_64")]
                Simd::Avx2 => unsafe { super::x86::f16_rows(row, xt, k, rows, out) },
                #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
                Simd::Simd128 => super::wasm::f16_rows(row, xt, k, rows, out),
                #[cfg(target_arch = "aarch64")]
                Simd::Neon | Simd::NeonDot => super::neon::f16_rows(row, xt, k, rows, out),
                _ => f16_rows_scalar(row, xt, k, rows, out),
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn quant_rows_scalar(q4: bool, row: &[u8], sc: &[u16], xq: &[i8], xd: &[f32], xs: &[i32], nb: usize, rows: usize, out: &mut [f32; 4]) {
    let kp = nb * GROUP;
    for r in 0..rows {
        let mut acc = 0f32;
        for b in 0..nb {
            let x = &xq[r * kp + b * GROUP..][..GROUP];
            let isum: i32 = if q4 {
                let w = &row[b * 16..][..16];
                // x is reordered: [even k (low nibbles) | odd k (high nibbles)]
                let dot: i32 = (0..16).map(|j| (w[j] & 15) as i32 * x[j] as i32 + (w[j] >> 4) as i32 * x[16 + j] as i32).sum();
                dot - 8 * xs[r * nb + b]
            } else {
                let w = &row[b * GROUP..][..GROUP];
                w.iter().zip(x).map(|(&a, &b)| a as i8 as i32 * b as i32).sum()
            };
            acc += isum as f32 * (h2f(sc[b]) * xd[r * nb + b]);
        }
        out[r] = acc;
    }
}

fn f32_rows_scalar(w: &[f32], x: &[f32], k: usize, rows: usize, out: &mut [f32; 4]) {
    for r in 0..rows {
        out[r] = w[..k].iter().zip(&x[r * k..(r + 1) * k]).map(|(a, b)| a * b).sum();
    }
}

fn f16_rows_scalar(w: &[u16], x: &[f32], k: usize, rows: usize, out: &mut [f32; 4]) {
    for r in 0..rows {
        out[r] = w.iter().zip(&x[r * k..(r + 1) * k]).map(|(&a, b)| h2f(a) * b).sum();
    }
}

/// Output rows per chunk of work: a block of W rows stays in L1/L2 while every token tile uses it.
const N_BLOCK: usize = 32;

/// y [T, N] = x [T, K] @ W^T + bias, over the pool's threads (each takes a range of output rows).
/// `qx` is scratch for the quantized activations (q8/q4).
#[allow(clippy::too_many_arguments)]
pub fn linear(pool: &Pool, simd: Simd, m: &PackedMatrix, x: &[f32], bias: Option<&[f32]>, y: &mut [f32], qx: &mut QuantX) {
    linear_then(pool, simd, m, x, bias, y, qx, false)
}

/// `linear`, then GELU on y: each thread applies it to the outputs it computed, so the MLP's
/// activation runs on every thread instead of on the caller alone while the others wait.
#[allow(clippy::too_many_arguments)]
pub fn linear_gelu(pool: &Pool, simd: Simd, m: &PackedMatrix, x: &[f32], bias: Option<&[f32]>, y: &mut [f32], qx: &mut QuantX) {
    linear_then(pool, simd, m, x, bias, y, qx, true)
}

/// Bytes of weight rows per chunk of a one-token q8 product (decode): big enough that a thread's
/// prefetch runs ahead within its own rows (x86::PREFETCH is 2 KB), small enough that a thread the
/// OS descheduled leaves little for the other to wait on (qkv: 36 chunks, the logits: 590).
#[cfg(target_arch = "x86_64")]
const DECODE_CHUNK_BYTES: usize = 64 << 10;

#[allow(clippy::too_many_arguments)]
fn linear_then(pool: &Pool, simd: Simd, m: &PackedMatrix, x: &[f32], bias: Option<&[f32]>, y: &mut [f32], qx: &mut QuantX, act: bool) {
    let (n, k) = (m.n, m.k);
    assert_eq!(x.len() % k, 0, "linear: x is not [T, K]");
    let t = x.len() / k;
    assert_eq!(y.len(), t * n, "linear: y is not [T, N]");
    assert!(bias.is_none_or(|b| b.len() == n), "linear: bias is not [N]");
    if m.format.has_scales() {
        qx.quantize_with(simd, x, k, m.format == WeightFormat::Q4);
    }
    let qx = &*qx;
    let yp = SyncPtr(y.as_mut_ptr());
    #[cfg(target_arch = "x86_64")]
    if t == 1 && simd == Simd::Avx2 && m.format == WeightFormat::Q8 {
        // Decode: whole chunks of rows per kernel call (see x86::q8_gemv).
        let (bytes, scales) = bytes_of(m);
        let (rb, ss) = (m.w_stride() * 4, m.s_stride());
        let rows = (DECODE_CHUNK_BYTES / rb).max(1);
        pool.for_each(n.div_ceil(rows), &|chunk| {
            let (r0, r1) = (chunk * rows, ((chunk + 1) * rows).min(n));
            // SAFETY: each chunk writes only its own outputs [r0, r1).
            let out = unsafe { std::slice::from_raw_parts_mut(yp.get().add(r0), r1 - r0) };
            unsafe { super::x86::q8_gemv(&bytes[r0 * rb..r1 * rb], &scales[r0 * ss..r1 * ss], rb, &qx.qs, &qx.d, qx.nb, bias.map(|b| &b[r0..r1]), out) };
            if act {
                unsafe { super::x86::gelu(out) };
            }
        });
        return;
    }
    pool.for_each(n.div_ceil(N_BLOCK), &|chunk| {
        let (nb0, nb1) = (chunk * N_BLOCK, ((chunk + 1) * N_BLOCK).min(n));
        let mut out = [0f32; 4];
        for t0 in (0..t).step_by(4) {
            let rows = (t - t0).min(4);
            for r in nb0..nb1 {
                dot_tile(simd, m, r, x, qx, t0, rows, &mut out);
                let b = bias.map_or(0.0, |b| b[r]);
                for (j, &o) in out[..rows].iter().enumerate() {
                    // SAFETY: each chunk writes only its own output columns [nb0, nb1).
                    unsafe { *yp.get().add((t0 + j) * n + r) = o + b };
                }
            }
            if act {
                for j in 0..rows {
                    // SAFETY: as above, this chunk's columns of token row t0 + j.
                    gelu_with(simd, unsafe { std::slice::from_raw_parts_mut(yp.get().add((t0 + j) * n + nb0), nb1 - nb0) });
                }
            }
        }
    });
}

/// Row `n` of a packed matrix decoded to f32 (the embedding lookup).
pub fn decode_row(m: &PackedMatrix, n: usize, out: &mut [f32]) {
    let (bytes, scales) = bytes_of(m);
    let (ws, ss, k) = (m.w_stride(), m.s_stride(), m.k);
    match m.format {
        WeightFormat::F32 => out.copy_from_slice(bytemuck::cast_slice(&m.words[n * ws..n * ws + k])),
        WeightFormat::F16 => {
            let row = &bytemuck::cast_slice::<u32, u16>(&m.words[n * ws..(n + 1) * ws])[..k];
            for (o, &h) in out.iter_mut().zip(row) {
                *o = h2f(h);
            }
        }
        WeightFormat::Q8 => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = bytes[n * ws * 4 + i] as i8 as f32 * h2f(scales[n * ss + i / GROUP]);
            }
        }
        WeightFormat::Q4 => {
            for (i, o) in out.iter_mut().enumerate() {
                let byte = bytes[n * ws * 4 + i / 2];
                let q = if i % 2 == 0 { byte & 15 } else { byte >> 4 };
                *o = (q as f32 - 8.0) * h2f(scales[n * ss + i / GROUP]);
            }
        }
    }
}

/// Layer norm over rows of C (biased variance, as PyTorch), two passes in f32.
/// x [T, C], g [C], b [C] -> y [T, C].
pub fn layer_norm(x: &[f32], g: &[f32], b: &[f32], eps: f32, y: &mut [f32]) {
    let c = g.len();
    for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        let mean = xr.iter().sum::<f32>() / c as f32;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / c as f32;
        let rstd = 1.0 / (var + eps).sqrt();
        for (((o, &v), &gi), &bi) in yr.iter_mut().zip(xr).zip(g).zip(b) {
            *o = (v - mean) * rstd * gi + bi;
        }
    }
}

/// `gelu` through the chosen path (AVX2: x86::gelu, within a few ulp of this one).
pub fn gelu_with(simd: Simd, x: &mut [f32]) {
    match simd {
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { super::x86::gelu(x) },
        _ => gelu(x),
    }
}

/// GPT-2's tanh GELU ("gelu_new"), in place.
pub fn gelu(x: &mut [f32]) {
    const S: f32 = 0.797_884_6; // sqrt(2 / pi)
    for v in x {
        let u = *v;
        *v = 0.5 * u * (1.0 + (S * (u + 0.044715 * u * u * u)).tanh());
    }
}

/// f32 dot product of two rows (attention), through the chosen path.
#[inline]
pub fn dot(simd: Simd, a: &[f32], b: &[f32]) -> f32 {
    let mut out = [0f32; 4];
    match simd {
        #[cfg(target_arch = "x86_64")]
        Simd::Avx2 => unsafe { super::x86::f32_rows(a, b, a.len(), 1, &mut out) },
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Simd::Simd128 => super::wasm::f32_rows(a, b, a.len(), 1, &mut out),
        #[cfg(target_arch = "aarch64")]
        Simd::Neon | Simd::NeonDot => super::neon::f32_rows(a, b, a.len(), 1, &mut out),
        _ => f32_rows_scalar(a, b, a.len(), 1, &mut out),
    }
    out[0]
}

/// Causal attention of T new queries over the KV cache, heads split across threads.
/// qkv [T, 3C] (q = the first C columns), k_cache / v_cache [>= pos0 + T, C] holding positions
/// 0..pos0 + T, scores: scratch [NH, P]; out [T, C] (heads concatenated). Query t sees positions
/// 0..=pos0 + t. `probs` (an inspection), when given, [NH, T, pos0 + T], zeroed by the caller: each
/// head's softmax probabilities, row = query, column = key (the entries past a query stay 0).
#[allow(clippy::too_many_arguments)]
pub fn attention(
    pool: &Pool,
    simd: Simd,
    qkv: &[f32],
    k_cache: &[f32],
    v_cache: &[f32],
    c: usize,
    nh: usize,
    pos0: usize,
    scores: &mut [f32],
    out: &mut [f32],
    probs: Option<&mut [f32]>,
) {
    let t = out.len() / c;
    let hs = c / nh;
    let p = scores.len() / nh;
    let kt = pos0 + t; // keys the last query sees
    assert!(kt <= p && qkv.len() == 3 * c * t && k_cache.len() >= kt * c && v_cache.len() >= kt * c);
    assert!(probs.as_ref().is_none_or(|a| a.len() == nh * t * kt), "probs is not [NH, T, pos0 + T]");
    let scale = 1.0 / (hs as f32).sqrt();
    let sp = SyncPtr(scores.as_mut_ptr());
    let op = SyncPtr(out.as_mut_ptr());
    let pp = probs.map(|a| SyncPtr(a.as_mut_ptr()));
    pool.for_each(nh, &|h| {
        {
            // SAFETY: head h's scores row and output columns belong to this thread alone.
            let sc = unsafe { std::slice::from_raw_parts_mut(sp.get().add(h * p), p) };
            for ti in 0..t {
                let q = &qkv[ti * 3 * c + h * hs..][..hs];
                let s_len = pos0 + ti + 1;
                match simd {
                    // SAFETY: k_cache holds kt >= s_len rows of C (asserted above).
                    #[cfg(target_arch = "x86_64")]
                    Simd::Avx2 => unsafe { super::x86::attn_scores(q, &k_cache[h * hs..], c, scale, &mut sc[..s_len]) },
                    _ => {
                        for (s, o) in sc[..s_len].iter_mut().enumerate() {
                            *o = dot(simd, q, &k_cache[s * c + h * hs..][..hs]) * scale;
                        }
                    }
                }
                let mx = sc[..s_len].iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
                let mut z = 0f32;
                for o in &mut sc[..s_len] {
                    *o = (*o - mx).exp();
                    z += *o;
                }
                let inv = 1.0 / z;
                if let Some(pp) = &pp {
                    // SAFETY: head h's [T, kt] block of probs belongs to this thread alone.
                    let row = unsafe { std::slice::from_raw_parts_mut(pp.get().add((h * t + ti) * kt), s_len) };
                    for (o, &w) in row.iter_mut().zip(&sc[..s_len]) {
                        *o = w * inv;
                    }
                }
                let y = unsafe { std::slice::from_raw_parts_mut(op.get().add(ti * c + h * hs), hs) };
                y.fill(0.0);
                for w in &mut sc[..s_len] {
                    *w *= inv;
                }
                match simd {
                    #[cfg(target_arch = "x86_64")]
                    Simd::Avx2 => unsafe { super::x86::attn_values(&sc[..s_len], &v_cache[h * hs..], c, y) },
                    _ => {
                        for (s, &w) in sc[..s_len].iter().enumerate() {
                            for (o, &v) in y.iter_mut().zip(&v_cache[s * c + h * hs..][..hs]) {
                                *o += w * v;
                            }
                        }
                    }
                }
            }
        }
    });
}
