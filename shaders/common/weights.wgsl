// common/weights.wgsl: reading one weight of a matrix W [N, K] stored out-major in one of quant.rs's
// formats. Included by every kernel that reads packed weights (embed, matmul, gemv).
//
// The including kernel provides: `p.w_stride` (u32 words per row of W), `p.wfmt` (the format code) and
// `p.s_stride` (scale entries per row), and the bindings `w: array<u32>` (the words) and
// `scales: array<u32>` (f16 pairs).
//   0 f32: one value per word.   1 f16: two per word, even k in the low half.
//   2 q8:  four int8 per word (k%4 = byte), value = q * scale.
//   3 q4:  eight 4-bit per word (k%8 = nibble), value = (q - 8) * scale.
//   q8/q4 scales: one f16 per group of 32 along k, entry n*s_stride + k/32 of `scales` (two per word).

// The q8/q4 group scale of W[n, k].
fn scale_of(n: u32, k: u32) -> f32 {
    let e = n * p.s_stride + k / 32u;
    let pair = unpack2x16float(scales[e / 2u]);
    return select(pair.x, pair.y, (e & 1u) == 1u);
}

// W[n, k] as f32, whatever its format.
fn load_w(n: u32, k: u32) -> f32 {
    let row = n * p.w_stride;
    switch p.wfmt {
        case 1u: {
            let pair = unpack2x16float(w[row + k / 2u]);
            return select(pair.x, pair.y, (k & 1u) == 1u);
        }
        case 2u: {
            let word = w[row + k / 4u];
            let q = (bitcast<i32>(word << (24u - 8u * (k & 3u)))) >> 24u;
            return f32(q) * scale_of(n, k);
        }
        case 3u: {
            let word = w[row + k / 8u];
            let q = (word >> (4u * (k & 7u))) & 15u;
            return (f32(q) - 8.0) * scale_of(n, k);
        }
        default: {
            return bitcast<f32>(w[row + k]);
        }
    }
}
