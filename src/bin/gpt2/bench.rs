//! `gpt2 bench`: prefill and decode speed of one or more weight formats in one process.

use crate::load::{load, Loaded};
use clap::Args;
use gpt2_webgpu::sampling::SamplingParams;
use gpt2_webgpu::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// Measure prefill and decode speed of one or more weight formats in one process (ratios against
/// the first format are what to compare: machines are noisy).
#[derive(Args)]
pub struct BenchArgs {
    #[arg(long)]
    pub model: PathBuf,
    /// Comma-separated formats to load the Hugging Face folder as (ignored for a package).
    #[arg(long, default_value = "f32", value_delimiter = ',')]
    pub weights: Vec<String>,
    #[arg(long, default_value_t = 32)]
    pub prompt_tokens: usize,
    #[arg(long, default_value_t = 16)]
    pub decode_tokens: usize,
    /// Also print where a decode step's time goes, op by op.
    #[arg(long)]
    pub profile: bool,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let BenchArgs { model: dir, weights, prompt_tokens, decode_tokens, profile } = args;
    let mut base: Option<(f64, f64)> = None;
    println!("{:<8} {:>10} {:>16} {:>16} {:>14}", "weights", "load s", "prefill tok/s", "decode tok/s", "decode vs 1st");
    for w in &weights {
        let t0 = Instant::now();
        let Loaded { mut model, .. } = load(&dir, Some(w.as_str())).or_else(|e| match e {
            Error::InvalidArgument(_) => load(&dir, None),
            e => Err(e),
        })?;
        let load_s = t0.elapsed().as_secs_f64();
        let p = model.config().n_positions;
        let prompt: Vec<u32> = (0..prompt_tokens.clamp(1, p - decode_tokens.min(p - 1)) as u32).map(|i| (i * 7919 + 11) % 50000).collect();
        let greedy = SamplingParams::greedy();
        // Warm-up (drivers compile pipelines lazily), then the measured run.
        model.reset();
        let first = pollster::block_on(model.step(&prompt, &greedy, &prompt, 0))?;
        pollster::block_on(model.step(&[first.token], &greedy, &prompt, 1))?;
        model.reset();
        let t1 = Instant::now();
        let mut tok = pollster::block_on(model.step(&prompt, &greedy, &prompt, 0))?.token;
        let prefill = t1.elapsed().as_secs_f64();
        let t2 = Instant::now();
        for i in 0..decode_tokens {
            tok = pollster::block_on(model.step(&[tok], &greedy, &prompt, i as u32 + 1))?.token;
        }
        let decode = t2.elapsed().as_secs_f64();
        let (pf, dc) = (prompt.len() as f64 / prefill, decode_tokens as f64 / decode);
        let b = *base.get_or_insert((pf, dc));
        println!("{:<8} {:>10.2} {:>16.2} {:>16.2} {:>13.2}x", model.format().name(), load_s, pf, dc, dc / b.1);
        if profile {
            let (per_layer, total) = model.dispatch_counts();
            println!("  dispatches per decode token: {per_layer} per layer, {total} in all; bytes read back per token: {}", gpt2_webgpu::gpu::params::SAMPLE_OUT_WORDS * 4);
            for (label, n, secs) in model.profile_step(&[tok])? {
                println!("  {label:>14} x{n:<4} {:9.3} ms", secs * 1e3);
            }
        }
    }
    Ok(())
}
