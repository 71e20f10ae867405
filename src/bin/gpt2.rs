//! `gpt2`: the native command line. Same model code as the browser; only the I/O differs.

#[cfg(target_arch = "wasm32")]
fn main() {}

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(not(target_arch = "wasm32"))]
mod cli {
    use clap::{Parser, Subcommand};
    use gpt2_webgpu::generate::{GenerateOptions, Generation};
    use gpt2_webgpu::gpu::Gpu;
    use gpt2_webgpu::hf::HfModel;
    use gpt2_webgpu::model::{Model, SamplingParams};
    use gpt2_webgpu::quant::WeightFormat;
    use gpt2_webgpu::safetensors::{Dtype, SafetensorsWriter};
    use gpt2_webgpu::tokenizer::Tokenizer;
    use gpt2_webgpu::{Error, Gpt2Config, Result};
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::Instant;

    /// The GPT-2 tokenizer, bundled so `gpt2 random` can write complete model folders offline.
    const GPT2_TOKENIZER: &[u8] = include_bytes!("../../tests/fixtures/tiny-gpt2/tokenizer.json");

    #[derive(Parser)]
    #[command(name = "gpt2", version, about = "GPT-2 on WebGPU kernels (wgpu): generate, inspect, make test models")]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(Subcommand)]
    enum Cmd {
        /// Generate text, streamed to stdout; speed on stderr.
        Generate {
            /// A Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json).
            #[arg(long)]
            model: PathBuf,
            #[arg(long, default_value = "")]
            prompt: String,
            #[arg(long, default_value_t = 50)]
            max_new_tokens: usize,
            /// 0 = greedy.
            #[arg(long, default_value_t = 1.0)]
            temperature: f32,
            /// 0 = off.
            #[arg(long, default_value_t = 50)]
            top_k: u32,
            #[arg(long, default_value_t = 1.0)]
            top_p: f32,
            #[arg(long, default_value_t = 1.0)]
            repetition_penalty: f32,
            /// Random if not given (printed on stderr so a run can be repeated).
            #[arg(long)]
            seed: Option<u64>,
            /// Weight format on the GPU when loading a Hugging Face folder: f32, f16, q8 or q4.
            #[arg(long, default_value = "f32")]
            weights: String,
            /// Keep going past <|endoftext|>.
            #[arg(long)]
            ignore_eos: bool,
        },
        /// Write the logits at every position (computed on the GPU) to a safetensors file.
        Logits {
            #[arg(long)]
            model: PathBuf,
            #[arg(long, conflicts_with = "ids")]
            prompt: Option<String>,
            /// Comma-separated token ids.
            #[arg(long, value_delimiter = ',')]
            ids: Option<Vec<u32>>,
            #[arg(long)]
            out: PathBuf,
            #[arg(long, default_value = "f32")]
            weights: String,
        },
        /// Write a random-weight model with the real shapes of a GPT-2 size, in Hugging Face layout.
        Random {
            #[arg(long)]
            size: String,
            /// f32 or f16
            #[arg(long, default_value = "f32")]
            dtype: String,
            #[arg(long)]
            out: PathBuf,
            #[arg(long, default_value_t = 0)]
            seed: u64,
        },
        /// Show the GPU adapter, backend, features and limits.
        Info,
    }

    pub fn main() -> ExitCode {
        let cli = Cli::parse();
        match run(cli.cmd) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn weight_format(s: &str) -> Result<WeightFormat> {
        WeightFormat::parse(s).ok_or_else(|| Error::InvalidArgument(format!("--weights must be f32, f16, q8 or q4, not `{s}`")))
    }

    struct Loaded {
        model: Model,
        tok: Tokenizer,
    }

    fn load(dir: &Path, weights: &str) -> Result<Loaded> {
        let format = weight_format(weights)?;
        let mut src = HfModel::open(dir)?;
        let tok = Tokenizer::from_bytes(src.tokenizer_json())?;
        let gpu = Arc::new(pollster::block_on(Gpu::new())?);
        let t0 = Instant::now();
        let model = pollster::block_on(Model::load(gpu, &mut src, format))?;
        eprintln!(
            "[loaded {} ({} layers, C={}, {:.1}M params) as {} in {:.2}s on {} ({:?})]",
            dir.display(),
            model.config().n_layer,
            model.config().n_embd,
            model.config().n_params() as f64 / 1e6,
            format.name(),
            t0.elapsed().as_secs_f64(),
            model.gpu().info.adapter.name,
            model.gpu().info.adapter.backend
        );
        Ok(Loaded { model, tok })
    }

    fn run(cmd: Cmd) -> Result<()> {
        match cmd {
            Cmd::Generate { model, prompt, max_new_tokens, temperature, top_k, top_p, repetition_penalty, seed, weights, ignore_eos } => {
                let seed = seed.unwrap_or_else(|| {
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
                });
                let sampling = SamplingParams { temperature, top_k, top_p, repetition_penalty, seed, alternatives: 0 };
                sampling.validate()?;
                let Loaded { mut model, tok } = load(&model, &weights)?;
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
            Cmd::Logits { model, prompt, ids, out, weights } => {
                let Loaded { mut model, tok } = load(&model, &weights)?;
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
            Cmd::Random { size, dtype, out, seed } => {
                let cfg = Gpt2Config::preset(&size).ok_or_else(|| {
                    Error::InvalidArgument(format!("--size must be one of {}, not `{size}`", Gpt2Config::PRESETS.join(", ")))
                })?;
                let dtype = match dtype.as_str() {
                    "f32" => Dtype::F32,
                    "f16" => Dtype::F16,
                    other => return Err(Error::InvalidArgument(format!("--dtype must be f32 or f16, not `{other}`"))),
                };
                let t0 = Instant::now();
                gpt2_webgpu::random::write_random_model(&cfg, dtype, &out, GPT2_TOKENIZER, seed)?;
                eprintln!("[wrote a random {size} ({:.1}M params) to {} in {:.1}s]", cfg.n_params() as f64 / 1e6, out.display(), t0.elapsed().as_secs_f64());
                Ok(())
            }
            Cmd::Info => {
                let gpu = pollster::block_on(Gpu::new())?;
                println!("{}", gpu.info);
                Ok(())
            }
        }
    }
}
