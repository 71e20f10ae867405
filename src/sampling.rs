//! How the next token is picked: the sampling options every engine takes and the result it gives back.
//! A low room: no GPU, no package format.

use crate::error::{Error, Result};

/// Alternatives a step can report at most (the GPU sampler's output block holds this many).
pub const MAX_ALTERNATIVES: usize = 8;

/// How to pick the next token. `temperature == 0` means greedy.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    pub temperature: f32,
    /// 0 = no top-k filter.
    pub top_k: u32,
    /// 1.0 = no top-p filter.
    pub top_p: f32,
    /// 1.0 = none; > 1 discourages tokens already in the context (Hugging Face's definition).
    pub repetition_penalty: f32,
    pub seed: u64,
    /// How many of the most likely tokens to report with their probabilities (0..=8).
    pub alternatives: u32,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams { temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0, alternatives: 0 }
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self::default()
    }

    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidArgument(m));
        if !(self.temperature >= 0.0 && self.temperature.is_finite()) {
            return bad(format!("temperature must be >= 0 (0 = greedy), got {}", self.temperature));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad(format!("top_p must be in (0, 1], got {}", self.top_p));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return bad(format!("repetition_penalty must be > 0 (1 = off), got {}", self.repetition_penalty));
        }
        if self.alternatives as usize > MAX_ALTERNATIVES {
            return bad(format!("at most {MAX_ALTERNATIVES} alternatives can be reported, asked for {}", self.alternatives));
        }
        Ok(())
    }
}

/// The result of one step: the chosen token and what else the model considered.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampled {
    pub token: u32,
    /// Its probability in the distribution it was drawn from (after temperature, top-k, top-p).
    pub prob: f32,
    /// The most likely tokens, most likely first, with their probabilities.
    pub alternatives: Vec<(u32, f32)>,
}

/// Several decode steps in one round trip to an engine (`Engine::submit`): optionally append tokens the
/// host gives, then sample `n` tokens, each step feeding the token the step before it chose.
#[derive(Clone, Copy, Debug)]
pub struct Batch<'a> {
    /// Some: append these first (a prompt, or the re-encoded window after the context slid) and take
    /// the repetition penalty's window afresh from `window`. None: continue from the last token the
    /// previous batch sampled (on the GPU it never leaves the device).
    pub tokens: Option<&'a [u32]>,
    /// With `tokens`: the context so far, ending with them; the penalty looks at its last P tokens.
    /// After that the engine moves the window on by each token it samples.
    pub window: &'a [u32],
    /// Tokens to sample (1..=the engine's tokens per submit).
    pub n: usize,
    /// The RNG step of the first of them (then step0 + 1, ...).
    pub step0: u32,
    pub sampling: &'a SamplingParams,
}

pub mod cpu;
