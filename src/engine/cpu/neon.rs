//! aarch64 NEON kernels. NEON is baseline on aarch64, so `Simd::Neon` needs no detection; `Simd::NeonDot`
//! adds `sdot` (the dotprod extension: 16 int8 multiply-adds into 4 i32 lanes per instruction), used only
//! when `is_aarch64_feature_detected!("dotprod")` says so (`Simd::detect`).
//! q8 / q4 without dotprod: `vmull_s8` + `vmlal_high_s8` put two int8 products into each i16 lane (|w x| <=
//! 128 * 127, x clamped to +-127, so a pair stays below 2^15), `vpadalq_s16` widens them into i32.
//! q4 nibbles are made signed (- 8) before the dot, so no correction is needed. Four blocks at a time:
//! their integer sums go into the lanes of one vector (`vpaddq_s32`), scaled by four weight scales times
//! four activation scales. f16: halves widened to f32 by the bit trick wasm.rs uses (stable Rust has no
//! f16 vector conversion), exact for every finite half.
//! `vdotq_s32` is still unstable in Rust (`stdarch_neon_dotprod`), so `sdot` is written as inline asm.

#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

use std::arch::aarch64::*;
use std::arch::asm;

#[inline]
fn h2f(h: u16) -> f32 {
    super::kernels::h2f(h)
}

/// f16 bits (already widened to u32 lanes) -> f32x4: shift into f32's exponent/mantissa, scale by 2^112.
#[inline]
unsafe fn widen(h: uint32x4_t) -> float32x4_t {
    let magic = vdupq_n_f32(f32::from_bits(0x7780_0000)); // 2^112
    let o = vreinterpretq_f32_u32(vshlq_n_u32::<13>(vandq_u32(h, vdupq_n_u32(0x7fff))));
    let sign = vshlq_n_u32::<16>(vandq_u32(h, vdupq_n_u32(0x8000)));
    vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(vmulq_f32(o, magic)), sign))
}

/// 4 f16 scales starting at `p` -> f32x4.
#[inline]
unsafe fn halves4(p: *const u16) -> float32x4_t {
    widen(vmovl_u16(vld1_u16(p)))
}

/// Weight block b as two int8x16 in the order the activations are stored: q8 = k 0..16, 16..32; q4 = the
/// low nibbles (even k), the high nibbles (odd k), made signed (- 8).
#[inline]
unsafe fn weights<const Q4: bool>(row: *const u8, b: usize) -> (int8x16_t, int8x16_t) {
    if Q4 {
        let raw = vld1q_u8(row.add(b * 16));
        let eight = vdupq_n_s8(8);
        let lo = vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(15)));
        let hi = vreinterpretq_s8_u8(vshrq_n_u8::<4>(raw));
        (vsubq_s8(lo, eight), vsubq_s8(hi, eight))
    } else {
        (vld1q_s8(row.add(b * 32) as *const i8), vld1q_s8(row.add(b * 32 + 16) as *const i8))
    }
}

/// `sdot`: acc[i] += a[4i..4i+4] . b[4i..4i+4] (signed int8).
#[inline]
#[target_feature(enable = "dotprod")]
unsafe fn sdot(mut acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    asm!("sdot {0:v}.4s, {1:v}.16b, {2:v}.16b", inout(vreg) acc, in(vreg) a, in(vreg) b, options(pure, nomem, nostack, preserves_flags));
    acc
}

/// The integer dot product of one block (32 int8 pairs at `x`) as an i32x4 whose lanes add up to it.
/// DOT: two `sdot`; otherwise widening multiplies (see the module comment). The caller guarantees
/// dotprod when DOT is set. Not itself `target_feature(dotprod)`: the plain path must not be compiled
/// with it (LLVM may turn widening multiply-adds into `sdot` on its own); `quant_dot` gives it the
/// feature once inlined.
#[inline(always)]
unsafe fn block<const DOT: bool>(w: (int8x16_t, int8x16_t), x: *const i8) -> int32x4_t {
    let (x0, x1) = (vld1q_s8(x), vld1q_s8(x.add(16)));
    if DOT {
        sdot(sdot(vdupq_n_s32(0), w.0, x0), w.1, x1)
    } else {
        let p0 = vmlal_high_s8(vmull_s8(vget_low_s8(w.0), vget_low_s8(x0)), w.0, x0);
        let p1 = vmlal_high_s8(vmull_s8(vget_low_s8(w.1), vget_low_s8(x1)), w.1, x1);
        vpadalq_s16(vpaddlq_s16(p0), p1)
    }
}

