//! wasm32 `simd128` kernels (every browser with wasm SIMD; enabled in .cargo/config.toml).
//! q8 / q4: int8 pairs widened to i16 and summed by `i32x4_dot_i16x8` (8 multiply-adds per instruction);
//! q4 nibbles are made signed (- 8) before the dot, so no correction is needed. f16: halves widened to
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

/// q8 / q4 row against `rows` quantized token rows.
pub fn quant_rows(q4: bool, row: &[u8], sc: &[u16], xq: &[i8], xd: &[f32], nb: usize, rows: usize, out: &mut [f32; 4]) {
    assert!(row.len() >= nb * if q4 { 16 } else { 32 } && sc.len() >= nb && xq.len() >= rows * nb * 32 && xd.len() >= rows * nb);
    let kp = nb * 32;
    let mut acc = [f32x4_splat(0.0); 4];
    let m4 = u8x16_splat(15);
    let eight = i8x16_splat(8);
    for b in 0..nb {
        // SAFETY: bounds asserted above; v128_load has no alignment requirement.
        let (w0, w1) = unsafe {
            if q4 {
                let raw = v128_load(row.as_ptr().add(b * 16) as *const v128);
                (i8x16_sub(v128_and(raw, m4), eight), i8x16_sub(u8x16_shr(raw, 4), eight))
            } else {
                (v128_load(row.as_ptr().add(b * 32) as *const v128), v128_load(row.as_ptr().add(b * 32 + 16) as *const v128))
            }
        };
        let (wa, wb) = (i16x8_extend_low_i8x16(w0), i16x8_extend_high_i8x16(w0));
        let (wc, wd) = (i16x8_extend_low_i8x16(w1), i16x8_extend_high_i8x16(w1));
        let sw = h2f(sc[b]);
        for r in 0..rows {
            let (x0, x1) = unsafe {
                let p = xq.as_ptr().add(r * kp + b * 32);
                (v128_load(p as *const v128), v128_load(p.add(16) as *const v128))
            };
            let d = i32x4_add(
                i32x4_add(i32x4_dot_i16x8(wa, i16x8_extend_low_i8x16(x0)), i32x4_dot_i16x8(wb, i16x8_extend_high_i8x16(x0))),
                i32x4_add(i32x4_dot_i16x8(wc, i16x8_extend_low_i8x16(x1)), i32x4_dot_i16x8(wd, i16x8_extend_high_i8x16(x1))),
            );
            acc[r] = f32x4_add(acc[r], f32x4_mul(f32x4_convert_i32x4(d), f32x4_splat(sw * xd[r * nb + b])));
        }
    }
    for r in 0..rows {
        out[r] = hsum(acc[r]);
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
