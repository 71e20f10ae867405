//! `gpt2 bench`: prefill and decode speed of one or more weight formats in one process, on the device
//! asked for. Prefill is one step over the prompt (`Engine::step`: the forward pass and the sampler);
//! decode runs through the real generation loop (`Generation`: batches of K tokens per submit, two in
//! flight), timed from the first token to the last of a generation of 1 + D tokens.

use crate::generate::SamplingArgs;
use crate::load::{device, load, Loaded};
use clap::Args;
use gpt2_webgpu::engine::{weight_bytes_per_token, AnyEngine, Engine};
use gpt2_webgpu::gpu::Kernel;
use gpt2_webgpu::model::IoCounts;
use gpt2_webgpu::sampling::SamplingParams;
use gpt2_webgpu::text::generate::{GenerateOptions, Generation};
use gpt2_webgpu::text::tokenizer::Tokenizer;
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
    /// Also print where a decode step's time goes, op by op, then the prompt's step (GPU engine).
    #[arg(long)]
    pub profile: bool,
    /// auto (a real GPU if there is one, else the CPU engine), gpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// One JSON object per format and line instead of the table.
    #[arg(long)]
    pub json: bool,
    // The sampling every step uses (prefill, decode, --profile); the default is greedy. The page's
    // default ("balanced") is --temperature 0.8 --top-k 40 --top-p 0.95 --repetition-penalty 1.1.
    #[command(flatten)]
    pub sampling: SamplingArgs,
}

