//! The generation loop: prefill the prompt, then decode, streaming UTF-8-safe text pieces one per
//! `next`. Shared by the native CLI and the browser worker (it needs an `Engine`, GPU or CPU, and a
//! `Tokenizer`).
//!
//! Decoding runs in batches of up to K tokens per round trip to the engine (`Engine::submit`, K from
//! `Engine::tokens_per_submit`), and while one batch is being read back the next is already submitted
//! (it continues from the first's last token on the device). `next` hands out the tokens one piece at a
//! time from a queue. Stops stay exact: a batch never runs past `max_new_tokens` or the context window;
//! after `<|endoftext|>` or `stop()` nothing more is emitted, the batch in flight is dropped and the
//! engine's KV position goes back to just after the step that sampled the last kept token, so a seeded
//! generation gives the same tokens (and leaves the same state) for every K.
//!
//! The context window: GPT-2 has learned positions 0..P (P = 1024). When the KV cache is full, the
//! model cannot simply drop the oldest entry, because every cached key was computed at its absolute
//! position. So generation continues over a *sliding window*: the most recent 3/4 of the window is
//! re-encoded from position 0 in one prefill pass, and decoding goes on from there. That costs one
//! prompt-sized pass every P/4 tokens and keeps 768 tokens of context for the real models, which is
//! what users of a 1024-token model expect; a window of P/2 would halve the re-encoding cost but
//! forget twice as much.

use crate::config::Gpt2Config;
use crate::error::{Error, Result};
use crate::engine::Engine;
use crate::sampling::{Batch, Sampled, SamplingParams};
use std::collections::VecDeque;
use crate::text::tokenizer::{StreamDecoder, Tokenizer};

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    /// Stop when the model emits `<|endoftext|>` (as Hugging Face's generate does).
    pub stop_at_eos: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions { max_new_tokens: 50, sampling: SamplingParams::default(), stop_at_eos: true }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Alternative {
    pub token: u32,
    pub text: String,
    pub prob: f32,
}

/// One generated token and the text it completes.
#[derive(Clone, Debug, PartialEq)]
pub struct Piece {
    /// New text (may be empty while a multi-byte character is still incomplete).
    pub text: String,
    pub token: u32,
    pub prob: f32,
    pub alternatives: Vec<Alternative>,
    /// True for the last piece of the generation.
    pub last: bool,
}

/// Where a generation stands. Drive it with `next` until it returns `None`.
pub struct Generation {
    /// The prompt, then every token read back (bounded to the last 2P).
    context: Vec<u32>,
    prompt_len: usize,
    opts: GenerateOptions,
    decoder: StreamDecoder,
    /// Pieces returned.
    produced: usize,
    started: bool,
    /// No more pieces (the last was returned, or stop()).
    done: bool,
    /// No more batches: `<|endoftext|>` was read back.
    ended: bool,
    /// The engine was put back to `kept_pos` after the end.
    settled: bool,
    notices: Vec<String>,
    eos: u32,
    window: usize,
    keep: usize,
    reencodes: usize,
    /// Tokens read back and not yet returned, each with the KV position after the step that sampled it.
    queue: VecDeque<(Sampled, usize)>,
    /// Batches submitted and not yet read back: (tokens, KV position after their first step).
    in_flight: VecDeque<(usize, usize)>,
    /// Reused to read a batch back into (no allocation per batch).
    fresh: VecDeque<Sampled>,
    /// Tokens submitted so far (returned + queued + in flight).
    submitted: usize,
    /// KV position after every submitted batch.
    engine_pos: usize,
    /// KV position after the step that sampled the last returned token.
    kept_pos: usize,
}

impl Generation {
    pub fn new(tok: &Tokenizer, cfg: &Gpt2Config, prompt: &str, opts: GenerateOptions) -> Result<Generation> {
        let ids = tok.encode(prompt)?;
        Self::from_ids(tok, cfg, ids, opts)
    }

