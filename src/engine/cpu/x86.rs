//! AVX2 + FMA + F16C kernels (x86-64), used when the CPU reports all three (`Simd::detect`).
//! `quant_rows` / `f32_rows` / `f16_rows` compute out[r] = W[n] . x[r] for up to 4 token rows, loading
//! each weight block once for all; `q8_gemv` does whole chunks of q8 rows against one token (decode);
//! `quantize_q8` quantizes a token row; `attn_scores` / `attn_values` are one head's attention.
//! q8: `maddubs(|w|, sign(x, w))` multiplies 32 int8 pairs into 16 i16 sums (|w| <= 128, |x| <= 127:
//! no saturation), `madd` by ones widens to 8 i32. q4: the nibbles are already unsigned (0..15), so
//! `maddubs(nibbles, x)` directly, and the "- 8" is -8 * sum(x) per block.
//! AVX-512 VNNI would do the same in one instruction per 64 pairs; the machines this was written on had no
//! AVX-512, so that path is not written (README, "The CPU engine").

#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

use std::arch::x86_64::*;

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn h2f(h: u16) -> f32 {
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(h as i32)))
}

/// q8 / q4 row (bytes of one row, its f16 scales) against `rows` quantized token rows.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quant_rows(is_q4: bool, row: &[u8], sc: &[u16], xq: &[i8], xd: &[f32], xs: &[i32], nb: usize, rows: usize, out: &mut [f32; 4]) {
    match (is_q4, rows) {
        (false, 1) => q8_one(row, sc, xq, xd, nb, out),
        (false, 2) => q8::<2>(row, sc, xq, xd, nb, out),
        (false, 3) => q8::<3>(row, sc, xq, xd, nb, out),
        (false, _) => q8::<4>(row, sc, xq, xd, nb, out),
        (true, 1) => q4::<1>(row, sc, xq, xd, xs, nb, out),
        (true, 2) => q4::<2>(row, sc, xq, xd, xs, nb, out),
        (true, 3) => q4::<3>(row, sc, xq, xd, xs, nb, out),
        (true, _) => q4::<4>(row, sc, xq, xd, xs, nb, out),
    }
}

/// The 32 int8 products of block `b` of a q8 row and one token row, as 8 i32 partial sums.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_block(w: *const u8, x: *const i8, b: usize) -> __m256i {
    let wv = _mm256_loadu_si256(w.add(b * 32) as *const __m256i);
    let xv = _mm256_loadu_si256(x.add(b * 32) as *const __m256i);
    _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_sign_epi8(wv, wv), _mm256_sign_epi8(xv, wv)), _mm256_set1_epi16(1))
}

/// Blocks b..b + 8 of a q8 row against a token row: their i32 partial sums folded by a horizontal-add
/// tree into one vector, lane j = block b + j's dot.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dots8(w: *const u8, x: *const i8, b: usize) -> __m256i {
    let h01 = _mm256_hadd_epi32(q8_block(w, x, b), q8_block(w, x, b + 1));
    let h23 = _mm256_hadd_epi32(q8_block(w, x, b + 2), q8_block(w, x, b + 3));
    let h45 = _mm256_hadd_epi32(q8_block(w, x, b + 4), q8_block(w, x, b + 5));
    let h67 = _mm256_hadd_epi32(q8_block(w, x, b + 6), q8_block(w, x, b + 7));
    // [b0..b3 low halves | b0..b3 high halves], likewise b4..b7; then low + high per block.
    let h0123 = _mm256_hadd_epi32(h01, h23);
    let h4567 = _mm256_hadd_epi32(h45, h67);
    _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20), _mm256_permute2x128_si256(h0123, h4567, 0x31))
}

