//! `gpt2 verify`: one quantized package against the f64 CPU reference (reference/cpu.rs) on the weights
//! it was converted from: load it (timed), generate a few greedy tokens (tokens/s), and check its logits
//! at the last position of one prompt within the bound its quantization's weight error allows
//! (`reference::compare::quant_bound`, the argument of tests/quality.rs). `tools/all-sizes.sh` runs it
//! for every GPT-2 size.
//!
//! Memory: the package runs first and is dropped before the reference loads. The reference holds the
//! weights as f32 (exact for the f16 checkpoints `gpt2 random --dtype f16` writes) and computes every
//! product and sum in f64, as cpu.rs always does: gpt2-xl needs 6.2 GB of host memory for it, not 12.4.

use crate::load::{device, load, Loaded};
use clap::Args;
use gpt2_webgpu::engine::{AnyEngine, Engine};
use gpt2_webgpu::io::hf::HfModel;
use gpt2_webgpu::reference::compare::{compare_logits, quant_bound, std_dev, weight_error};
use gpt2_webgpu::reference::cpu;
use gpt2_webgpu::sampling::SamplingParams;
use gpt2_webgpu::text::generate::{GenerateOptions, Generation};
use gpt2_webgpu::weights::Gpt2Weights;
use gpt2_webgpu::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct VerifyArgs {
    /// A q8 or q4 package (made by `gpt2 convert`).
    #[arg(long)]
    pub model: PathBuf,
    /// The Hugging Face folder it was converted from (its weights feed the f64 reference).
    #[arg(long)]
    pub reference: PathBuf,
    #[arg(long, default_value = "The quick brown fox jumps over the lazy dog")]
    pub prompt: String,
    /// Greedy tokens to generate (for the speed figure; the check is on the prompt's last logits).
    #[arg(long, default_value_t = 4)]
    pub tokens: usize,
    /// auto, gpu or cpu.
    #[arg(long, default_value = "gpu")]
    pub device: String,
}

/// The process's peak resident memory so far (Linux: VmHWM), in bytes.
fn peak_rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub fn verify(args: VerifyArgs) -> Result<()> {
    let VerifyArgs { model: dir, reference, prompt, tokens, device: dev } = args;
    let t0 = Instant::now();
    let Loaded { mut model, tok } = load(&dir, None, device(&dev)?)?;
    let load_s = t0.elapsed().as_secs_f64();
    let format = model.format();
    let e = weight_error(format)
        .ok_or_else(|| Error::InvalidArgument(format!("gpt2 verify checks a q8 or q4 package; {} is {}", dir.display(), format.name())))?;
    let gpu_bytes = match &model {
        AnyEngine::Gpu(m) => m.gpu_bytes(),
        AnyEngine::Cpu(_) => 0,
    };
    let cfg = model.config().clone();
    let v = cfg.vocab_size;
    let ids = tok.encode(&prompt)?;
    if ids.is_empty() {
        return Err(Error::InvalidArgument("the prompt has no tokens".into()));
    }
    let last = ids.len() - 1;
    model.reset();
    // The last token as a decode step of its own, so its logits read the past through the KV cache (f16
    // pairs for q8/q4 packages): the check covers the cache's rounding too.
    let got = if last == 0 {
        pollster::block_on(model.append_logits_at(&ids, &[0]))?
    } else {
        pollster::block_on(model.append_logits_at(&ids[..last], &[]))?;
        pollster::block_on(model.append_logits_at(&ids[last..], &[0]))?
    }; // [1, V]

    // Greedy generation: prefill, then `tokens - 1` decode steps.
    let sampling = SamplingParams { temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0, alternatives: 0 };
    let mut gen = Generation::new(&tok, &cfg, &prompt, GenerateOptions { max_new_tokens: tokens, sampling, stop_at_eos: false })?;
    let t1 = Instant::now();
    let mut t_first = None;
    let mut generated = Vec::new();
    while let Some(piece) = pollster::block_on(gen.next(&mut model, &tok))? {
        t_first.get_or_insert_with(|| t1.elapsed().as_secs_f64());
        generated.push(piece.token);
    }
    let total = t1.elapsed().as_secs_f64();
    let prefill = t_first.unwrap_or(total);
    let decode_tps = if generated.len() > 1 { (generated.len() - 1) as f64 / (total - prefill) } else { f64::NAN };
    let device_name = model.device_name();
    drop(model);
    let rss_model = peak_rss();

    // The f64 reference on the checkpoint's own weights.
    let t2 = Instant::now();
    let mut hf = HfModel::open(&reference)?;
    let w = Gpt2Weights::load(&mut hf)?;
    drop(hf);
    if w.config != cfg {
        return Err(Error::InvalidArgument(format!("{} and {} have different configs", dir.display(), reference.display())));
    }
    let want = cpu::forward_logits_at(&w, &ids, &[last])?.logits; // [1, V] f64
    let ref_s = t2.elapsed().as_secs_f64();
    drop(w);

    let bound = quant_bound(e, cfg.n_layer, std_dev(&want));
    let s = compare_logits(&got, &want, v, bound.margin);
    let ok = s.max_abs <= bound.max_abs && s.kl_max <= bound.kl_max && s.confident_agree == s.confident_rows;
    let mb = |b: u64| b as f64 / 1e6;
    let row = serde_json::json!({
        "model": dir.display().to_string(), "quantization": format.name(), "layers": cfg.n_layer, "device": device_name,
        "load_s": load_s, "gpu_bytes": gpu_bytes, "prompt_tokens": ids.len(), "generated": generated,
        "prefill_s": prefill, "decode_tokens_per_s": decode_tps,
        "max_abs": s.max_abs, "bound_max_abs": bound.max_abs, "kl": s.kl_max, "bound_kl": bound.kl_max,
        "sigma": bound.sigma, "logit_std": std_dev(&want), "top1_agree": s.top1_agree == 1,
        "margin_above_4_sigma": s.confident_rows == 1, "peak_rss_model": rss_model, "peak_rss_all": peak_rss(),
        "reference_s": ref_s, "ok": ok,
    });
    println!("{row}");
    eprintln!(
        "[{} {}: load {load_s:.1}s, GPU {:.1} MB, {} tokens at {decode_tps:.2} tokens/s; max |dlogit| {:.3e} (bound {:.3e}), KL {:.2e} (bound {:.2e}), reference {ref_s:.0}s]",
        dir.display(),
        format.name(),
        mb(gpu_bytes),
        generated.len(),
        s.max_abs,
        bound.max_abs,
        s.kl_max,
        bound.kl_max
    );
    if !ok {
        return Err(Error::InvalidArgument(format!(
            "{}: the logits are outside the {} bound of the f64 reference: max |dlogit| {:.3e} (bound {:.3e}), KL {:.2e} (bound {:.2e}), top-1 kept: {}",
            dir.display(),
            format.name(),
            s.max_abs,
            bound.max_abs,
            s.kl_max,
            bound.kl_max,
            s.confident_agree == s.confident_rows
        )));
    }
    Ok(())
}
