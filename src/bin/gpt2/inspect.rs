//! Commands that look inside a model: `logits` (to a safetensors file), `inspect` (attention and the
//! logit lens) and `compare` (what a quantization costs against the f32 weights).

use crate::load::{device, load, Loaded};
use gpt2_webgpu::engine::Engine;
use clap::Args;
use gpt2_webgpu::io::safetensors::{Dtype, SafetensorsWriter};
use gpt2_webgpu::{Error, Result};
use std::path::PathBuf;
use std::time::Instant;

/// The built-in prompts of `gpt2 compare`: prose, code, numbers and non-English text.
const COMPARE_PROMPTS: [&str; 5] = [
    "The quick brown fox jumps over the lazy dog. In the beginning",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
    "In 1969, Neil Armstrong and Buzz Aldrin landed on the Moon at 20:17 UTC; the mission lasted 8 days,",
    "Der schnelle braune Fuchs springt über den faulen Hund. 東京は日本の首都です。",
    "Q: What is the capital of France?\nA:",
];

/// Write the logits at every position to a safetensors file.
#[derive(Args)]
pub struct LogitsArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, conflicts_with = "ids")]
    pub prompt: Option<String>,
    /// Comma-separated token ids.
    #[arg(long, value_delimiter = ',')]
    pub ids: Option<Vec<u32>>,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub weights: Option<String>,
    /// auto (a real GPU if there is one, else the CPU engine), gpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

pub fn logits(args: LogitsArgs) -> Result<()> {
    let LogitsArgs { model, prompt, ids, out, weights, device: dev } = args;
    let Loaded { mut model, tok } = load(&model, weights.as_deref(), device(&dev)?)?;
    let ids = match (prompt, ids) {
        (Some(p), None) => tok.encode(&p)?,
        (None, Some(ids)) => ids,
        _ => return Err(Error::InvalidArgument("give either --prompt TEXT or --ids 1,2,3".into())),
    };
    if ids.is_empty() {
        return Err(Error::InvalidArgument("no tokens: the prompt is empty".into()));
    }
    let p = model.config().n_positions;
    if ids.len() > p {
        return Err(Error::InvalidArgument(format!("{} tokens exceed the {p}-token context", ids.len())));
    }
    model.reset();
    let t0 = Instant::now();
    let logits = pollster::block_on(model.append_logits(&ids))?;
    let v = model.config().vocab_size;
    let ids_i32: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
    let mut w = SafetensorsWriter::create(
        &out,
        &[("logits", Dtype::F32, &[ids.len(), v]), ("ids", Dtype::I32, &[ids.len()])],
        None,
    )?;
    w.write_tensor("logits", bytemuck::cast_slice(&logits))?;
    w.write_tensor("ids", bytemuck::cast_slice(&ids_i32))?;
    w.finish()?;
    eprintln!("[wrote logits [{}, {v}] to {} in {:.2}s]", ids.len(), out.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

/// Look inside the model (either engine): every block's attention probabilities and the logit lens at a
/// position, written to a safetensors file as `attn.{l}` f32 [n_head, T, T] (row = query, column = key),
/// `lens` f32 [n_layer, V] (ln_f(residual stream after block l) @ wte^T) and `ids` i32 [T].
#[derive(Args)]
pub struct InspectArgs {
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, conflicts_with = "ids")]
    pub prompt: Option<String>,
    /// Comma-separated token ids.
    #[arg(long, value_delimiter = ',')]
    pub ids: Option<Vec<u32>>,
    /// The token (0-based) whose logit lens is written; default the last.
    #[arg(long)]
    pub position: Option<usize>,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub weights: Option<String>,
    /// auto (a real GPU if there is one, else the CPU engine), gpu or cpu.
    #[arg(long, default_value = "auto")]
    pub device: String,
}