/// q8 against one token row (decode), eight blocks at a time: their i32 partial sums are folded by a
/// horizontal-add tree into one vector (lane j = block j's dot), converted once and scaled by eight
/// scales at once (8 f16 weight scales x 8 activation scales), instead of a scalar f16 conversion,
/// multiply and broadcast per block. Measured on this machine: decode is bound by this kernel's
/// instructions (one thread reaches ~70% of two), not only by memory.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8_one(row: &[u8], sc: &[u16], xq: &[i8], xd: &[f32], nb: usize, out: &mut [f32; 4]) {
    assert!(row.len() >= nb * 32 && sc.len() >= nb && xq.len() >= nb * 32 && xd.len() >= nb);
    let (w, x) = (row.as_ptr(), xq.as_ptr());
    let mut acc = _mm256_setzero_ps();
    let mut b = 0;
    while b + 8 <= nb {
        let dots = dots8(w, x, b);
        let ws = _mm256_cvtph_ps(_mm_loadu_si128(sc.as_ptr().add(b) as *const __m128i));
        let scale = _mm256_mul_ps(ws, _mm256_loadu_ps(xd.as_ptr().add(b)));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), scale, acc);
        b += 8;
    }
    let mut tail = _mm256_setzero_ps();
    while b < nb {
        let s = _mm256_set1_ps(h2f(*sc.get_unchecked(b)) * *xd.get_unchecked(b));
        tail = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_block(w, x, b)), s, tail);
        b += 1;
    }
    out[0] = hsum(_mm256_add_ps(acc, tail));
}

/// Bytes ahead of the block being read that `q8_gemv` prefetches. A single core's stream of weight
/// rows is latency-bound here (AMD EPYC Zen 3 in a VM): the hardware prefetcher alone left one
/// thread at ~80% of what it reaches with 2-4 KB of software prefetch (microbenchmark over gpt2's
/// matrices, 1.1-1.25x; 1 KB gained less, 8 KB no more).
const PREFETCH: usize = 2048;

