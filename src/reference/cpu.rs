//! The CPU reference forward pass: the oracle the GPU kernels are tested against.
//!
//! Written for clarity, not speed: one sequence (B = 1), weights and inputs f32, every product and sum
//! in f64, activations kept in f64. It reproduces Hugging Face's `GPT2LMHeadModel` (eager attention,
//! "gelu_new") to ~1e-7 on the tiny-gpt2 fixture, whose reference was itself computed in float64.
//!
//! Shapes (as in llm.c; see config.rs):
//!   T  = tokens in this call        S  = tokens in the KV cache after this call (S = pos0 + T)
//!   C  = n_embd    NH = n_head      hs = C / NH
//!   F  = n_inner (4C)               V  = vocab_size    L = n_layer    P = n_positions
//! Every buffer is row-major; the comment beside it gives its shape.
//! Weight matrices are in Hugging Face's Conv1D layout `[in, out]` (so `y = x @ w + b`), except `wte`
//! `[V, C]`, which the tied output projection uses transposed.

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::weights::{check_token, Gpt2Weights, LayerWeights};

// ------------------------------------------------------------------------------------------------
// ops

/// f32 -> f64 copy (to feed f32 data, e.g. a GPU kernel's input, to these functions).
pub fn to_f64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Token + position embedding: x[t] = wte[ids[t]] + wpe[pos0 + t].
/// ids [T], wte [V,C], wpe [P,C] -> x [T,C]. Errors on an id >= V or a position >= P.
pub fn embed(w: &Gpt2Weights, ids: &[u32], pos0: usize) -> Result<Vec<f64>> {
    let cfg = &w.config;
    let c = cfg.n_embd;
    if pos0 + ids.len() > cfg.n_positions {
        return Err(Error::InvalidArgument(format!(
            "positions {pos0}..{} exceed the context window of {} tokens (n_positions); shorten the prompt or generate fewer tokens",
            pos0 + ids.len(),
            cfg.n_positions
        )));
    }
    let mut x = vec![0f64; ids.len() * c]; // [T,C]
    for (t, &id) in ids.iter().enumerate() {
        check_token(id, cfg)?;
        let tok = &w.wte[id as usize * c..][..c]; // [C]
        let pos = &w.wpe[(pos0 + t) * c..][..c]; // [C]
        for ((o, &a), &b) in x[t * c..][..c].iter_mut().zip(tok).zip(pos) {
            *o = a as f64 + b as f64;
        }
    }
    Ok(x)
}

/// Layer norm over the last axis, biased variance (as PyTorch): y = (x - mean) / sqrt(var + eps) * g + b.
/// x [T,C], g [C], b [C] -> y [T,C].
pub fn layer_norm(x: &[f64], g: &[f32], b: &[f32], eps: f64) -> Vec<f64> {
    let c = g.len();
    assert_eq!(b.len(), c);
    assert_eq!(x.len() % c, 0, "layer_norm: x is not [T, C]");
    let mut y = vec![0f64; x.len()]; // [T,C]
    for (xr, yr) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)) {
        let mean = xr.iter().sum::<f64>() / c as f64;
        let var = xr.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / c as f64;
        let rstd = 1.0 / (var + eps).sqrt();
        for (((o, &v), &gi), &bi) in yr.iter_mut().zip(xr).zip(g).zip(b) {
            *o = (v - mean) * rstd * gi as f64 + bi as f64;
        }
    }
    y
}

/// Conv1D / linear layer: y = x @ w + b. x [T,K], w [K,N] (Hugging Face layout), b [N] -> y [T,N].
pub fn matmul(x: &[f64], w: &[f32], b: Option<&[f32]>, k: usize, n: usize) -> Vec<f64> {
    assert_eq!(w.len(), k * n, "matmul: w is not [K, N]");
    assert_eq!(x.len() % k, 0, "matmul: x is not [T, K]");
    let t_len = x.len() / k;
    let mut y = vec![0f64; t_len * n]; // [T,N]
    for (xr, yr) in x.chunks_exact(k).zip(y.chunks_exact_mut(n)) {
        if let Some(b) = b {
            for (o, &bi) in yr.iter_mut().zip(b) {
                *o = bi as f64;
            }
        }
        // Row t of y is a sum of rows of w scaled by x[t, i]: walking w row by row reads it contiguously.
        for (&xi, wr) in xr.iter().zip(w.chunks_exact(n)) {
            for (o, &wv) in yr.iter_mut().zip(wr) {
                *o += xi * wv as f64;
            }
        }
    }
    y
}

