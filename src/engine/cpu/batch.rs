//! Batches on the CPU engine (`Engine::submit`/`collect`): the same contract as the GPU's (model/batch.rs),
//! run as a loop of single steps, so its tokens are those of one step at a time. A batch is run when it
//! is collected, not when it is submitted: a batch that is dropped (after `<|endoftext|>` or a stop)
//! costs nothing, and the first piece comes as soon as its own step is done.
//!
//! The repetition penalty's window is kept here as it moves: the last P tokens fed.

use super::CpuModel;
use crate::error::{Error, Result};
use crate::gpu::MAX_TOKENS_PER_SUBMIT;
use crate::sampling::{Batch, Sampled, SamplingParams};
use crate::weights::check_step;
use std::collections::VecDeque;

/// A submitted batch, run at `collect`.
struct Pending {
    /// The tokens it feeds first and the context they end (copied: the caller's slices do not outlive
    /// `submit`; only batches that feed tokens have them).
    tokens: Option<(Vec<u32>, Vec<u32>)>,
    n: usize,
    step0: u32,
    sampling: SamplingParams,
}

pub(super) struct Batches {
    pending: VecDeque<Pending>,
    /// KV position once every pending batch has run.
    queued_pos: usize,
    /// Tokens per submit.
    k: usize,
    /// The last token sampled and not yet fed (what a batch without tokens continues from), once run;
    /// `chained` says a batch may continue (a pending one will leave it).
    last: Option<u32>,
    chained: bool,
    /// The penalty window: the last P tokens fed.
    window: VecDeque<u32>,
}

impl Batches {
    pub fn new(p: usize) -> Batches {
        // One token per round trip: on the host a batch buys nothing, and a piece can go out as soon as
        // its step is done.
        Batches { pending: VecDeque::with_capacity(2), queued_pos: 0, k: 1, last: None, chained: false, window: VecDeque::with_capacity(p + 1) }
    }
}

impl CpuModel {
    pub fn tokens_per_submit(&self) -> usize {
        self.batches.k
    }

    /// Batches of up to `k` tokens (1..=MAX_TOKENS_PER_SUBMIT); the tokens do not depend on it.
    pub fn set_tokens_per_submit(&mut self, k: usize) -> Result<()> {
        if !(1..=MAX_TOKENS_PER_SUBMIT as usize).contains(&k) {
            return Err(Error::InvalidArgument(format!("tokens per submit must be 1 to {MAX_TOKENS_PER_SUBMIT}, not {k}")));
        }
        self.batches.k = k;
        Ok(())
    }

    /// Tokens in the KV cache once every submitted batch has run (what `Engine::position` reports).
    pub fn queued_position(&self) -> usize {
        if self.batches.pending.is_empty() {
            self.pos
        } else {
            self.batches.queued_pos
        }
    }

    /// Queue `b` (checked now, run at `collect`).
    pub fn submit(&mut self, b: &Batch<'_>) -> Result<()> {
        b.sampling.validate()?;
        let bs = &self.batches;
        if b.n == 0 || b.n > bs.k {
            return Err(Error::InvalidArgument(format!("a batch samples 1 to {} tokens, not {}", bs.k, b.n)));
        }
        if bs.pending.len() >= 2 {
            return Err(Error::InvalidArgument("two batches are already in flight: collect one first".into()));
        }
        let pos = self.queued_position();
        let t0 = match b.tokens {
            Some(tokens) => {
                check_step(&self.config, pos, tokens)?;
                tokens.len()
            }
            None if !bs.chained => return Err(Error::InvalidArgument("nothing to continue from: after a reset a batch starts by feeding tokens".into())),
            None => 1,
        };
        let p = self.config.n_positions;
        if pos + t0 + b.n - 1 > p {
            return Err(Error::InvalidArgument(format!("{} more tokens at position {pos} run past the {p}-token context", t0 + b.n - 1)));
        }
        let tokens = b.tokens.map(|t| (t.to_vec(), b.window[b.window.len().saturating_sub(p)..].to_vec()));
        let bs = &mut self.batches;
        bs.pending.push_back(Pending { tokens, n: b.n, step0: b.step0, sampling: b.sampling.clone() });
        bs.queued_pos = pos + t0 + b.n - 1;
        bs.chained = true;
        Ok(())
    }

    /// Run the oldest pending batch and append its tokens to `out`.
    pub fn collect(&mut self, out: &mut VecDeque<Sampled>) -> Result<()> {
        let Some(b) = self.batches.pending.pop_front() else {
            return Err(Error::InvalidArgument("no batch in flight to collect".into()));
        };
        let pos0 = self.pos;
        // The window leaves `self` while the steps borrow it (a move, no allocation).
        let mut window = std::mem::take(&mut self.batches.window);
        let r = self.run(&b, &mut window, out);
        self.batches.window = window;
        if r.is_err() {
            self.rollback(pos0);
        }
        r
    }

    fn run(&mut self, b: &Pending, window: &mut VecDeque<u32>, out: &mut VecDeque<Sampled>) -> Result<()> {
        let p = self.config.n_positions;
        for j in 0..b.n {
            let step = b.step0.wrapping_add(j as u32);
            let s = match (&b.tokens, j) {
                (Some((tokens, context)), 0) => {
                    window.clear();
                    window.extend(context);
                    self.step(tokens, &b.sampling, window.make_contiguous(), step)?
                }
                _ => {
                    let t = self.batches.last.ok_or_else(|| Error::InvalidArgument("nothing to continue from".into()))?;
                    window.push_back(t);
                    if window.len() > p {
                        window.pop_front();
                    }
                    self.step(&[t], &b.sampling, window.make_contiguous(), step)?
                }
            };
            self.batches.last = Some(s.token);
            out.push_back(s);
        }
        Ok(())
    }

    /// Drop the batches not yet run and put the KV position back to `pos` (no later than now).
    pub fn rollback(&mut self, pos: usize) {
        let bs = &mut self.batches;
        bs.pending.clear();
        bs.last = None;
        bs.chained = false;
        self.pos = pos.min(self.pos);
    }
}