    pub fn from_ids(tok: &Tokenizer, cfg: &Gpt2Config, mut ids: Vec<u32>, opts: GenerateOptions) -> Result<Generation> {
        opts.sampling.validate()?;
        let mut notices = Vec::new();
        let eos = tok.eos_id();
        if ids.is_empty() {
            // GPT-2 has no BOS of its own: unconditional samples start from <|endoftext|>.
            ids.push(eos);
            notices.push("empty prompt: generating unconditionally from <|endoftext|>".to_string());
        }
        for &id in &ids {
            crate::weights::check_token(id, cfg)?;
        }
        let window = cfg.n_positions;
        if ids.len() > window {
            let dropped = ids.len() - window;
            ids.drain(..dropped);
            notices.push(format!("the prompt is longer than the {window}-token context: kept its last {window} tokens, dropped {dropped}"));
        }
        let keep = (window * 3 / 4).max(1);
        Ok(Generation {
            prompt_len: ids.len(),
            context: ids,
            opts,
            decoder: tok.stream(),
            produced: 0,
            started: false,
            done: false,
            ended: false,
            settled: false,
            notices,
            eos,
            window,
            keep,
            reencodes: 0,
            queue: VecDeque::new(),
            in_flight: VecDeque::with_capacity(2),
            fresh: VecDeque::new(),
            submitted: 0,
            engine_pos: 0,
            kept_pos: 0,
        })
    }

    /// Stop at `id` instead of `<|endoftext|>` (when `stop_at_eos` is set): a stop sequence of one
    /// token, such as a newline for one-line answers.
    pub fn with_stop_token(mut self, id: u32) -> Generation {
        self.eos = id;
        self
    }

    /// Tokens of the prompt actually fed to the model.
    pub fn prompt_tokens(&self) -> usize {
        self.prompt_len
    }

    /// The prompt's token ids as the model gets them (after truncation to the window; `<|endoftext|>` for
    /// an empty prompt). Meaningful before the first step: the window may slide later.
    pub fn prompt_ids(&self) -> &[u32] {
        &self.context[..self.prompt_len.min(self.context.len())]
    }

    /// Things the user should be told (prompt truncated, empty prompt).
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    pub fn produced(&self) -> usize {
        self.produced
    }