/// y[i] = W[r0 + i] . x (+ bias[i]) for the rows of a q8 slice against one quantized token row (decode):
/// `bytes` [rows, row_bytes] and `sc` [rows, nb] are the slice's rows, contiguous. One call per chunk
/// of rows (no per-row dispatch), `q8_one`'s reduction per row, and the row stream prefetched
/// `PREFETCH` bytes ahead, clamped to the slice (another thread reads what follows it).
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn q8_gemv(bytes: &[u8], sc: &[u16], row_bytes: usize, xq: &[i8], xd: &[f32], nb: usize, bias: Option<&[f32]>, y: &mut [f32]) {
    let rows = y.len();
    assert!(row_bytes >= nb * 32 && bytes.len() >= rows * row_bytes && sc.len() >= rows * nb && xq.len() >= nb * 32 && xd.len() >= nb);
    assert!(bias.is_none_or(|b| b.len() == rows));
    if rows == 0 {
        return;
    }
    let w0 = bytes.as_ptr();
    // The last cache line of the slice: prefetches past it are clamped here.
    let last = w0 as usize + rows * row_bytes - 1;
    for r in 0..rows {
        let w = w0.add(r * row_bytes);
        let mut b = 0;
        let mut acc = _mm256_setzero_ps();
        while b + 8 <= nb {
            let ahead = (w as usize + b * 32 + PREFETCH).min(last);
            for line in 0..4 {
                _mm_prefetch::<_MM_HINT_T0>((ahead + 64 * line).min(last) as *const i8);
            }
            let dots = dots8(w, xq.as_ptr(), b);
            let ws = _mm256_cvtph_ps(_mm_loadu_si128(sc.as_ptr().add(r * nb + b) as *const __m128i));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dots), _mm256_mul_ps(ws, _mm256_loadu_ps(xd.as_ptr().add(b))), acc);
            b += 8;
        }
        while b < nb {
            let s = _mm256_set1_ps(h2f(*sc.get_unchecked(r * nb + b)) * *xd.get_unchecked(b));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q8_block(w, xq.as_ptr(), b)), s, acc);
            b += 1;
        }
        *y.get_unchecked_mut(r) = hsum(acc) + bias.map_or(0.0, |v| *v.get_unchecked(r));
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q8<const R: usize>(row: &[u8], sc: &[u16], xq: &[i8], xd: &[f32], nb: usize, out: &mut [f32; 4]) {
    debug_assert!(row.len() >= nb * 32 && sc.len() >= nb && xq.len() >= R * nb * 32 && xd.len() >= R * nb);
    let kp = nb * 32;
    let ones = _mm256_set1_epi16(1);
    // Two accumulators per row: consecutive blocks alternate, so the FMA chain is not the bottleneck.
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let (w, x) = (row.as_ptr(), xq.as_ptr());
    for b in 0..nb {
        let wv = _mm256_loadu_si256(w.add(b * 32) as *const __m256i);
        let aw = _mm256_sign_epi8(wv, wv);
        let sw = h2f(*sc.get_unchecked(b));
        for r in 0..R {
            let xv = _mm256_loadu_si256(x.add(r * kp + b * 32) as *const __m256i);
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(xv, wv)), ones);
            let s = _mm256_set1_ps(sw * *xd.get_unchecked(r * nb + b));
            acc[r][b & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), s, acc[r][b & 1]);
        }
    }
    for r in 0..R {
        out[r] = hsum(_mm256_add_ps(acc[r][0], acc[r][1]));
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn q4<const R: usize>(row: &[u8], sc: &[u16], xq: &[i8], xd: &[f32], xs: &[i32], nb: usize, out: &mut [f32; 4]) {
    debug_assert!(row.len() >= nb * 16 && sc.len() >= nb && xq.len() >= R * nb * 32 && xd.len() >= R * nb && xs.len() >= R * nb);
    let kp = nb * 32;
    let ones = _mm256_set1_epi16(1);
    let m4 = _mm_set1_epi8(15);
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let mut corr = [0f32; R];
    let (w, x) = (row.as_ptr(), xq.as_ptr());
    for b in 0..nb {
        let raw = _mm_loadu_si128(w.add(b * 16) as *const __m128i);
        let lo = _mm_and_si128(raw, m4);
        let hi = _mm_and_si128(_mm_srli_epi16(raw, 4), m4);
        // low lane: even k (low nibbles), high lane: odd k: the order QuantX gives q4 activations
        let wv = _mm256_set_m128i(hi, lo);
        let sw = h2f(*sc.get_unchecked(b));
        for r in 0..R {
            let xv = _mm256_loadu_si256(x.add(r * kp + b * 32) as *const __m256i);
            let p = _mm256_madd_epi16(_mm256_maddubs_epi16(wv, xv), ones);
            let s = sw * *xd.get_unchecked(r * nb + b);
            acc[r][b & 1] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(s), acc[r][b & 1]);
            corr[r] += (8 * *xs.get_unchecked(r * nb + b)) as f32 * s;
        }
    }
    for r in 0..R {
        out[r] = hsum(_mm256_add_ps(acc[r][0], acc[r][1])) - corr[r];
    }
}

/// f32 row against `rows` f32 token rows of length k.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn f32_rows(w: &[f32], x: &[f32], k: usize, rows: usize, out: &mut [f32; 4]) {
    match rows {
        1 => fdot::<1, false>(w.as_ptr() as *const u8, x, k, out),
        2 => fdot::<2, false>(w.as_ptr() as *const u8, x, k, out),
        3 => fdot::<3, false>(w.as_ptr() as *const u8, x, k, out),
        _ => fdot::<4, false>(w.as_ptr() as *const u8, x, k, out),
    }
}