/// Dot product of an f64 row with an f32 row, in four independent partial sums (so the CPU can overlap
/// the additions; the order change is far below the 1e-7 we test to).
fn dot(a: &[f64], b: &[f32]) -> f64 {
    let mut s = [0f64; 4];
    let (a4, b4) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ar, br) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        s[0] += x[0] * y[0] as f64;
        s[1] += x[1] * y[1] as f64;
        s[2] += x[2] * y[2] as f64;
        s[3] += x[3] * y[3] as f64;
    }
    let mut tail = 0f64;
    for (x, &y) in ar.iter().zip(br) {
        tail += x * y as f64;
    }
    (s[0] + s[1]) + (s[2] + s[3]) + tail
}

/// The tied output projection: logits = x @ wte^T. x [T,C], wte [V,C] -> logits [T,V].
/// (wte's rows are contiguous, so each logit is one contiguous dot product.)
pub fn logits(x: &[f64], wte: &[f32], c: usize) -> Vec<f64> {
    assert_eq!(x.len() % c, 0);
    assert_eq!(wte.len() % c, 0);
    let (t_len, v_len) = (x.len() / c, wte.len() / c);
    let mut out = vec![0f64; t_len * v_len]; // [T,V]

    // v outermost: each wte row (the big operand, V*C) is read once and used for all T rows of x.
    for (v, wr) in wte.chunks_exact(c).enumerate() {
        for (t, xr) in x.chunks_exact(c).enumerate() {
            out[t * v_len + v] = dot(xr, wr);
        }
    }
    out
}

/// GPT-2's GELU, the tanh approximation ("gelu_new"): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
pub fn gelu(x: f64) -> f64 {
    let s = (2.0 / std::f64::consts::PI).sqrt();
    0.5 * x * (1.0 + (s * (x + 0.044715 * x * x * x)).tanh())
}

/// `gelu` on every element, in place. x [T,F].
pub fn gelu_inplace(x: &mut [f64]) {
    for v in x {
        *v = gelu(*v);
    }
}

/// Residual connection, in place: x += y. x, y [T,C].
pub fn residual_add(x: &mut [f64], y: &[f64]) {
    assert_eq!(x.len(), y.len());
    for (a, b) in x.iter_mut().zip(y) {
        *a += b;
    }
}

/// Softmax of every row, max-subtracted (exact in f64; the subtraction only avoids overflow).
/// x [R,N] -> [R,N].
pub fn softmax_rows(x: &[f64], n: usize) -> Vec<f64> {
    assert!(n > 0 && x.len().is_multiple_of(n));
    let mut y = x.to_vec();
    for row in y.chunks_exact_mut(n) {
        softmax_inplace(row);
    }
    y
}

fn softmax_inplace(row: &mut [f64]) {
    let max = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// Split c_attn's output into its three parts. qkv [T,3C] -> q [T,C], k [T,C], v [T,C].
pub fn split_qkv(qkv: &[f64], c: usize) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    assert_eq!(qkv.len() % (3 * c), 0);
    let t_len = qkv.len() / (3 * c);
    let (mut q, mut k, mut v) =
        (Vec::with_capacity(t_len * c), Vec::with_capacity(t_len * c), Vec::with_capacity(t_len * c));
    for row in qkv.chunks_exact(3 * c) {
        q.extend_from_slice(&row[..c]);
        k.extend_from_slice(&row[c..2 * c]);
        v.extend_from_slice(&row[2 * c..]);
    }
    (q, k, v)
}

/// Causal multi-head self-attention over one sequence (GPT-2 attention is always causal).
/// qkv [T,3C] (c_attn's output: q | k | v) -> y [T,C], heads concatenated (before c_proj).
pub fn attention(qkv: &[f64], c: usize, nh: usize) -> Vec<f64> {
    let (q, k, v) = split_qkv(qkv, c);
    attention_with_past(&q, &k, &v, c, nh)
}

