//! What a quantization costs, in numbers a user can read: per prompt, the largest logit error, the KL
//! divergence of the next-token distribution from the reference, and how often the top-1 token agrees.
//! Used by `gpt2 compare` and by the quality tests.

/// Comparison of k rows of logits against reference rows.
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

fn log_softmax(row: &[f64]) -> Vec<f64> {
    let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
    row.iter().map(|v| v - lse).collect()
}

fn top2(row: &[f64]) -> (usize, f64) {
    let mut best = (0usize, f64::NEG_INFINITY);
    let mut second = f64::NEG_INFINITY;
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
            s.max_abs = s.max_abs.max((a - b).abs());
            sq += (a - b) * (a - b);
        }
        let (lg, lr) = (log_softmax(&g), log_softmax(&r));
        let kl: f64 = lr.iter().zip(&lg).map(|(r, g)| r.exp() * (r - g)).sum();
        s.kl_mean += kl;
        s.kl_max = s.kl_max.max(kl);
        let (tg, _) = top2(&g);
        let (tr, mr) = top2(&r);
        s.top1_agree += (tg == tr) as usize;
        if mr > margin {
            s.confident_rows += 1;
            s.confident_agree += (tg == tr) as usize;
        }
    }
    s.kl_mean /= s.rows.max(1) as f64;
    s.rms = (sq / got.len().max(1) as f64).sqrt();
    s
}
