//! Commands that make model folders: `random`, `convert`, `download`, and `plan` (what a conversion
//! would produce, without writing anything).

use clap::Args;
use gpt2_webgpu::io::hf::HfModel;
use gpt2_webgpu::io::safetensors::Dtype;
use gpt2_webgpu::quant::WeightFormat;
use gpt2_webgpu::text::tokenizer::Tokenizer;
use gpt2_webgpu::{Error, Gpt2Config, Result};
use std::path::PathBuf;
use std::time::Instant;

/// The GPT-2 tokenizer, bundled so `gpt2 random` can write complete model folders offline.
const GPT2_TOKENIZER: &[u8] = include_bytes!("../../../tests/fixtures/tiny-gpt2/tokenizer.json");

/// Write a random-weight model with the real shapes of a GPT-2 size, in Hugging Face layout.
#[derive(Args)]
pub struct RandomArgs {
    #[arg(long)]
    pub size: String,
    /// f32 or f16
    #[arg(long, default_value = "f32")]
    pub dtype: String,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

pub fn random(args: RandomArgs) -> Result<()> {
    let RandomArgs { size, dtype, out, seed } = args;
    let cfg = Gpt2Config::preset(&size).ok_or_else(|| {
        Error::InvalidArgument(format!("--size must be one of {}, not `{size}`", Gpt2Config::PRESETS.join(", ")))
    })?;
    let dtype = match dtype.as_str() {
        "f32" => Dtype::F32,
        "f16" => Dtype::F16,
        other => return Err(Error::InvalidArgument(format!("--dtype must be f32 or f16, not `{other}`"))),
    };
    let t0 = Instant::now();
    gpt2_webgpu::io::random::write_random_model(&cfg, dtype, &out, GPT2_TOKENIZER, seed)?;
    eprintln!("[wrote a random {size} ({:.1}M params) to {} in {:.1}s]", cfg.n_params() as f64 / 1e6, out.display(), t0.elapsed().as_secs_f64());
    Ok(())
}

/// Convert a Hugging Face folder into a package (manifest + verified shards) for the web page.
#[derive(Args)]
pub struct ConvertArgs {
    /// Hugging Face GPT-2 folder.
    pub hf_dir: PathBuf,
    /// q8 (default), q4, f16 or f32.
    #[arg(long, default_value = "q8")]
    pub quant: String,
    #[arg(long)]
    pub out: PathBuf,
    /// Name recorded in the manifest (default: the folder's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Largest shard in bytes (64 MiB: static hosts refuse files over 100 MB).
    #[arg(long, default_value_t = gpt2_webgpu::package::DEFAULT_SHARD_BYTES)]
    pub shard_bytes: u64,
}

pub fn convert(args: ConvertArgs) -> Result<()> {
    let ConvertArgs { hf_dir, quant, out, name, shard_bytes } = args;
    let q = WeightFormat::parse(&quant)
        .ok_or_else(|| Error::InvalidArgument(format!("--quant must be q8, q4, f16 or f32, not `{quant}`")))?;
    let mut src = HfModel::open(&hf_dir)?;
    let name = name.unwrap_or_else(|| {
        hf_dir.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned())).unwrap_or_else(|| "gpt2".into())
    });
    let t0 = Instant::now();
    let tok = src.tokenizer_json().to_vec();
    let m = gpt2_webgpu::package::write_package_sharded(&mut src, &tok, q, &name, &out, shard_bytes)?;
    let bytes: u64 = m.shards.iter().map(|s| s.bytes).sum();
    eprintln!(
        "[wrote {} ({}) to {}: {} shards, {:.1} MB, in {:.1}s]",
        name,
        q.name(),
        out.display(),
        m.shards.len(),
        bytes as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Download a GPT-2 checkpoint from the Hugging Face hub (resumable, verified).
#[derive(Args)]
pub struct DownloadArgs {
    /// gpt2, gpt2-medium, gpt2-large, gpt2-xl or distilgpt2
    pub model: String,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = gpt2_webgpu::io::download::HUB_URL)]
    pub hub_url: String,
}

pub fn download(args: DownloadArgs) -> Result<()> {
    let DownloadArgs { model, out, hub_url } = args;
    let mut last = Instant::now() - std::time::Duration::from_secs(1);
    let mut current = String::new();
    gpt2_webgpu::io::download::download(&model, &out, &hub_url, |p| {
        let finished = p.total == Some(p.done);
        if p.file != current || finished || last.elapsed().as_millis() >= 200 {
            if p.file != current && !current.is_empty() {
                eprintln!();
            }
            current = p.file.clone();
            last = Instant::now();
            let bar = match p.total {
                Some(t) if t > 0 => {
                    let n = (30 * p.done / t) as usize;
                    format!("[{}{}] {:5.1}%", "#".repeat(n), ".".repeat(30 - n), 100.0 * p.done as f64 / t as f64)
                }
                _ => String::from("[ size unknown ]"),
            };
            eprint!(
                "\r{:<18} {bar} {:>9.1} / {} MB  {:>7.1} MB/s ",
                p.file,
                p.done as f64 / 1e6,
                p.total.map(|t| format!("{:.1}", t as f64 / 1e6)).unwrap_or_else(|| "?".into()),
                p.rate / 1e6
            );
        }
    })?;
    // The download checked config.json, the weights and that tokenizer.json is JSON; building the
    // tokenizer is the last check (text sits above io, so it happens here).
    let tok = out.join("tokenizer.json");
    let built = std::fs::read(&tok).map_err(|e| Error::io(&tok, e)).and_then(|b| Tokenizer::from_bytes(&b).map(|_| ()));
    if let Err(e) = built {
        let _ = std::fs::remove_file(&tok); // so that running the download again fetches it afresh
        return Err(e);
    }
    eprintln!("\n[{model} downloaded to {} and verified]", out.display());
    Ok(())
}

/// Package size and largest GPU buffer of every GPT-2 size and quantization, without writing
/// or loading anything (from the package layout and the model's buffer plan).
#[derive(Args)]
pub struct PlanArgs {
    /// The per-binding limit to plan against (WebGPU's default is 128 MiB).
    #[arg(long, default_value_t = 128 << 20)]
    pub max_binding: u64,
}

pub fn plan(args: PlanArgs) -> Result<()> {
    let PlanArgs { max_binding } = args;
    println!("{:<12} {:>6} {:>14} {:>20}", "model", "quant", "shards MB", "largest buffer MB");
    for name in Gpt2Config::PRESETS {
        let cfg = Gpt2Config::preset(name).expect("preset");
        for q in [WeightFormat::F32, WeightFormat::F16, WeightFormat::Q8, WeightFormat::Q4] {
            let bytes = gpt2_webgpu::package::package_size_plan(&cfg, q);
            let largest = match gpt2_webgpu::model::buffer_plan(&cfg, q, max_binding) {
                Ok(plan) => {
                    let (n, b) = plan.iter().max_by_key(|(_, b)| *b).expect("buffers");
                    format!("{:.1} ({n})", *b as f64 / 1e6)
                }
                Err(e) => format!("does not fit: {e}"),
            };
            println!("{:<12} {:>6} {:>14.1} {:>20}", name, q.name(), bytes as f64 / 1e6, largest);
        }
    }
    Ok(())
}
