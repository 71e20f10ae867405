//! What a quantization costs, in numbers a user can read: per prompt, the largest logit error, the KL
//! divergence of the next-token distribution from the reference, and how often the top-1 token agrees.
//! Used by `gpt2 compare` and by the quality tests.

/// Comparison of k rows of logits against reference rows. A NaN or infinite logit anywhere makes
/// `max_abs`, `rms`, `kl_mean` and `kl_max` NaN (or infinite), so every `x <= bound` check fails, and its
/// row never counts as agreeing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogitStats {
    pub rows: usize,
    /// max |got - ref| over every logit.
    pub max_abs: f64,
    /// root mean square of got - ref.
    pub rms: f64,
    /// KL(p_ref || p_got) of the softmax distributions, mean and max over rows (nats).
    pub kl_mean: f64,
    pub kl_max: f64,
    /// Rows whose argmax agrees.
    pub top1_agree: usize,
    /// Rows whose reference top-2 margin exceeds `margin`, and how many of them agree.
    pub confident_rows: usize,
    pub confident_agree: usize,
}

/// The larger of two, NaN if either is NaN: a bound checked against it then fails (`f64::max` would drop
/// the NaN and let a NaN row pass every bound).
pub fn max_or_nan(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// max |got - want| over the pairs, NaN if any value is NaN (and infinite if one is infinite).
pub fn max_abs_diff<A: Copy + Into<f64>, B: Copy + Into<f64>>(got: &[A], want: &[B]) -> f64 {
    assert_eq!(got.len(), want.len());
    got.iter().zip(want).fold(0.0, |m, (&g, &w)| max_or_nan(m, (g.into() - w.into()).abs()))
}

fn log_softmax(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    row.iter().map(|v| v - lse).collect()
}

fn top2(row: &[f64]) -> (usize, f64) {
    let mut best = (0usize, f64::NEG_INFINITY);
    let mut second = f64::NEG_INFINITY;
    if row.iter().any(|v| !v.is_finite()) {
        return (usize::MAX, f64::NAN); // agrees with no row
    }
    for (i, &v) in row.iter().enumerate() {
        if v > best.1 {
            second = best.1;
            best = (i, v);
        } else if v > second {
            second = v;
        }
    }
    (best.0, best.1 - second)
}

/// Compare `got` [k, V] with `reference` [k, V]. Rows whose reference margin between the top two
/// logits exceeds `margin` count as confident: there a correct quantization must keep the top-1 token.
pub fn compare_logits<A: Copy + Into<f64>, B: Copy + Into<f64>>(got: &[A], reference: &[B], v: usize, margin: f64) -> LogitStats {
    assert_eq!(got.len(), reference.len());
    assert_eq!(got.len() % v, 0);
    let mut s = LogitStats { rows: got.len() / v, ..Default::default() };
    let mut sq = 0.0;
    for (g, r) in got.chunks(v).zip(reference.chunks(v)) {
        let g: Vec<f64> = g.iter().map(|&x| x.into()).collect();
        let r: Vec<f64> = r.iter().map(|&x| x.into()).collect();
        for (a, b) in g.iter().zip(&r) {
            s.max_abs = max_or_nan(s.max_abs, (a - b).abs());
            sq += (a - b) * (a - b);
        }
        let (lg, lr) = (log_softmax(&g), log_softmax(&r));
        let kl: f64 = lr.iter().zip(&lg).map(|(r, g)| r.exp() * (r - g)).sum();
        s.kl_mean += kl;
        s.kl_max = max_or_nan(s.kl_max, kl);
        let (tg, _) = top2(&g);
        let (tr, mr) = top2(&r);
        let agree = tg == tr && tg != usize::MAX;
        s.top1_agree += agree as usize;
        if mr > margin {
            s.confident_rows += 1;
            s.confident_agree += agree as usize;
        }
    }
    s.kl_mean /= s.rows.max(1) as f64;
    s.rms = (sq / got.len().max(1) as f64).sqrt();
    s
}

/// The bound a quantization's logits must stay within, derived from its measured weight error (the
/// argument of tests/quality.rs and docs/format.md "Scales"):
///   a weight error of relative RMS e perturbs each quantized matmul's output by about e of its size; the
///   4L + 1 matmuls on the path (four per block, and the tied output projection) add independently, so
///   the logits move by sigma ~ std(logits) * e * sqrt(4L + 1) RMS. The largest of V such errors is
///   ~4.5 sigma and KL ~ sigma^2 / 2. The bounds are 3x those estimates; the top-1 token must agree
///   wherever the reference's top-two margin exceeds 4 sigma.
/// For tiny-gpt2 (std 1.1, L = 2) this gives q8 max |dlogit| 0.24 and q4 4.3, the bounds tests/quality.rs
/// checks against Hugging Face (0.25 and 4.5). Interior matmuls feed a residual stream larger than
/// their own output, so their share of the logit error is smaller than e: the estimate is conservative.
#[derive(Clone, Debug, PartialEq)]
pub struct QuantBound {
    pub sigma: f64,
    pub max_abs: f64,
    pub kl_max: f64,
    /// Reference rows with a top-two margin above this must keep their top-1 token.
    pub margin: f64,
}

/// Relative RMS weight error of a quantization (group-32 scales), as measured on tiny-gpt2's matrices
/// and on random N(0, 0.02) matrices alike (docs/format.md): None for f32/f16, which do not quantize.
pub fn weight_error(format: crate::quant::WeightFormat) -> Option<f64> {
    use crate::quant::WeightFormat::*;
    match format {
        Q8 => Some(0.00535),
        Q4 => Some(0.0971),
        F32 | F16 => None,
    }
}

/// `QuantBound` for a model of `n_layer` blocks whose reference logits have standard deviation
/// `logit_std`, quantized with relative weight error `e`.
pub fn quant_bound(e: f64, n_layer: usize, logit_std: f64) -> QuantBound {
    let sigma = logit_std * e * ((4 * n_layer + 1) as f64).sqrt();
    QuantBound { sigma, max_abs: 3.0 * 4.5 * sigma, kl_max: 3.0 * sigma * sigma / 2.0, margin: 4.0 * sigma }
}

/// Standard deviation of a row of logits.
pub fn std_dev<A: Copy + Into<f64>>(row: &[A]) -> f64 {
    let n = row.len().max(1) as f64;
    let mean = row.iter().map(|&x| x.into()).sum::<f64>() / n;
    (row.iter().map(|&x| (x.into() - mean).powi(2)).sum::<f64>() / n).sqrt()
}

#[cfg(test)]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x <= bound)`: the point is that NaN fails it
mod tests {
    use super::*;

    // A NaN or an infinity anywhere fails every bound; it never passes as agreement.
    #[test]
    fn nan_and_inf_fail_every_bound() {
        let want = [0.0f64, 1.0, 3.0, 0.5, 2.0, 0.0];
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for at in [0, 2, 5] {
                let mut got = want;
                got[at] = bad;
                let s = compare_logits(&got, &want, 3, 0.1);
                assert!(!(s.max_abs <= 1e9), "{bad} at {at}: max_abs {}", s.max_abs);
                assert!(!(s.kl_max <= 1e9) && !(s.kl_mean <= 1e9), "{bad} at {at}: KL {} {}", s.kl_max, s.kl_mean);
                assert!(s.top1_agree < 2, "{bad} at {at}: a non-finite row agreed");
                assert!(!(max_abs_diff(&got, &want) <= 1e9));
            }
        }
        let s = compare_logits(&want, &want, 3, 0.1);
        assert_eq!((s.max_abs, s.top1_agree, s.confident_rows, s.confident_agree), (0.0, 2, 2, 2));
        assert!(s.kl_max.abs() < 1e-12);
    }

    // The derivation gives the bounds tests/quality.rs checks tiny-gpt2 against (q8 0.25, q4 4.5).
    #[test]
    fn derived_bounds_match_the_quality_tests() {
        use crate::quant::WeightFormat;
        let q8 = quant_bound(weight_error(WeightFormat::Q8).unwrap(), 2, 1.1);
        let q4 = quant_bound(weight_error(WeightFormat::Q4).unwrap(), 2, 1.1);
        assert!((0.22..=0.25).contains(&q8.max_abs), "{q8:?}");
        assert!((4.0..=4.5).contains(&q4.max_abs), "{q4:?}");
        assert!(q8.kl_max <= 2e-3 && q4.kl_max <= 0.3, "{q8:?} {q4:?}");
        assert!(weight_error(WeightFormat::F16).is_none());
        assert!((std_dev(&[1.0f64, 3.0]) - 1.0).abs() < 1e-12);
    }
}