pub fn inspect(args: InspectArgs) -> Result<()> {
    let InspectArgs { model, prompt, ids, position, out, weights, device: dev } = args;
    let Loaded { mut model, tok } = load(&model, weights.as_deref(), device(&dev)?)?;
    let ids = match (prompt, ids) {
        (Some(p), None) => tok.encode(&p)?,
        (None, Some(ids)) => ids,
        _ => return Err(Error::InvalidArgument("give either --prompt TEXT or --ids 1,2,3".into())),
    };
    let t0 = Instant::now();
    let r = pollster::block_on(model.inspect(&ids, position))?;
    let (t, v) = (ids.len(), model.config().vocab_size);
    let names: Vec<String> = (0..r.layers).map(|l| format!("attn.{l}")).collect();
    let attn_shape = [r.heads, t, t];
    let lens_shape = [r.layers, v];
    let ids_shape = [t];
    let mut decl: Vec<(&str, Dtype, &[usize])> = names.iter().map(|n| (n.as_str(), Dtype::F32, &attn_shape[..])).collect();
    decl.push(("lens", Dtype::F32, &lens_shape));
    decl.push(("ids", Dtype::I32, &ids_shape));
    let meta = [("position".to_string(), r.position.to_string())].into();
    let mut w = SafetensorsWriter::create(&out, &decl, Some(&meta))?;
    let per_layer = r.heads * t * t;
    for (l, name) in names.iter().enumerate() {
        w.write_tensor(name, bytemuck::cast_slice(&r.attention[l * per_layer..][..per_layer]))?;
    }
    w.write_tensor("lens", bytemuck::cast_slice(&r.lens))?;
    let ids_i32: Vec<i32> = ids.iter().map(|&i| i as i32).collect();
    w.write_tensor("ids", bytemuck::cast_slice(&ids_i32))?;
    w.finish()?;
    eprintln!(
        "[wrote attention {} x [{}, {t}, {t}] and the lens [{}, {v}] at position {} to {} in {:.2}s]",
        r.layers,
        r.heads,
        r.layers,
        r.position,
        out.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// What a package's quantization costs: per prompt, max |logit error|, KL and top-1 agreement
/// against the f32 weights of the Hugging Face folder it came from.
#[derive(Args)]
pub struct CompareArgs {
    /// A package (or a Hugging Face folder with --weights).
    #[arg(long)]
    pub model: PathBuf,
    /// The Hugging Face folder, run in f32.
    #[arg(long)]
    pub reference: PathBuf,
    #[arg(long)]
    pub weights: Option<String>,
    /// Extra prompts (the built-in set covers prose, code, numbers and non-English text).
    #[arg(long)]
    pub prompt: Vec<String>,
    /// auto, gpu or cpu (both models run on it).
    #[arg(long, default_value = "auto")]
    pub device: String,
}

pub fn compare(args: CompareArgs) -> Result<()> {
    let CompareArgs { model, reference, weights, prompt, device: dev } = args;
    let dev = device(&dev)?;
    let Loaded { model: mut m, tok } = load(&model, weights.as_deref(), dev)?;
    let Loaded { model: mut r, .. } = load(&reference, Some("f32"), dev)?;
    if m.config() != r.config() {
        return Err(Error::InvalidArgument("the model and the reference have different configs".into()));
    }
    let v = m.config().vocab_size;
    let prompts: Vec<String> = COMPARE_PROMPTS.iter().map(|s| s.to_string()).chain(prompt).collect();
    println!("{:<44} {:>5} {:>12} {:>10} {:>10} {:>8}", "prompt", "rows", "max|dlogit|", "KL mean", "KL max", "top-1");
    let (mut rows, mut agree, mut kl) = (0, 0, 0.0);
    for p in &prompts {
        let ids = tok.encode(p)?;
        if ids.is_empty() {
            continue;
        }
        m.reset();
        r.reset();
        let got = pollster::block_on(m.append_logits(&ids))?;
        let want = pollster::block_on(r.append_logits(&ids))?;
        let s = gpt2_webgpu::reference::compare::compare_logits(&got, &want, v, 0.0);
        let short: String = p.chars().take(40).collect::<String>().replace('\n', " ");
        println!(
            "{:<44} {:>5} {:>12.3e} {:>10.2e} {:>10.2e} {:>4}/{:<3}",
            short, s.rows, s.max_abs, s.kl_mean, s.kl_max, s.top1_agree, s.rows
        );
        rows += s.rows;
        agree += s.top1_agree;
        kl += s.kl_mean * s.rows as f64;
    }
    println!("overall: top-1 agreement {agree}/{rows} ({:.1}%), mean KL {:.2e} nats", 100.0 * agree as f64 / rows.max(1) as f64, kl / rows.max(1) as f64);
    Ok(())
}