/// q8 / q4 row (bytes of one row, its f16 scales) against `rows` (1..=4) quantized token rows; `dot`
/// picks the `sdot` path.
///
/// # Safety
/// `dot` only where the CPU has dotprod (`Simd::NeonDot` comes only from `Simd::detect`/`available`).
pub unsafe fn quant_rows(dot: bool, q4: bool, row: &[u8], sc: &[u16], xq: &[i8], xd: &[f32], nb: usize, rows: usize, out: &mut [f32; 4]) {
    assert!(
        (1..=4).contains(&rows) && row.len() >= nb * if q4 { 16 } else { 32 } && sc.len() >= nb && xq.len() >= rows * nb * 32 && xd.len() >= rows * nb,
        "quant_rows: slices shorter than nb blocks x rows"
    );
    debug_assert!(!dot || std::arch::is_aarch64_feature_detected!("dotprod"));
    match (dot, q4, rows) {
        (true, _, _) => quant_dot(q4, row, sc, xq, xd, nb, rows, out),
        (false, false, 1) => quant::<1, false, false>(row, sc, xq, xd, nb, out),
        (false, false, 2) => quant::<2, false, false>(row, sc, xq, xd, nb, out),
        (false, false, 3) => quant::<3, false, false>(row, sc, xq, xd, nb, out),
        (false, false, _) => quant::<4, false, false>(row, sc, xq, xd, nb, out),
        (false, true, 1) => quant::<1, true, false>(row, sc, xq, xd, nb, out),
        (false, true, 2) => quant::<2, true, false>(row, sc, xq, xd, nb, out),
        (false, true, 3) => quant::<3, true, false>(row, sc, xq, xd, nb, out),
        (false, true, _) => quant::<4, true, false>(row, sc, xq, xd, nb, out),
    }
}

/// The `sdot` instances, compiled with dotprod (the kernel bodies are inlined here).
#[target_feature(enable = "dotprod")]
unsafe fn quant_dot(q4: bool, row: &[u8], sc: &[u16], xq: &[i8], xd: &[f32], nb: usize, rows: usize, out: &mut [f32; 4]) {
    match (q4, rows) {
        (false, 1) => quant::<1, false, true>(row, sc, xq, xd, nb, out),
        (false, 2) => quant::<2, false, true>(row, sc, xq, xd, nb, out),
        (false, 3) => quant::<3, false, true>(row, sc, xq, xd, nb, out),
        (false, _) => quant::<4, false, true>(row, sc, xq, xd, nb, out),
        (true, 1) => quant::<1, true, true>(row, sc, xq, xd, nb, out),
        (true, 2) => quant::<2, true, true>(row, sc, xq, xd, nb, out),
        (true, 3) => quant::<3, true, true>(row, sc, xq, xd, nb, out),
        (true, _) => quant::<4, true, true>(row, sc, xq, xd, nb, out),
    }
}