/// Attention of T new queries against S keys/values, the last T of which belong to the new tokens
/// (the KV-cache form: past K,V followed by the new ones). New token t sits at position pos0 + t,
/// pos0 = S - T, and sees keys 0..=pos0+t.
/// q [T,C], k [S,C], v [S,C] -> y [T,C].
pub fn attention_with_past(q: &[f64], k: &[f64], v: &[f64], c: usize, nh: usize) -> Vec<f64> {
    attention_probs_with_past(q, k, v, c, nh, None)
}

/// `attention_with_past`, also writing each head's softmax probabilities to `probs` [NH,T,S] when given
/// (row = query, column = key; zero for the keys a query does not see).
pub fn attention_probs_with_past(q: &[f64], k: &[f64], v: &[f64], c: usize, nh: usize, mut probs: Option<&mut [f64]>) -> Vec<f64> {
    assert_eq!(c % nh, 0);
    assert_eq!(k.len(), v.len());
    assert!(q.len() <= k.len() && q.len().is_multiple_of(c) && k.len().is_multiple_of(c));
    let hs = c / nh;
    let (t_len, s_len) = (q.len() / c, k.len() / c);
    let pos0 = s_len - t_len;
    let scale = 1.0 / (hs as f64).sqrt();
    let mut y = vec![0f64; t_len * c]; // [T,C]
    let mut p = vec![0f64; s_len]; // [S] scores, then probabilities, of one query in one head
    for t in 0..t_len {
        let n_keys = pos0 + t + 1; // causal: keys at positions 0..=pos0+t
        for h in 0..nh {
            let qh = &q[t * c + h * hs..][..hs]; // [hs]
            for (s, ps) in p[..n_keys].iter_mut().enumerate() {
                let kh = &k[s * c + h * hs..][..hs]; // [hs]
                *ps = qh.iter().zip(kh).map(|(a, b)| a * b).sum::<f64>() * scale;
            }
            softmax_inplace(&mut p[..n_keys]);
            if let Some(pr) = probs.as_deref_mut() {
                let row = &mut pr[(h * t_len + t) * s_len..][..s_len]; // [S]
                row[..n_keys].copy_from_slice(&p[..n_keys]);
                row[n_keys..].fill(0.0);
            }
            let yh = &mut y[t * c + h * hs..][..hs]; // [hs]
            for (s, &ps) in p[..n_keys].iter().enumerate() {
                let vh = &v[s * c + h * hs..][..hs]; // [hs]
                for (o, &vv) in yh.iter_mut().zip(vh) {
                    *o += ps * vv;
                }
            }
        }
    }
    y
}