/// f16 row (as bits) against `rows` f32 token rows of length k.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn f16_rows(w: &[u16], x: &[f32], k: usize, rows: usize, out: &mut [f32; 4]) {
    match rows {
        1 => fdot::<1, true>(w.as_ptr() as *const u8, x, k, out),
        2 => fdot::<2, true>(w.as_ptr() as *const u8, x, k, out),
        3 => fdot::<3, true>(w.as_ptr() as *const u8, x, k, out),
        _ => fdot::<4, true>(w.as_ptr() as *const u8, x, k, out),
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn fdot<const R: usize, const HALF: bool>(w: *const u8, x: &[f32], k: usize, out: &mut [f32; 4]) {
    debug_assert!(x.len() >= R * k);
    let xp = x.as_ptr();
    let mut acc = [[_mm256_setzero_ps(); 2]; R];
    let k16 = k / 16 * 16;
    let mut i = 0;
    while i < k16 {
        let w0 = load::<HALF>(w, i);
        let w1 = load::<HALF>(w, i + 8);
        for r in 0..R {
            acc[r][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(xp.add(r * k + i)), acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(xp.add(r * k + i + 8)), acc[r][1]);
        }
        i += 16;
    }
    for r in 0..R {
        let mut s = hsum(_mm256_add_ps(acc[r][0], acc[r][1]));
        for j in k16..k {
            s += scalar::<HALF>(w, j) * *xp.add(r * k + j);
        }
        out[r] = s;
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn load<const HALF: bool>(w: *const u8, i: usize) -> __m256 {
    if HALF {
        _mm256_cvtph_ps(_mm_loadu_si128(w.add(2 * i) as *const __m128i))
    } else {
        _mm256_loadu_ps(w.add(4 * i) as *const f32)
    }
}

#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn scalar<const HALF: bool>(w: *const u8, i: usize) -> f32 {
    if HALF {
        h2f(*(w.add(2 * i) as *const u16))
    } else {
        *(w.add(4 * i) as *const f32)
    }
}

/// One token row quantized for q8 (`QuantX::quantize`'s arithmetic, bit for bit): per whole block of
/// 32, d = max|x| / 127, q = round(x / d) (halves away from zero, as `f32::round`), NaN to 0, clamped
/// to +-127; `sums` = sum of q. Returns the blocks done (the caller quantizes a partial last block).
/// Decode quantizes every linear's input on the caller alone while the other threads wait.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_q8(x: &[f32], qs: &mut [i8], d: &mut [f32], sums: &mut [i32]) -> usize {
    let nb = (x.len() / 32).min(d.len()).min(sums.len()).min(qs.len() / 32);
    let sign = _mm256_set1_ps(-0.0);
    let (half, one, lim) = (_mm256_set1_ps(0.5), _mm256_set1_ps(1.0), _mm256_set1_ps(127.0));
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for b in 0..nb {
        let p = x.as_ptr().add(b * 32);
        let v = [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)), _mm256_loadu_ps(p.add(16)), _mm256_loadu_ps(p.add(24))];
        // max(|v|, m) keeps m where v is NaN, as f32::max does.
        let mut m = _mm256_setzero_ps();
        for vi in v {
            m = _mm256_max_ps(_mm256_andnot_ps(sign, vi), m);
        }
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
        let db = amax / 127.0;
        let inv = _mm256_set1_ps(if db > 0.0 { 1.0 / db } else { 0.0 });
        let mut q = [_mm256_setzero_si256(); 4];
        for i in 0..4 {
            let y = _mm256_mul_ps(v[i], inv);
            let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
            // |y - t| is exact; >= 0.5 rounds away from zero.
            let away = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GE_OQ>(_mm256_andnot_ps(sign, _mm256_sub_ps(y, t)), half), _mm256_or_ps(one, _mm256_and_ps(sign, y)));
            let r = _mm256_add_ps(t, away);
            let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
            q[i] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, _mm256_sub_ps(_mm256_setzero_ps(), lim)), lim));
        }
        let s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        let s = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b01_00_11_10));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        let packed = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
        _mm256_storeu_si256(qs.as_mut_ptr().add(b * 32) as *mut __m256i, _mm256_permutevar8x32_epi32(packed, order));
        *d.get_unchecked_mut(b) = db;
        *sums.get_unchecked_mut(b) = _mm_cvtsi128_si32(s);
    }
    nb
}