/// R token rows, each weight block loaded once for all of them. Two float accumulators per row (groups
/// of four blocks alternate), so the multiply-add chain is not the bottleneck.
#[inline(always)]
unsafe fn quant<const R: usize, const Q4: bool, const DOT: bool>(row: &[u8], sc: &[u16], xq: &[i8], xd: &[f32], nb: usize, out: &mut [f32; 4]) {
    let kp = nb * 32;
    let nb4 = nb / 4 * 4;
    let (w, x, s, d) = (row.as_ptr(), xq.as_ptr(), sc.as_ptr(), xd.as_ptr());
    let mut acc = [[vdupq_n_f32(0.0); 2]; R];
    let mut b = 0;
    while b < nb4 {
        let ws = [weights::<Q4>(w, b), weights::<Q4>(w, b + 1), weights::<Q4>(w, b + 2), weights::<Q4>(w, b + 3)];
        let sw = halves4(s.add(b));
        for r in 0..R {
            let xb = x.add(r * kp + b * 32);
            let s01 = vpaddq_s32(block::<DOT>(ws[0], xb), block::<DOT>(ws[1], xb.add(32)));
            let s23 = vpaddq_s32(block::<DOT>(ws[2], xb.add(64)), block::<DOT>(ws[3], xb.add(96)));
            // lane j = block b + j's integer dot
            let isum = vpaddq_s32(s01, s23);
            let scale = vmulq_f32(sw, vld1q_f32(d.add(r * nb + b)));
            let a = &mut acc[r][(b / 4) & 1];
            *a = vfmaq_f32(*a, vcvtq_f32_s32(isum), scale);
        }
        b += 4;
    }
    for r in 0..R {
        let mut total = vaddvq_f32(vaddq_f32(acc[r][0], acc[r][1]));
        for b in nb4..nb {
            let isum = vaddvq_s32(block::<DOT>(weights::<Q4>(w, b), x.add(r * kp + b * 32)));
            total += isum as f32 * (h2f(*sc.get_unchecked(b)) * *xd.get_unchecked(r * nb + b));
        }
        out[r] = total;
    }
}

/// f32 row against `rows` (1..=4) f32 token rows of length k.
pub fn f32_rows(w: &[f32], x: &[f32], k: usize, rows: usize, out: &mut [f32; 4]) {
    assert!((1..=4).contains(&rows) && w.len() >= k && x.len() >= rows * k, "f32_rows: slices shorter than k x rows");
    // SAFETY: NEON is baseline on aarch64; the lengths were asserted.
    unsafe {
        match rows {
            1 => fdot::<1, false>(w.as_ptr() as *const u8, x, k, out),
            2 => fdot::<2, false>(w.as_ptr() as *const u8, x, k, out),
            3 => fdot::<3, false>(w.as_ptr() as *const u8, x, k, out),
            _ => fdot::<4, false>(w.as_ptr() as *const u8, x, k, out),
        }
    }
}

/// f16 row (as bits) against `rows` (1..=4) f32 token rows of length k.
pub fn f16_rows(w: &[u16], x: &[f32], k: usize, rows: usize, out: &mut [f32; 4]) {
    assert!((1..=4).contains(&rows) && w.len() >= k && x.len() >= rows * k, "f16_rows: slices shorter than k x rows");
    // SAFETY: as f32_rows.
    unsafe {
        match rows {
            1 => fdot::<1, true>(w.as_ptr() as *const u8, x, k, out),
            2 => fdot::<2, true>(w.as_ptr() as *const u8, x, k, out),
            3 => fdot::<3, true>(w.as_ptr() as *const u8, x, k, out),
            _ => fdot::<4, true>(w.as_ptr() as *const u8, x, k, out),
        }
    }
}

/// 8 weights at once (two f32x4) per step, each used for every token row.
#[inline]
unsafe fn fdot<const R: usize, const HALF: bool>(w: *const u8, x: &[f32], k: usize, out: &mut [f32; 4]) {
    let xp = x.as_ptr();
    let mut acc = [[vdupq_n_f32(0.0); 2]; R];
    let k8 = k / 8 * 8;
    let mut i = 0;
    while i < k8 {
        let (w0, w1) = if HALF {
            let h = vld1q_u16(w.add(2 * i) as *const u16);
            (widen(vmovl_u16(vget_low_u16(h))), widen(vmovl_high_u16(h)))
        } else {
            let p = w.add(4 * i) as *const f32;
            (vld1q_f32(p), vld1q_f32(p.add(4)))
        };
        for r in 0..R {
            let p = xp.add(r * k + i);
            acc[r][0] = vfmaq_f32(acc[r][0], w0, vld1q_f32(p));
            acc[r][1] = vfmaq_f32(acc[r][1], w1, vld1q_f32(p.add(4)));
        }
        i += 8;
    }
    for r in 0..R {
        let mut s = vaddvq_f32(vaddq_f32(acc[r][0], acc[r][1]));
        for j in k8..k {
            let wj = if HALF { h2f(*(w.add(2 * j) as *const u16)) } else { *(w.add(4 * j) as *const f32) };
            s += wj * *xp.add(r * k + j);
        }
        out[r] = s;
    }
}