/// Index of the largest value (the first one on ties), as greedy decoding picks.
pub fn argmax(x: &[f64]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// config.json stores layer_norm_epsilon as a decimal (1e-05) and Hugging Face uses it as an f64;
/// Gpt2Config keeps an f32. Going back through the shortest decimal recovers the exact f64 1e-5
/// instead of 1e-5 rounded to f32 (9.99999974e-6). The difference is tiny, but free to avoid.
fn eps_f64(eps: f32) -> f64 {
    eps.to_string().parse().unwrap_or(eps as f64)
}

// ------------------------------------------------------------------------------------------------
// the model

/// Keys and values of every layer for the tokens seen so far, so decoding a token costs one row.
#[derive(Clone, Debug)]
pub struct CpuKvCache {
    pub k: Vec<Vec<f64>>, // L x [S,C]
    pub v: Vec<Vec<f64>>, // L x [S,C]
    len: usize,           // S
    c: usize,
}

impl CpuKvCache {
    pub fn new(cfg: &Gpt2Config) -> Self {
        CpuKvCache { k: vec![Vec::new(); cfg.n_layer], v: vec![Vec::new(); cfg.n_layer], len: 0, c: cfg.n_embd }
    }

    /// S: tokens already in the cache (the position the next token gets).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forget everything after the first `len` tokens (e.g. to rerun a step).
    pub fn truncate(&mut self, len: usize) {
        let len = len.min(self.len);
        for (k, v) in self.k.iter_mut().zip(&mut self.v) {
            k.truncate(len * self.c);
            v.truncate(len * self.c);
        }
        self.len = len;
    }
}

/// What `forward` returns.
#[derive(Clone, Debug)]
pub struct Forward {
    /// Logits at `positions`, one row each: [k,V].
    pub logits: Vec<f64>,
    /// The positions (indices into the ids) the logit rows belong to.
    pub positions: Vec<usize>,
    /// L+1 buffers of [T,C]: hidden[j] is the residual stream entering block j (hidden[0] = wte + wpe),
    /// hidden[L] is the output of ln_f (the fixture's `caseN.hidden.{j}`).
    pub hidden: Vec<Vec<f64>>,
    pub vocab_size: usize,
}

impl Forward {
    /// Logits of the i-th requested position: [V].
    pub fn logits_row(&self, i: usize) -> &[f64] {
        &self.logits[i * self.vocab_size..][..self.vocab_size]
    }
}

/// One transformer block on the residual stream x [T,C], in place. The new tokens' K and V are appended
/// to `k_cache`, `v_cache` ([S,C] afterwards) and the attention looks at all of them.
/// `probs`, when given, receives the attention probabilities [NH,T,S].
fn block(cfg: &Gpt2Config, lw: &LayerWeights, x: &mut [f64], k_cache: &mut Vec<f64>, v_cache: &mut Vec<f64>, probs: Option<&mut [f64]>) {
    let (c, f, nh) = (cfg.n_embd, cfg.n_inner, cfg.n_head);
    let eps = eps_f64(cfg.layer_norm_epsilon);

    // attention sub-block: x += c_proj(attention(c_attn(ln_1(x))))
    let ln1 = layer_norm(x, &lw.ln_1_w, &lw.ln_1_b, eps); // [T,C]
    let qkv = matmul(&ln1, &lw.attn_w, Some(&lw.attn_b), c, 3 * c); // [T,3C]
    let (q, k, v) = split_qkv(&qkv, c); // [T,C] each
    k_cache.extend_from_slice(&k); // [S,C]
    v_cache.extend_from_slice(&v); // [S,C]
    let att = attention_probs_with_past(&q, k_cache, v_cache, c, nh, probs); // [T,C]
    let proj = matmul(&att, &lw.attn_proj_w, Some(&lw.attn_proj_b), c, c); // [T,C]
    residual_add(x, &proj);

    // MLP sub-block: x += c_proj(gelu(c_fc(ln_2(x))))
    let ln2 = layer_norm(x, &lw.ln_2_w, &lw.ln_2_b, eps); // [T,C]
    let mut fc = matmul(&ln2, &lw.fc_w, Some(&lw.fc_b), c, f); // [T,F]
    gelu_inplace(&mut fc);
    let proj = matmul(&fc, &lw.mlp_proj_w, Some(&lw.mlp_proj_b), f, c); // [T,C]
    residual_add(x, &proj);
}

/// Run the new tokens `ids` [T] through the model on top of `cache`, returning the logits of the new
/// tokens listed in `rows` (indices into `ids`) and the hidden states of the new tokens.
fn run(w: &Gpt2Weights, cache: &mut CpuKvCache, ids: &[u32], rows: &[usize]) -> Result<Forward> {
    let cfg = &w.config;
    let c = cfg.n_embd;
    if ids.is_empty() {
        return Err(Error::InvalidArgument("no tokens to run: give at least one token id".into()));
    }
    if cache.c != c || cache.k.len() != cfg.n_layer {
        return Err(Error::InvalidArgument("the KV cache was made for another model config".into()));
    }
    if let Some(&r) = rows.iter().find(|&&r| r >= ids.len()) {
        return Err(Error::InvalidArgument(format!(
            "logits requested at position {r} but there are only {} tokens",
            ids.len()
        )));
    }
    let pos0 = cache.len();
    let mut x = embed(w, ids, pos0)?; // [T,C], errors before the cache is touched
    let mut hidden = Vec::with_capacity(cfg.n_layer + 1);
    for (l, lw) in w.layers.iter().enumerate() {
        hidden.push(x.clone());
        block(cfg, lw, &mut x, &mut cache.k[l], &mut cache.v[l], None);
    }
    cache.len = pos0 + ids.len();
    let xf = layer_norm(&x, &w.ln_f_w, &w.ln_f_b, eps_f64(cfg.layer_norm_epsilon)); // [T,C]

    // Only the requested rows go through the [C,V] projection: it dominates the cost (V = 50257).
    let picked: Vec<f64> = rows.iter().flat_map(|&r| xf[r * c..][..c].iter().copied()).collect(); // [k,C]
    let logits = logits(&picked, &w.wte, c); // [k,V]
    hidden.push(xf);
    Ok(Forward { logits, positions: rows.to_vec(), hidden, vocab_size: cfg.vocab_size })
}

/// Full forward pass over `ids` [T]: logits at every position ([T,V]) and all hidden states.
/// For long sequences prefer `forward_logits_at` (T=1024 full logits are 400 MB of f64).
pub fn forward(w: &Gpt2Weights, ids: &[u32]) -> Result<Forward> {
    let rows: Vec<usize> = (0..ids.len()).collect();
    forward_logits_at(w, ids, &rows)
}

/// Forward pass over `ids` [T] computing logits only at `positions` (indices into ids): [k,V].
pub fn forward_logits_at(w: &Gpt2Weights, ids: &[u32], positions: &[usize]) -> Result<Forward> {
    run(w, &mut CpuKvCache::new(&w.config), ids, positions)
}

/// Decode step with a KV cache: append `ids_new` [T] at positions S..S+T and return their logits [T,V].
/// On error the cache is unchanged.
pub fn forward_step(w: &Gpt2Weights, cache: &mut CpuKvCache, ids_new: &[u32]) -> Result<Vec<f64>> {
    let rows: Vec<usize> = (0..ids_new.len()).collect();
    Ok(run(w, cache, ids_new, &rows)?.logits)
}

/// Like `forward_step` but returns only the last new token's logits [V] (what generation needs; a
/// long prompt then costs one [C,V] projection, not T).
pub fn forward_step_last(w: &Gpt2Weights, cache: &mut CpuKvCache, ids_new: &[u32]) -> Result<Vec<f64>> {
    let last = ids_new.len().saturating_sub(1);
    Ok(run(w, cache, ids_new, &[last])?.logits)
}

// ------------------------------------------------------------------------------------------------
// inspection: what the model attends to, and what it would predict after each block

/// What `inspect` returns, for T tokens at one position.
#[derive(Clone, Debug)]
pub struct Inspection {
    /// L buffers of [NH,T,T]: block l's attention probabilities, row = query position, column = key
    /// position, zero above the diagonal.
    pub attention: Vec<Vec<f64>>,
    /// The logit lens at `position`: ln_f(residual stream after block l) @ wte^T, [L,V]. Its last row is
    /// the model's logits there.
    pub lens: Vec<f64>,
    pub position: usize,
}

/// Attention probabilities of every block and head, and the logit lens at `position` (default: the last
/// token), for `ids` [T] run from position 0.
pub fn inspect(w: &Gpt2Weights, ids: &[u32], position: Option<usize>) -> Result<Inspection> {
    let cfg = &w.config;
    let (c, nh, t) = (cfg.n_embd, cfg.n_head, ids.len());
    let position = crate::weights::check_inspect(cfg, ids, position)?;
    let eps = eps_f64(cfg.layer_norm_epsilon);
    let mut x = embed(w, ids, 0)?; // [T,C]
    let mut cache = CpuKvCache::new(cfg);
    let mut attention = Vec::with_capacity(cfg.n_layer);
    let mut after = Vec::with_capacity(cfg.n_layer * c); // [L,C] residual stream at `position` after each block
    for (l, lw) in w.layers.iter().enumerate() {
        let mut probs = vec![0f64; nh * t * t]; // [NH,T,T]
        block(cfg, lw, &mut x, &mut cache.k[l], &mut cache.v[l], Some(&mut probs));
        attention.push(probs);
        after.extend_from_slice(&x[position * c..][..c]);
    }
    let xf = layer_norm(&after, &w.ln_f_w, &w.ln_f_b, eps); // [L,C]
    Ok(Inspection { attention, lens: logits(&xf, &w.wte, c), position })
}
