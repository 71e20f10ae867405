//! The generation loop: prefill the prompt, then decode one token per step, streaming UTF-8-safe text
//! pieces. Shared by the native CLI and the browser worker (it needs an `Engine`, GPU or CPU, and a `Tokenizer`).
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
use crate::sampling::SamplingParams;
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
    context: Vec<u32>,
    prompt_len: usize,
    opts: GenerateOptions,
    decoder: StreamDecoder,
    produced: usize,
    started: bool,
    done: bool,
    notices: Vec<String>,
    eos: u32,
    window: usize,
    keep: usize,
    reencodes: usize,
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
            notices,
            eos,
            window,
            keep,
            reencodes: 0,
        })
    }

    /// Tokens of the prompt actually fed to the model.
    pub fn prompt_tokens(&self) -> usize {
        self.prompt_len
    }

    /// Things the user should be told (prompt truncated, empty prompt).
    /// The prompt's token ids as the model gets them (after truncation to the window; `<|endoftext|>` for
    /// an empty prompt). Meaningful before the first step: the window may slide later.
    pub fn prompt_ids(&self) -> &[u32] {
        &self.context[..self.prompt_len.min(self.context.len())]
    }

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

    /// Stop early (the Stop button); the next `next` returns None.
    pub fn stop(&mut self) {
        self.done = true;
    }

    /// Run one step and return the next piece, or None when finished.
    pub async fn next<E: Engine>(&mut self, model: &mut E, tok: &Tokenizer) -> Result<Option<Piece>> {
        if self.done || self.produced >= self.opts.max_new_tokens {
            self.done = true;
            return Ok(None);
        }
        let step = self.produced as u32;
        let sampled = if !self.started {
            model.reset();
            self.started = true;
            let prompt = self.context.clone();
            model.step(&prompt, &self.opts.sampling, &self.context, step).await?
        } else {
            let last = *self.context.last().ok_or_else(|| Error::InvalidArgument("empty context".into()))?;
            if model.position() >= self.window {
                // Slide: re-encode the most recent `keep` tokens (the last of which is `last`).
                model.reset();
                self.reencodes += 1;
                let recent = self.context[self.context.len() - self.keep..].to_vec();
                model.step(&recent, &self.opts.sampling, &self.context, step).await?
            } else {
                model.step(&[last], &self.opts.sampling, &self.context, step).await?
            }
        };
        self.produced += 1;
        let token = sampled.token;
        self.context.push(token);
        if self.context.len() > 2 * self.window {
            // Only the window matters from here on; keep the buffer bounded on endless runs.
            self.context.drain(..self.context.len() - self.window);
        }
        let eos = self.opts.stop_at_eos && token == self.eos;
        let last = eos || self.produced >= self.opts.max_new_tokens;
        let mut text = if eos { String::new() } else { self.decoder.push(token).unwrap_or_default() };
        if last {
            text.push_str(&self.decoder.finish());
            self.done = true;
        }
        let alternatives = sampled
            .alternatives
            .iter()
            .map(|&(t, p)| Alternative { token: t, text: tok.decode(&[t]).unwrap_or_default(), prob: p })
            .collect();
        Ok(Some(Piece { text, token, prob: sampled.prob, alternatives, last }))
    }
}