/// One head's attention scores: out[s] = (q . keys[s * stride..][..hs]) * scale for s < out.len()
/// (hs = q.len()); the per-key f32 dot inlined instead of one call per key.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn attn_scores(q: &[f32], keys: &[f32], stride: usize, scale: f32, out: &mut [f32]) {
    let hs = q.len();
    assert!(out.is_empty() || keys.len() >= (out.len() - 1) * stride + hs);
    let h8 = hs / 8 * 8;
    for (s, o) in out.iter_mut().enumerate() {
        let k = keys.as_ptr().add(s * stride);
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i + 16 <= h8 {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), _mm256_loadu_ps(k.add(i)), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i + 8)), _mm256_loadu_ps(k.add(i + 8)), a1);
            i += 16;
        }
        if i < h8 {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q.as_ptr().add(i)), _mm256_loadu_ps(k.add(i)), a0);
        }
        let mut d = hsum(_mm256_add_ps(a0, a1));
        for j in h8..hs {
            d += *q.get_unchecked(j) * *k.add(j);
        }
        *o = d * scale;
    }
}

/// y += sum over s of w[s] * values[s * stride..][..hs] (hs = y.len()): one head's weighted values.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn attn_values(w: &[f32], values: &[f32], stride: usize, y: &mut [f32]) {
    let hs = y.len();
    assert!(w.is_empty() || values.len() >= (w.len() - 1) * stride + hs);
    let mut i = 0;
    while i + 8 <= hs {
        let mut acc = _mm256_loadu_ps(y.as_ptr().add(i));
        for (s, &ws) in w.iter().enumerate() {
            acc = _mm256_fmadd_ps(_mm256_set1_ps(ws), _mm256_loadu_ps(values.as_ptr().add(s * stride + i)), acc);
        }
        _mm256_storeu_ps(y.as_mut_ptr().add(i), acc);
        i += 8;
    }
    for j in i..hs {
        let mut acc = *y.get_unchecked(j);
        for (s, &ws) in w.iter().enumerate() {
            acc += ws * *values.get_unchecked(s * stride + j);
        }
        *y.get_unchecked_mut(j) = acc;
    }
}

/// GPT-2's tanh GELU in place, eight at a time: with z = sqrt(2/pi) (u + 0.044715 u^3) and
/// e = exp(-2|z|), 1 + tanh(z) = 2 / (1 + e) for z >= 0 and 2e / (1 + e) below, so
/// gelu(u) = u / (1 + e) or u e / (1 + e): no cancellation where tanh nears -1. exp is Cephes' expf
/// (range reduction by ln 2 in two parts, degree-5 polynomial, ~1 ulp), with 2|z| capped at 87 so e
/// stays a normal float. libm's tanhf per element was 6% of a one-thread decode.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn gelu(x: &mut [f32]) {
    let n8 = x.len() / 8 * 8;
    let s = _mm256_set1_ps(0.797_884_6);
    let (c3, one, sign) = (_mm256_set1_ps(0.044715), _mm256_set1_ps(1.0), _mm256_set1_ps(-0.0));
    let mut i = 0;
    while i < n8 {
        let p = x.as_mut_ptr().add(i);
        let u = _mm256_loadu_ps(p);
        let z = _mm256_mul_ps(s, _mm256_add_ps(u, _mm256_mul_ps(_mm256_mul_ps(c3, u), _mm256_mul_ps(u, u))));
        // -2|z|, capped at -87 (exp stays a normal float; NaN stays NaN through the product with u below)
        let a = _mm256_max_ps(_mm256_mul_ps(_mm256_set1_ps(-2.0), _mm256_andnot_ps(sign, z)), _mm256_set1_ps(-87.0));
        let e = exp_neg(a);
        let num = _mm256_blendv_ps(one, e, z); // z's sign bit picks e (z < 0; -0 gives e = 1: the same)
        _mm256_storeu_ps(p, _mm256_div_ps(_mm256_mul_ps(u, num), _mm256_add_ps(one, e)));
        i += 8;
    }
    super::kernels::gelu(&mut x[n8..]);
}

/// exp(a) for a in [-87, 0] (Cephes expf).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn exp_neg(a: __m256) -> __m256 {
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(a, _mm256_set1_ps(std::f32::consts::LOG2_E)));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693_359_4), a);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm256_set1_ps(1.987_569_1e-4);
    for c in [1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 1.666_666_5e-1, 0.5] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
    }
    let e = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0));
    let pow2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127))));
    _mm256_mul_ps(e, pow2)
}