    /// How many times the window slid (re-encoded its most recent tokens).
    pub fn reencodes(&self) -> usize {
        self.reencodes
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Stop early (the Stop button): the next `next` returns None (and puts the engine back to just
    /// after the last piece returned).
    pub fn stop(&mut self) {
        self.done = true;
    }

    /// The next piece, or None when finished.
    pub async fn next<E: Engine>(&mut self, model: &mut E, tok: &Tokenizer) -> Result<Option<Piece>> {
        if self.done || self.produced >= self.opts.max_new_tokens {
            self.done = true;
            self.finish(model);
            return Ok(None);
        }
        if self.queue.is_empty() {
            if let Err(e) = self.fill(model).await {
                self.done = true;
                self.settled = true; // the engine rolled back what failed; reset() starts the next one clean
                return Err(e);
            }
        }
        let (sampled, pos) = self.queue.pop_front().ok_or_else(|| Error::InvalidArgument("the engine returned no token".into()))?;
        self.produced += 1;
        self.kept_pos = pos;
        let token = sampled.token;
        let eos = self.opts.stop_at_eos && token == self.eos;
        let last = eos || self.produced >= self.opts.max_new_tokens;
        let mut text = if eos { String::new() } else { self.decoder.push(token).unwrap_or_default() };
        if last {
            text.push_str(&self.decoder.finish());
            self.done = true;
            self.finish(model);
        }
        let alternatives = sampled
            .alternatives
            .iter()
            .map(|&(t, p)| Alternative { token: t, text: tok.decode(&[t]).unwrap_or_default(), prob: p })
            .collect();
        Ok(Some(Piece { text, token, prob: sampled.prob, alternatives, last }))
    }

    /// After the last piece (or a stop): drop what is still queued or in flight and put the engine's KV
    /// position back to just after the step that sampled the last piece returned. `next` does it itself;
    /// call it when a stopped generation is abandoned without another `next`.
    pub fn finish<E: Engine>(&mut self, model: &mut E) {
        if self.started && !self.settled {
            model.rollback(self.kept_pos);
            self.in_flight.clear();
            self.queue.clear();
            self.engine_pos = self.kept_pos;
            self.settled = true;
        }
    }

    /// Read back batches until a token is queued, keeping the next batch in flight meanwhile.
    async fn fill<E: Engine>(&mut self, model: &mut E) -> Result<()> {
        while self.queue.is_empty() {
            if self.in_flight.is_empty() {
                if self.ended || self.submitted >= self.opts.max_new_tokens {
                    return Err(Error::InvalidArgument("the generation has no more tokens to run".into()));
                }
                self.submit(model)?;
            }
            // Double buffering: the next batch continues on the device from this one's last token, so it
            // can go now, before this one is read back.
            if self.in_flight.len() == 1 && self.can_continue_on_device() {
                self.submit(model)?;
            }
            let (n, first_pos) = self.in_flight.pop_front().expect("a batch is in flight");
            model.collect(&mut self.fresh).await?;
            if self.fresh.len() != n {
                return Err(Error::InvalidArgument(format!("the engine returned {} tokens for a batch of {n}", self.fresh.len())));
            }
            for (j, s) in self.fresh.drain(..).enumerate() {
                if self.ended {
                    break; // sampled after <|endoftext|>: dropped
                }
                self.context.push(s.token);
                if self.context.len() > 2 * self.window {
                    // Only the window matters from here on; keep the buffer bounded on endless runs.
                    self.context.drain(..self.context.len() - self.window);
                }
                if self.opts.stop_at_eos && s.token == self.eos {
                    self.ended = true;
                    // Nothing after it counts: drop the batch in flight and rewind the engine.
                    model.rollback(first_pos + j);
                    self.in_flight.clear();
                    self.engine_pos = first_pos + j;
                }
                self.queue.push_back((s, first_pos + j));
            }
        }
        Ok(())
    }

    /// The next batch can start from the token the one in flight will sample: not past the token
    /// limit, and no slide of the window (which re-encodes tokens the host must know) is due first.
    fn can_continue_on_device(&self) -> bool {
        self.started && !self.ended && self.submitted < self.opts.max_new_tokens && self.engine_pos < self.window
    }

    /// Submit the next batch: the prompt first, a re-encoded window when the KV cache is full (both
    /// need every token read back), else a continuation on the device.
    fn submit<E: Engine>(&mut self, model: &mut E) -> Result<()> {
        let remaining = self.opts.max_new_tokens - self.submitted;
        let step0 = self.submitted as u32;
        let sampling = &self.opts.sampling;
        let (n, first_pos) = if !self.started || self.engine_pos >= self.window {
            debug_assert!(self.in_flight.is_empty(), "tokens are fed only when every token is known");
            model.reset();
            let tokens: &[u32] = if !self.started {
                self.started = true;
                &self.context
            } else {
                // Slide: re-encode the most recent `keep` tokens (the last of which is the next to feed).
                self.reencodes += 1;
                &self.context[self.context.len() - self.keep..]
            };
            // A batch of one: the first piece comes as soon as the prompt is through (the next batch, of
            // K, is submitted before it is read back, so the GPU does not wait for it either).
            let n = 1;
            model.submit(&Batch { tokens: Some(tokens), window: &self.context, n, step0, sampling })?;
            (n, tokens.len())
        } else {
            let k = model.tokens_per_submit().max(1);
            let n = k.min(remaining).min(self.window - self.engine_pos);
            model.submit(&Batch { tokens: None, window: &[], n, step0, sampling })?;
            (n, self.engine_pos + 1)
        };
        self.in_flight.push_back((n, first_pos));
        self.submitted += n;
        self.engine_pos = first_pos + n - 1;
        Ok(())
    }
}
