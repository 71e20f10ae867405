//! `gpt2 generate`: text streamed to stdout, speed on stderr.

use crate::load::{device, load, Loaded};
use gpt2_webgpu::engine::Engine;
use clap::Args;
use gpt2_webgpu::sampling::SamplingParams;
use gpt2_webgpu::text::generate::{GenerateOptions, Generation};
use gpt2_webgpu::Result;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// The sampling settings, as `gpt2 generate` and `gpt2 bench` take them (the JS API's names and defaults).
#[derive(Args, Clone, Copy)]
pub struct SamplingArgs {
    /// 0 = greedy (the default, as in the JS API); above 0 samples.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// 0 = off.
    #[arg(long, default_value_t = 0)]
    pub top_k: u32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// The sampling seed (printed on stderr): 0 by default, as in the JS API, so the same command gives
    /// the same text here and in the browser.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    /// The settings as the engine takes them, checked (a bad value is an error in words).
    pub fn params(&self) -> Result<SamplingParams> {
        let SamplingArgs { temperature, top_k, top_p, repetition_penalty, seed } = *self;
        let sampling = SamplingParams { temperature, top_k, top_p, repetition_penalty, seed, alternatives: 0 };
        sampling.validate()?;
        Ok(sampling)
    }
}

/// Generate text, streamed to stdout; speed on stderr.
#[derive(Args)]
pub struct GenerateArgs {
    /// A Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, default_value = "")]
    pub prompt: String,
    #[arg(long, default_value_t = 50)]
    pub max_new_tokens: usize,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// Weight format when loading a Hugging Face folder: f32 (default), f16, q8 or q4.
    /// A package is already quantized and loads as stored.
    #[arg(long)]
    pub weights: Option<String>,
    /// Keep going past <|endoftext|>.
    #[arg(long)]
    pub ignore_eos: bool,
    /// auto (a real GPU if there is one, else the CPU engine), gpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

pub fn generate(args: GenerateArgs) -> Result<()> {
    let GenerateArgs { model, prompt, max_new_tokens, sampling, weights, ignore_eos, device: dev } = args;
    let sampling = sampling.params()?;
    let seed = sampling.seed;
    let Loaded { mut model, tok } = load(&model, weights.as_deref(), device(&dev)?)?;
    let opts = GenerateOptions { max_new_tokens, sampling, stop_at_eos: !ignore_eos };
    let mut gen = Generation::new(&tok, model.config(), &prompt, opts)?;
    for n in gen.notices() {
        eprintln!("[{n}]");
    }
    eprintln!("[seed {seed}]");
    let mut out = std::io::stdout().lock();
    write!(out, "{prompt}").ok();
    out.flush().ok();
    let t0 = Instant::now();
    let mut t_first = None;
    while let Some(piece) = pollster::block_on(gen.next(&mut model, &tok))? {
        if t_first.is_none() {
            t_first = Some(t0.elapsed().as_secs_f64());
        }
        write!(out, "{}", piece.text).ok();
        out.flush().ok();
    }
    writeln!(out).ok();
    let total = t0.elapsed().as_secs_f64();
    let prefill = t_first.unwrap_or(total);
    let decoded = gen.produced().saturating_sub(1);
    eprintln!(
        "[prefill: {} tokens in {:.3}s = {:.1} tokens/s | decode: {} tokens in {:.3}s = {:.2} tokens/s{}]",
        gen.prompt_tokens(),
        prefill,
        gen.prompt_tokens() as f64 / prefill,
        decoded,
        total - prefill,
        if total > prefill { decoded as f64 / (total - prefill) } else { 0.0 },
        if gen.reencodes() > 0 { format!(", window slid {} times", gen.reencodes()) } else { String::new() }
    );
    Ok(())
}