pub fn bench(args: BenchArgs) -> Result<()> {
    let BenchArgs { model: dir, weights, prompt_tokens, decode_tokens, profile, device: dev, json, sampling } = args;
    let sampling = sampling.params()?;
    let dev = device(&dev)?;
    let mut base: Option<(f64, f64)> = None;
    if !json {
        println!("{:<8} {:>10} {:>16} {:>16} {:>14}  device", "weights", "load s", "prefill tok/s", "decode tok/s", "decode vs 1st");
    }
    for w in &weights {
        let t0 = Instant::now();
        let Loaded { mut model, tok } = load(&dir, Some(w.as_str()), dev).or_else(|e| match e {
            Error::InvalidArgument(_) => load(&dir, None, dev),
            e => Err(e),
        })?;
        let load_s = t0.elapsed().as_secs_f64();
        let p = model.config().n_positions;
        let prompt: Vec<u32> = (0..prompt_tokens.clamp(1, p - decode_tokens.min(p - 1)) as u32).map(|i| (i * 7919 + 11) % 50000).collect();
        // Warm-up (drivers compile pipelines lazily, the CPU engine sizes its buffers), then the run.
        model.reset();
        let first = pollster::block_on(model.step(&prompt, &sampling, &prompt, 0))?;
        let mut context = prompt.clone();
        context.push(first.token);
        pollster::block_on(model.step(&[first.token], &sampling, &context, 1))?;
        model.reset();
        let t1 = Instant::now();
        let first = pollster::block_on(model.step(&prompt, &sampling, &prompt, 0))?.token;
        let prefill = t1.elapsed().as_secs_f64();
        // Decode: from the first token to the last of one generation of 1 + D tokens (so the prompt's
        // step, whose time varies far more than a decode step's, is not in it). Its round trips: that
        // generation's counts minus a 1-token generation's (batches run ahead of the tokens handed out,
        // so counts taken at the first token would miss the ones already in flight).
        let (_, io_one) = generate(&mut model, &tok, &prompt, 1, &sampling)?;
        let (decode, io_all) = generate(&mut model, &tok, &prompt, 1 + decode_tokens, &sampling)?;
        let decode = decode.max(1e-9);
        let (pf, dc) = (prompt.len() as f64 / prefill, decode_tokens as f64 / decode);
        let b = *base.get_or_insert((pf, dc));
        let (per_layer, per_token) = model.step_counts();
        // What the D extra tokens cost in round trips (measured by the engine's counters).
        let per_decode = |a: u64, b: u64| (a - b) as f64 / decode_tokens.max(1) as f64;
        let submits = per_decode(io_all.submits, io_one.submits);
        let readbacks = per_decode(io_all.readbacks, io_one.readbacks);
        let readback = per_decode(io_all.readback_bytes, io_one.readback_bytes);
        let weight_bytes = weight_bytes_per_token(model.config(), model.format());
        // The yardsticks, in this same run, over a 50 MB q8 matrix (K = C) on this adapter: a plain q8 GEMV
        // (gemv_ref.wgsl) and the tuning's own gemv kernel.
        let stream = |kernel: Option<Kernel>| -> Result<Option<f64>> {
            match &model {
                AnyEngine::Gpu(m) => {
                    let k = kernel.unwrap_or(m.gpu().tuning.gemv_kernel);
                    Ok(Some(gpt2_webgpu::gpu::bench::gemv_q8_stream_gb_s(m.gpu(), k, 50_000_000, model.config().n_embd as u32, 4)?))
                }
                AnyEngine::Cpu(_) => Ok(None),
            }
        };
        let ref_gb_s = stream(Some(Kernel::GemvRef))?;
        let own_gb_s = stream(None)?;
        let decode_gb_s = weight_bytes as f64 * dc / 1e9;
        if json {
            let (device_key, device_name) = match &model {
                AnyEngine::Gpu(_) => ("adapter", model.device_name()),
                AnyEngine::Cpu(_) => ("device", model.device_name()),
            };
            let mut o = serde_json::json!({
                "weights": model.format().name(),
                "engine": model.kind(),
                "tuning": match &model { AnyEngine::Gpu(m) => m.gpu().tuning.to_json().parse::<serde_json::Value>().expect("tuning JSON"), AnyEngine::Cpu(m) => m.simd().name().into() },
                "threads": match &model { AnyEngine::Gpu(_) => serde_json::Value::Null, AnyEngine::Cpu(m) => m.threads().into() },
                // The KV cache's format in use ("f16" pairs or "f32"): the tuning's `kv_cache` says only what is forced.
                "kv_format": model.kv_format().name(),
                "sampling": serde_json::json!({ "temperature": sampling.temperature, "top_k": sampling.top_k, "top_p": sampling.top_p, "repetition_penalty": sampling.repetition_penalty, "seed": sampling.seed }),
                "load_s": load_s,
                "prompt_tokens": prompt.len(),
                "decode_tokens": decode_tokens,
                "prefill_tok_s": pf,
                "decode_tok_s": dc,
                // The CPU engine dispatches, submits and reads back nothing: 0 by definition.
                "dispatches_per_layer": per_layer,
                "dispatches_per_token": per_token,
                "tokens_per_submit": match &model { AnyEngine::Gpu(m) => m.tokens_per_submit(), AnyEngine::Cpu(m) => m.tokens_per_submit() },
                "submits_per_token": submits,
                "readbacks_per_token": readbacks,
                "readback_bytes_per_token": readback,
                "weight_bytes_per_token": weight_bytes,
                "decode_weight_gb_s": decode_gb_s,
                // null on the CPU engine (the yardstick is a GPU kernel).
                "ref_gemv_q8_gb_s": ref_gb_s,
                "decode_vs_ref_gemv": ref_gb_s.map(|r| decode_gb_s / r),
                // The tuning's own gemv kernel over the same matrix (how close decode gets to its own kernel).
                "tuning_gemv_q8_gb_s": own_gb_s,
            });
            o[device_key] = device_name.into();
            println!("{o}");
        } else {
            println!("{:<8} {:>10.2} {:>16.2} {:>16.2} {:>13.2}x  {}", model.format().name(), load_s, pf, dc, dc / b.1, model.device_name());
            if let Some(r) = ref_gb_s {
                println!(
                    "  decode streams its weights at {decode_gb_s:.3} GB/s; a plain q8 GEMV here: {r:.3} GB/s ({:.2}x); the tuning's own gemv: {:.3} GB/s",
                    decode_gb_s / r,
                    own_gb_s.unwrap_or(f64::NAN)
                );
            }
        }
        if profile {
            match &mut model {
                AnyEngine::Gpu(m) => {
                    println!("  dispatches per decode token: {per_layer} per layer, {per_token} in all; submits per token {submits:.3}, readbacks {readbacks:.3}, bytes read back {readback:.1}");
                    for (label, n, secs) in m.profile_step(&[first], &sampling)? {
                        println!("  {label:>14} x{n:<4} {:9.3} ms", secs * 1e3);
                    }
                    // The prompt's step too (prefill runs other kernels: the tuning's matmul, attention over
                    // T queries), from an empty cache as the measured prefill ran.
                    m.reset();
                    println!("  prompt step of {} tokens, ms per dispatch kind (all tokens):", prompt.len());
                    for (label, n, secs) in m.profile_step(&prompt, &sampling)? {
                        println!("  {label:>14} x{n:<4} {:9.3} ms", secs * 1e3);
                    }
                }
                AnyEngine::Cpu(_) => eprintln!("[--profile shows the GPU engine's dispatches; the CPU engine has none]"),
            }
        }
    }
    Ok(())
}

/// Generate `n` tokens with `sampling` after `prompt` (no stop at <|endoftext|>) through `Generation`;
/// returns the seconds from the first token to the last, and the engine's submits and readbacks in the
/// whole run.
fn generate(model: &mut AnyEngine, tok: &Tokenizer, prompt: &[u32], n: usize, sampling: &SamplingParams) -> Result<(f64, IoCounts)> {
    let opts = GenerateOptions { max_new_tokens: n, sampling: sampling.clone(), stop_at_eos: false };
    let mut gen = Generation::from_ids(tok, model.config(), prompt.to_vec(), opts)?;
    let io0 = model.io_counts();
    let mut first: Option<Instant> = None;
    let mut got = 0;
    while pollster::block_on(gen.next(model, tok))?.is_some() {
        got += 1;
        first.get_or_insert_with(Instant::now);
    }
    if got != n {
        return Err(Error::InvalidArgument(format!("the bench generated {got} tokens, not {n}")));
    }
    let t_first = first.expect("n >= 1 tokens were generated");
    let io = model.io_counts();
    Ok((t_first.elapsed().as_secs_f64(), IoCounts { submits: io.submits - io0.submits, readbacks: io.readbacks - io0.readbacks, readback_bytes: io.readback_bytes - io0.readback_bytes }))
}
