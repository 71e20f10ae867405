//! wasm32 `simd128` kernels (every browser with wasm SIMD; enabled in .cargo/config.toml).
//! q8 / q4: int8 products by `i16x8_extmul` summed in i16 then i32 (see `block_dot`), four blocks scaled
//! at once; q4 nibbles are made signed (- 8) before the dot, so no correction is needed. f16: halves widened to
//! f32 by a bit trick (exact for every finite half: shift into f32's exponent/mantissa, scale by 2^112).

#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

use core::arch::wasm32::*;

#[inline]
fn hsum(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v) + (f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v))
}

#[inline]
fn h2f(h: u16) -> f32 {
    super::kernels::h2f(h)
}

/// 4 f16 scales (bits) -> f32x4, by the bit trick of `f16_rows` (exact for every finite half).
#[inline]
fn halves4(sc: &[u16]) -> v128 {
    // SAFETY: the caller passes at least 4 scales; v128_load64_zero reads 8 bytes, unaligned.
    let h = unsafe { u32x4_extend_low_u16x8(v128_load64_zero(sc.as_ptr() as *const u64)) };
    let magic = f32x4_splat(f32::from_bits(0x7780_0000)); // 2^112
    let o = i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13);
    v128_or(f32x4_mul(o, magic), i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16))
}

/// Weight block b as two i8x16 in the order the activations are stored: q8 = k 0..16, 16..32; q4 = the
/// low nibbles (even k), the high nibbles (odd k), made signed (- 8).
#[inline]
fn weights(q4: bool, row: &[u8], b: usize) -> (v128, v128) {
    // SAFETY: quant_rows asserted the row's length; v128_load has no alignment requirement.
    unsafe {
        if q4 {
            let raw = v128_load(row.as_ptr().add(b * 16) as *const v128);
            let eight = i8x16_splat(8);
            (i8x16_sub(v128_and(raw, u8x16_splat(15)), eight), i8x16_sub(u8x16_shr(raw, 4), eight))
        } else {
            (v128_load(row.as_ptr().add(b * 32) as *const v128), v128_load(row.as_ptr().add(b * 32 + 16) as *const v128))
        }
    }
}

/// The integer dot product of one block (32 int8 pairs) as an i32x4 whose lanes add up to it. The int8
/// products are made i16 by `extmul` and two are added in i16: |w x| <= 128 * 127 (x is clamped to
/// +-127), so a pair stays below 2^15; `extadd_pairwise` then widens to i32. 9 instructions per 32
/// multiply-adds, against 13 with `i32x4_dot_i16x8` on widened halves.
#[inline]
fn block_dot(w: (v128, v128), xq: &[i8], at: usize) -> v128 {
    // SAFETY: quant_rows asserted xq's length.
    let (x0, x1) = unsafe { (v128_load(xq.as_ptr().add(at) as *const v128), v128_load(xq.as_ptr().add(at + 16) as *const v128)) };
    let p0 = i16x8_add(i16x8_extmul_low_i8x16(w.0, x0), i16x8_extmul_high_i8x16(w.0, x0));
    let p1 = i16x8_add(i16x8_extmul_low_i8x16(w.1, x1), i16x8_extmul_high_i8x16(w.1, x1));
    i32x4_add(i32x4_extadd_pairwise_i16x8(p0), i32x4_extadd_pairwise_i16x8(p1))
}

/// [sum of a's lanes, sum of b's, sum of c's, sum of d's] (a transpose by unpacks, then adds).
#[inline]
fn sums4(a: v128, b: v128, c: v128, d: v128) -> v128 {
    let ab = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(a, b), i32x4_shuffle::<2, 6, 3, 7>(a, b));
    let cd = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(c, d), i32x4_shuffle::<2, 6, 3, 7>(c, d));
    i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(ab, cd), i32x4_shuffle::<2, 3, 6, 7>(ab, cd))
}

/// q8 / q4 row against `rows` quantized token rows. Four blocks at a time: their integer sums go into the
/// lanes of one vector, which is scaled by the four weight scales (f16, widened by vector) times the four
/// activation scales, so the float work per block is a quarter of a vector multiply-add.
pub fn quant_rows(q4: bool, row: &[u8], sc: &[u16], xq: &[i8], xd: &[f32], nb: usize, rows: usize, out: &mut [f32; 4]) {
    assert!(row.len() >= nb * if q4 { 16 } else { 32 } && sc.len() >= nb && xq.len() >= rows * nb * 32 && xd.len() >= rows * nb);
    let kp = nb * 32;
    let nb4 = nb / 4 * 4;
    let mut acc = [f32x4_splat(0.0); 4];
    for b in (0..nb4).step_by(4) {
        let w = [weights(q4, row, b), weights(q4, row, b + 1), weights(q4, row, b + 2), weights(q4, row, b + 3)];
        let sw = halves4(&sc[b..b + 4]);
        for r in 0..rows {
            let at = r * kp + b * 32;
            let s = sums4(block_dot(w[0], xq, at), block_dot(w[1], xq, at + 32), block_dot(w[2], xq, at + 64), block_dot(w[3], xq, at + 96));
            // SAFETY: b + 4 <= nb, so xd[r * nb + b..][..4] is inside the asserted length.
            let sx = unsafe { v128_load(xd.as_ptr().add(r * nb + b) as *const v128) };
            acc[r] = f32x4_add(acc[r], f32x4_mul(f32x4_convert_i32x4(s), f32x4_mul(sw, sx)));
        }
    }
    for r in 0..rows {
        let mut total = hsum(acc[r]);
        for b in nb4..nb {
            let d = block_dot(weights(q4, row, b), xq, r * kp + b * 32);
            let isum = i32x4_extract_lane::<0>(d) + i32x4_extract_lane::<1>(d) + i32x4_extract_lane::<2>(d) + i32x4_extract_lane::<3>(d);
            total += isum as f32 * (h2f(sc[b]) * xd[r * nb + b]);
        }
        out[r] = total;
    }
}

/// f32 row against `rows` f32 token rows of length k.
pub fn f32_rows(w: &[f32], x: &[f32], k: usize, rows: usize, out: &mut [f32; 4]) {
    assert!(w.len() >= k && x.len() >= rows * k);
    let mut acc = [f32x4_splat(0.0); 4];
    let k4 = k / 4 * 4;
    for i in (0..k4).step_by(4) {
        let wv = unsafe { v128_load(w.as_ptr().add(i) as *const v128) };
        for r in 0..rows {
            let xv = unsafe { v128_load(x.as_ptr().add(r * k + i) as *const v128) };
            acc[r] = f32x4_add(acc[r], f32x4_mul(wv, xv));
        }
    }
    for r in 0..rows {
        let mut s = hsum(acc[r]);
        for j in k4..k {
            s += w[j] * x[r * k + j];
        }
        out[r] = s;
    }
}

/// f16 row (bits) against `rows` f32 token rows of length k.
pub fn f16_rows(w: &[u16], x: &[f32], k: usize, rows: usize, out: &mut [f32; 4]) {
    assert!(w.len() >= k && x.len() >= rows * k);
    let mut acc = [f32x4_splat(0.0); 4];
    let k8 = k / 8 * 8;
    let magic = f32x4_splat(f32::from_bits(0x7780_0000)); // 2^112
    let widen = |h: v128| -> v128 {
        let o = i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13);
        v128_or(f32x4_mul(o, magic), i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16))
    };
    for i in (0..k8).step_by(8) {
        let h = unsafe { v128_load(w.as_ptr().add(i) as *const v128) };
        let (lo, hi) = (widen(u32x4_extend_low_u16x8(h)), widen(u32x4_extend_high_u16x8(h)));
        for r in 0..rows {
            let (x0, x1) = unsafe {
                let p = x.as_ptr().add(r * k + i);
                (v128_load(p as *const v128), v128_load(p.add(4) as *const v128))
            };
            acc[r] = f32x4_add(acc[r], f32x4_add(f32x4_mul(lo, x0), f32x4_mul(hi, x1)));
        }
    }
    for r in 0..rows {
        let mut s = hsum(acc[r]);
        for j in k8..k {
            s += h2f(w[j]) * x[r * k + j];
        }
        out[r] = s;
    }
}
